using JobLog.Recording;
using JobLog.Storage;
using JobLog.Storage.Sqlite;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// The writer's batches skip the per-row triggers and add their rows to the search index and the rollups in bulk
/// (<see cref="SqliteWriterTriggers"/>): the result must be, row for row and trigram for trigram, what the triggers give.
/// </summary>
public class SqliteWriterTriggersTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    [Test]
    public async Task WriterBatches_WithoutTheRowTriggers_LeaveTheSearchIndexAndRollupsAsTheTriggersDo()
    {
        var batches = Batches();
        await using var bypassed = await LedgerHost.StartAsync(TestLedger.Sqlite());
        await using var triggered = await LedgerHost.StartAsync(TestLedger.Sqlite());
        // An application's own trigger on a JobLog table: that ledger's writer must leave every row to the triggers.
        await ExecAsync(triggered.Ledger.ConnectionString, """
            CREATE TABLE app_audit (run TEXT);
            CREATE TRIGGER app_audit_runs AFTER INSERT ON "JobLogTaskRuns" BEGIN INSERT INTO app_audit VALUES (new."Id"); END;
            """);

        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        var planner = new LedgerPlanner(database);
        await using var fast = await database.OpenAsync(bypassed.Ledger.ConnectionString, CancellationToken.None);
        await using var slow = await database.OpenAsync(triggered.Ledger.ConnectionString, CancellationToken.None);
        foreach (var batch in batches)
        {
            await planner.CommitAsync(fast, planner.Plan(batch), TimeSpan.FromSeconds(10), CancellationToken.None);
            Assert.That(((SqliteExecutor)fast).BypassedTriggers, Is.True, "JobLog's own triggers only: the batch skips them");
            await planner.CommitAsync(slow, planner.Plan(batch), TimeSpan.FromSeconds(10), CancellationToken.None);
            Assert.That(((SqliteExecutor)slow).BypassedTriggers, Is.False, "an unknown trigger: the batch fires every trigger");
            // The search index's step after each batch: the next batch's changes meet indexed rows (update triggers).
            await IndexPendingAsync(bypassed.Ledger.ConnectionString);
            await IndexPendingAsync(triggered.Ledger.ConnectionString);
        }

        Assert.That(await ScalarAsync(triggered.Ledger.ConnectionString, "SELECT COUNT(*) FROM app_audit"),
            Is.EqualTo(await ScalarAsync(triggered.Ledger.ConnectionString, "SELECT COUNT(*) FROM \"JobLogTaskRuns\"")));
        var expected = await ContentsAsync(triggered.Ledger.ConnectionString);
        var actual = await ContentsAsync(bypassed.Ledger.ConnectionString);
        Assert.That(expected.TaskText, Is.Not.Empty);
        Assert.That(expected.RunText, Is.Not.Empty);
        foreach (var ledger in new[] { bypassed, triggered })
        {
            Assert.That(await ScalarAsync(ledger.Ledger.ConnectionString, "SELECT COUNT(*) FROM \"JobLogTaskText\" WHERE \"JobLogTaskText\" MATCH '\"order-777\"'"),
                Is.EqualTo(1), "the producer's rendering is indexed");
            Assert.That(await ScalarAsync(ledger.Ledger.ConnectionString, "SELECT COUNT(*) FROM \"JobLogTaskText\" WHERE \"JobLogTaskText\" MATCH '\"c-seed\"'"),
                Is.EqualTo(0), "the consumer's rendering it replaced is not");
        }

        Assert.That(actual.TaskText, Is.EquivalentTo(expected.TaskText), "the tasks' index, trigram by trigram");
        Assert.That(actual.RunText, Is.EquivalentTo(expected.RunText), "the runs' index, trigram by trigram");
        Assert.That(actual.Counts, Is.EquivalentTo(expected.Counts), "counts per state and name");
        Assert.That(actual.Minutes, Is.EquivalentTo(expected.Minutes), "counts per minute");
        Assert.That(actual.Counts, Is.EquivalentTo(actual.CountedTasks), "the counts are the ledger's COUNT(*)");
        Assert.That(expected.RunMinutes, Is.Not.Empty);
        Assert.That(actual.RunMinutes, Is.EquivalentTo(expected.RunMinutes), "finished runs per minute and name");
        Assert.That(actual.RunMinutes, Is.EquivalentTo(actual.CountedRunMinutes), "the run rollup is the runs' own count, total and longest");
        foreach (var ledger in new[] { bypassed, triggered })
        {
            await ExecAsync(ledger.Ledger.ConnectionString, """
                INSERT INTO "JobLogTaskText"("JobLogTaskText", rank) VALUES ('integrity-check', 1);
                INSERT INTO "JobLogRunText"("JobLogRunText", rank) VALUES ('integrity-check', 1);
                """);
        }

        // Outside the writer's transaction the same connection fires the triggers, and the TEMP copies do nothing.
        await using (var update = fast.Connection.CreateCommand())
        {
            update.CommandText = "UPDATE \"JobLogTasks\" SET \"State\" = 6, \"Stop\" = '2026-03-01 09:00:00' WHERE \"State\" = 1";
            Assert.That(await update.ExecuteNonQueryAsync(), Is.GreaterThan(0));
        }

        var after = await ContentsAsync(bypassed.Ledger.ConnectionString);
        Assert.That(after.Counts, Is.EquivalentTo(after.CountedTasks), "counts after an UPDATE on the writer's connection");
        Assert.That(after.Minutes, Is.EquivalentTo(after.CountedMinutes), "minutes after an UPDATE on the writer's connection");
    }

    [Test]
    public async Task PooledConnection_AfterTheWritersExecutorIsDisposed_FiresTheTriggersAgain()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var pooled = new SqliteConnectionStringBuilder(host.Ledger.ConnectionString) { Pooling = true }.ConnectionString;
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        var planner = new LedgerPlanner(database);
        await using (var executor = await database.OpenAsync(pooled, CancellationToken.None))
        {
            await planner.CommitAsync(executor, planner.Plan(Batches()[0]), TimeSpan.FromSeconds(10), CancellationToken.None);
            Assert.That(((SqliteExecutor)executor).BypassedTriggers, Is.True);
        }

        // The next user of the pooled connection writes through the triggers.
        await ExecAsync(pooled, """
            INSERT INTO "JobLogTasks" ("Id", "Name", "Input", "DispatchedAt", "IsSetAsStale", "State", "IsInternal")
            VALUES ('0F8FAD5B-D9CB-469F-A165-70867728950E', 'Pooled', 'written-by-hand', '2026-03-01 08:00:00', 0, 1, 0);
            """);

        await IndexPendingAsync(pooled);
        Assert.That(await ScalarAsync(pooled, "SELECT COUNT(*) FROM \"JobLogTaskText\" WHERE \"JobLogTaskText\" MATCH '\"written-by-hand\"'"), Is.EqualTo(1));
        Assert.That(await ScalarAsync(pooled, "SELECT COALESCE(SUM(\"Count\"), 0) FROM \"JobLogTaskCounts\" WHERE \"Name\" = 'Pooled'"), Is.EqualTo(1));
        Assert.That(await ScalarAsync(pooled, "SELECT COUNT(*) FROM sqlite_temp_master WHERE type = 'trigger'"), Is.EqualTo(0));
        SqliteConnection.ClearAllPools();
    }

    [Test]
    public async Task MigratedLedger_EveryTriggerOnTheTaskAndRunTables_IsOneTheWriterCanStandIn()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        await using var connection = new SqliteConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ('JobLogTasks', 'JobLogTaskRuns')";
        var triggers = new List<(string, string)>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                triggers.Add((reader.GetString(0), reader.GetString(1)));
            }
        }

        var replicable = SqliteWriterTriggers.Replicable(triggers, out var copies, out var finish);

        Assert.That(replicable, Is.True, "a new trigger on these tables needs its bulk statement in SqliteWriterTriggers");
        Assert.That(copies.Select(c => c.Name), Is.EquivalentTo(triggers.Select(t => t.Item1)
            .Where(n => !n.EndsWith("_Insert", StringComparison.Ordinal) && n != SqliteWriterTriggers.RollupUpdate).Select(n => n + "_Writer")));
        // The search index has no INSERT trigger: SqliteSearchIndexer indexes new rows past the watermark.
        Assert.That(triggers.Select(t => t.Item1), Has.None.EqualTo(SqliteWriterTriggers.TaskTextInsert).And.None.EqualTo(SqliteWriterTriggers.RunTextInsert));
        Assert.That(finish, Does.Not.Contain(SqliteWriterTriggers.IndexTasks).And.Not.Contain(SqliteWriterTriggers.IndexRuns)
            .And.Contain(SqliteWriterTriggers.CountTasks).And.Contain(SqliteWriterTriggers.CountChanges));
    }

    [Test]
    public void Replicable_ATriggerWhoseTextDiffersFromTheMigrations_IsNot()
    {
        var changed = (SqliteWriterTriggers.RollupInsert,
            "CREATE TRIGGER \"JobLogTasks_Rollup_Insert\" AFTER INSERT ON \"JobLogTasks\" BEGIN SELECT 1; END");

        Assert.That(SqliteWriterTriggers.Replicable([changed], out _, out _), Is.False);
    }

    private static List<List<LedgerRecord>> Batches()
    {
        Guid a = Guid.NewGuid(), b = Guid.NewGuid(), c = Guid.NewGuid(), d = Guid.NewGuid(), e = Guid.NewGuid();
        Guid a1 = Guid.NewGuid(), a2 = Guid.NewGuid(), b1 = Guid.NewGuid(), b2 = Guid.NewGuid(), c1 = Guid.NewGuid(), e1 = Guid.NewGuid();
        return
        [
            [
                Dispatch(a, "Charge", "CustomerId=1, Reference=order-000124", "{\"reference\":\"order-000124\"}", 0),
                Start(a1, a, "Charge", 1, false),
                new RunFinished(a1, a, TaskRunState.Retried, T0.AddSeconds(2), "The gateway 3 did not answer", null, null),
                Dispatch(b, "Invoice", "Invoice=B-17", "{\"invoice\":\"B-17\"}", 3),
                Start(b1, b, "Invoice", 4, false),
                Start(c1, c, "Report", 5, false, seedInput: "consumer rendering C-seed"),
                Dispatch(d, "Report", "Report=D", "{\"report\":\"D\"}", 6),
            ],
            [
                new RunFinished(b1, b, TaskRunState.Failed, T0.AddSeconds(70), "Timeout while charging ÉCLAIR", null, null),
                Dispatch(c, "Report", "Producer order-777", "{\"order\":\"producer order-777\"}", 5),
                new RunFinished(c1, c, TaskRunState.Succeeded, T0.AddSeconds(125), null, null, null),
                Start(a2, a, "Charge", 130, false),
                new RunFinished(a2, a, TaskRunState.Succeeded, T0.AddSeconds(131), null, null, null),
                Dispatch(e, "Charge", "CustomerId=2, Reference=order-000125", "{\"reference\":\"order-000125\"}", 132),
                Start(e1, e, "Charge", 133, false),
                new RunFinished(e1, e, TaskRunState.Failed, T0.AddSeconds(134), "Card declined: order-000125", null, null),
                new TaskDispatchFailed(d, "broker said no"),
            ],
            [
                Start(b2, b, "Invoice", 200, true),
                new RunFinished(b2, b, TaskRunState.Succeeded, T0.AddSeconds(201), null, null, null),
                new RunFailedForGood(e1, e),
            ],
        ];
    }

    private static TaskDispatched Dispatch(Guid id, string name, string input, string kwargs, int second) => new(new TaskPayload
    {
        Id = id, Name = name, Input = input, TaskArgs = "[]", TaskKwargs = kwargs, DispatchedAt = T0.AddSeconds(second),
        EstimatedTimeOfFirstArrival = T0.AddSeconds(second),
    });

    private static RunStarted Start(Guid runId, Guid taskId, string name, int second, bool redelivered, string? seedInput = null) => new(
        new RunPayload { Id = runId, TaskId = taskId, Name = name, ConsumerType = "C", Start = T0.AddSeconds(second), Redelivered = redelivered },
        new TaskPayload { Id = taskId, Name = name, Input = seedInput, TaskKwargs = seedInput is null ? null : "{\"seed\":\"" + seedInput + "\"}", DispatchedAt = T0 },
        redelivered);

    private sealed record Contents(
        List<string> TaskText, List<string> RunText, List<string> Counts, List<string> Minutes, List<string> CountedTasks, List<string> CountedMinutes,
        List<string> RunMinutes, List<string> CountedRunMinutes);

    private static async Task<Contents> ContentsAsync(string connectionString)
    {
        await using var connection = new SqliteConnection(connectionString);
        await connection.OpenAsync();
        await using (var vocab = connection.CreateCommand())
        {
            vocab.CommandText = """
                CREATE VIRTUAL TABLE temp.task_vocab USING fts5vocab(main, 'JobLogTaskText', 'instance');
                CREATE VIRTUAL TABLE temp.run_vocab USING fts5vocab(main, 'JobLogRunText', 'instance');
                """;
            await vocab.ExecuteNonQueryAsync();
        }

        return new Contents(
            await RowsAsync(connection, "SELECT t.\"Id\" || ' ' || v.col || ' ' || v.offset || ' ' || upper(v.term) FROM task_vocab v JOIN \"JobLogTasks\" t ON t.rowid = v.doc"),
            await RowsAsync(connection, "SELECT r.\"Id\" || ' ' || v.offset || ' ' || v.term FROM run_vocab v JOIN \"JobLogTaskRuns\" r ON r.rowid = v.doc"),
            await RowsAsync(connection, "SELECT \"State\" || ' ' || \"Name\" || ' ' || \"IsInternal\" || ' ' || \"Count\" FROM \"JobLogTaskCounts\" WHERE \"Count\" <> 0"),
            await RowsAsync(connection, "SELECT \"Minute\" || ' ' || \"State\" || ' ' || \"Name\" || ' ' || \"Count\" FROM \"JobLogTaskMinutes\""),
            await RowsAsync(connection, "SELECT \"State\" || ' ' || \"Name\" || ' ' || \"IsInternal\" || ' ' || COUNT(*) FROM \"JobLogTasks\" GROUP BY \"State\", \"Name\", \"IsInternal\""),
            await RowsAsync(connection,
                "SELECT substr(\"Stop\", 1, 16) || ':00' || ' ' || \"State\" || ' ' || \"Name\" || ' ' || COUNT(*) FROM \"JobLogTasks\" WHERE \"Stop\" IS NOT NULL GROUP BY substr(\"Stop\", 1, 16), \"State\", \"Name\""),
            await RowsAsync(connection, "SELECT \"Minute\" || ' ' || \"Name\" || ' ' || \"Runs\" || ' ' || \"TotalMilliseconds\" || ' ' || \"MaxMilliseconds\" FROM \"JobLogRunMinutes\""),
            await RowsAsync(connection,
                "SELECT m || ' ' || \"Name\" || ' ' || COUNT(*) || ' ' || SUM(d) || ' ' || MAX(d) FROM (SELECT substr(\"Start\", 1, 16) || ':00' AS m, \"Name\", " +
                "CAST(round((julianday(\"Stop\") - julianday(\"Start\")) * 86400000.0) AS INTEGER) AS d FROM \"JobLogTaskRuns\" " +
                "WHERE \"State\" IN (2, 3, 4) AND \"Stop\" IS NOT NULL) GROUP BY m, \"Name\""));
    }

    private static async Task<List<string>> RowsAsync(SqliteConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var rows = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(0));
        }

        return rows;
    }

    /// <summary>The search index's bulk step (<see cref="SqliteSearch.IndexPending"/>), in one transaction.</summary>
    internal static Task IndexPendingAsync(string connectionString) =>
        ExecAsync(connectionString, "BEGIN IMMEDIATE; " + SqliteSearch.IndexPending + "; COMMIT;");

    internal static async Task ExecAsync(string connectionString, string sql)
    {
        await using var connection = new SqliteConnection(connectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    internal static async Task<long> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new SqliteConnection(connectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
