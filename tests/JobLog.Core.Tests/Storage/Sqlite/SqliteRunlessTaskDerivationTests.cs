using JobLog.Recording;
using JobLog.Storage;
using JobLog.Storage.Sqlite;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// On the bus a task's dispatch and its runs usually reach the writer in different batches. When the task had no run
/// stored before the batch, the SQLite writer writes the planner's derivation of the batch's runs instead of deriving
/// the row from the stored runs (<see cref="SqliteStatements.SetDerived"/>): the rows must be what the derivation gives.
/// </summary>
public class SqliteRunlessTaskDerivationTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    [Test]
    public async Task ARunOfATaskDispatchedInAnEarlierBatch_IsWrittenWithoutReadingTheRuns()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        var planner = new LedgerPlanner(database);
        await using var executor = await database.OpenAsync(host.Ledger.ConnectionString, CancellationToken.None);
        var id = Guid.NewGuid();
        var run = Guid.NewGuid();

        await planner.CommitAsync(executor, planner.Plan([Dispatch(id, "Charge")]), TimeSpan.FromSeconds(10), CancellationToken.None);
        await planner.CommitAsync(executor, planner.Plan([Start(run, id, "C", 1), Finish(run, id, TaskRunState.Succeeded, 2)]),
            TimeSpan.FromSeconds(10), CancellationToken.None);

        Assert.That(((SqliteExecutor)executor).DerivedFromPlan, Is.EqualTo(1));
        Assert.That(await RowsAsync(host.Ledger.ConnectionString), Is.EqualTo(new[] { $"{id.ToString().ToUpperInvariant()} 3 {Time(1)} {Time(2)}" }));
    }

    [Test]
    public async Task EveryShapeOfBatch_LeavesEachTaskAsTheDerivationFromItsStoredRuns()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var connectionString = host.Ledger.ConnectionString;
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        var planner = new LedgerPlanner(database);
        await using var executor = await database.OpenAsync(connectionString, CancellationToken.None);
        Guid single = Guid.NewGuid(), failed = Guid.NewGuid(), active = Guid.NewGuid(), retried = Guid.NewGuid(), fanOutApart = Guid.NewGuid(),
            fanOutTogether = Guid.NewGuid(), stale = Guid.NewGuid(), seeded = Guid.NewGuid(), orphaned = Guid.NewGuid(), twice = Guid.NewGuid();
        Guid r1 = Guid.NewGuid(), r2 = Guid.NewGuid(), r3 = Guid.NewGuid(), r4 = Guid.NewGuid(), r5 = Guid.NewGuid(), r6 = Guid.NewGuid(),
            r7 = Guid.NewGuid(), r8 = Guid.NewGuid(), r9 = Guid.NewGuid(), r10 = Guid.NewGuid(), r11 = Guid.NewGuid(), r12 = Guid.NewGuid(),
            r13 = Guid.NewGuid();
        List<List<LedgerRecord>> batches =
        [
            [
                Dispatch(single, "Charge"), Dispatch(failed, "Charge"), Dispatch(active, "Report"), Dispatch(retried, "Charge"),
                Dispatch(fanOutApart, "Invoice"), Dispatch(fanOutTogether, "Invoice"), Dispatch(stale, "Report"), Dispatch(twice, "Charge"),
                Start(r9, orphaned, "C", 0),
            ],
            [
                Start(r1, single, "C", 10), Finish(r1, single, TaskRunState.Succeeded, 11),
                Start(r2, failed, "C", 10), Finish(r2, failed, TaskRunState.Failed, 12),
                Start(r3, active, "C", 10),
                Start(r4, retried, "C", 10), Finish(r4, retried, TaskRunState.Retried, 11), Start(r5, retried, "C", 13),
                Finish(r5, retried, TaskRunState.Succeeded, 14),
                Start(r6, fanOutApart, "A", 10), Finish(r6, fanOutApart, TaskRunState.Succeeded, 15),
                Start(r7, fanOutTogether, "A", 10), Finish(r7, fanOutTogether, TaskRunState.Failed, 16),
                Start(r8, fanOutTogether, "B", 11), Finish(r8, fanOutTogether, TaskRunState.Succeeded, 17),
                Start(r11, stale, "C", 20), Finish(r11, stale, TaskRunState.Succeeded, 21),
                Start(r12, seeded, "C", 10), Finish(r12, seeded, TaskRunState.Cancelled, 11),
                new RunStarted(Payload(r10, orphaned, "C", 30), Seed(orphaned, "Charge"), expireOrphans: true),
                Start(r13, twice, "C", 10),
            ],
            [
                Finish(r3, active, TaskRunState.Succeeded, 40),
                Start(Guid.NewGuid(), fanOutApart, "B", 41),
                Start(r13, twice, "C", 10), Finish(r13, twice, TaskRunState.Failed, 42),
            ],
        ];

        var batch = 0;
        foreach (var records in batches)
        {
            if (batch == 1)
            {
                // The sweeper marked this one stale before its run came: it stays EXPIRED, with the sweeper's stop.
                await ExecAsync(connectionString,
                    $"UPDATE \"JobLogTasks\" SET \"IsSetAsStale\" = 1, \"State\" = 6, \"Stop\" = '{Time(5)}' WHERE \"Id\" = '{stale.ToString().ToUpperInvariant()}'");
            }

            await planner.CommitAsync(executor, planner.Plan(records), TimeSpan.FromSeconds(10), CancellationToken.None);
            Assert.That(((SqliteExecutor)executor).BypassedTriggers, Is.True, "the rollup moves are the writer's, not the triggers'");
            if (batch == 1)
            {
                // single, failed, active, retried, fanOutApart, fanOutTogether, stale, twice: no run was stored before.
                Assert.That(((SqliteExecutor)executor).DerivedFromPlan, Is.EqualTo(8));
            }
            else if (batch == 2)
            {
                Assert.That(((SqliteExecutor)executor).DerivedFromPlan, Is.Zero, "every task touched has stored runs");
            }

            Assert.That(await RowsAsync(connectionString), Is.EqualTo(await DerivedRowsAsync(connectionString)), $"after batch {batch}");
            Assert.That(await RollupsAsync(connectionString, ["\"State\"", "\"Name\"", "\"IsInternal\"", "\"Count\""], "\"JobLogTaskCounts\" WHERE \"Count\" <> 0"),
                Is.EquivalentTo(await RollupsAsync(connectionString, ["\"State\"", "\"Name\"", "\"IsInternal\"", "COUNT(*)"], "\"JobLogTasks\" GROUP BY \"State\", \"Name\", \"IsInternal\"")),
                $"the counts after batch {batch}");
            Assert.That(await RollupsAsync(connectionString, ["\"Minute\"", "\"State\"", "\"Name\"", "\"IsInternal\"", "\"Count\""], "\"JobLogTaskMinutes\""),
                Is.EquivalentTo(await RollupsAsync(connectionString, ["substr(\"Stop\", 1, 16) || ':00'", "\"State\"", "\"Name\"", "\"IsInternal\"", "COUNT(*)"],
                    "\"JobLogTasks\" WHERE \"Stop\" IS NOT NULL GROUP BY substr(\"Stop\", 1, 16), \"State\", \"Name\", \"IsInternal\"")),
                $"the minutes after batch {batch}");
            batch++;
        }

        var rows = await RowsAsync(connectionString);
        string Row(Guid id) => rows.Single(r => r.StartsWith(id.ToString().ToUpperInvariant(), StringComparison.Ordinal));
        Assert.Multiple(() =>
        {
            Assert.That(Row(single), Does.EndWith($" 3 {Time(10)} {Time(11)}"));
            Assert.That(Row(stale), Does.EndWith($" 6 {Time(20)} {Time(5)}"));
            Assert.That(Row(active), Does.EndWith($" 3 {Time(10)} {Time(40)}"));
            Assert.That(Row(twice), Does.EndWith($" 4 {Time(10)} {Time(42)}"));
            Assert.That(Row(fanOutApart), Does.EndWith($" 2 {Time(10)} -"));
        });
    }

    private static TaskDispatched Dispatch(Guid id, string name) => new(Seed(id, name) with { Input = "X=1", TaskArgs = "[]", TaskKwargs = "{}" });

    private static TaskPayload Seed(Guid id, string name) => new()
    {
        Id = id, Name = name, DispatchedAt = T0, EstimatedTimeOfFirstArrival = T0,
    };

    private static RunPayload Payload(Guid runId, Guid taskId, string consumer, int second) => new()
    {
        Id = runId, TaskId = taskId, Name = "Task", ConsumerType = consumer, Start = T0.AddSeconds(second),
    };

    private static RunStarted Start(Guid runId, Guid taskId, string consumer, int second) =>
        new(Payload(runId, taskId, consumer, second), Seed(taskId, "Task"), false);

    private static RunFinished Finish(Guid runId, Guid taskId, TaskRunState state, int second) =>
        new(runId, taskId, state, T0.AddSeconds(second), state == TaskRunState.Succeeded ? null : "boom", null, null);

    private static string Time(int second) => T0.AddSeconds(second).ToString("yyyy-MM-dd HH:mm:ss.FFFFFFF", System.Globalization.CultureInfo.InvariantCulture);

    private static Task<List<string>> RowsAsync(string connectionString) =>
        ReadAsync(connectionString, "SELECT \"Id\" || ' ' || \"State\" || ' ' || coalesce(\"Start\", '-') || ' ' || coalesce(\"Stop\", '-') FROM \"JobLogTasks\" ORDER BY \"Id\"");

    /// <summary>Each task as <see cref="LedgerSql.DeriveTask"/> derives it from its stored runs.</summary>
    private static Task<List<string>> DerivedRowsAsync(string connectionString)
    {
        string Of(string expression) => expression.Replace("@p0", "t.\"Id\"", StringComparison.Ordinal);
        return ReadAsync(connectionString,
            $"SELECT t.\"Id\" || ' ' || (CASE WHEN t.\"IsSetAsStale\" THEN 6 ELSE {Of(LedgerSql.DerivedState)} END) || ' ' || " +
            $"coalesce({Of(LedgerSql.DerivedStart)}, '-') || ' ' || coalesce(CASE WHEN t.\"IsSetAsStale\" THEN t.\"Stop\" ELSE {Of(LedgerSql.DerivedStop)} END, '-') " +
            "FROM \"JobLogTasks\" t ORDER BY t.\"Id\"");
    }

    private static Task<List<string>> RollupsAsync(string connectionString, string[] columns, string from) =>
        ReadAsync(connectionString, $"SELECT {string.Join(" || ' ' || ", columns)} FROM {from}");

    private static async Task<List<string>> ReadAsync(string connectionString, string sql)
    {
        await using var connection = new SqliteConnection(connectionString);
        await connection.OpenAsync();
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

    private static async Task ExecAsync(string connectionString, string sql)
    {
        await using var connection = new SqliteConnection(connectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }
}
