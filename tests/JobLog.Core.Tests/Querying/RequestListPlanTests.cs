using System.Text.Json;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// Every filter of the inbound and outbound request lists and of the command list (the dashboard's, the JSON API's and
/// the CLI's: <see cref="RequestFilter"/>, <see cref="CommandFilter"/>) reads its first page from an index whose first
/// column is the filter's, in the list's order, on a ledger whose statistics say the value is rare or absent: without one
/// (<c>user</c>, <c>method</c>, <c>host</c>, a command's <c>outcome</c>), the page walked the time index or the table
/// through every row (262,144 requests: 120–584 ms on PostgreSQL, 63–139 ms on SQLite; docs/scale.md "Session 27 (scale)").
/// A common value may be read either way (its matches are dense in the time index), but never with a sort of the table.
/// </summary>
[TestFixture(LedgerProvider.Sqlite, false)]
[TestFixture(LedgerProvider.PostgreSql, false)]
[TestFixture(LedgerProvider.PostgreSql, true)]
public class RequestListPlanTests(LedgerProvider provider, bool partitioned)
{
    private const int Requests = 3000;
    private const int Commands = 600;

    private LedgerHost _host = null!;

    /// <summary>The list, the filter's query-string name and value, and the column an index must seek (null: any ordered read).</summary>
    public static IEnumerable<TestCaseData> Filters()
    {
        yield return Case("in", "user", "nobody", "UserId");
        yield return Case("in", "user", "user7", "UserId");
        yield return Case("in", "method", "DELETE", "Method");
        yield return Case("in", "method", "GET", null);
        yield return Case("in", "host", "nowhere.example", "Host");
        yield return Case("in", "host", "shop.example", null);
        yield return Case("in", "ip", "10.9.9.9", "Ip");
        yield return Case("in", "status", "error", "Status");
        yield return Case("in", "slug", "/api/none", "Slug");
        yield return Case("out", "method", "DELETE", "Method");
        yield return Case("out", "host", "nowhere.example", "Host");
        yield return Case("out", "host", "payments.example", null);
        yield return Case("out", "status", "error", "Status");
        yield return Case("out", "slug", "/api/none", "Slug");
        yield return Case("commands", "outcome", "running", "IsSuccessful");
        yield return Case("commands", "outcome", "failed", "IsSuccessful");
        yield return Case("commands", "outcome", "succeeded", null);
        yield return Case("commands", "name", "import-none", "Name");

        static TestCaseData Case(string list, string name, string value, string? column) =>
            new TestCaseData(list, name, value, column).SetArgDisplayNames(list, name + "=" + value);
    }

    [OneTimeSetUp]
    public async Task FillAsync()
    {
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), o => o.Partitioning.Enabled = partitioned);
        var recorder = _host.Services.GetRequiredService<LedgerRecorder>();
        // The fill's rows span the 50 minutes before its end, all in one day: its end is now, or later when now is nearer
        // midnight (UTC) than that. Else a partitioned ledger's today held only the rows since midnight, few enough that a
        // scan of them is PostgreSQL's cheapest read, or not, by a page or two (clean-clone CI runs at 00:05 and 00:10 failed
        // on a Seq Scan of today's partition: 5 pages, then about 9), and the test asserted the time of day it ran at.
        var now = new[] { DateTime.UtcNow, DateTime.UtcNow.Date.AddSeconds(Requests + 60) }.Max();
        for (var i = 0; i < Requests; i++)
        {
            // Ids of their time (a partitioned ledger files them under their day), as the middleware and the handler make them.
            var at = now.AddSeconds(-i);
            var inbound = new InputRequestPayload
            {
                Id = Guid.CreateVersion7(at), Host = "shop.example", Method = i % 10 == 0 ? "POST" : "GET", Path = "/api/orders/" + i,
                Slug = "/api/orders/{id}", RequestTimestamp = at, UserId = i % 3 == 0 ? null : "user" + (i % 1000), Ip = "10.0.0." + (i % 200),
            };
            recorder.Enqueue(new InputRequestRecorded(inbound));
            recorder.Enqueue(new InputRequestRecorded(inbound with
            {
                ResponseTimestamp = at.AddMilliseconds(5), ResponseCode = i % 50 == 0 ? 500 : 200,
                Status = i % 50 == 0 ? RequestLogStatus.Error : RequestLogStatus.Info,
            }));
            recorder.Enqueue(new OutputRequestRecorded(new OutputRequestPayload
            {
                Id = Guid.CreateVersion7(at), Host = i % 2 == 0 ? "payments.example" : "inventory.example", Method = i % 4 == 0 ? "POST" : "GET",
                Path = "/v1/items/" + i, Slug = "/v1/items/{id}", RequestTimestamp = at, ResponseTimestamp = at.AddMilliseconds(20), ResponseCode = 200,
                Status = RequestLogStatus.Info,
            }));
        }

        for (var i = 0; i < Commands; i++)
        {
            // Five seconds apart, within the requests' 50 minutes: a span of hours (a minute apart, 10 h) put the older
            // commands in the default partition when the fill ran in the first hours of a day (UTC; a clean-clone CI run at
            // 03:00 failed the 'failed' outcome on a Seq Scan of JobLogCommands_default), which a ledger whose days have their
            // partitions does not have.
            var at = now.AddSeconds(-5 * i);
            recorder.Enqueue(new CommandRecorded(new CommandPayload
            {
                Id = Guid.CreateVersion7(at), Name = "import-" + (i % 8), Input = "--batch " + i, Start = at, Stop = at.AddSeconds(5),
                IsSuccessful = i % 20 != 0, ExitCode = i % 20 == 0 ? 1 : 0,
            }));
        }

        await _host.FlushAsync();
        await _host.QueryAsync(async db =>
        {
            // The statistics the planners have: JobLog's own on SQLite (as at start-up and before each sweep), autovacuum's
            // ANALYZE on PostgreSQL.
            await db.Database.OpenConnectionAsync();
            var connection = db.Database.GetDbConnection();
            if (provider == LedgerProvider.Sqlite)
            {
                await LedgerDatabase.For(provider).RefreshStatisticsAsync(connection, CancellationToken.None);
            }
            else
            {
                await using var analyze = connection.CreateCommand();
                analyze.CommandText = $"ANALYZE \"{LedgerModel.InputRequests}\"; ANALYZE \"{LedgerModel.OutputRequests}\"; ANALYZE \"{LedgerModel.Commands}\"";
                await analyze.ExecuteNonQueryAsync();
            }

            return 0;
        });
    }

    [OneTimeTearDown]
    public async Task StopAsync() => await _host.DisposeAsync();

    [TestCaseSource(nameof(Filters))]
    public async Task FirstPage_SeeksTheFiltersIndex_InTheListsOrder(string list, string name, string value, string? column)
    {
        var (plan, count) = await _host.QueryAsync(async db =>
        {
            var queries = new LedgerQueries(db, LedgerDatabase.For(provider));
            string? Get(string n) => n == name ? value : null;
            var page = list switch
            {
                "in" => queries.InputRequestPage(RequestFilter.Parse(Get, DateTime.UtcNow)).ToQueryString(),
                "out" => queries.OutputRequestPage(RequestFilter.Parse(Get, DateTime.UtcNow)).ToQueryString(),
                _ => queries.CommandPage(CommandFilter.Parse(Get, DateTime.UtcNow)).ToQueryString(),
            };
            var count = list switch
            {
                "in" => (await queries.InputRequestsAsync(RequestFilter.Parse(Get, DateTime.UtcNow), default)).Items.Count,
                "out" => (await queries.OutputRequestsAsync(RequestFilter.Parse(Get, DateTime.UtcNow), default)).Items.Count,
                _ => (await queries.CommandsAsync(CommandFilter.Parse(Get, DateTime.UtcNow), default)).Items.Count,
            };
            var plan = await QueryPlans.OfAsync(db, provider, page);
            if (provider == LedgerProvider.PostgreSql)
            {
                // A scan of an empty partition (the days ahead, the undated rows') is PostgreSQL's cheapest read of it; a
                // scan of one that holds rows is the defect.
                foreach (var scanned in QueryPlans.Nodes(plan, "Seq Scan").Select(n => n.GetProperty("Relation Name").GetString()).Distinct())
                {
                    await using var pages = db.Database.GetDbConnection().CreateCommand();
                    pages.CommandText = $"SELECT pg_relation_size('\"{scanned}\"') / current_setting('block_size')::int";
                    plan = (long)(await pages.ExecuteScalarAsync())! > 0 ? $"SCANS {scanned}\n" + plan : plan;
                }
            }

            return (plan, count);
        });

        Assert.That(count, Is.EqualTo(Expected(list, name, value)), "the page's rows");
        if (provider == LedgerProvider.Sqlite)
        {
            // SEARCH … USING INDEX … (Column=?): the index seeks the value. A SCAN of the table, or a sort of every row
            // (USE TEMP B-TREE FOR ORDER BY; the ties of one time, RIGHT PART OF ORDER BY, are fine), is not.
            Assert.That(plan, Does.Not.Match("(?m)^SCAN \\w+$"), plan);
            Assert.That(plan, Does.Not.Contain("USE TEMP B-TREE FOR ORDER BY"), plan);
            if (column is not null)
            {
                Assert.That(plan, Does.Match($"SEARCH \\w+ USING (COVERING )?INDEX \\w+ \\({column}[=> ]"), plan);
            }

            return;
        }

        // An index scan whose condition is the value; then a sort of its few matches is fine (PostgreSQL sorts the rows
        // it expects one index range to hold rather than merge their ties), but not of a common value's.
        Assert.That(plan, Does.Not.StartWith("SCANS"), plan);
        if (column is not null)
        {
            var conditions = QueryPlans.Nodes(plan, null).Where(n => n.TryGetProperty("Index Cond", out _)).Select(n => n.GetProperty("Index Cond").GetString());
            Assert.That(conditions, Has.Some.Contains($"\"{column}\""), plan);
        }
        else
        {
            Assert.That(TopLevelSort(plan), Is.False, plan);
        }
    }

    /// <summary>How many rows the first page has (the fill's, at most 50).</summary>
    private static int Expected(string list, string name, string value) => (list, name, value) switch
    {
        ("in", "user", "user7") => Enumerable.Range(0, Requests).Count(i => i % 3 != 0 && i % 1000 == 7),
        ("in", "method", "GET") or ("in", "host", "shop.example") or ("out", "host", "payments.example") => 50,
        ("in", "status", "error") => Math.Min(50, Requests / 50),
        ("commands", "outcome", "failed") => Commands / 20,
        ("commands", "outcome", "succeeded") => 50,
        _ => 0,
    };

    /// <summary>Whether the statement's own top node under its LIMIT is a full Sort (an Incremental Sort of ties is not).</summary>
    private static bool TopLevelSort(string json)
    {
        using var document = JsonDocument.Parse(json);
        var node = document.RootElement[0].GetProperty("Plan");
        while (node.GetProperty("Node Type").GetString() is "Limit" or "Result")
        {
            node = node.GetProperty("Plans").EnumerateArray().First(p => p.GetProperty("Parent Relationship").GetString() == "Outer");
        }

        return node.GetProperty("Node Type").GetString() == "Sort";
    }
}
