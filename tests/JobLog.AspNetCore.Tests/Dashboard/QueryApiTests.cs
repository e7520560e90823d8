using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>One query layer behind pages and API: same filters, same rows; keyset pages that miss and repeat nothing.</summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public partial class QueryApiTests(LedgerProvider provider)
{
    private DashboardHost _host = null!;
    private DateTime _now;
    private DateTime _tie;
    private readonly List<TaskLog> _tasks = [];

    [SetUp]
    public async Task SetUp()
    {
        _host = await DashboardHost.StartAsync(await Ledgers.CreateAsync(provider));
        _now = DateTime.UtcNow;
        _now = new DateTime(_now.Ticks - (_now.Ticks % TimeSpan.TicksPerMillisecond), DateTimeKind.Utc);
        _tie = _now.AddMinutes(-30);
        _tasks.Clear();
        var states = new[] { TaskState.Succeeded, TaskState.Failed, TaskState.Succeeded, TaskState.Expired, TaskState.Waiting, TaskState.Retried };
        var names = new[] { "ChargeCard", "SyncInventory", "SendInvoice" };
        for (var i = 0; i < 36; i++)
        {
            var name = names[i % 3];
            // Seven tasks share one timestamp, so a page boundary falls inside a tie.
            var at = i is >= 10 and < 17 ? _tie : _now.AddMinutes(-3 * i).AddSeconds(-i);
            var input = i switch
            {
                4 => "Note=needle in a haystack",
                9 => "Note=NEEDLE upper case",
                12 => "Discount=50%",
                13 => "Discount=500",
                _ => $"CustomerId={1000 + i}",
            };
            _tasks.Add(Rows.Task(name, at, states[i % states.Length], input, queue: "queue:" + name.ToLowerInvariant()));
        }

        await _host.SeedAsync([.. _tasks]);
        var requestTimes = Enumerable.Range(0, 9).Select(i => i < 4 ? _tie : _now.AddMinutes(-i)).ToList();
        await _host.SeedAsync([.. requestTimes.Select((t, i) => (object)new InputRequestLog
        {
            Id = Guid.NewGuid(), Host = "api.test", Method = i % 2 == 0 ? "GET" : "POST", Path = $"/orders/{i}", RequestTimestamp = t,
            ResponseTimestamp = t.AddMilliseconds(15), ResponseCode = i % 3 == 0 ? 500 : 200, Status = i % 3 == 0 ? RequestLogStatus.Error : RequestLogStatus.Info,
            Ip = i % 2 == 0 ? "10.0.0.1" : "10.0.0.2",
        })]);
        await _host.SeedAsync([.. requestTimes.Select((t, i) => (object)new OutputRequestLog
        {
            Id = Guid.NewGuid(), Host = i % 2 == 0 ? "psp.test" : "mail.test", Method = "POST", Path = $"/charge/{i}", RequestTimestamp = t,
            ResponseTimestamp = t.AddMilliseconds(40), ResponseCode = 200, Status = RequestLogStatus.Info,
        })]);
        await _host.SeedAsync([.. requestTimes.Select((t, i) => (object)new CommandLog
        {
            Id = Guid.NewGuid(), Name = i % 2 == 0 ? "import" : "sweep", Input = $"--batch {i}", Start = t, Stop = i == 0 ? null : t.AddSeconds(2),
            IsSuccessful = i == 0 ? null : i % 3 != 0, ExitCode = i == 0 ? null : (i % 3 != 0 ? 0 : 1),
        })]);
    }

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    private static readonly string[] s_taskFilters =
    [
        "", "state=failed", "state=waiting", "name=ChargeCard", "queue=queue:sendinvoice", "q=needle", "q=NEEDLE", "q=50%25",
        "since=1h", "state=succeeded&name=ChargeCard&limit=3", "limit=5", "q=nothing-matches-this",
    ];

    [Test]
    public async Task TaskApiAndPage_ReturnTheSameRows_ForTheSameFilters()
    {
        var filters = s_taskFilters.Append($"from={Uri.EscapeDataString(_now.AddMinutes(-40).ToString("O"))}&to={Uri.EscapeDataString(_now.AddMinutes(-20).ToString("O"))}");
        foreach (var filter in filters)
        {
            var (apiIds, next) = await ApiPageAsync("/joblog/api/tasks?" + filter);
            var pageIds = PageIds(await _host.GetStringAsync("/joblog/tasks?" + filter));

            Assert.That(pageIds, Is.EqualTo(apiIds), filter);
            if (next is not null)
            {
                var (apiPage2, _) = await ApiPageAsync($"/joblog/api/tasks?{filter}&cursor={next}");
                Assert.That(PageIds(await _host.GetStringAsync($"/joblog/tasks?{filter}&cursor={next}")), Is.EqualTo(apiPage2), filter + " page 2");
            }
        }
    }

    [Test]
    public async Task TaskFilters_NarrowTheRowsToWhatTheySay()
    {
        Assert.That(await AllIdsAsync("/joblog/api/tasks?state=failed"), Is.EquivalentTo(_tasks.Where(t => t.State == TaskState.Failed).Select(t => t.Id)));
        Assert.That(await AllIdsAsync("/joblog/api/tasks?name=SyncInventory"), Is.EquivalentTo(_tasks.Where(t => t.Name == "SyncInventory").Select(t => t.Id)));
        Assert.That(await AllIdsAsync("/joblog/api/tasks?queue=queue:chargecard&state=succeeded"),
            Is.EquivalentTo(_tasks.Where(t => t.QueueName == "queue:chargecard" && t.State == TaskState.Succeeded).Select(t => t.Id)));
        Assert.That(await AllIdsAsync("/joblog/api/tasks?q=needle"), Is.EquivalentTo(new[] { _tasks[4].Id, _tasks[9].Id }), "case-insensitive");
        Assert.That(await AllIdsAsync("/joblog/api/tasks?q=50%25"), Is.EqualTo(new[] { _tasks[12].Id }), "% is literal");
        Assert.That(await AllIdsAsync("/joblog/api/tasks?since=1h"), Is.EquivalentTo(_tasks.Where(t => t.DispatchedAt >= _now.AddHours(-1).AddSeconds(-5)).Select(t => t.Id)));
        Assert.That(await AllIdsAsync("/joblog/api/tasks?state=waiting&name=ChargeCard"), Is.Empty);
    }

    [TestCase("")]
    [TestCase("state=succeeded&")]
    public async Task KeysetPagination_VisitsEveryRowOnce_NewestFirst_ThroughTies(string filter)
    {
        var seen = new List<Guid>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var (ids, next) = await ApiPageAsync($"/joblog/api/tasks?{filter}limit=4" + (cursor is null ? "" : "&cursor=" + cursor));
            Assert.That(ids.Count, Is.LessThanOrEqualTo(4));
            seen.AddRange(ids);
            cursor = next;
            pages++;
        }
        while (cursor is not null && pages < 50);

        var expected = _tasks.Where(t => filter == "" || t.State == TaskState.Succeeded).ToList();
        Assert.That(seen, Is.Unique);
        Assert.That(seen, Is.EquivalentTo(expected.Select(t => t.Id)));
        var times = seen.Select(id => _tasks.Single(t => t.Id == id).DispatchedAt).ToList();
        Assert.That(times, Is.Ordered.Descending);
        var databaseOrder = await QueryAsync(db => db.TaskLogs.Where(t => filter == "" || t.State == TaskState.Succeeded)
            .OrderByDescending(t => t.DispatchedAt).ThenByDescending(t => t.Id).Select(t => t.Id).ToListAsync());
        Assert.That(seen, Is.EqualTo(databaseOrder));
    }

    [TestCase("/joblog/api/requests/in", "/joblog/requests/in", "", "status=error", "method=POST", "ip=10.0.0.1", "q=orders/3", "limit=3")]
    [TestCase("/joblog/api/requests/out", "/joblog/requests/out", "", "host=psp.test", "q=charge/2", "limit=2")]
    [TestCase("/joblog/api/commands", "/joblog/commands", "", "outcome=failed", "outcome=running", "name=import", "q=batch 4", "limit=2")]
    public async Task OtherLists_ApiAndPageAgree_AndPaginateWithoutGaps(string api, string page, params string[] filters)
    {
        foreach (var filter in filters)
        {
            var (apiIds, _) = await ApiPageAsync(api + "?" + filter);
            Assert.That(PageIds(await _host.GetStringAsync(page + "?" + filter)), Is.EqualTo(apiIds), page + "?" + filter);
        }

        var all = await AllIdsAsync(api + "?limit=500");
        var paged = await AllIdsAsync(api + "?limit=2");
        Assert.That(all, Has.Count.EqualTo(9));
        Assert.That(paged, Is.EqualTo(all));
    }

    [Test]
    public async Task InvalidFilters_AreRejectedWithTheReason()
    {
        foreach (var filter in new[] { "state=bogus", "state=3", "since=yesterday", "from=notadate", "cursor=abc", "limit=0", "limit=501" })
        {
            using var response = await _host.Client.GetAsync("/joblog/api/tasks?" + filter);
            var body = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), filter);
            AssertProblem(response, body, 400, filter);

            var html = await _host.GetStringAsync("/joblog/tasks?" + filter, HttpStatusCode.BadRequest);
            Assert.That(html, Does.Contain("class=\"alert\""), filter);
        }
    }

    [Test]
    public async Task ApiErrors_AreProblemDetails()
    {
        foreach (var url in new[] { "/joblog/api/tasks/" + Guid.NewGuid(), "/joblog/api/requests/in/" + Guid.NewGuid(), "/joblog/api/commands/" + Guid.NewGuid() })
        {
            using var response = await _host.Client.GetAsync(url);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), url);
            AssertProblem(response, await response.Content.ReadAsStringAsync(), 404, url);
        }
    }

    [Test]
    public async Task ApiErrors_AreProblemDetails_ForAnIdThatIsNotOneAndAnUnknownApiRoute()
    {
        // The docs promise problem details for an unknown id; an id that is not a GUID, or a mistyped route, was a bare 404.
        foreach (var url in new[] { "/joblog/api/tasks/zzz", "/joblog/api/requests/in/12", "/joblog/api/commands/x", "/joblog/api/task" })
        {
            using var response = await _host.Client.GetAsync(url);
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), url);
            AssertProblem(response, await response.Content.ReadAsStringAsync(), 404, url);
        }
    }

    [Test]
    public async Task OverviewApi_WithAWindowItCannotRead_IsRejectedWithTheReason()
    {
        // The docs: window=hour|day, and a filter the API cannot read is a 400; window=week was answered as the hour.
        foreach (var window in new[] { "week", "Day", "24h" })
        {
            using var response = await _host.Client.GetAsync("/joblog/api/overview?window=" + window);
            var body = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), window);
            AssertProblem(response, body, 400, window);
            Assert.That(JsonDocument.Parse(body).RootElement.GetProperty("detail").GetString(), Does.Contain("'window'").And.Contain(window));
        }

        foreach (var (window, expected) in new[] { ("", "hour"), ("hour", "hour"), ("day", "day") })
        {
            using var json = JsonDocument.Parse(await _host.GetStringAsync("/joblog/api/overview?window=" + window));
            Assert.That(json.RootElement.GetProperty("chart").GetProperty("window").GetString(), Is.EqualTo(expected), window);
        }
    }

    [Test]
    public async Task OverviewPage_WithAWindowItCannotRead_IsA400WithTheAlert_AsTheApiIs()
    {
        // The page showed the last hour for a window it does not read, and said nothing.
        foreach (var window in new[] { "week", "Day", "24h", "%20", "day&window=hour", "%3Cb%3Ex" })
        {
            var html = await _host.GetStringAsync("/joblog?window=" + window, HttpStatusCode.BadRequest);
            Assert.That(html, Does.Contain("class=\"alert\"").And.Contain("window").And.Not.Contain("<b>x"), window);
            Assert.That(html, Does.Not.Contain("data-window="), window + ": no chart of a window the page did not read");
            Assert.That(html, Does.Contain("window=hour").And.Contain("window=day"), window + ": the windows it reads are offered");
        }

        foreach (var (window, expected) in new[] { ("", "hour"), ("hour", "hour"), ("day", "day") })
        {
            var html = await _host.GetStringAsync("/joblog?window=" + window);
            Assert.That(html, Does.Contain($"data-window=\"{expected}\"").And.Not.Contain("class=\"alert\""), window);
        }
    }

    [Test]
    public async Task PagesAndApi_OnALedgerWithoutItsSchemaYet_Answer503WithRetryAfter_NotAnUnhandledError()
    {
        // A start-up whose migration went on in the background (the database slow to answer, LedgerStartupService 1026):
        // until it is done every page and API answer was an unhandled exception (Kestrel's 500, "relation does not exist").
        var warnings = new WarningCollector();
        await using var host = await DashboardHost.StartAsync(await Ledgers.CreateAsync(provider), services: b =>
        {
            b.Services.PostConfigure<JobLogOptions>(o => o.MigrateOnStartup = false);
            b.Services.AddSingleton<Microsoft.Extensions.Logging.ILoggerProvider>(warnings);
        });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var urls = new[] { "/joblog/api/tasks", "/joblog/api/overview", "/joblog/api/failures", "/joblog/api/tasks/" + Guid.NewGuid(), "/joblog/tasks", "/joblog" };
        foreach (var url in Enumerable.Repeat(urls, 4).SelectMany(u => u))
        {
            using var response = await host.Client.GetAsync(url);
            var body = await response.Content.ReadAsStringAsync();
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), url + "\n" + body);
            Assert.That(response.Headers.RetryAfter, Is.Not.Null, url);
            Assert.That(body, Does.Contain("ledger").And.Not.Contain("JobLogTasks"), url);
            if (url.Contains("/api/", StringComparison.Ordinal))
            {
                AssertProblem(response, body, 503, url);
            }
        }

        // Logged at a steady rate (at most one line per 10 s, with the count), not once per request: an outage is a flood.
        Assert.That(warnings.Count(2050), Is.InRange(1, 1 + (int)(clock.Elapsed.TotalSeconds / 10)), "warnings 2050");
    }

    [Test]
    public async Task Head_OnPagesAndApiLists_AnswersAsGetDoes()
    {
        // Monitoring probes with HEAD; the pages were GET only (a 405).
        foreach (var url in new[] { "/joblog", "/joblog/tasks?state=failed", "/joblog/api/tasks", "/joblog/api/overview", "/joblog/tasks/" + _tasks[0].Id })
        {
            using var get = await _host.Client.GetAsync(url);
            using var head = await _host.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, url));
            Assert.That((head.StatusCode, head.Content.Headers.ContentType?.MediaType), Is.EqualTo((get.StatusCode, get.Content.Headers.ContentType?.MediaType)), url);
            Assert.That(head.StatusCode, Is.EqualTo(HttpStatusCode.OK), url);
        }
    }

    [Test]
    public async Task Options_OnDashboardRoutes_Is204WithTheRoutesMethodsInAllow_AndNoBody()
    {
        // What a client asks with OPTIONS (RFC 9110 9.3.7): which methods the resource takes. It was a 405.
        var routes = new (string Url, string[] Allow)[]
        {
            ("/joblog", ["GET", "HEAD", "OPTIONS"]),
            ("/joblog/tasks?state=failed", ["GET", "HEAD", "OPTIONS"]),
            ("/joblog/api/tasks", ["GET", "HEAD", "OPTIONS"]),
            ("/joblog/tasks/" + _tasks[0].Id, ["GET", "HEAD", "OPTIONS"]),
            ("/joblog/failures/actions/retry", ["POST", "OPTIONS"]),
        };
        foreach (var (url, allow) in routes)
        {
            using var response = await _host.Client.SendAsync(new HttpRequestMessage(HttpMethod.Options, url));
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NoContent), url);
            Assert.That(response.Content.Headers.Allow, Is.EquivalentTo(allow), url);
            Assert.That(await response.Content.ReadAsByteArrayAsync(), Is.Empty, url);
        }

        // No route there: a 404 whatever the method; a method the route does not take: a 405 with its Allow.
        foreach (var method in new[] { HttpMethod.Options, HttpMethod.Get, HttpMethod.Post })
        {
            foreach (var url in new[] { "/joblog/tasks/not-a-guid", "/joblog/nothing" })
            {
                using var response = await _host.Client.SendAsync(new HttpRequestMessage(method, url));
                Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound), method + " " + url);
            }
        }

        using var put = await _host.Client.SendAsync(new HttpRequestMessage(HttpMethod.Put, "/joblog/api/tasks"));
        Assert.That(put.StatusCode, Is.EqualTo(HttpStatusCode.MethodNotAllowed));
        Assert.That(put.Content.Headers.Allow, Is.EquivalentTo(new[] { "GET", "HEAD", "OPTIONS" }));
    }

    /// <summary>RFC 9457 problem details, as ASP.NET Core's own errors: the media type, title, status and detail; <c>error</c> is the detail too.</summary>
    private static void AssertProblem(HttpResponseMessage response, string body, int status, string what)
    {
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"), what);
        var root = JsonDocument.Parse(body).RootElement;
        Assert.That(root.GetProperty("status").GetInt32(), Is.EqualTo(status), what);
        Assert.That(root.GetProperty("title").GetString(), Is.Not.Empty, what);
        Assert.That(root.GetProperty("detail").GetString(), Is.Not.Empty, what);
        Assert.That(root.GetProperty("error").GetString(), Is.EqualTo(root.GetProperty("detail").GetString()), what);
    }

    [Test]
    public async Task TaskDetailApi_ReturnsTheTaskRunsChildrenAndOutboundRequests()
    {
        var parent = _tasks[1];
        var run0 = Rows.Run(parent, 0, TaskRunState.Retried, 0.1, 0.2, error: "TimeoutException: first");
        var run1 = Rows.Run(parent, 1, TaskRunState.Failed, 1, 0.3, error: "TimeoutException: second", output: "attempt 2");
        var child = Rows.Task("Notify", parent.DispatchedAt.AddSeconds(1));
        child.ParentRunId = run1.Id;
        var call = new OutputRequestLog
        {
            Id = Guid.NewGuid(), Host = "psp.test", Method = "POST", Path = "/charge", RequestTimestamp = parent.DispatchedAt.AddSeconds(1.1),
            ResponseTimestamp = parent.DispatchedAt.AddSeconds(1.2), ResponseCode = 503, Status = RequestLogStatus.Error,
            RelatedObjects = [new OutputRequestRelatedObject { Id = Guid.NewGuid(), TaskRunLogId = run1.Id }],
        };
        await _host.SeedAsync(run0, run1, child, call);

        using var json = JsonDocument.Parse(await _host.GetStringAsync($"/joblog/api/tasks/{parent.Id}"));
        var root = json.RootElement;

        Assert.That(root.GetProperty("task").GetProperty("id").GetGuid(), Is.EqualTo(parent.Id));
        Assert.That(root.GetProperty("task").GetProperty("state").GetString(), Is.EqualTo("failed"));
        Assert.That(root.GetProperty("task").TryGetProperty("runs", out _), Is.False);
        Assert.That(root.GetProperty("runs").EnumerateArray().Select(r => r.GetProperty("retries").GetInt32()), Is.EqualTo(new[] { 0, 1 }));
        Assert.That(root.GetProperty("runs")[1].GetProperty("output").GetString(), Is.EqualTo("attempt 2"));
        Assert.That(root.GetProperty("children")[0].GetProperty("id").GetGuid(), Is.EqualTo(child.Id));
        Assert.That(root.GetProperty("outboundRequests")[0].GetProperty("runId").GetGuid(), Is.EqualTo(run1.Id));

        var childJson = JsonDocument.Parse(await _host.GetStringAsync($"/joblog/api/tasks/{child.Id}")).RootElement;
        Assert.That(childJson.GetProperty("parent").GetProperty("taskId").GetGuid(), Is.EqualTo(parent.Id));

        var html = await _host.GetStringAsync($"/joblog/tasks/{parent.Id}");
        Assert.That(Regex.Matches(html, "<tr class=\"run\"").Count, Is.EqualTo(2));
        Assert.That(Regex.Matches(html, "class=\"run-bar\"").Count, Is.EqualTo(2));
        Assert.That(html, Does.Contain("TimeoutException: second").And.Contain("/joblog/requests/out/" + call.Id).And.Contain("/joblog/tasks/" + child.Id));
    }

    [Test]
    public async Task Overview_CountsEveryStateAndChartsTheLastHour()
    {
        using var json = JsonDocument.Parse(await _host.GetStringAsync("/joblog/api/overview"));
        var root = json.RootElement;
        var counts = root.GetProperty("counts").EnumerateArray().ToDictionary(c => c.GetProperty("state").GetString()!, c => c.GetProperty("count").GetInt64());
        var chart = root.GetProperty("chart");
        var from = chart.GetProperty("from").GetDateTime().ToUniversalTime();
        var to = chart.GetProperty("to").GetDateTime().ToUniversalTime();
        var buckets = chart.GetProperty("buckets").EnumerateArray().ToList();
        var finishedInWindow = _tasks.Where(t => t.Stop >= from && t.Stop < to && t.State is TaskState.Succeeded or TaskState.Failed or TaskState.Expired).ToList();

        Assert.That(counts["failed"], Is.EqualTo(_tasks.Count(t => t.State == TaskState.Failed)));
        Assert.That(counts["waiting"], Is.EqualTo(_tasks.Count(t => t.State == TaskState.Waiting)));
        Assert.That(root.GetProperty("total").GetInt64(), Is.EqualTo(_tasks.Count));
        Assert.That(buckets, Has.Count.EqualTo(60));
        Assert.That(buckets.Sum(b => b.GetProperty("succeeded").GetInt32()), Is.EqualTo(finishedInWindow.Count(t => t.State == TaskState.Succeeded)));
        Assert.That(buckets.Sum(b => b.GetProperty("failed").GetInt32() + b.GetProperty("expired").GetInt32()),
            Is.EqualTo(finishedInWindow.Count(t => t.State != TaskState.Succeeded)));
        foreach (var task in finishedInWindow)
        {
            var index = (int)((task.Stop!.Value - from).Ticks / TimeSpan.TicksPerMinute);
            Assert.That(buckets[index].GetProperty("finished").GetInt32(), Is.GreaterThan(0), $"bucket of {task.Stop:O}");
        }

        var html = await _host.GetStringAsync("/joblog");
        Assert.That(html, Does.Contain($"data-finished=\"{finishedInWindow.Count}\""));
        Assert.That(Regex.Matches(html, "<rect class=\"bar ").Count, Is.GreaterThan(0));
    }

    [Test]
    public async Task Overview_ListsTheSlowestTaskNames()
    {
        var slow = _tasks[0];
        var quick = _tasks[1];
        await _host.SeedAsync(
            Rows.Run(slow, 0, TaskRunState.Succeeded, 0, 12.5),
            Rows.Run(quick, 0, TaskRunState.Succeeded, 0, 0.25));

        using var json = JsonDocument.Parse(await _host.GetStringAsync("/joblog/api/overview"));
        var slowest = json.RootElement.GetProperty("slowest").EnumerateArray().ToList();

        Assert.That(slowest.Select(s => s.GetProperty("name").GetString()).ToList(), Is.EqualTo(new[] { slow.Name, quick.Name }));
        Assert.That(slowest[0].GetProperty("averageSeconds").GetDouble(), Is.EqualTo(12.5).Within(0.01));
    }

    private async Task<(List<Guid> Ids, string? Next)> ApiPageAsync(string url)
    {
        using var json = JsonDocument.Parse(await _host.GetStringAsync(url));
        var ids = json.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetGuid()).ToList();
        var next = json.RootElement.GetProperty("nextCursor");
        return (ids, next.ValueKind == JsonValueKind.Null ? null : next.GetString());
    }

    private async Task<List<Guid>> AllIdsAsync(string url)
    {
        var all = new List<Guid>();
        string? cursor = null;
        do
        {
            var (ids, next) = await ApiPageAsync(url + (cursor is null ? "" : "&cursor=" + cursor));
            all.AddRange(ids);
            cursor = next;
        }
        while (cursor is not null);
        return all;
    }

    private static List<Guid> PageIds(string html) =>
        RowId().Matches(html).Select(m => Guid.Parse(m.Groups[1].Value)).ToList();

    private async Task<T> QueryAsync<T>(Func<JobLogDbContext, Task<T>> query)
    {
        await using var scope = _host.Services.CreateAsyncScope();
        return await query(scope.ServiceProvider.GetRequiredService<JobLogDbContext>());
    }

    [GeneratedRegex("<tr data-id=\"([0-9a-f-]{36})\"")]
    private static partial Regex RowId();
}
