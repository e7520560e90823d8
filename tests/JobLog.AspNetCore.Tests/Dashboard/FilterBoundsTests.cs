using System.Net;
using System.Text.Json;
using JobLog.AspNetCore.Dashboard;
using JobLog.Testing;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>Hostile filter values cost a 400 or a 429, never a 500, a wrong answer or unbounded work.</summary>
public class FilterBoundsTests
{
    private DashboardHost _host = null!;
    private JobLogDashboardOptions _options = null!;
    private readonly Dictionary<TaskState, Guid> _byState = [];

    [SetUp]
    public async Task SetUp()
    {
        _host = await DashboardHost.StartAsync(TestLedger.Sqlite(), dashboard: o => _options = o);
        _byState.Clear();
        var now = DateTime.UtcNow;
        foreach (var state in Enum.GetValues<TaskState>())
        {
            var task = Rows.Task("T" + state, now.AddMinutes(-(int)state), state, input: "Note=needle " + state);
            _byState[state] = task.Id;
            await _host.SeedAsync(task);
        }
    }

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    [TestCase("", 3)]
    [TestCase("?limit=", 3)]
    [TestCase("?limit=%20", 3)]
    [TestCase("?limit=5", 5)]
    public async Task AnEmptyLimit_IsTheConfiguredPageSize_AsNoLimitIs(string query, int expected)
    {
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite(), dashboard: o => o.PageSize = 3);
        var now = DateTime.UtcNow;
        for (var i = 0; i < 7; i++)
        {
            await host.SeedAsync(Rows.Task("T" + i, now.AddMinutes(-i), TaskState.Succeeded));
        }

        using var document = JsonDocument.Parse(await host.GetStringAsync("/joblog/api/tasks" + query));

        Assert.That(document.RootElement.GetProperty("items").GetArrayLength(), Is.EqualTo(expected));
    }

    [TestCase("since=99999999999999999999d")]
    [TestCase("since=99999999999999999999w")]
    [TestCase("since=36501d")]
    [TestCase("since=NaNd")]
    [TestCase("since=Infinityh")]
    [TestCase("since=1e30s")]
    public async Task SinceOutOfRange_IsA400(string filter)
    {
        foreach (var list in new[] { "tasks", "requests/in", "requests/out", "commands" })
        {
            await AssertBadRequestAsync($"/joblog/api/{list}?{filter}");
            await _host.GetStringAsync($"/joblog/{list}?{filter}", HttpStatusCode.BadRequest);
        }
    }

    [TestCase("state=FAILED,EXPIRED", new[] { TaskState.Failed, TaskState.Expired })]
    [TestCase("state=waiting,%20active", new[] { TaskState.Waiting, TaskState.Active })]
    [TestCase("state=succeeded", new[] { TaskState.Succeeded })]
    [TestCase("state=retried,retried", new[] { TaskState.Retried })]
    public async Task StateList_MatchesAnyOfTheStates(string filter, TaskState[] states)
    {
        var ids = await IdsAsync("/joblog/api/tasks?" + filter);

        Assert.That(ids, Is.EquivalentTo(states.Select(s => _byState[s])));
    }

    [TestCase("state=3")]
    [TestCase("state=7")]
    [TestCase("state=failed,4")]
    [TestCase("state=0x3")]
    [TestCase("state=failed,bogus")]
    [TestCase("state=failed|expired")]
    [TestCase("state=,")]
    [TestCase("state=-1")]
    [TestCase("status=info,warning")]
    [TestCase("status=20")]
    [TestCase("outcome=succeeded,failed")]
    public async Task StateNumbersFlagsAndUnknownValues_AreA400(string filter)
    {
        var list = filter.StartsWith("status", StringComparison.Ordinal) ? "requests/in" : filter.StartsWith("outcome", StringComparison.Ordinal) ? "commands" : "tasks";

        await AssertBadRequestAsync($"/joblog/api/{list}?{filter}");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task NulInAFilterValue_IsA400_OnEveryList(bool postgres)
    {
        // The ledger never stores NUL (the writer removes it), so no row can match; PostgreSQL refuses it in a parameter
        // (22021) and SQLite's full-text query ends its string there ("unterminated string"): both were a 500.
        await using var host = await DashboardHost.StartAsync(postgres ? await TestLedger.PostgresAsync() : TestLedger.Sqlite());
        var filters = new Dictionary<string, string[]>
        {
            ["tasks"] = ["q", "name", "queue"],
            ["requests/in"] = ["q", "method", "host", "slug", "ip", "user"],
            ["requests/out"] = ["q", "method", "host", "slug"],
            ["commands"] = ["q", "name"],
            ["failures"] = ["q", "name", "queue"],
        };
        foreach (var (list, names) in filters)
        {
            foreach (var name in names)
            {
                foreach (var value in new[] { "%00", "ab%00cd" })
                {
                    using var api = await host.Client.GetAsync($"/joblog/api/{list}?{name}={value}");
                    Assert.That(api.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), $"api/{list}?{name}={value}");
                    Assert.That(JsonDocument.Parse(await api.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString(), Does.Contain("NUL"));
                    await host.GetStringAsync($"/joblog/{list}?{name}={value}", HttpStatusCode.BadRequest);
                }
            }
        }
    }

    [Test]
    public async Task Search_LongerThanTheCap_IsA400_AtTheCapIsServed()
    {
        var atCap = new string('x', JobLog.Querying.ListFilter.MaxSearchLength);

        Assert.That(await IdsAsync("/joblog/api/tasks?q=" + atCap), Is.Empty);
        await AssertBadRequestAsync("/joblog/api/tasks?q=" + atCap + "x");
        await AssertBadRequestAsync("/joblog/api/commands?q=" + new string('%', 5000));
        await _host.GetStringAsync("/joblog/requests/in?q=" + atCap + "x", HttpStatusCode.BadRequest);
    }

    [Test]
    public async Task Search_BeyondTheConcurrencyLimit_Is429_OtherQueriesStillServed()
    {
        Assert.That(_options.MaxConcurrentSearches, Is.EqualTo(4), "the default");
        var held = new List<IDisposable>();
        for (var i = 0; i < _options.MaxConcurrentSearches; i++)
        {
            held.Add(_options.Searches.TryEnter() ?? throw new AssertionException("a free search slot"));
        }

        using (var busy = await _host.Client.GetAsync("/joblog/api/tasks?q=needle"))
        {
            Assert.That(busy.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests));
            Assert.That(busy.Headers.RetryAfter, Is.Not.Null);
        }

        using (var page = await _host.Client.GetAsync("/joblog/commands?q=needle"))
        {
            Assert.That(page.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests));
        }

        Assert.That(await IdsAsync("/joblog/api/tasks?state=failed"), Has.Count.EqualTo(1), "a query without q is not limited");

        held.ForEach(h => h.Dispose());
        Assert.That(await IdsAsync("/joblog/api/tasks?q=needle"), Has.Count.EqualTo(_byState.Count), "slots come back");
    }

    [TestCase("/joblog/api/failures?q=needle")]
    [TestCase("/joblog/failures?q=needle")]
    [TestCase("/joblog/api/failures/groups/0123456789abcdef?q=needle")]
    [TestCase("/joblog/failures/groups/0123456789abcdef?q=needle")]
    public async Task FailureSearch_BeyondTheConcurrencyLimit_Is429(string url)
    {
        // A failures search reads every open failure (up to MaxFailuresScanned, with its error) and filters in memory:
        // the same slots as the other lists' searches bound it.
        var held = new List<IDisposable>();
        for (var i = 0; i < _options.MaxConcurrentSearches; i++)
        {
            held.Add(_options.Searches.TryEnter() ?? throw new AssertionException("a free search slot"));
        }

        using (var busy = await _host.Client.GetAsync(url))
        {
            Assert.That(busy.StatusCode, Is.EqualTo(HttpStatusCode.TooManyRequests), url);
            Assert.That(busy.Headers.RetryAfter, Is.Not.Null);
        }

        using (var unfiltered = await _host.Client.GetAsync(url.Replace("?q=needle", "", StringComparison.Ordinal)))
        {
            Assert.That(unfiltered.StatusCode, Is.EqualTo(HttpStatusCode.OK), "without q, not limited");
        }

        held.ForEach(h => h.Dispose());
        using var served = await _host.Client.GetAsync(url);
        Assert.That(served.StatusCode, Is.EqualTo(HttpStatusCode.OK), "slots come back");
    }

    private async Task AssertBadRequestAsync(string url)
    {
        using var response = await _host.Client.GetAsync(url);
        var body = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest), url + ": " + body);
        Assert.That(JsonDocument.Parse(body).RootElement.GetProperty("error").GetString(), Is.Not.Empty, url);
    }

    private async Task<List<Guid>> IdsAsync(string url)
    {
        using var document = JsonDocument.Parse(await _host.GetStringAsync(url));
        return document.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("id").GetGuid()).ToList();
    }
}
