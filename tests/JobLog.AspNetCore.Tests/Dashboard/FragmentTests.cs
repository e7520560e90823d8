using System.Text.RegularExpressions;
using JobLog.AspNetCore.Dashboard;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>
/// The live refresh asks a page for one of its fragments (<c>X-JobLog-Fragment</c>) and swaps it in: the fragment must
/// be exactly the markup the full page has for that part, so rows are rendered once, on the server.
/// </summary>
public partial class FragmentTests
{
    private const string Header = "X-JobLog-Fragment";

    private DashboardHost _host = null!;
    private DateTime _now;
    private TaskLog _active = null!;
    private TaskLog _finished = null!;
    private CommandLog _running = null!;

    [SetUp]
    public async Task SetUp()
    {
        // One instant for both requests: durations of unfinished work and the chart's buckets depend on the clock.
        _now = new DateTime(2026, 3, 2, 10, 30, 15, DateTimeKind.Utc);
        var clock = new FixedClock(new DateTimeOffset(_now));
        _host = await DashboardHost.StartAsync(TestLedger.Sqlite(), services: b => b.Services.AddSingleton<TimeProvider>(clock));
        _active = Rows.Task("Import", _now.AddMinutes(-1), TaskState.Active, input: "File=<script>alert(1)</script>\u202Efdp.exe");
        _finished = Rows.Task("SendInvoice", _now.AddMinutes(-5), TaskState.Failed, input: "Email=\"><img src=x onerror=alert(1)>");
        var waiting = Rows.Task("ChargeCard", _now.AddMinutes(-2), TaskState.Waiting);
        _running = new CommandLog { Id = Guid.NewGuid(), Name = "import", Input = "--file <b>x</b>", Start = _now.AddSeconds(-30) };
        await _host.SeedAsync(
            _active, Rows.Run(_active, 0, TaskRunState.Active, 0.1, null, output: "info: <i>working</i>"),
            _finished, Rows.Run(_finished, 0, TaskRunState.Failed, 0.1, 0.3, error: "SmtpException: <b>550</b>"),
            waiting, _running,
            new InputRequestLog
            {
                Id = Guid.NewGuid(), Host = "api.test", Method = "GET", Path = "/orders/<1>", RequestTimestamp = _now.AddSeconds(-9),
                ResponseTimestamp = _now.AddSeconds(-9).AddMilliseconds(12), ResponseCode = 200, Status = RequestLogStatus.Info, Ip = "10.0.0.1",
            },
            new OutputRequestLog
            {
                Id = Guid.NewGuid(), Host = "psp.test", Method = "POST", Path = "/charge/<2>", RequestTimestamp = _now.AddSeconds(-8),
                ResponseTimestamp = _now.AddSeconds(-8).AddMilliseconds(40), ResponseCode = 502, Status = RequestLogStatus.Error,
            });
    }

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    [Test]
    public async Task TaskList_ListFragmentAndFullPage_RenderTheSameRowMarkup()
    {
        var page = await _host.GetStringAsync("/joblog/tasks");
        using var response = await GetFragmentAsync("/joblog/tasks", "list");
        var fragment = await response.Content.ReadAsStringAsync();

        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("text/html"));
        Assert.That(response.Headers.Vary, Does.Contain(Header), "the same URL answers a page and a fragment");
        Assert.That(string.Join(";", response.Headers.GetValues("Content-Security-Policy")), Does.Contain("script-src 'self'"));
        Assert.That(fragment, Does.StartWith("<section class=\"card table-card\" data-fragment=\"list\" data-live=\"on\">"));
        Assert.That(fragment, Does.EndWith("</section>"));
        Assert.That(fragment, Does.Not.Contain("<html").And.Not.Contain("<form").And.Not.Contain("<script"));
        Assert.That(page, Does.Contain(fragment), "the fragment is the page's own markup for that part");
        var rows = TableRows(fragment);
        Assert.That(rows, Has.Count.EqualTo(3));
        Assert.That(rows, Is.EqualTo(TableRows(page)));
        Assert.That(fragment, Does.Contain("File=&lt;script&gt;alert(1)&lt;/script&gt;[U&#x2B;202E]fdp.exe"), "encoded by the server");
    }

    [Test]
    public async Task EveryList_AnswersItsListFragment_AsThePageWritesIt()
    {
        foreach (var url in new[] { "/joblog/tasks?state=failed", "/joblog/requests/in", "/joblog/requests/out", "/joblog/commands?outcome=running" })
        {
            var page = await _host.GetStringAsync(url);
            using var response = await GetFragmentAsync(url, "list");
            var fragment = await response.Content.ReadAsStringAsync();

            Assert.That(fragment, Does.StartWith("<section class=\"card table-card\" data-fragment=\"list\""), url);
            Assert.That(page, Does.Contain(fragment), url);
            Assert.That(TableRows(fragment), Has.Count.EqualTo(1).And.EqualTo(TableRows(page)), url);
        }
    }

    [Test]
    public async Task LivePages_AnswerTheirMainFragment_AsThePageWritesIt()
    {
        foreach (var (url, live) in new[]
        {
            ("/joblog", true), ($"/joblog/tasks/{_active.Id}", true), ($"/joblog/commands/{_running.Id}", true), ($"/joblog/tasks/{_finished.Id}", false),
        })
        {
            var page = await _host.GetStringAsync(url);
            using var response = await GetFragmentAsync(url, "main");
            var fragment = await response.Content.ReadAsStringAsync();

            Assert.That(fragment, Does.StartWith(live ? "<main data-fragment=\"main\" data-live=\"on\">" : "<main data-fragment=\"main\">"), url);
            Assert.That(fragment, Does.EndWith("</main>"), url);
            Assert.That(page, Does.Contain(fragment), url);
            Assert.That(page.Contains("id=\"live-toggle\"", StringComparison.Ordinal), Is.EqualTo(live), url + ": the Live switch");
        }
    }

    [Test]
    public async Task TaskList_NotOnItsFirstPage_DoesNotRefreshItself()
    {
        foreach (var url in new[] { "/joblog/tasks?limit=1&cursor=" + Cursor(), "/joblog/tasks?state=nonsense" })
        {
            var page = await _host.GetStringAsync(url, url.Contains("nonsense", StringComparison.Ordinal) ? System.Net.HttpStatusCode.BadRequest : System.Net.HttpStatusCode.OK);

            Assert.That(page, Does.Contain("data-fragment=\"list\">"), url);
            Assert.That(page, Does.Not.Contain("data-live"), url);
            Assert.That(page, Does.Not.Contain("id=\"live-toggle\""), url);
        }
    }

    [Test]
    public async Task UnknownOrMalformedFragment_AnswersTheWholePage()
    {
        foreach (var name in new[] { "nosuch", "<script>", "LIST", "list,main" })
        {
            using var response = await GetFragmentAsync("/joblog/tasks", name);
            var body = await response.Content.ReadAsStringAsync();

            Assert.That(response.IsSuccessStatusCode, Is.True, name);
            Assert.That(body, Does.StartWith("<!doctype html>"), name);
        }
    }

    [Test]
    public async Task ListFragment_WhenSearchesAreBusy_Is429LikeThePage()
    {
        JobLogDashboardOptions options = null!;
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.MaxConcurrentSearches = 1;
            options = o;
        });
        using var slot = options.Searches.TryEnter();
        Assert.That(slot, Is.Not.Null);

        using var response = await host.Client.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/joblog/tasks?q=x") { Headers = { { Header, "list" } } });

        Assert.That((int)response.StatusCode, Is.EqualTo(429));
        Assert.That(response.Headers.RetryAfter?.ToString(), Is.EqualTo("1"));
    }

    private string Cursor() => new JobLog.Querying.Cursor(_now.AddMinutes(-1), _active.Id).ToString();

    private async Task<HttpResponseMessage> GetFragmentAsync(string url, string fragment)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Add(Header, fragment);
        var response = await _host.Client.SendAsync(request);
        Assert.That(response.IsSuccessStatusCode, Is.True, () => $"GET {url} ({fragment}): {(int)response.StatusCode}");
        return response;
    }

    private static List<string> TableRows(string html) => [.. RowPattern().Matches(html).Select(m => m.Value)];

    [GeneratedRegex("<tr data-id=\"[^\"]+\">.*?</tr>", RegexOptions.Singleline)]
    private static partial Regex RowPattern();

    /// <summary>A clock that stands still (timers still run on the system's).</summary>
    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
