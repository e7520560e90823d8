using Microsoft.Playwright;
using NUnit.Framework;

namespace JobLog.Worker.Tests.Hostile40;

/// <summary>
/// The real Worker's dashboard in headless Chromium over a ledger whose every text is hostile: markup, <c>javascript:</c>
/// URLs, bidi overrides, ANSI escapes, a line of a megabyte. No script may run (a dialog fails the test), no link may
/// lead to <c>javascript:</c>, every page keeps its CSP and stays usable (its navigation visible and clickable).
/// </summary>
[TestFixture]
[Category("Browser")]
public class HostileLedgerBrowserTests
{
    private const string Markup = "<script>window.__pwned=1;alert(1)</script>\"'><img src=x onerror=\"window.__pwned=2;alert(2)\"><svg onload=alert(3)>";
    private const string JsUrl = "javascript:window.__pwned=3;alert(4)//";
    private const string Ansi = "\u001b]0;pwned\u0007\u001b[2J\u001b[31mred\u001b[0m\u009b31m";
    private const string Rtl = "invoice\u202Efdp.exe\u2066\u2069";
    private static readonly string Hostile = Markup + " " + JsUrl + " " + Ansi + " " + Rtl;
    private static readonly string Megabyte = "A" + new string('W', 1024 * 1024) + "Z";

    private WorkerHost _worker = null!;
    private Chromium _chromium = null!;
    private readonly List<string> _ids = [];

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _chromium = await Chromium.LaunchAsync();
        _worker = await WorkerHost.StartAsync();
        var at = DateTime.UtcNow.AddMinutes(-3);
        var rows = new List<object>();
        foreach (var (name, text) in new[] { ("markup", Hostile), ("megabyte", Megabyte + " " + Hostile) })
        {
            var task = new TaskLog
            {
                Id = Guid.NewGuid(), Name = JsUrl + name + Markup, QueueName = JsUrl + Rtl, Input = "File=" + text, DispatchedAt = at, Start = at,
                Stop = at.AddSeconds(1), State = TaskState.Failed, Host = Ansi + Markup, ErrorMessage = text,
            };
            var run = new TaskRunLog
            {
                Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, QueueName = task.QueueName, ConsumerType = JsUrl + Markup,
                Start = at, Stop = at.AddSeconds(1), State = TaskRunState.Failed, ErrorMessage = "System.FormatException: " + text + "\n   at Shop.Import.Handle()",
                Output = "line 1\n" + text + "\n" + Ansi,
            };
            var inbound = new InputRequestLog
            {
                Id = Guid.NewGuid(), Host = JsUrl + Markup, Method = "GET" + Markup, Path = "/" + JsUrl + text, Queries = "?q=" + text,
                Slug = JsUrl, RequestTimestamp = at, ResponseTimestamp = at.AddSeconds(1), ResponseCode = 500, RequestHeaders = "Referer: " + JsUrl + "\n" + text,
                RequestBody = text, ResponseBody = text, Status = RequestLogStatus.Error, ErrorDescription = text, ExceptionName = Markup, UserId = JsUrl, Ip = "127.0.0.1",
            };
            var outbound = new OutputRequestLog
            {
                Id = Guid.NewGuid(), Host = JsUrl + Markup, Method = "POST", Path = "/" + text, Queries = JsUrl, Slug = Markup, RequestTimestamp = at,
                ResponseTimestamp = at.AddSeconds(1), ResponseCode = 502, ResponseBody = text, Status = RequestLogStatus.Error, ErrorDescription = text,
            };
            outbound.RelatedObjects.Add(new OutputRequestRelatedObject { Id = Guid.NewGuid(), OutputRequestId = outbound.Id, TaskRunLogId = run.Id });
            var command = new CommandLog
            {
                Id = Guid.NewGuid(), Name = JsUrl + Markup, Input = text, Start = at, Stop = at.AddSeconds(1), Output = text, IsSuccessful = false,
                ErrorMessage = text, ExitCode = 1, Host = Markup,
            };
            rows.AddRange([task, run, inbound, outbound, command]);
            _ids.AddRange([$"/joblog/tasks/{task.Id}", $"/joblog/requests/in/{inbound.Id}", $"/joblog/requests/out/{outbound.Id}", $"/joblog/commands/{command.Id}"]);
        }

        rows.Add(new HostLog
        {
            InstanceId = Guid.NewGuid(), Name = JsUrl + Markup, ProcessId = 1, Release = Ansi + Rtl, StartedAt = at, LastHeartbeat = at,
        });
        await _worker.SeedAsync(rows);
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_worker is not null)
        {
            await _worker.DisposeAsync();
        }

        if (_chromium is not null)
        {
            await _chromium.DisposeAsync();
        }
    }

    [Test]
    public async Task EveryPage_OverHostileLedgerText_RunsNoScript_LinksNowhereElse_KeepsItsCsp_AndStaysUsable()
    {
        var pages = new List<string>
        {
            "/joblog", "/joblog/tasks", "/joblog/tasks?state=failed", "/joblog/tasks?q=" + Uri.EscapeDataString("WWWWWWWW"), "/joblog/requests/in",
            "/joblog/requests/out", "/joblog/commands", "/joblog/hosts", "/joblog/failures", "/joblog/failures?by=queue", "/joblog/failures?by=type",
            "/joblog/failures?by=exception",
        };
        pages.AddRange(_ids);
        pages.AddRange(await FailureGroupPagesAsync());
        var dialogs = new List<string>();
        var errors = new List<string>();
        await using var context = await _chromium.Browser.NewContextAsync(new() { BaseURL = _worker.Url, ViewportSize = new() { Width = 1280, Height = 900 } });
        var page = await context.NewPageAsync();
        page.Dialog += (_, dialog) =>
        {
            dialogs.Add(page.Url + ": " + dialog.Message);
            _ = dialog.DismissAsync();
        };
        page.PageError += (_, error) => errors.Add(page.Url + ": " + error);
        page.Console += (_, message) =>
        {
            // A CSP report of a blocked inline script would say an injection reached the DOM as markup.
            if (message.Type == "error")
            {
                errors.Add(page.Url + ": console: " + message.Text);
            }
        };

        foreach (var url in pages)
        {
            var response = await page.GotoAsync(url, new() { Timeout = 60_000 });
            await page.WaitForLoadStateAsync(LoadState.Load);

            Assert.That(response!.Status, Is.EqualTo(200), url);
            var headers = await response.AllHeadersAsync();
            Assert.That(headers.GetValueOrDefault("content-security-policy"), Does.Contain("script-src 'self'").And.Contain("default-src 'none'"), url);
            Assert.That(headers.GetValueOrDefault("x-content-type-options"), Is.EqualTo("nosniff"), url);
            Assert.That(await page.EvaluateAsync<bool>("() => window.__pwned === undefined"), Is.True, url);
            Assert.That(await page.Locator("img, svg[onload], iframe, object, embed").CountAsync(), Is.Zero, url + ": no injected element");
            Assert.That(await page.Locator("script").CountAsync(), Is.EqualTo(1), url + ": only the dashboard's script");
            var hrefs = await page.EvaluateAsync<string[]>(
                "() => [...document.querySelectorAll('[href],[src],[action],[formaction]')].map(e => e.getAttribute('href') ?? e.getAttribute('src') ?? e.getAttribute('action') ?? e.getAttribute('formaction'))");
            Assert.That(hrefs.Where(h => !(h.StartsWith('/') && !h.StartsWith("//", StringComparison.Ordinal)) && !h.StartsWith('?') && !h.StartsWith('#')), Is.Empty, url + ": every link stays on the dashboard");

            // Usable: the navigation is on screen and its first link takes a click (a megabyte line must not push it away
            // or cover it).
            var nav = page.Locator("nav a").First;
            Assert.That(await nav.IsVisibleAsync(), Is.True, url);
            var box = await nav.BoundingBoxAsync();
            Assert.That(box, Is.Not.Null, url);
            Assert.That(box!.X + box.Width, Is.LessThanOrEqualTo(1280), url + ": the navigation is within the viewport");
            await nav.ClickAsync(new() { Trial = true, Timeout = 30_000 });
            var ansiRaw = await page.EvaluateAsync<bool>("() => document.body.innerText.includes('\\u001b') || document.body.innerText.includes('\\u009b')");
            Assert.That(ansiRaw, Is.False, url + ": escape characters are shown visibly, not raw");
            var bidiRaw = await page.EvaluateAsync<bool>("() => /[\\u202a-\\u202e\\u2066-\\u2069]/.test(document.body.innerText)");
            Assert.That(bidiRaw, Is.False, url + ": bidi controls are shown visibly, not raw");
        }

        Assert.That(dialogs, Is.Empty);
        Assert.That(errors, Is.Empty);
    }

    private async Task<List<string>> FailureGroupPagesAsync()
    {
        using var client = new HttpClient { BaseAddress = new Uri(_worker.Url) };
        var pages = new List<string>();
        foreach (var by in new[] { "type", "queue", "exception" })
        {
            var json = await client.GetStringAsync("/joblog/api/failures?by=" + by);
            pages.AddRange(System.Text.RegularExpressions.Regex.Matches(json, "\"id\":\"([^\"]+)\"").Select(m => "/joblog/failures/groups/" + Uri.EscapeDataString(m.Groups[1].Value)));
        }

        Assert.That(pages, Is.Not.Empty);
        return [.. pages.Distinct()];
    }
}
