using JobLog.Recording;
using JobLog.Storage;
using JobLog.Storage.Partitioning;
using JobLog.Storage.PostgreSql;
using JobLog.Testing;
using Npgsql;
using NpgsqlTypes;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.PostgreSql;

/// <summary>
/// The PostgreSQL writer derives every task a batch touched at the end of the batch. It reads each task's runs once
/// (<see cref="PostgreSqlDerivation"/>), not once per sub-query of <see cref="LedgerSql.DerivedColumns"/>, and must leave
/// every task as that derivation gives it, on a plain and on a partitioned ledger.
/// </summary>
public class PostgreSqlDerivationTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    [TestCase(false)]
    [TestCase(true)]
    public async Task TheWritersDerivation_ReadsEachTasksRunsInOnePass(bool partitioned)
    {
        await using var host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o => o.Partitioning.Enabled = partitioned);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        var derive = partitioned ? PartitionedStatements.DeriveTasksIfChanged : PostgreSqlStatements.DeriveTasksIfChanged;
        await using var command = new NpgsqlCommand("EXPLAIN " + derive, connection);
        command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid, Value = new[] { Guid.NewGuid() } });
        var plan = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                plan.Add(reader.GetString(0));
            }
        }

        // The sub-queries' form ran five sub-plans a task, each a descent of the runs' TaskId index.
        Assert.That(plan, Has.None.Contains("SubPlan"), string.Join("\n", plan));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task EveryShapeOfBatch_LeavesEachTaskAsTheDerivationFromItsStoredRuns(bool partitioned)
    {
        await using var host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o => o.Partitioning.Enabled = partitioned);
        var connectionString = host.Ledger.ConnectionString;
        var database = LedgerDatabase.For(LedgerProvider.PostgreSql);
        var planner = new LedgerPlanner(database);
        await using var executor = await database.OpenAsync(connectionString, CancellationToken.None);
        Guid single = Id(), failed = Id(), active = Id(), retried = Id(), fanOutApart = Id(), fanOutTogether = Id(), stale = Id(), seeded = Id(),
            orphaned = Id(), twice = Id();
        Guid r1 = Id(), r2 = Id(), r3 = Id(), r4 = Id(), r5 = Id(), r6 = Id(), r7 = Id(), r8 = Id(), r9 = Id(), r10 = Id(), r11 = Id(), r12 = Id(),
            r13 = Id();
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
                Start(Id(), fanOutApart, "B", 41),
                Start(r13, twice, "C", 10), Finish(r13, twice, TaskRunState.Failed, 42),
            ],
        ];

        var batch = 0;
        foreach (var records in batches)
        {
            if (batch == 1)
            {
                // The sweeper marked this one stale before its run came: it stays EXPIRED, with the sweeper's stop.
                await ExecAsync(connectionString, $"UPDATE \"JobLogTasks\" SET \"IsSetAsStale\" = TRUE, \"State\" = 6, \"Stop\" = '{At(5):O}' WHERE \"Id\" = '{stale}'");
            }

            await planner.CommitAsync(executor, planner.Plan(records), TimeSpan.FromSeconds(10), CancellationToken.None);
            Assert.That(await ReadAsync(connectionString, DifferingFromTheDerivation), Is.Empty, $"tasks unlike their derivation after batch {batch}");
            Assert.That(await ReadAsync(connectionString, "SELECT \"State\" || ' ' || \"Name\" || ' ' || \"Count\" FROM \"JobLogTaskCounts\" WHERE \"Count\" <> 0"),
                Is.EquivalentTo(await ReadAsync(connectionString, "SELECT \"State\" || ' ' || \"Name\" || ' ' || COUNT(*) FROM \"JobLogTasks\" GROUP BY \"State\", \"Name\"")),
                $"the counts after batch {batch}");
            batch++;
        }

        var rows = await ReadAsync(connectionString,
            "SELECT \"Id\" || ' ' || \"State\" || ' ' || coalesce(to_char(\"Start\" AT TIME ZONE 'UTC', 'SS'), '-') || ' ' || " +
            "coalesce(to_char(\"Stop\" AT TIME ZONE 'UTC', 'SS'), '-') FROM \"JobLogTasks\"");
        string Row(Guid id) => rows.Single(r => r.StartsWith(id.ToString(), StringComparison.Ordinal));
        Assert.Multiple(() =>
        {
            Assert.That(Row(single), Does.EndWith(" 3 10 11"));
            Assert.That(Row(stale), Does.EndWith(" 6 20 05"));
            Assert.That(Row(active), Does.EndWith(" 3 10 40"));
            Assert.That(Row(retried), Does.EndWith(" 3 10 14"));
            Assert.That(Row(twice), Does.EndWith(" 4 10 42"));
            Assert.That(Row(fanOutApart), Does.EndWith(" 2 10 -"));
            Assert.That(Row(fanOutTogether), Does.EndWith(" 4 10 17"));
            Assert.That(Row(seeded), Does.EndWith(" 7 10 11"));
            Assert.That(Row(orphaned), Does.EndWith(" 2 00 -"));
        });
    }

    /// <summary>The tasks whose row differs from <see cref="LedgerSql.DerivedColumns"/> over their stored runs.</summary>
    private static readonly string DifferingFromTheDerivation =
        "SELECT t.\"Id\"::text FROM \"JobLogTasks\" t WHERE (t.\"State\", t.\"Start\", t.\"Stop\") IS DISTINCT FROM (" +
        $"CASE WHEN t.\"IsSetAsStale\" THEN 6 ELSE {Of(LedgerSql.DerivedState)} END, {Of(LedgerSql.DerivedStart)}, " +
        $"CASE WHEN t.\"IsSetAsStale\" THEN t.\"Stop\" ELSE {Of(LedgerSql.DerivedStop)} END)";

    private static string Of(string expression) => expression.Replace("@p0", "t.\"Id\"", StringComparison.Ordinal);

    // Ids that carry a time, as the bus's: on a partitioned ledger they land in a day's partition, not the undated one.
    private static Guid Id() => Guid.CreateVersion7(new DateTimeOffset(T0));

    private static DateTime At(int second) => T0.AddSeconds(second);

    private static TaskDispatched Dispatch(Guid id, string name) => new(Seed(id, name) with { Input = "X=1", TaskArgs = "[]", TaskKwargs = "{}" });

    private static TaskPayload Seed(Guid id, string name) => new()
    {
        Id = id, Name = name, DispatchedAt = T0, EstimatedTimeOfFirstArrival = T0,
    };

    private static RunPayload Payload(Guid runId, Guid taskId, string consumer, int second) => new()
    {
        Id = runId, TaskId = taskId, Name = "Task", ConsumerType = consumer, Start = At(second),
    };

    private static RunStarted Start(Guid runId, Guid taskId, string consumer, int second) =>
        new(Payload(runId, taskId, consumer, second), Seed(taskId, "Task"), false);

    private static RunFinished Finish(Guid runId, Guid taskId, TaskRunState state, int second) =>
        new(runId, taskId, state, At(second), state == TaskRunState.Succeeded ? null : "boom", null, null);

    private static async Task<List<string>> ReadAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
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
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
