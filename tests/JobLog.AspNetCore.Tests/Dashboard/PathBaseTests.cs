using System.Net;
using System.Text.RegularExpressions;
using JobLog.Testing;
using Microsoft.AspNetCore.Builder;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>
/// An application behind a reverse proxy that serves it under a path (<c>app.UsePathBase("/ops")</c>): every URL a page
/// hands the browser (links, assets, forms, the script's fetch targets) carries the base, or the proxy sends it to
/// another application. <c>UsePathBase</c> also serves a URL without the base, so only the URLs themselves show it.
/// </summary>
public class PathBaseTests
{
    private const string Base = "/ops";

    private static readonly Regex Url = new(
        "\\s(?<name>href|src|action|formaction|data-[a-z-]*url)=\"(?<url>[^\"]*)\"", RegexOptions.CultureInvariant);

    [Test]
    public async Task EveryPageReachedFromTheOverview_GivesOnlyUrlsUnderThePathBase()
    {
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite(), beforeMap: app => app.UsePathBase(Base));
        await SeedEveryKindAsync(host);

        var visited = new HashSet<string>(StringComparer.Ordinal);
        var queue = new Queue<string>([Base + "/joblog"]);
        var outside = new List<string>();
        while (queue.Count > 0 && visited.Count < 120)
        {
            var page = queue.Dequeue();
            if (!visited.Add(page))
            {
                continue;
            }

            using var response = await host.Client.GetAsync(page);
            var body = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), () => $"GET {page}: {body}");
            if (response.Content.Headers.ContentType?.MediaType != "text/html")
            {
                continue;
            }

            foreach (Match match in Url.Matches(body))
            {
                var url = WebUtility.HtmlDecode(match.Groups["url"].Value);
                if (!url.StartsWith('/') || url.StartsWith("//", StringComparison.Ordinal))
                {
                    continue;
                }

                if (!url.StartsWith(Base + "/", StringComparison.Ordinal))
                {
                    outside.Add($"{page}: {match.Groups["name"].Value}=\"{url}\"");
                }
                else if (match.Groups["name"].Value == "href" && url.StartsWith(Base + "/joblog", StringComparison.Ordinal))
                {
                    queue.Enqueue(url.Split('#')[0]);
                }
            }
        }

        Assert.That(outside, Is.Empty);
        Assert.That(visited, Has.Count.GreaterThan(10), "the crawl reached the pages of every kind");
        Assert.That(visited.Where(v => v.Contains("/tasks/", StringComparison.Ordinal)), Is.Not.Empty);
        Assert.That(visited.Where(v => v.Contains("/commands/", StringComparison.Ordinal)), Is.Not.Empty);
    }

    private static async Task SeedEveryKindAsync(DashboardHost host)
    {
        var now = DateTime.UtcNow;
        var parent = Rows.Task("ChargeCard", now.AddMinutes(-3), TaskState.Failed, input: "Amount=10");
        var run = Rows.Run(parent, 0, TaskRunState.Failed, 0.1, 0.3, error: "InvalidOperationException: declined", output: "info: charging");
        var child = Rows.Task("SendReceipt", now.AddMinutes(-2));
        child.ParentRunId = run.Id;
        var input = new InputRequestLog
        {
            Id = Guid.NewGuid(), Host = "shop.test", Method = "POST", Path = "/orders", RequestTimestamp = now.AddMinutes(-4),
            ResponseTimestamp = now.AddMinutes(-4).AddMilliseconds(30), ResponseCode = 202, Status = RequestLogStatus.Info, Ip = "10.0.0.1",
        };
        parent.InputRequestId = input.Id;
        var output = new OutputRequestLog
        {
            Id = Guid.NewGuid(), Host = "psp.test", Method = "POST", Path = "/charge", RequestTimestamp = now.AddMinutes(-3),
            ResponseTimestamp = now.AddMinutes(-3).AddMilliseconds(80), ResponseCode = 502, Status = RequestLogStatus.Error,
            InputRequestId = input.Id,
            RelatedObjects = [new OutputRequestRelatedObject { Id = Guid.NewGuid(), TaskRunLogId = run.Id }],
        };
        var command = new CommandLog
        {
            Id = Guid.NewGuid(), Name = "import", Input = "--file orders.csv", Start = now.AddMinutes(-5), Stop = now.AddMinutes(-5).AddSeconds(2),
            IsSuccessful = true, ExitCode = 0, ExecutedFromCommandLine = true,
        };
        await host.SeedAsync(parent, run, child, Rows.Run(child, 0, TaskRunState.Succeeded, 0.1, 0.2), input, output, command);
    }
}
