using System.Globalization;
using JobLog.Worker.Demo;
using Microsoft.EntityFrameworkCore;
using Microsoft.Playwright;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary>The dashboard of the real Worker, in headless Chromium.</summary>
[TestFixture]
[Category("Browser")]
public class DashboardBrowserTests
{
    private const string Script = "<script>window.__pwned=1;alert(1)</script>";
    private const string Img = "\"><img src=x onerror=\"window.__pwned=2;alert(2)\">";

    private WorkerHost _worker = null!;
    private Chromium _chromium = null!;
    private IBrowserContext _context = null!;
    private IPage _page = null!;
    private List<object> _history = null!;
    private readonly List<IDialog> _dialogs = [];
    private readonly List<string> _errors = [];

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _chromium = await Chromium.LaunchAsync();
        _worker = await WorkerHost.StartAsync();
        _history = DemoLedger.History(DateTime.UtcNow);
        await _worker.SeedAsync(_history);
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

    [SetUp]
    public async Task NewPageAsync()
    {
        _dialogs.Clear();
        _errors.Clear();
        _context = await _chromium.Browser.NewContextAsync(new() { BaseURL = _worker.Url, ViewportSize = new() { Width = 1400, Height = 1000 } });
        _page = await _context.NewPageAsync();
        _page.Dialog += (_, dialog) =>
        {
            _dialogs.Add(dialog);
            _ = dialog.DismissAsync();
        };
        _page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                _errors.Add("console: " + message.Text);
            }
        };
        _page.PageError += (_, error) => _errors.Add("page: " + error);
    }

    [TearDown]
    public async Task ClosePageAsync() => await _context.DisposeAsync();

    [Test]
    public async Task Overview_DrawsTheThroughputChartFromTheLedger()
    {
        var response = await _page.GotoAsync("/joblog");

        Assert.That(response!.Status, Is.EqualTo(200));
        var chart = _page.Locator("svg.chart");
        Assert.That(await chart.CountAsync(), Is.EqualTo(1));
        var finished = int.Parse((await chart.GetAttributeAsync("data-finished"))!, CultureInfo.InvariantCulture);
        Assert.That(finished, Is.GreaterThan(100));
        var bars = _page.Locator("svg.chart rect.bar");
        Assert.That(await bars.CountAsync(), Is.GreaterThan(30));
        var box = await _page.Locator("svg.chart rect.bar.ok").First.BoundingBoxAsync();
        Assert.That(box!.Height, Is.GreaterThan(1), "a bar is drawn with a visible height");
        Assert.That(await _page.Locator("svg.chart rect.bar.fail").CountAsync(), Is.GreaterThan(0));
        Assert.That(await _page.Locator("svg.chart polyline.rate").CountAsync(), Is.EqualTo(1));
        var failedCard = await _page.Locator("[data-stat=failed]").InnerTextAsync();
        var failedInLedger = _history.OfType<TaskLog>().Count(t => t.State == TaskState.Failed);
        Assert.That(int.Parse(failedCard, NumberStyles.AllowThousands, CultureInfo.InvariantCulture), Is.GreaterThanOrEqualTo(failedInLedger));
        Assert.That(await _page.Locator("text=Slowest tasks").CountAsync(), Is.EqualTo(1));
        Assert.That(await _page.Locator("table >> text=BuildReport").First.IsVisibleAsync(), Is.True, "the slowest task name");
        Assert.That(_errors, Is.Empty);
    }

    [Test]
    public async Task Overview_LiveRefresh_RedrawsCountsAndChartWithoutReloading()
    {
        await _page.GotoAsync("/joblog");
        await _page.EvaluateAsync("() => { window.__sameDocument = true; }");
        var before = await _page.Locator("[data-stat=total]").InnerTextAsync();
        var now = DateTime.UtcNow;
        await _worker.SeedAsync(Enumerable.Range(0, 7).Select(i => (object)new TaskLog
        {
            Id = Guid.NewGuid(), Name = "LiveOverview", DispatchedAt = now, Start = now, Stop = now.AddMilliseconds(50), State = TaskState.Failed,
        }));

        await _page.WaitForFunctionAsync(
            "before => document.querySelector('[data-stat=total]').textContent !== before", before, new() { Timeout = 30_000 });

        var after = int.Parse(await _page.Locator("[data-stat=total]").InnerTextAsync(), NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
        Assert.That(after, Is.EqualTo(int.Parse(before, NumberStyles.AllowThousands, CultureInfo.InvariantCulture) + 7));
        Assert.That(await _page.EvaluateAsync<bool>("() => window.__sameDocument === true"), Is.True, "redrawn in place, not reloaded");
        Assert.That(await _page.Locator("svg.chart rect.bar").CountAsync(), Is.GreaterThan(0));
        Assert.That(await _page.Locator("#live-status").InnerTextAsync(), Does.Match(@"^\d\d:\d\d:\d\d$"));
        Assert.That(_errors, Is.Empty);
    }

    [Test]
    public async Task TaskList_StateFilter_NarrowsTheList()
    {
        await _page.GotoAsync("/joblog/tasks?limit=500");
        var all = await _page.Locator("#task-rows tr[data-id]").CountAsync();

        await _page.SelectOptionAsync("select[name=state]", "failed");
        await _page.FillAsync("input[name=name]", "SendInvoice");
        await _page.ClickAsync("button:has-text('Apply')");
        await _page.WaitForURLAsync(url => url.Contains("state=failed", StringComparison.Ordinal));

        var rows = _page.Locator("#task-rows tr[data-id]");
        var filtered = await rows.CountAsync();
        var expected = await _worker.QueryAsync(db => db.TaskLogs.CountAsync(t => t.State == TaskState.Failed && t.Name == "SendInvoice"));
        Assert.That(all, Is.GreaterThan(filtered));
        Assert.That(filtered, Is.EqualTo(Math.Min(expected, 50)).And.GreaterThan(0));
        Assert.That((await _page.Locator("#task-rows .badge").AllInnerTextsAsync()).Distinct(), Is.EqualTo(new[] { "FAILED" }));
        Assert.That(await _page.InputValueAsync("select[name=state]"), Is.EqualTo("failed"), "the form keeps the filter");
        Assert.That(_errors, Is.Empty);
    }

    [Test]
    public async Task TaskDetail_ShowsItsRunsOnATimelineWithErrorsAndOutput()
    {
        var task = _history.OfType<TaskLog>().First(t => t.Name == "SendInvoice" && t.State == TaskState.Failed);
        await _page.GotoAsync($"/joblog/tasks?name=SendInvoice&state=failed&limit=500");
        await _page.ClickAsync($"tr[data-id='{task.Id}'] td:nth-child(3) a");
        await _page.WaitForURLAsync($"**/joblog/tasks/{task.Id}");

        Assert.That(await _page.Locator("svg.timeline rect.run-bar").CountAsync(), Is.EqualTo(3));
        Assert.That(await _page.Locator("tr.run").CountAsync(), Is.EqualTo(3));
        Assert.That(await _page.Locator("tr.run .badge").AllInnerTextsAsync(), Is.EqualTo(new[] { "RETRIED", "RETRIED", "FAILED" }));
        Assert.That(await _page.Locator("details[open] pre.error").InnerTextAsync(), Does.Contain("SmtpException: 550"));
        Assert.That(await _page.Locator("details[open] pre.output").InnerTextAsync(), Does.Contain("info: SendInvoice attempt 3"));
        Assert.That(await _page.Locator("details.run-detail").CountAsync(), Is.EqualTo(3), "every run's error and output");
        Assert.That(_errors, Is.Empty);
    }

    [Test]
    public async Task TaskDetail_ListsTheOutboundRequestsOfItsRuns()
    {
        var task = _history.OfType<TaskLog>().First(t => t.Name == "ChargeCard");
        await _page.GotoAsync($"/joblog/tasks/{task.Id}");

        var outbound = _page.Locator("section:has(h2:has-text('Outbound requests')) tbody tr");
        Assert.That(await outbound.CountAsync(), Is.EqualTo(1));
        await outbound.Locator("a").ClickAsync();
        await _page.WaitForURLAsync("**/joblog/requests/out/**");
        Assert.That(await _page.Locator("dd >> text=ChargeCard").CountAsync(), Is.EqualTo(1), "the request links back to its task run");
    }

    [Test]
    public async Task HostileInput_ExecutesNothing_AndIsShownLiterally()
    {
        // Through the real pipeline: the consumer fails, so the hostile input reaches the list, the detail and the runs.
        var published = await _worker.PublishAndWaitAsync(new SendInvoice(666, Script + Img));
        var seeded = new TaskLog
        {
            Id = Guid.NewGuid(), Name = "Import" + Script, QueueName = "queue" + Img, Input = "File=" + Img + Script, DispatchedAt = DateTime.UtcNow,
            State = TaskState.Failed, Start = DateTime.UtcNow, Stop = DateTime.UtcNow.AddSeconds(1),
        };
        var run = new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = seeded.Id, Name = seeded.Name, ConsumerType = "Import" + Img, Start = seeded.Start.Value, Stop = seeded.Stop,
            State = TaskRunState.Failed, ErrorMessage = "FormatException: " + Script + Img, Output = "warn: " + Img + Script,
        };
        await _worker.SeedAsync([seeded, run]);

        foreach (var url in new[] { "/joblog/tasks", $"/joblog/tasks/{published.Id}", $"/joblog/tasks/{seeded.Id}", "/joblog/tasks?q=" + Uri.EscapeDataString("<script>"), "/joblog" })
        {
            var response = await _page.GotoAsync(url);
            await _page.WaitForLoadStateAsync(LoadState.NetworkIdle);
            Assert.That(response!.Status, Is.EqualTo(200), url);
            Assert.That(await _page.EvaluateAsync<bool>("() => window.__pwned === undefined"), Is.True, url);
            Assert.That(await _page.Locator("img").CountAsync(), Is.Zero, url + ": no injected element");
            Assert.That(await _page.Locator("script").CountAsync(), Is.EqualTo(1), url + ": only the dashboard's script");
        }

        await _page.GotoAsync($"/joblog/tasks/{seeded.Id}");
        var text = await _page.Locator("main").InnerTextAsync();
        Assert.That(text, Does.Contain("Import" + Script));
        Assert.That(text, Does.Contain("File=" + Img + Script));
        Assert.That(text, Does.Contain("FormatException: " + Script + Img));
        Assert.That(text, Does.Contain("warn: " + Img + Script));

        await _page.GotoAsync($"/joblog/tasks/{published.Id}");
        Assert.That(await _page.Locator("main").InnerTextAsync(), Does.Contain("Email=" + Script + Img));
        Assert.That(_dialogs, Is.Empty, "no alert() ran");
        Assert.That(_errors, Is.Empty, "no console error (a blocked inline script would log one)");
    }

    [Test]
    public async Task TaskList_LiveRefresh_ShowsANewTaskFromAServerFragment()
    {
        await _page.GotoAsync("/joblog/tasks?name=LiveProbe");
        Assert.That(await _page.Locator("#task-rows tr[data-id]").CountAsync(), Is.Zero);
        Assert.That(await _page.IsCheckedAsync("#live-toggle"), Is.True);

        var probe = new TaskLog { Id = Guid.NewGuid(), Name = "LiveProbe", Input = "Probe=" + Script, DispatchedAt = DateTime.UtcNow };
        await _worker.SeedAsync([probe]);
        var fragmentCall = _page.WaitForResponseAsync(
            r => r.Url.Contains("/joblog/tasks?name=LiveProbe", StringComparison.Ordinal) && r.Request.Headers.ContainsKey("x-joblog-fragment"),
            new() { Timeout = 30_000 });
        await _page.WaitForSelectorAsync($"#task-rows tr[data-id='{probe.Id}']", new() { Timeout = 30_000 });

        Assert.That((await fragmentCall).Status, Is.EqualTo(200));
        Assert.That(await _page.Locator($"tr[data-id='{probe.Id}'] .badge").InnerTextAsync(), Is.EqualTo("WAITING"));
        Assert.That(await _page.Locator($"tr[data-id='{probe.Id}'] td.input").InnerTextAsync(), Is.EqualTo("Probe=" + Script));
        Assert.That(await _page.EvaluateAsync<bool>("() => window.__pwned === undefined"), Is.True);
        Assert.That(_dialogs, Is.Empty);
        Assert.That(_errors, Is.Empty);
    }

    [Test]
    public async Task TaskList_LiveRefresh_ShowsBidiControlsVisibly()
    {
        await _page.GotoAsync("/joblog/tasks?name=BidiProbe");
        Assert.That(await _page.Locator("#task-rows tr[data-id]").CountAsync(), Is.Zero);

        var probe = new TaskLog { Id = Guid.NewGuid(), Name = "BidiProbe", Input = "File=invoice\u202Efdp.exe \u2067x\u2069", DispatchedAt = DateTime.UtcNow };
        await _worker.SeedAsync([probe]);
        await _page.WaitForSelectorAsync($"#task-rows tr[data-id='{probe.Id}']", new() { Timeout = 30_000 });

        // Rendered by the server in the fragment the live refresh swaps in (the JSON API returns the text as stored).
        Assert.That(await _page.Locator($"tr[data-id='{probe.Id}'] td.input").InnerTextAsync(),
            Is.EqualTo("File=invoice[U+202E]fdp.exe [U+2067]x[U+2069]"));
        Assert.That(_errors, Is.Empty);
    }

    [Test]
    public async Task TaskList_LiveRefresh_SwapsInTheServersRowMarkup_SameAsAFreshLoad()
    {
        var api = new List<string>();
        _page.Request += (_, request) =>
        {
            if (request.Url.Contains("/joblog/api/", StringComparison.Ordinal))
            {
                api.Add(request.Url);
            }
        };
        await _page.GotoAsync("/joblog/tasks?name=FragmentProbe");
        await _page.EvaluateAsync("() => { window.__sameDocument = true; }");
        var now = DateTime.UtcNow;
        var probe = new TaskLog
        {
            Id = Guid.NewGuid(), Name = "FragmentProbe", QueueName = "queue:" + Img, Input = "Probe=" + Img + " \u202Eexe", DispatchedAt = now,
            Start = now, Stop = now.AddMilliseconds(1234), State = TaskState.Failed,
        };
        await _worker.SeedAsync([probe]);
        var fragmentCall = _page.WaitForResponseAsync(r => r.Request.Headers.ContainsKey("x-joblog-fragment"), new() { Timeout = 30_000 });
        var row = _page.Locator($"#task-rows tr[data-id='{probe.Id}']");
        await row.WaitForAsync(new() { Timeout = 30_000 });

        var fragment = await fragmentCall;
        Assert.That(fragment.Request.Headers["x-joblog-fragment"], Is.EqualTo("list"));
        Assert.That(await fragment.HeaderValueAsync("content-type"), Does.StartWith("text/html"));
        Assert.That(await fragment.TextAsync(), Does.StartWith("<section").And.Contain($"data-id=\"{probe.Id}\""), "rows come rendered from the server");
        Assert.That(await _page.EvaluateAsync<bool>("() => window.__sameDocument === true"), Is.True, "swapped in place, not reloaded");
        var refreshed = await row.EvaluateAsync<string>("tr => tr.outerHTML");
        Assert.That(await row.Locator(".badge").InnerTextAsync(), Is.EqualTo("FAILED"));
        Assert.That(await row.Locator("td.num").First.InnerTextAsync(), Is.EqualTo("1.23 s"));

        await _page.ReloadAsync();
        var loaded = await _page.Locator($"#task-rows tr[data-id='{probe.Id}']").EvaluateAsync<string>("tr => tr.outerHTML");

        Assert.That(refreshed, Is.EqualTo(loaded), "the live row is the markup of a fresh page load");
        Assert.That(api, Is.Empty, "the live refresh reads no JSON");
        Assert.That(await _page.EvaluateAsync<bool>("() => window.__pwned === undefined"), Is.True);
        Assert.That(await _page.Locator("img").CountAsync(), Is.Zero);
        Assert.That(_dialogs, Is.Empty);
        Assert.That(_errors, Is.Empty);
    }

    [Test]
    public async Task RequestFromAnotherMachine_WithoutAPolicy_IsForbidden()
    {
        await _context.SetExtraHTTPHeadersAsync(new Dictionary<string, string> { [WorkerHost.RemoteIpHeader] = "203.0.113.50" });

        var page = await _page.GotoAsync("/joblog/tasks");
        var api = await _page.APIRequest.GetAsync("/joblog/api/tasks");

        Assert.That(page!.Status, Is.EqualTo(403));
        Assert.That(api.Status, Is.EqualTo(403));
        Assert.That(await _page.ContentAsync(), Does.Not.Contain("ChargeCard"));
    }

    [Test]
    public async Task Cli_Tasks_PrintsTheRowsTheApiReturns()
    {
        var api = await _page.APIRequest.GetAsync("/joblog/api/tasks?state=failed&limit=20");
        using var output = new StringWriter();

        var exit = await JobLog.Worker.Cli.TasksCommand.ListAsync(
            ["--state", "failed", "--limit", "20", "--json", "--ConnectionStrings:JobLog=" + _worker.Ledger.ConnectionString], output);

        Assert.That(exit, Is.Zero);
        using var fromApi = System.Text.Json.JsonDocument.Parse(await api.TextAsync());
        using var fromCli = System.Text.Json.JsonDocument.Parse(output.ToString());
        var ids = (System.Text.Json.JsonDocument d) => d.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetGuid()).ToList();
        Assert.That(ids(fromCli), Is.EqualTo(ids(fromApi)).And.Count.EqualTo(20));
    }
}
