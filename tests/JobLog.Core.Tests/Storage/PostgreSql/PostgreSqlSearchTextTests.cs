using JobLog.Maintenance;
using JobLog.Recording;
using JobLog.Retention;
using JobLog.Storage;
using JobLog.Storage.PostgreSql;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.PostgreSql;

/// <summary>
/// The PostgreSQL search's side table (<see cref="PostgreSqlSearch.Table"/>) against the text it stands for: each task's
/// <c>Input</c> and <c>TaskKwargs</c> once, each of its runs' distinct errors once, nothing of a task that is gone; through
/// the writer, the sweeper, the purge (batched or dropping day partitions) and the restore.
/// </summary>
public class PostgreSqlSearchTextTests
{
    private static readonly DateTime T0 = new(2026, 3, 10, 12, 0, 0, DateTimeKind.Utc);
    private FakeTimeProvider _clock = null!;
    private LedgerHost? _host;
    private string _backups = null!;

    [SetUp]
    public void SetUp()
    {
        _clock = new FakeTimeProvider(new DateTimeOffset(T0));
        _backups = Path.Combine(Path.GetTempPath(), "joblog-search-text-" + Guid.NewGuid().ToString("N"));
    }

    [TearDown]
    public async Task TearDown()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        if (Directory.Exists(_backups))
        {
            Directory.Delete(_backups, recursive: true);
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task SideTable_ThroughWriterSweepPurgeAndRestore_HoldsTheTextOfTheTasksThere(bool partitioned)
    {
        var host = _host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o => o.Partitioning.Enabled = partitioned,
            services: s => s.AddSingleton<TimeProvider>(_clock));
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var old = T0.AddDays(-40);
        var ids = new List<Guid>();
        for (var i = 0; i < 8; i++)
        {
            var at = i < 4 ? old.AddMinutes(i) : T0.AddMinutes(-30 + i);
            var id = Guid.CreateVersion7(new DateTimeOffset(at));
            ids.Add(id);
            var task = new TaskPayload
            {
                Id = id, Name = "Pay", Input = $"Pay(Order=ORD-{i:000})", TaskKwargs = $"{{\"Order\": \"ORD-{i:000}\"}}", DispatchedAt = at,
                EstimatedTimeOfFirstArrival = at, Stale = i == 5 ? T0.AddMinutes(5) : null,
            };
            recorder.Enqueue(new TaskDispatched(task));
            switch (i % 4)
            {
                case 0:
                    recorder.Enqueue(new RunFinished(Start(recorder, task, at), id, TaskRunState.Succeeded, at.AddSeconds(1), null, null, null));
                    break;
                case 1:
                    // Retried twice with the same error, then a different one: two texts for the task.
                    recorder.Enqueue(new RunFinished(Start(recorder, task, at), id, TaskRunState.Retried, at.AddSeconds(1), "TimeoutException: gateway", null, null));
                    recorder.Enqueue(new RunFinished(Start(recorder, task, at.AddSeconds(2)), id, TaskRunState.Retried, at.AddSeconds(3), "TimeoutException: gateway", null, null));
                    if (i != 5)
                    {
                        recorder.Enqueue(new RunFinished(Start(recorder, task, at.AddSeconds(4)), id, TaskRunState.Failed, at.AddSeconds(5), "card declined", null, null));
                    }
                    else
                    {
                        Start(recorder, task, at.AddSeconds(4));
                    }

                    break;
                case 2:
                    recorder.Enqueue(new RunFinished(Start(recorder, task, at), id, TaskRunState.Failed, at.AddSeconds(1), "boom", null, null));
                    break;
            }
        }

        // The consumer's run first (its own view of the input), the publisher's dispatch after: the text is the publisher's.
        var late = Guid.CreateVersion7(new DateTimeOffset(T0.AddMinutes(-1)));
        ids.Add(late);
        var seed = new TaskPayload { Id = late, Name = "Pay", Input = "Pay(Seed)", TaskKwargs = "{}", DispatchedAt = T0.AddMinutes(-1) };
        recorder.Enqueue(new RunFinished(Start(recorder, seed, T0.AddMinutes(-1)), late, TaskRunState.Succeeded, T0, null, null, null));
        await host.FlushAsync();
        await AssertSideTableAsync(host, "after the run, before the dispatch");
        recorder.Enqueue(new TaskDispatched(seed with { Input = "Pay(Invoice=INV-77)", TaskKwargs = "{\"Invoice\": \"INV-77\"}" }));
        await host.FlushAsync();
        var rows = await AssertSideTableAsync(host, "after the writer");
        Assert.That(rows, Does.Contain((late, false, "Pay(Invoice=INV-77)\n{\"Invoice\": \"INV-77\"}")).And.Not.Contain((late, false, "Pay(Seed)\n{}")));
        Assert.That(rows.Count(r => r.TaskId == ids[1] && r.IsError), Is.EqualTo(2), "a retried error once, the last one once");

        _clock.Advance(TimeSpan.FromHours(1));
        var maintenance = host.Services.GetRequiredService<LedgerMaintenance>();
        Assert.That((await maintenance.SweepAsync()).Expired, Is.EqualTo(1));
        rows = await AssertSideTableAsync(host, "after the sweeper's expiry");
        Assert.That(rows.Where(r => r.TaskId == ids[5] && r.IsError).Select(r => r.Text), Has.None.StartWith("Expired"),
            "the sweeper's expiry text is not in the side table (PostgreSqlSearch.SweptRuns)");
        var swept = await host.QueryAsync(db => PostgreSqlSearch.TasksContaining(db, "went STALE", null)!.ToListAsync());
        Assert.That(swept, Is.EqualTo(new[] { ids[5] }), "found through the swept runs' index");
        Assert.That(await host.QueryAsync(db => PostgreSqlSearch.TasksContaining(db, "task went stale", "went stale")!.ToListAsync()), Is.EqualTo(new[] { ids[5] }));
        Assert.That(await host.QueryAsync(db => PostgreSqlSearch.TasksWithErrorContaining(db, "Expired: the task").ToListAsync()), Is.EqualTo(new[] { ids[5] }));
        Assert.That(await host.QueryAsync(db => PostgreSqlSearch.TasksContaining(db, "went stale before this run finished, again", null)!.ToListAsync()), Is.Empty);

        // The old day: a drop of its partitions on a partitioned ledger (the failure kept), a batched delete otherwise.
        var purge = await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90), BackupDirectory: partitioned ? null : _backups));
        Assert.That(purge.Deleted, Is.GreaterThan(0));
        rows = await AssertSideTableAsync(host, "after the retention of the old day");
        Assert.That(rows.Select(r => r.TaskId), Does.Not.Contain(ids[0]).And.Contain(ids[2]), "the success is gone, the kept failure's text stays");

        // Everything, with a backup; then the restore.
        var all = await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(1), T0.AddDays(1), BackupDirectory: _backups));
        Assert.That(all.Deleted, Is.GreaterThan(0));
        Assert.That((await AssertSideTableAsync(host, "after purging everything")).Select(r => r.TaskId), Is.EquivalentTo(new[] { ids[3], ids[7] }),
            "only the two tasks still waiting (never purged) keep their text");
        var restored = await maintenance.RestoreAsync(all.BackupFile!);
        Assert.That(restored.Restored, Is.EqualTo(all.Deleted));
        Assert.That(await AssertSideTableAsync(host, "after the restore"), Is.Not.Empty);
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task ALedgerFromBeforeSession11_IsUpgradedAtStartUp_TheExpiryTextLeavesTheSideTable_AndIsStillFound(bool partitioned)
    {
        var host = _host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o => o.Partitioning.Enabled = partitioned,
            services: s => s.AddSingleton<TimeProvider>(_clock));
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var at = T0.AddMinutes(-30);
        var task = new TaskPayload { Id = Guid.CreateVersion7(new DateTimeOffset(at)), Name = "Pay", Input = "Pay(1)", DispatchedAt = at, Stale = T0.AddMinutes(-5) };
        recorder.Enqueue(new TaskDispatched(task));
        Start(recorder, task, at);
        await host.FlushAsync();
        Assert.That((await host.Services.GetRequiredService<LedgerMaintenance>().SweepAsync()).Expired, Is.EqualTo(1));

        // The ledger as session 10 left it: no swept runs' index, the expiry text in the side table like any other error.
        await using (var connection = new NpgsqlConnection(host.Ledger.ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(
                $"DROP INDEX \"{PostgreSqlSearch.SweptRuns}\"; INSERT INTO \"{PostgreSqlSearch.Table}\" " +
                // Partitioned, the side table's rows carry their task's day (since session 14).
                (partitioned ? $"VALUES ('{task.Id}', TRUE, '{JobLog.Sweeping.TaskLogSweeper.StaleRunError}', {JobLog.Storage.Partitioning.PartitionDay.Of(task.Id)})"
                    : $"VALUES ('{task.Id}', TRUE, '{JobLog.Sweeping.TaskLogSweeper.StaleRunError}')"),
                connection);
            await command.ExecuteNonQueryAsync();
        }

        await host.QueryAsync(async db =>
        {
            await host.Services.GetRequiredService<LedgerDatabase>().ApplySearchIndexAsync(db, true, CancellationToken.None);
            return 0;
        });

        Assert.That(await host.QueryAsync(db => db.Database.SqlQueryRaw<int>(PostgreSqlSearch.CountPresent).SingleAsync()), Is.EqualTo(PostgreSqlSearch.PresentCount));
        await AssertSideTableAsync(host, "after the upgrade");
        Assert.That(await host.QueryAsync(db => PostgreSqlSearch.TasksContaining(db, "went stale", null)!.ToListAsync()), Is.EqualTo(new[] { task.Id }));
    }

    [Test]
    public async Task SweptRunsSearch_OnAPartitionedLedger_ProbesTheStaleTasksDayOnly()
    {
        // A word of the expiry sentence is found through the stale-marked tasks and their runs (SweptRuns). Partitioned, the
        // join names the task's day, so each stale task probes one runs partition, not every day's (session 34; before, each
        // partition's task id index was probed once per stale task).
        var host = _host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o => o.Partitioning.Enabled = true,
            services: s => s.AddSingleton<TimeProvider>(_clock));
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        // Its id's day has no partition of its own: the default partitions, the last ones each Append reads (a probe of
        // every partition reads them all before it).
        var at = T0.AddDays(-40);
        var task = new TaskPayload { Id = Guid.CreateVersion7(new DateTimeOffset(at)), Name = "Pay", Input = "Pay(1)", DispatchedAt = at, Stale = T0.AddMinutes(-5) };
        recorder.Enqueue(new TaskDispatched(task));
        Start(recorder, task, at);
        await host.FlushAsync();
        Assert.That((await host.Services.GetRequiredService<LedgerMaintenance>().SweepAsync()).Expired, Is.EqualTo(1));

        await using (var scope = host.Services.CreateAsyncScope())
        {
            var found = await scope.ServiceProvider.GetRequiredService<JobLog.Querying.LedgerQueries>()
                .TasksAsync(new JobLog.Querying.TaskFilter { Search = "went stale" }, CancellationToken.None);
            Assert.That(found.Items.Select(t => t.Id), Is.EqualTo(new[] { task.Id }), "the page's search finds the swept task");
        }

        var plan = await host.QueryAsync(async db =>
        {
            var queries = new List<string>();
            await using var scope = host.Services.CreateAsyncScope();
            var sql = scope.ServiceProvider.GetRequiredService<JobLog.Querying.LedgerQueries>().MatchingIdsQuery("went stale", byDay: true).ToQueryString();
            await db.Database.OpenConnectionAsync();
            await using var command = db.Database.GetDbConnection().CreateCommand();
            foreach (System.Text.RegularExpressions.Match p in System.Text.RegularExpressions.Regex.Matches(sql, "^-- @?(\\w+)='(.*)'", System.Text.RegularExpressions.RegexOptions.Multiline))
            {
                var parameter = command.CreateParameter();
                parameter.ParameterName = p.Groups[1].Value;
                parameter.Value = p.Groups[2].Value;
                command.Parameters.Add(parameter);
            }

            // A few rows would be hashed or materialized; the stale tasks' nested loop into the runs' task id index is the
            // plan of a big ledger.
            command.CommandText = "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off; " +
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql;
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                queries.Add(reader.GetString(0));
            }

            return queries;
        });
        var text = string.Join("\n", plan);
        var runScans = plan.Where(l => l.Contains(" on \"" + LedgerModel.Runs + "_", StringComparison.Ordinal)).ToList();
        Assert.That(runScans, Has.Count.GreaterThanOrEqualTo(5), "every runs partition is in the plan: " + text);
        Assert.That(runScans.Where(l => !l.Contains("never executed", StringComparison.Ordinal)).ToList(), Has.Count.EqualTo(1),
            "one runs partition read for the one stale task: " + text);
    }

    [Test]
    public async Task TheStartUpUpgrade_HasNoCommandTimeLimit()
    {
        // At a million tasks the upgrade (building the swept runs' index, moving text, a trigram index) takes longer than a
        // command's default 30 s, and a start-up that timed out would try again and time out again. Here the context's
        // limit is 1 s and the upgrade waits 3 s for a lock held on the runs.
        var host = _host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), services: s => s.AddSingleton<TimeProvider>(_clock));
        await using var holder = new NpgsqlConnection(host.Ledger.ConnectionString);
        await holder.OpenAsync();
        await using (var drop = new NpgsqlCommand($"DROP INDEX \"{PostgreSqlSearch.SweptRuns}\"", holder))
        {
            await drop.ExecuteNonQueryAsync();
        }

        var hold = await holder.BeginTransactionAsync();
        await using (var lockRuns = new NpgsqlCommand($"LOCK TABLE \"{LedgerModel.Runs}\" IN ACCESS EXCLUSIVE MODE", holder, hold))
        {
            await lockRuns.ExecuteNonQueryAsync();
        }

        var released = Task.Delay(TimeSpan.FromSeconds(3)).ContinueWith(_ => hold.RollbackAsync(), TaskScheduler.Default).Unwrap();
        var limit = await host.QueryAsync(async db =>
        {
            db.Database.SetCommandTimeout(1);
            await host.Services.GetRequiredService<LedgerDatabase>().ApplySearchIndexAsync(db, true, CancellationToken.None);
            return db.Database.GetCommandTimeout();
        });
        await released;

        Assert.That(limit, Is.EqualTo(1), "the context's own limit is restored");
        Assert.That(await host.QueryAsync(db => db.Database.SqlQueryRaw<int>(PostgreSqlSearch.CountPresent).SingleAsync()), Is.EqualTo(PostgreSqlSearch.PresentCount));
    }

    private static Guid Start(LedgerRecorder recorder, TaskPayload task, DateTime at)
    {
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, ConsumerType = "C", Start = at };
        recorder.Enqueue(new RunStarted(run, task, false));
        return run.Id;
    }

    /// <summary>Asserts the side table holds exactly the text of the tasks and runs there; returns its rows.</summary>
    private static async Task<List<(Guid TaskId, bool IsError, string Text)>> AssertSideTableAsync(LedgerHost host, string when)
    {
        var tasks = await host.TasksAsync();
        var expected = tasks.Where(t => t.Input is not null || t.TaskKwargs is not null)
            .Select(t => (t.Id, false, (t.Input ?? "") + "\n" + (t.TaskKwargs ?? "")))
            .Concat(tasks.SelectMany(t => t.Runs).Where(r => r.ErrorMessage is not null && r.ErrorMessage != JobLog.Sweeping.TaskLogSweeper.StaleRunError)
                .Select(r => (r.TaskId, true, r.ErrorMessage!)).Distinct())
            .ToList();
        var rows = new List<(Guid TaskId, bool IsError, string Text)>();
        await using (var connection = new NpgsqlConnection(host.Ledger.ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand(SideRows, connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                rows.Add((reader.GetGuid(0), reader.GetBoolean(1), reader.GetString(2)));
            }
        }

        Assert.That(rows, Is.EquivalentTo(expected), when);
        return rows;
    }

    private const string SideRows = "SELECT \"TaskId\", \"IsError\", \"Text\" FROM \"" + PostgreSqlSearch.Table + "\"";
}
