using JobLog.Recording;
using JobLog.Storage;
using JobLog.Storage.Sqlite;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// The SQLite search index up to a watermark (<see cref="SqliteSearch.Watermark"/>): the rows past it are indexed in
/// bulk steps by the writer, the watermark never lets a row go unindexed, and a ledger with the former INSERT triggers
/// is upgraded at start-up.
/// </summary>
public class SqliteSearchWatermarkTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    private const string Watermark = "SELECT \"Tasks\" FROM \"JobLogSearchWatermark\"";
    private const string MaxRowid = "SELECT coalesce(max(rowid), 0) FROM \"JobLogTasks\"";

    private static string Match(string text) =>
        $"SELECT COUNT(*) FROM \"JobLogTaskText\" WHERE \"JobLogTaskText\" MATCH '{SqliteSearch.Phrase(text).Replace("'", "''", StringComparison.Ordinal)}'";

    private static Task<long> ScalarAsync(LedgerHost host, string sql) => SqliteWriterTriggersTests.ScalarAsync(host.Ledger.ConnectionString, sql);

    private static Task ExecAsync(LedgerHost host, string sql) => SqliteWriterTriggersTests.ExecAsync(host.Ledger.ConnectionString, sql);

    private static string Insert(int i, string input) =>
        "INSERT INTO \"JobLogTasks\" (\"Id\", \"Name\", \"Input\", \"DispatchedAt\", \"IsSetAsStale\", \"State\", \"IsInternal\") " +
        $"VALUES ('{Guid.NewGuid().ToString().ToUpperInvariant()}', 'Hand', '{input}', '2026-03-01 08:00:{i:00}', 0, 1, 0);";

    [Test]
    public async Task DeletingTheNewestIndexedRows_LowersTheWatermark_SoARowidHandedOutAgainIsNotTakenForIndexed()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        await ExecAsync(host, Insert(1, "first row") + Insert(2, "second row") + Insert(3, "third row"));
        await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
        Assert.That(await ScalarAsync(host, Watermark), Is.EqualTo(await ScalarAsync(host, MaxRowid)).And.EqualTo(3));

        // The two newest go; SQLite numbers the next row max(rowid) + 1 = 2 again.
        await ExecAsync(host, "DELETE FROM \"JobLogTasks\" WHERE \"Input\" IN ('second row', 'third row')");
        Assert.That(await ScalarAsync(host, Watermark), Is.EqualTo(1));
        Assert.That(await ScalarAsync(host, Match("third row")), Is.Zero, "a deleted row leaves the index");
        await ExecAsync(host, Insert(4, "reused rowid ORD-REUSED-1"));
        Assert.That(await ScalarAsync(host, MaxRowid), Is.EqualTo(2));

        await using var scope = host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
        var found = await SqliteSearch.TasksContaining(db, "ord-reused", LedgerSql.LikePattern("ord-reused")).ToListAsync();
        Assert.That(found, Has.Count.EqualTo(1), "past the watermark: checked row by row");
        await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
        Assert.That(await ScalarAsync(host, Match("ORD-REUSED-1")), Is.EqualTo(1), "and indexed by the next step");
        Assert.That(await SqliteSearch.TasksContaining(db, "ord-reused", LedgerSql.LikePattern("ord-reused")).ToListAsync(), Is.EqualTo(found));
    }

    [Test]
    public async Task TheRowsPastTheWatermark_AreReadByRowidRange_NotByScanningTheLedger()
    {
        // At 10 million tasks the planner read every task through the covering Id index to find the few thousand rows
        // past the watermark (a rare q took 42.7 s, docs/scale.md "SQLite at 10 million"); the range of rowids is a
        // seek on the table itself.
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        // A ledger big enough, with its statistics, that the planner does not read it whole because it is small.
        await ExecAsync(host,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) " +
            "INSERT INTO \"JobLogTasks\" (\"Id\", \"Name\", \"Input\", \"DispatchedAt\", \"IsSetAsStale\", \"State\", \"IsInternal\") " +
            "SELECT upper(hex(randomblob(16))), 'Hand', 'row ' || i, '2026-03-01 08:00:00', 0, 1, 0 FROM n; " +
            "INSERT INTO \"JobLogTaskRuns\" (\"Id\", \"TaskId\", \"Name\", \"ConsumerType\", \"Start\", \"State\", \"Retries\", \"Redelivered\") " +
            "SELECT upper(hex(randomblob(16))), \"Id\", 'Hand', 'C', '2026-03-01 08:00:00', 2, 0, 0 FROM \"JobLogTasks\"; ANALYZE");
        await using var scope = host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
        var query = SqliteSearch.TasksContaining(db, "ord-rare-1", LedgerSql.LikePattern("ord-rare-1"));
        var sql = string.Join('\n', query.ToQueryString().Split('\n').Where(l => !l.StartsWith(".param", StringComparison.Ordinal)));

        var plan = new List<string>();
        await using (var connection = new SqliteConnection(host.Ledger.ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "EXPLAIN QUERY PLAN " + sql;
            command.Parameters.AddWithValue("@p0", SqliteSearch.Phrase("ord-rare-1"));
            command.Parameters.AddWithValue("@p1", LedgerSql.LikePattern("ord-rare-1"));
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                plan.Add(reader.GetString(3));
            }
        }

        // The search names the tasks t and the runs r.
        var ledgerReads = plan.Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, "^(SCAN|SEARCH) [tr]( |$)")).ToList();
        Assert.That(ledgerReads, Is.Not.Empty, string.Join("; ", plan));
        // The partial index of the runs the sweeper closed holds those runs only (read when the expiry text holds the text).
        Assert.That(ledgerReads.Where(l => l.StartsWith("SCAN", StringComparison.Ordinal) && l != $"SCAN r USING INDEX {SqliteSearch.SweptRuns}"), Is.Empty, string.Join("; ", plan));
        Assert.That(plan.Count(l => l.Contains("rowid>?", StringComparison.Ordinal)), Is.EqualTo(2), string.Join("; ", plan));
    }

    [Test]
    public async Task ALedgerWithTheFormerInsertTriggers_IsUpgradedAtStartUp_WithEveryRowIndexed()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        // The ledger as the TaskSearchIndexes migration left it: the per-row INSERT triggers, no watermark.
        await ExecAsync(host, SqliteSearch.Drop + SqliteSearch.Create);
        await ExecAsync(host, Insert(1, "indexed by the old trigger ORD-OLD-1"));
        Assert.That(await ScalarAsync(host, Match("ORD-OLD-1")), Is.EqualTo(1));

        await host.QueryAsync(async db =>
        {
            await host.Services.GetRequiredService<LedgerDatabase>().ApplySearchIndexAsync(db, true, CancellationToken.None);
            return 0;
        });

        Assert.That(await ScalarAsync(host, Watermark), Is.EqualTo(await ScalarAsync(host, MaxRowid)), "every row the old triggers indexed is below the watermark");
        Assert.That(await ScalarAsync(host, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'JobLog%Text_Insert'"), Is.Zero);
        await ExecAsync(host, "UPDATE \"JobLogTasks\" SET \"Input\" = 'changed ORD-NEW-2' WHERE \"Name\" = 'Hand'");
        Assert.That(await ScalarAsync(host, Match("ORD-OLD-1")), Is.Zero, "an indexed row's change reaches the index");
        Assert.That(await ScalarAsync(host, Match("ORD-NEW-2")), Is.EqualTo(1));
    }

    [Test]
    public async Task TheWritersTransactions_IndexTheRowsPastTheWatermark_OnceAStepOfThemIsThere()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        var planner = new LedgerPlanner(database);
        await using var executor = await database.OpenAsync(host.Ledger.ConnectionString, CancellationToken.None);

        List<LedgerRecord> Batch(int count, string text) => [.. Enumerable.Range(0, count).Select(i => (LedgerRecord)new TaskDispatched(new TaskPayload
        {
            Id = Guid.NewGuid(), Name = "Charge", Input = $"{text}-{i}", TaskKwargs = "{}", DispatchedAt = T0.AddSeconds(i),
            EstimatedTimeOfFirstArrival = T0,
        }))];

        await planner.CommitAsync(executor, planner.Plan(Batch(10, "SMALL")), TimeSpan.FromSeconds(10), CancellationToken.None);
        Assert.That(await ScalarAsync(host, Match("SMALL-1")), Is.Zero, "ten rows: past the watermark, not indexed yet");

        await planner.CommitAsync(executor, planner.Plan(Batch((int)SqliteSearchIndexer.StepRows, "BULK")), TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.That(await ScalarAsync(host, Match("SMALL-1")), Is.EqualTo(1), "a step's worth: everything past the watermark is indexed");
        Assert.That(await ScalarAsync(host, Match("BULK-3999")), Is.EqualTo(1));
        Assert.That(await ScalarAsync(host, Watermark), Is.EqualTo(await ScalarAsync(host, MaxRowid)));
        await ExecAsync(host, "INSERT INTO \"JobLogTaskText\"(\"JobLogTaskText\", rank) VALUES ('integrity-check', 1);");
    }

    [Test]
    public async Task RowsCommittedPastTheWatermark_ByAWriterThatThenStops_AreFoundAtOnce_AndIndexedByTheNextWritersStep()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        var planner = new LedgerPlanner(database);

        List<LedgerRecord> Batch(int count, string text) => [.. Enumerable.Range(0, count).Select(i => (LedgerRecord)new TaskDispatched(new TaskPayload
        {
            Id = Guid.NewGuid(), Name = "Charge", Input = $"{text}-{i}", TaskKwargs = "{}", DispatchedAt = T0.AddSeconds(i),
            EstimatedTimeOfFirstArrival = T0,
        }))];

        // The first writer commits rows and goes away before a step (what a killed process leaves: committed rows only).
        await using (var first = await database.OpenAsync(host.Ledger.ConnectionString, CancellationToken.None))
        {
            await planner.CommitAsync(first, planner.Plan(Batch(10, "BEFORE-CRASH")), TimeSpan.FromSeconds(10), CancellationToken.None);
        }

        Assert.That(await ScalarAsync(host, Match("BEFORE-CRASH-7")), Is.Zero, "the premise: past the watermark, not in the index");
        Assert.That(await FoundAsync(host, "BEFORE-CRASH-7"), Has.Count.EqualTo(1), "the search checks the rows past the watermark: no lag");

        // The next writer (the restarted process) indexes them with its first step, whatever wrote them.
        await using var second = await database.OpenAsync(host.Ledger.ConnectionString, CancellationToken.None);
        await planner.CommitAsync(second, planner.Plan(Batch((int)SqliteSearchIndexer.StepRows, "AFTER")), TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.That(await ScalarAsync(host, Match("BEFORE-CRASH-7")), Is.EqualTo(1), "indexed by the next writer's step");
        Assert.That(await ScalarAsync(host, Watermark), Is.EqualTo(await ScalarAsync(host, MaxRowid)), "nothing left past the watermark");
        Assert.That(await FoundAsync(host, "BEFORE-CRASH-7"), Has.Count.EqualTo(1), "found once, through the index");
    }

    private const string Trace = "System.InvalidOperationException: Card declined ORD-RETRY-9\n   at Charge.Consume() in Charge.cs:line 12";

    private static string RunMatches(string text) =>
        $"SELECT COUNT(*) FROM \"JobLogRunText\" WHERE \"JobLogRunText\" MATCH '{SqliteSearch.Phrase(text).Replace("'", "''", StringComparison.Ordinal)}'";

    private const string IntegrityCheck = "INSERT INTO \"JobLogRunText\"(\"JobLogRunText\", rank) VALUES ('integrity-check', 1);";

    private const string Texts = "SELECT COUNT(*) FROM \"JobLogErrorTexts\"";

    private const string References = "SELECT COUNT(*) FROM \"JobLogRunErrors\"";

    private static TaskRunLog Run(Guid taskId, int retries, string? error) => new()
    {
        Id = Guid.NewGuid(), TaskId = taskId, Name = "Charge", ConsumerType = "ChargeConsumer", Start = T0.AddSeconds(retries),
        Stop = T0.AddSeconds(retries + 1), Retries = retries, State = error is null ? TaskRunState.Succeeded : TaskRunState.Retried, ErrorMessage = error,
    };

    private static async Task<List<Guid>> FoundAsync(LedgerHost host, string text) => await host.QueryAsync(db =>
        SqliteSearch.TasksContaining(db, text, LedgerSql.LikePattern(text)).ToListAsync());

    [Test]
    public async Task ATaskWhoseRetriesFailedWithTheSameError_HasThatErrorInTheIndexOnce()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var task = new TaskLog { Id = Guid.NewGuid(), Name = "Charge", DispatchedAt = T0, State = TaskState.Succeeded, Input = "Charge(1)" };
        var other = new TaskLog { Id = Guid.NewGuid(), Name = "Charge", DispatchedAt = T0, State = TaskState.Failed, Input = "Charge(2)" };
        task.Runs.Add(Run(task.Id, 0, Trace));
        task.Runs.Add(Run(task.Id, 1, Trace));
        task.Runs.Add(Run(task.Id, 2, Trace));
        task.Runs.Add(Run(task.Id, 3, "System.TimeoutException: the gateway did not answer"));
        task.Runs.Add(Run(task.Id, 4, null));
        other.Runs.Add(Run(other.Id, 0, Trace));
        await host.QueryAsync(db =>
        {
            db.AddRange(task, other);
            return db.SaveChangesAsync();
        });
        await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);

        Assert.That(await ScalarAsync(host, RunMatches("Card declined ORD-RETRY-9")), Is.EqualTo(1), "one entry per distinct text, not one per task or run");
        Assert.That(await ScalarAsync(host, RunMatches("gateway did not")), Is.EqualTo(1));
        Assert.That(await ScalarAsync(host, Texts), Is.EqualTo(2));
        Assert.That(await ScalarAsync(host, References), Is.EqualTo(5), "each run with an error refers to its text");
        Assert.That(await FoundAsync(host, "ord-retry-9"), Is.EquivalentTo(new[] { task.Id, other.Id }));
        await ExecAsync(host, IntegrityCheck);
    }

    [TestCase(false, TestName = "DeletingOrChangingTheIndexedRunOfARepeatedError_KeepsTheTaskFindable_BeforeTheNextStep")]
    [TestCase(true, TestName = "DeletingOrChangingTheIndexedRunOfARepeatedError_KeepsTheTaskFindable_AfterTheNextStep")]
    public async Task DeletingOrChangingTheIndexedRunOfARepeatedError_KeepsTheTaskFindable(bool step)
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var task = new TaskLog { Id = Guid.NewGuid(), Name = "Charge", DispatchedAt = T0, State = TaskState.Succeeded, Input = "Charge(1)" };
        var runs = Enumerable.Range(0, 3).Select(i => Run(task.Id, i, Trace)).ToList();
        task.Runs.AddRange(runs);
        await host.QueryAsync(db =>
        {
            db.Add(task);
            return db.SaveChangesAsync();
        });
        await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
        Assert.That(await ScalarAsync(host, RunMatches("ORD-RETRY-9")), Is.EqualTo(1));

        // The indexed (first) run goes: the second becomes the first of its group.
        await host.QueryAsync(db => db.TaskRunLogs.Where(r => r.Id == runs[0].Id).ExecuteDeleteAsync());
        if (step)
        {
            await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
            Assert.That(await ScalarAsync(host, RunMatches("ORD-RETRY-9")), Is.EqualTo(1), "the survivors' text stays indexed");
            Assert.That(await ScalarAsync(host, Texts), Is.EqualTo(1));
        }

        Assert.That(await FoundAsync(host, "ord-retry-9"), Is.EqualTo(new[] { task.Id }));

        // The second (now the first) gets another text: the third carries the old one.
        await host.QueryAsync(db => db.TaskRunLogs.Where(r => r.Id == runs[1].Id).ExecuteUpdateAsync(s => s.SetProperty(r => r.ErrorMessage, "disk full ORD-DISK-3")));
        if (step)
        {
            await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
        }

        Assert.That(await FoundAsync(host, "ord-retry-9"), Is.EqualTo(new[] { task.Id }));
        Assert.That(await FoundAsync(host, "ord-disk-3"), Is.EqualTo(new[] { task.Id }));

        // The third takes the second's new text: one of the two is enough; then the second goes.
        await host.QueryAsync(db => db.TaskRunLogs.Where(r => r.Id == runs[2].Id).ExecuteUpdateAsync(s => s.SetProperty(r => r.ErrorMessage, "disk full ORD-DISK-3")));
        Assert.That(await FoundAsync(host, "ord-retry-9"), Is.Empty);
        await host.QueryAsync(db => db.TaskRunLogs.Where(r => r.Id == runs[1].Id).ExecuteDeleteAsync());
        if (step)
        {
            await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
            Assert.That(await ScalarAsync(host, RunMatches("ORD-DISK-3")), Is.EqualTo(1));
        }

        Assert.That(await FoundAsync(host, "ord-disk-3"), Is.EqualTo(new[] { task.Id }));

        // Retention: every run of the task goes, nothing is left in the index or to recheck after the step.
        await host.QueryAsync(db => db.TaskRunLogs.Where(r => r.TaskId == task.Id).ExecuteDeleteAsync());
        Assert.That(await FoundAsync(host, "ord-disk-3"), Is.Empty);
        await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
        Assert.That(await ScalarAsync(host, RunMatches("ORD-DISK-3")), Is.Zero);
        Assert.That(await ScalarAsync(host, RunMatches("ORD-RETRY-9")), Is.Zero);
        Assert.That(await ScalarAsync(host, Texts), Is.Zero, "a text no run refers to goes");
        Assert.That(await ScalarAsync(host, References), Is.Zero);
        await ExecAsync(host, IntegrityCheck);
    }

    [Test]
    public async Task TheWritersRetriedRuns_FinishedAfterAStep_AddTheirTaskErrorToTheIndexOnce()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        var planner = new LedgerPlanner(database);
        await using var executor = await database.OpenAsync(host.Ledger.ConnectionString, CancellationToken.None);
        var id = Guid.NewGuid();
        var seed = new TaskPayload { Id = id, Name = "Charge", Input = "Charge(7)", TaskKwargs = "{}", DispatchedAt = T0, EstimatedTimeOfFirstArrival = T0 };
        var runs = Enumerable.Range(0, 3).Select(i => new RunPayload
        {
            Id = Guid.NewGuid(), TaskId = id, Name = "Charge", ConsumerType = "ChargeConsumer", Start = T0.AddSeconds(i), Host = "test",
        }).ToList();

        // Each attempt starts in one batch, the step comes, and it fails in the next (the UPDATE trigger's path).
        for (var i = 0; i < runs.Count; i++)
        {
            await planner.CommitAsync(executor, planner.Plan([new RunStarted(runs[i], seed, false)]), TimeSpan.FromSeconds(10), CancellationToken.None);
            await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
            LedgerRecord end = i < 2
                ? new RunFinished(runs[i].Id, id, TaskRunState.Retried, T0.AddSeconds(i + 0.5), Trace, null, null)
                : new RunFinished(runs[i].Id, id, TaskRunState.Succeeded, T0.AddSeconds(i + 0.5), null, null, null);
            await planner.CommitAsync(executor, planner.Plan([end]), TimeSpan.FromSeconds(10), CancellationToken.None);
        }

        Assert.That(((SqliteExecutor)executor).BypassedTriggers, Is.True);
        Assert.That(await ScalarAsync(host, "SELECT COUNT(*) FROM \"JobLogTaskRuns\" WHERE \"ErrorMessage\" IS NOT NULL"), Is.EqualTo(2));
        Assert.That(await ScalarAsync(host, RunMatches("ORD-RETRY-9")), Is.EqualTo(1));
        Assert.That(await FoundAsync(host, "card declined ord-retry"), Is.EqualTo(new[] { id }));
        await ExecAsync(host, IntegrityCheck);
        SqliteConnection.ClearAllPools();
    }

    [Test]
    public async Task ALedgerWatermarkedWithEveryError_IsUpgradedAtStartUp_AndStaysExactThroughDeletes()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        // The ledger as session 7 left it: the watermark's triggers, every run's error indexed, no recheck table.
        await ExecAsync(host, SqliteSearch.Drop + SqliteSearch.Create + "DROP TRIGGER \"JobLogTaskText_Insert\"; DROP TRIGGER \"JobLogTaskText_Update\"; " +
            "DROP TRIGGER \"JobLogTaskText_Delete\"; DROP TRIGGER \"JobLogRunText_Insert\"; DROP TRIGGER \"JobLogRunText_Update\"; DROP TRIGGER \"JobLogRunText_Delete\";" +
            SqliteSearch.Watermarked);
        var task = new TaskLog { Id = Guid.NewGuid(), Name = "Charge", DispatchedAt = T0, State = TaskState.Succeeded, Input = "Charge(1)" };
        var runs = Enumerable.Range(0, 3).Select(i => Run(task.Id, i, Trace)).ToList();
        task.Runs.AddRange(runs);
        await host.QueryAsync(db =>
        {
            db.Add(task);
            return db.SaveChangesAsync();
        });
        await ExecAsync(host, "BEGIN IMMEDIATE; " + SqliteSearch.IndexPendingEveryError + "; COMMIT;");
        Assert.That(await ScalarAsync(host, RunMatches("ORD-RETRY-9")), Is.EqualTo(3), "session 7 indexed every run");
        Assert.That(await FoundAsync(host, "ord-retry-9"), Is.EqualTo(new[] { task.Id }));

        await host.QueryAsync(async db =>
        {
            await host.Services.GetRequiredService<LedgerDatabase>().ApplySearchIndexAsync(db, true, CancellationToken.None);
            return 0;
        });
        Assert.That(await ScalarAsync(host, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'JobLogErrorTexts'"), Is.EqualTo(1));

        foreach (var run in runs)
        {
            Assert.That(await FoundAsync(host, "ord-retry-9"), Is.EqualTo(new[] { task.Id }));
            await host.QueryAsync(db => db.TaskRunLogs.Where(r => r.Id == run.Id).ExecuteDeleteAsync());
            await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
            await ExecAsync(host, IntegrityCheck);
        }

        Assert.That(await FoundAsync(host, "ord-retry-9"), Is.Empty);
        Assert.That(await ScalarAsync(host, RunMatches("ORD-RETRY-9")), Is.Zero, "no entry left behind");
    }

    private static TaskLog Failed(string input, params string?[] errors)
    {
        var task = new TaskLog { Id = Guid.NewGuid(), Name = "Charge", DispatchedAt = T0, State = TaskState.Failed, Input = input };
        task.Runs.AddRange(errors.Select((e, i) => Run(task.Id, i, e)));
        return task;
    }

    [Test]
    public async Task TwoTasksWithTheSameError_AreBothFound_AndTheTextIsIndexedOnce_UntilNoRunRefersToIt()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var first = Failed("Charge(1)", Trace, Trace);
        var second = Failed("Charge(2)", Trace, null);
        await host.QueryAsync(db =>
        {
            db.AddRange(first, second);
            return db.SaveChangesAsync();
        });
        await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
        Assert.That(await ScalarAsync(host, RunMatches("ORD-RETRY-9")), Is.EqualTo(1), "one index entry for the text of both tasks");
        Assert.That(await FoundAsync(host, "card declined ord-retry-9"), Is.EquivalentTo(new[] { first.Id, second.Id }));
        Assert.That(await FoundAsync(host, "Charge.cs:line 12"), Is.EquivalentTo(new[] { first.Id, second.Id }));

        // A third task with the same text, written after the step: found past the watermark, then through the index.
        var third = Failed("Charge(3)", Trace);
        await host.QueryAsync(db =>
        {
            db.Add(third);
            return db.SaveChangesAsync();
        });
        Assert.That(await FoundAsync(host, "ord-retry-9"), Is.EquivalentTo(new[] { first.Id, second.Id, third.Id }));
        await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
        Assert.That(await FoundAsync(host, "ord-retry-9"), Is.EquivalentTo(new[] { first.Id, second.Id, third.Id }));
        Assert.That(await ScalarAsync(host, Texts), Is.EqualTo(1));

        // Purged task by task (retention deletes the runs with their task): the text stays while a run refers to it.
        await host.QueryAsync(db => db.TaskRunLogs.Where(r => r.TaskId == first.Id).ExecuteDeleteAsync());
        Assert.That(await FoundAsync(host, "ord-retry-9"), Is.EquivalentTo(new[] { second.Id, third.Id }));
        await host.QueryAsync(db => db.TaskRunLogs.Where(r => r.TaskId == third.Id).ExecuteDeleteAsync());
        Assert.That(await FoundAsync(host, "ord-retry-9"), Is.EqualTo(new[] { second.Id }));
        Assert.That(await ScalarAsync(host, RunMatches("ORD-RETRY-9")), Is.EqualTo(1));

        // The last run with it goes: nothing finds the text, and it has left the texts and the index.
        await host.QueryAsync(db => db.TaskRunLogs.Where(r => r.TaskId == second.Id).ExecuteDeleteAsync());
        Assert.That(await FoundAsync(host, "ord-retry-9"), Is.Empty);
        Assert.That(await ScalarAsync(host, RunMatches("ORD-RETRY-9")), Is.Zero);
        Assert.That(await ScalarAsync(host, Texts), Is.Zero);
        Assert.That(await ScalarAsync(host, References), Is.Zero);
        await ExecAsync(host, IntegrityCheck);

        // The same text written again later is indexed again (a new id, no stale entry in its way).
        var fourth = Failed("Charge(4)", Trace);
        await host.QueryAsync(db =>
        {
            db.Add(fourth);
            return db.SaveChangesAsync();
        });
        await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
        Assert.That(await FoundAsync(host, "ord-retry-9"), Is.EqualTo(new[] { fourth.Id }));
        Assert.That(await ScalarAsync(host, RunMatches("ORD-RETRY-9")), Is.EqualTo(1));
        await ExecAsync(host, IntegrityCheck);
    }

    [Test]
    public async Task ALedgerIndexedOncePerTask_IsUpgradedAtStartUp_ToOnePerText_AndFindsTheSameTasks()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        // The ledger as session 12 left it: the watermark, errors once per task, the expiry text kept out.
        await ExecAsync(host, SqliteSearch.Drop + SqliteSearch.Create + "DROP TRIGGER \"JobLogTaskText_Insert\"; DROP TRIGGER \"JobLogTaskText_Update\"; " +
            "DROP TRIGGER \"JobLogTaskText_Delete\"; DROP TRIGGER \"JobLogRunText_Insert\"; DROP TRIGGER \"JobLogRunText_Update\"; DROP TRIGGER \"JobLogRunText_Delete\";" +
            SqliteSearch.Watermarked + SqliteSearch.Deduplicated + SqliteSearch.Swept);
        var tasks = new[]
        {
            Failed("Charge(1)", Trace, Trace, null), Failed("Charge(2)", Trace), Failed("Charge(3)", "System.TimeoutException: the gateway did not answer", Trace),
            Failed("Charge(4)", (string?)null),
        };
        await host.QueryAsync(db =>
        {
            db.AddRange(tasks);
            return db.SaveChangesAsync();
        });
        await ExecAsync(host, "BEGIN IMMEDIATE; " + SqliteSearch.IndexPendingPerTask + "; COMMIT;");
        // And one row past the watermark, to be indexed by the first step after the upgrade.
        var late = Failed("Charge(5)", Trace);
        await host.QueryAsync(db =>
        {
            db.Add(late);
            return db.SaveChangesAsync();
        });
        Assert.That(await ScalarAsync(host, RunMatches("ORD-RETRY-9")), Is.EqualTo(3), "session 12: once per task");
        var queries = new[] { "ord-retry-9", "gateway did not", "Charge.cs", "InvalidOperationException" };
        var before = new List<List<Guid>>();
        foreach (var q in queries)
        {
            before.Add(await FoundAsync(host, q));
        }

        await host.QueryAsync(async db =>
        {
            await host.Services.GetRequiredService<LedgerDatabase>().ApplySearchIndexAsync(db, true, CancellationToken.None);
            return 0;
        });
        Assert.That(await ScalarAsync(host, RunMatches("ORD-RETRY-9")), Is.EqualTo(1), "once per text");
        Assert.That(await ScalarAsync(host, Texts), Is.EqualTo(2));
        Assert.That(await ScalarAsync(host, References), Is.EqualTo(5), "the runs at or below the watermark with an error");
        for (var i = 0; i < queries.Length; i++)
        {
            Assert.That(await FoundAsync(host, queries[i]), Is.EquivalentTo(before[i]), queries[i]);
        }

        Assert.That(before[0], Has.Count.EqualTo(4));
        await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
        Assert.That(await ScalarAsync(host, References), Is.EqualTo(6));
        Assert.That(await FoundAsync(host, "ord-retry-9"), Is.EquivalentTo(before[0]));
        await ExecAsync(host, IntegrityCheck);
    }

    [Test]
    public async Task SearchIndexOff_DropsTheWatermark_AndTheWriterLeavesTheLedgerAlone()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        await host.QueryAsync(async db =>
        {
            await host.Services.GetRequiredService<LedgerDatabase>().ApplySearchIndexAsync(db, false, CancellationToken.None);
            return 0;
        });
        Assert.That(await ScalarAsync(host, "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'JobLogSearch%' OR name LIKE 'JobLog%Text%'"), Is.Zero);

        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        var planner = new LedgerPlanner(database);
        await using var executor = await database.OpenAsync(host.Ledger.ConnectionString, CancellationToken.None);
        var dispatch = new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "Charge", Input = "x", DispatchedAt = T0, EstimatedTimeOfFirstArrival = T0 });
        await planner.CommitAsync(executor, planner.Plan([dispatch]), TimeSpan.FromSeconds(10), CancellationToken.None);
        Assert.That(await ScalarAsync(host, "SELECT COUNT(*) FROM \"JobLogTasks\""), Is.EqualTo(1));
        SqliteConnection.ClearAllPools();
    }
}
