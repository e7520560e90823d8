using JobLog.Core.Tests.Storage.Partitioning;
using JobLog.Maintenance;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Retention;
using JobLog.Storage;
using JobLog.Storage.Partitioning;
using JobLog.Storage.PostgreSql;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.PostgreSql;

/// <summary>
/// The search's side table (<see cref="PostgreSqlSearch.Table"/>) on a partitioned ledger: partitioned by the tasks' day,
/// its day partitions made ahead with theirs and dropped with theirs (a day's drop deletes none of its rows one by one),
/// and a ledger whose side table is still a plain table upgraded at start-up (docs/scale.md "Session 14 (searchpart)").
/// </summary>
public class SearchTextPartitionTests
{
    private static readonly DateTime T0 = new(2026, 3, 10, 12, 0, 0, DateTimeKind.Utc);
    private const string S = "\"" + PostgreSqlSearch.Table + "\"";
    private FakeTimeProvider _clock = null!;
    private LedgerHost? _host;

    [SetUp]
    public void SetUp() => _clock = new FakeTimeProvider(new DateTimeOffset(T0));

    [TearDown]
    public async Task TearDown()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
    }

    [Test]
    public async Task PartitionedLedger_SideTableHasTheTasksDayPartitions_MadeAheadWithThem()
    {
        var host = await StartAsync(partitioned: true);
        var today = PartitionDay.Of(T0);
        Assert.That(await ScalarAsync<string>(host, $"SELECT relkind::text FROM pg_class WHERE oid = '{S}'::regclass"), Is.EqualTo("p"));
        Assert.That(await SideDaysAsync(host), Is.EqualTo(Enumerable.Range(today, 4).ToList()), "start-up made today and three days ahead");

        _clock.Advance(TimeSpan.FromDays(2));
        await host.Services.GetRequiredService<LedgerPartitionService>().RunOnceAsync(CancellationToken.None);
        Assert.That(await SideDaysAsync(host), Is.EqualTo(Enumerable.Range(today, 6).ToList()));

        // Each partition has both indexes (the trigram one on the partitioned table).
        Assert.That(await ScalarAsync<long>(host,
            $"SELECT COUNT(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '{S}'::regclass AND c.relkind = 'r' " +
            "AND (SELECT COUNT(*) FROM pg_index x WHERE x.indrelid = c.oid) <> 2"), Is.Zero);
        Assert.That(await ScalarAsync<string>(host, $"SELECT relkind::text FROM pg_class WHERE relname = '{PostgreSqlSearch.TrigramIndex}'"), Is.EqualTo("I"));
    }

    [Test]
    public async Task UnpartitionedLedger_KeepsAPlainSideTable()
    {
        var host = await StartAsync(partitioned: false);
        Assert.That(await ScalarAsync<string>(host, $"SELECT relkind::text FROM pg_class WHERE oid = '{S}'::regclass"), Is.EqualTo("r"));
    }

    [Test]
    public async Task WholeDayDrop_DropsTheSideTablesDayPartition_TheKeptTasksTextMovesWithThem()
    {
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        await using (var connection = new NpgsqlConnection(host.Ledger.ConnectionString))
        {
            await connection.OpenAsync();
            await LedgerPartitioning.EnsureAheadAsync(connection, old, 0, CancellationToken.None);
        }

        var ids = await WriteDayAsync(host, old);
        Assert.That(await PartitionsOfAsync(host, ids.Success), Is.EqualTo(new[] { PostgreSqlSearch.Table + "_" + PartitionDay.Suffix(PartitionDay.Of(old)) }));

        var result = await host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90)));
        Assert.That(result.Succeeded, Is.EqualTo(1));

        var kept = PostgreSqlSearch.Table + "_k" + PartitionDay.Suffix(PartitionDay.Of(old))[1..];
        Assert.That(await ScalarAsync<bool>(host, $"SELECT to_regclass('\"{PostgreSqlSearch.Table}_{PartitionDay.Suffix(PartitionDay.Of(old))}\"') IS NULL"), Is.True,
            "the day's partition is dropped, not emptied row by row");
        Assert.That(await PartitionsOfAsync(host, ids.Unfinished), Is.EqualTo(new[] { kept }), "the kept tasks' text is the day's _k partition");
        Assert.That(await PartitionsOfAsync(host, ids.Failure), Is.EqualTo(new[] { kept }), "with their runs' errors");
        Assert.That(await SideRowsAsync(host), Is.EqualTo(await RefilledRowsAsync(host)), "the rows left are the text of the tasks left");
        Assert.That(await SearchAsync(host, "ORD-unfinished"), Is.EqualTo(new[] { ids.Unfinished }));
        Assert.That(await SearchAsync(host, "card declined"), Is.EqualTo(new[] { ids.Failure }));
        Assert.That(await SearchAsync(host, "ORD-success"), Is.Empty);

        // The kept text still follows its tasks: the failure retried with another error, then everything purged.
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        recorder.Enqueue(new RunFinished(Start(recorder, ids.Failure, T0), ids.Failure, TaskRunState.Failed, T0.AddSeconds(1), "gateway refused", null, null));
        await host.FlushAsync();
        Assert.That(await SearchAsync(host, "gateway refused"), Is.EqualTo(new[] { ids.Failure }));
        Assert.That(await SideRowsAsync(host), Is.EqualTo(await RefilledRowsAsync(host)), "after the retry");
    }

    [Test]
    public async Task WholeDayDrop_WithTheSearchIndexOff_DropsTheDayAsBefore()
    {
        var host = await StartAsync(partitioned: true, searchIndex: false);
        var old = T0.AddDays(-40);
        await using (var connection = new NpgsqlConnection(host.Ledger.ConnectionString))
        {
            await connection.OpenAsync();
            await LedgerPartitioning.EnsureAheadAsync(connection, old, 0, CancellationToken.None);
        }

        var ids = await WriteDayAsync(host, old);
        Assert.That(await ScalarAsync<bool>(host, $"SELECT to_regclass('{S}') IS NULL"), Is.True);
        var result = await host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90)));
        Assert.That(result.Succeeded, Is.EqualTo(1));
        Assert.That((await host.TasksAsync()).Select(t => t.Id), Is.EquivalentTo(new[] { ids.Unfinished, ids.Failure }));
        Assert.That(await SearchAsync(host, "ORD-unfinished"), Is.EqualTo(new[] { ids.Unfinished }), "found by scanning");
    }

    [Test]
    public async Task APartitionedLedgerWithAPlainSideTable_IsUpgradedAtStartUp_WithTheSameSearchResults()
    {
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, old, 0, CancellationToken.None);
        var ids = await WriteDayAsync(host, old);
        var recent = await WriteDayAsync(host, T0.AddHours(-2));
        var searches = new[] { "ORD-", "ORD-unfinished", "card declined", "boom", "went stale", recent.Failure.ToString() };
        var before = new List<List<Guid>>();
        foreach (var q in searches)
        {
            before.Add(await SearchAsync(host, q));
        }

        // The side table as every ledger before session 14 has it: a plain table, its rows without a day, the functions
        // that write them so.
        await using (var command = new NpgsqlCommand($"""
            CREATE TABLE joblog_plain AS SELECT "TaskId", "IsError", "Text" FROM {S};
            DROP TABLE {S};
            ALTER TABLE joblog_plain RENAME TO "{PostgreSqlSearch.Table}";
            ALTER TABLE {S} ALTER "TaskId" SET NOT NULL, ALTER "IsError" SET NOT NULL, ALTER "Text" SET NOT NULL;
            CREATE INDEX "{PostgreSqlSearch.TaskIdIndex}" ON {S} ("TaskId");
            CREATE INDEX "{PostgreSqlSearch.TrigramIndex}" ON {S} USING gin ("Text" gin_trgm_ops);
            {string.Join(";\n", PostgreSqlSearch.FunctionDefinitions(keyed: false))};
            {FormerDayFunction};
            """, connection))
        {
            await command.ExecuteNonQueryAsync();
        }

        Assert.That(await ScalarAsync<string>(host, $"SELECT relkind::text FROM pg_class WHERE oid = '{S}'::regclass"), Is.EqualTo("r"));
        var plainRows = await SideRowsAsync(host);

        // Start-up's steps, with a context whose command limit is 1 s (the upgrade runs without one).
        await host.QueryAsync(async db =>
        {
            db.Database.SetCommandTimeout(1);
            var database = host.Services.GetRequiredService<LedgerDatabase>();
            await database.ApplySearchIndexAsync(db, true, CancellationToken.None);
            await database.ApplyPartitioningAsync(db, new PartitioningOptions { Enabled = true }, T0, CancellationToken.None);
            return 0;
        });

        Assert.That(await ScalarAsync<string>(host, $"SELECT relkind::text FROM pg_class WHERE oid = '{S}'::regclass"), Is.EqualTo("p"));
        Assert.That(await ScalarAsync<bool>(host, PartitionDay.IsCurrentSql), Is.True, "the day function replaced");
        Assert.That(await SideRowsAsync(host), Is.EqualTo(plainRows), "the same rows, each in its task's day");
        Assert.That(await PartitionsOfAsync(host, ids.Success), Is.EqualTo(new[] { PostgreSqlSearch.Table + "_" + PartitionDay.Suffix(PartitionDay.Of(old)) }));
        for (var i = 0; i < searches.Length; i++)
        {
            Assert.That(await SearchAsync(host, searches[i]), Is.EqualTo(before[i]), searches[i]);
        }

        // The writer after the upgrade: the functions write each row with its day.
        var later = await WriteDayAsync(host, T0.AddHours(-1), "later");
        Assert.That(await SearchAsync(host, "ORD-later-unfinished"), Is.EqualTo(new[] { later.Unfinished }));
        Assert.That(await SideRowsAsync(host), Is.EqualTo(await RefilledRowsAsync(host)), "after the writer");

        // And the day's drop takes the upgraded side table's partition.
        await host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90)));
        Assert.That(await ScalarAsync<bool>(host, $"SELECT to_regclass('\"{PostgreSqlSearch.Table}_{PartitionDay.Suffix(PartitionDay.Of(old))}\"') IS NULL"), Is.True);
        Assert.That(await SideRowsAsync(host), Is.EqualTo(await RefilledRowsAsync(host)), "after the drop");
    }

    [Test]
    public async Task PartitioningAPlainSideTable_DoesNotWaitForADaysPartitionHeldAsAnAutovacuumHoldsIt()
    {
        // Its lock holds the writers off (SHARE ROW EXCLUSIVE on the tasks and runs) while the side table is copied; without
        // ONLY it also took every partition of theirs, and waited for an autovacuum's lock (SHARE UPDATE EXCLUSIVE) on one.
        var host = await StartAsync(partitioned: true);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await WriteDayAsync(host, T0.AddHours(-2));
        await using (var command = new NpgsqlCommand($"""
            CREATE TABLE joblog_plain AS SELECT "TaskId", "IsError", "Text" FROM {S};
            DROP TABLE {S};
            ALTER TABLE joblog_plain RENAME TO "{PostgreSqlSearch.Table}";
            {string.Join(";\n", PostgreSqlSearch.FunctionDefinitions(keyed: false))};
            """, connection))
        {
            await command.ExecuteNonQueryAsync();
        }

        var day = PartitionDay.Suffix(PartitionDay.Of(T0));
        await using var watcher = new NpgsqlConnection(host.Ledger.ConnectionString);
        await watcher.OpenAsync();
        var (waited, partitioned) = await PartitionHold.RunAsync(host.Ledger.ConnectionString, watcher, PartitionHold.Day(day),
            () => LedgerPartitioning.PartitionSearchTextAsync(connection, CancellationToken.None));
        Assert.That(partitioned, Is.True, "partitioned here");
        Assert.That(waited, Is.False, "the side table's partitioning waited for today's partitions");
        Assert.That(await ScalarAsync<string>(host, $"SELECT relkind::text FROM pg_class WHERE oid = '{S}'::regclass"), Is.EqualTo("p"));
        Assert.That(await SideRowsAsync(host), Is.EqualTo(await RefilledRowsAsync(host)));
    }

    /// <summary>The day function of the ledgers partitioned before session 14 (SQL over the id's text).</summary>
    private const string FormerDayFunction = $$"""
        CREATE OR REPLACE FUNCTION {{PartitionDay.Function}}(id uuid) RETURNS integer LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
            SELECT CASE
                WHEN substr(h, 13, 1) = '7' AND substr(h, 17, 1) IN ('8', '9', 'a', 'b')
                     AND ('x' || substr(h, 1, 12))::bit(48)::bigint >= 1577836800000 AND ('x' || substr(h, 1, 12))::bit(48)::bigint < 4102444800000
                    THEN (('x' || substr(h, 1, 12))::bit(48)::bigint / 86400000)::integer
                WHEN ('x' || substr(h, 21, 12))::bit(48)::bigint >= 9721898437500 AND ('x' || substr(h, 21, 12))::bit(48)::bigint < 10107123046875
                    THEN ((('x' || substr(h, 21, 12))::bit(48)::bigint * 65536 - 621355968000000000) / 864000000000)::integer
                ELSE 0
            END
            FROM (SELECT replace(id::text, '-', '') AS h) s
        $fn$
        """;

    private sealed record DayIds(Guid Success, Guid Failure, Guid Unfinished);

    /// <summary>A day's three tasks: a success, a failure (kept by the drop, its runs' two errors), an unfinished one (kept).</summary>
    private async Task<DayIds> WriteDayAsync(LedgerHost host, DateTime at, string tag = "")
    {
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var prefix = tag.Length > 0 ? tag + "-" : "";
        var ids = new DayIds(Guid.CreateVersion7(new DateTimeOffset(at)), Guid.CreateVersion7(new DateTimeOffset(at.AddMinutes(1))), Guid.CreateVersion7(new DateTimeOffset(at.AddMinutes(2))));
        foreach (var (id, name) in new[] { (ids.Success, "success"), (ids.Failure, "failure"), (ids.Unfinished, "unfinished") })
        {
            recorder.Enqueue(new TaskDispatched(new TaskPayload
            {
                Id = id, Name = "Pay", Input = $"Pay(Order=ORD-{prefix}{name})", TaskKwargs = $"{{\"Order\": \"ORD-{prefix}{name}\"}}",
                DispatchedAt = at, EstimatedTimeOfFirstArrival = at,
            }));
        }

        recorder.Enqueue(new RunFinished(Start(recorder, ids.Success, at), ids.Success, TaskRunState.Succeeded, at.AddSeconds(1), null, null, null));
        recorder.Enqueue(new RunFinished(Start(recorder, ids.Failure, at), ids.Failure, TaskRunState.Retried, at.AddSeconds(1), "boom", null, null));
        recorder.Enqueue(new RunFinished(Start(recorder, ids.Failure, at.AddSeconds(2)), ids.Failure, TaskRunState.Failed, at.AddSeconds(3), "card declined", null, null));
        Start(recorder, ids.Unfinished, at);
        await host.FlushAsync();
        return ids;
    }

    private async Task<LedgerHost> StartAsync(bool partitioned, bool searchIndex = true)
    {
        _host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o =>
            {
                o.Partitioning.Enabled = partitioned;
                o.SearchIndex = searchIndex;
            },
            services: s => s.AddSingleton<TimeProvider>(_clock));
        return _host;
    }

    private static Guid Start(LedgerRecorder recorder, Guid id, DateTime at)
    {
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = "Pay", ConsumerType = "C", Start = at };
        recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = id, Name = "Pay", DispatchedAt = at }, false));
        return run.Id;
    }

    /// <summary>Every page of the search, through the index only (no window of newest rows checked one by one).</summary>
    private static async Task<List<Guid>> SearchAsync(LedgerHost host, string text)
    {
        var ids = new List<Guid>();
        string? cursor = null;
        do
        {
            await using var scope = host.Services.CreateAsyncScope();
            var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
            queries.SearchWindow = 0;
            var page = await queries.TasksAsync(new TaskFilter { Search = text, Limit = 2, After = cursor is null ? null : Cursor.Parse(cursor) }, default);
            ids.AddRange(page.Items.Select(r => r.Id));
            cursor = page.NextCursor;
        }
        while (cursor is not null);
        return ids;
    }

    /// <summary>The side table's rows with their day, in order.</summary>
    private static Task<List<string>> SideRowsAsync(LedgerHost host) =>
        RowsAsync(host, $"SELECT \"TaskId\", \"IsError\", \"Text\", {PartitionDay.Function}(\"TaskId\") FROM {S} ORDER BY 1, 2, 3");

    /// <summary>What a fill from the rows (<see cref="PostgreSqlSearch.Refill"/>) would put in the side table.</summary>
    private static Task<List<string>> RefilledRowsAsync(LedgerHost host) => RowsAsync(host, $"""
        SELECT * FROM (
            SELECT "Id", FALSE, {PostgreSqlSearch.TaskText}, "{PartitionDay.Column}" FROM "{LedgerModel.Tasks}" WHERE "Input" IS NOT NULL OR "TaskKwargs" IS NOT NULL
            UNION ALL
            SELECT DISTINCT "TaskId", TRUE, "ErrorMessage", "{PartitionDay.Column}" FROM "{LedgerModel.Runs}"
                WHERE "ErrorMessage" IS NOT NULL AND "ErrorMessage" <> '{JobLog.Sweeping.TaskLogSweeper.StaleRunError}') x
        ORDER BY 1, 2, 3
        """);

    /// <summary>The side table's partitions that hold <paramref name="taskId"/>'s rows.</summary>
    private static async Task<List<string>> PartitionsOfAsync(LedgerHost host, Guid taskId) =>
        (await RowsAsync(host, $"SELECT DISTINCT tableoid::regclass::text FROM {S} WHERE \"TaskId\" = '{taskId}'")).Select(n => n.Trim('"')).ToList();

    private static async Task<List<int>> SideDaysAsync(LedgerHost host) =>
        (await RowsAsync(host, $"SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '{S}'::regclass"))
            .Where(n => n.StartsWith(PostgreSqlSearch.Table + "_p", StringComparison.Ordinal))
            .Select(n => PartitionDay.Of(DateTime.ParseExact(n[^8..], "yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.AdjustToUniversal | System.Globalization.DateTimeStyles.AssumeUniversal)))
            .Order().ToList();

    private static async Task<T> ScalarAsync<T>(LedgerHost host, string sql)
    {
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<List<string>> RowsAsync(LedgerHost host, string sql)
    {
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            rows.Add(string.Join(" | ", Enumerable.Range(0, reader.FieldCount).Select(i => Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture))));
        }

        return rows;
    }
}
