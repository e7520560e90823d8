using JobLog.Recording;
using JobLog.Redaction;
using JobLog.Storage;
using JobLog.Storage.Sqlite;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// The consume path does not render the message: a run takes Input, TaskArgs and TaskKwargs from its task row. When the
/// batch also writes the task's dispatch, the SQLite writer binds the dispatch's texts instead of reading them back from
/// the row: the stored run must hold what the row holds, whatever came first.
/// </summary>
public class SqliteRunInputTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);
    private static readonly MessageRenderer Renderer = new(new Redactor(new RedactionOptions()));

    public sealed record Charge(int CustomerId, decimal Amount);

    [Test]
    public async Task RunsOfTasksDispatchedInTheirBatch_HoldWhatTheTaskRowHolds_WithoutReadingIt()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        var planner = new LedgerPlanner(database);
        await using var executor = await database.OpenAsync(host.Ledger.ConnectionString, CancellationToken.None);
        Guid seeded = Guid.NewGuid(), twice = Guid.NewGuid(), after = Guid.NewGuid(), own = Guid.NewGuid(), earlier = Guid.NewGuid();
        Guid r1 = Guid.NewGuid(), r2 = Guid.NewGuid(), r3 = Guid.NewGuid(), r4 = Guid.NewGuid(), r5 = Guid.NewGuid(), r6 = Guid.NewGuid();

        // The consumer's first attempt creates its task's row from its own rendering; another task is dispatched alone.
        await planner.CommitAsync(executor, planner.Plan([Start(r1, seeded, 1), Dispatch(earlier, "from an earlier batch")]),
            TimeSpan.FromSeconds(10), CancellationToken.None);

        var plan = planner.Plan(
        [
            // The producer's fields over the consumer's row, with the second attempt.
            Dispatch(seeded, "from the producer"), Start(r2, seeded, 2),
            // Dispatched twice: the last dispatch's fields win, here without any rendering (null texts).
            Dispatch(twice, "first"), Start(r3, twice, 2), new TaskDispatched(Task(twice, null)),
            // The run before its dispatch in the batch.
            Start(r4, after, 2), Dispatch(after, "dispatched after the run"),
            // A run rendered on the consume path keeps its own texts.
            Dispatch(own, "the task's"), new RunStarted(Run(r5, own, 2) with { Input = "the run's", TaskArgs = "[9]", TaskKwargs = "{}" }, Task(own, null), false, Rendering()),
            // The task's dispatch is in an earlier batch: the run still reads the row.
            Start(r6, earlier, 2),
        ]);

        Assert.That(plan.Runs.Where(r => r.InputFromTask).Select(r => r.Run.Id), Is.EqualTo(new[] { r6 }),
            "only the run whose dispatch is not in the batch reads its texts from the task row");
        await planner.CommitAsync(executor, plan, TimeSpan.FromSeconds(10), CancellationToken.None);

        var rows = await RowsAsync(host.Ledger.ConnectionString);
        Assert.Multiple(() =>
        {
            foreach (var run in new[] { r2, r3, r4, r6 })
            {
                Assert.That(rows[run].Run, Is.EqualTo(rows[run].Task), $"run {run}");
            }

            Assert.That(rows[r2].Run, Is.EqualTo(("from the producer", "[1]", "{\"a\":\"from the producer\"}")));
            Assert.That(rows[r3].Run, Is.EqualTo(((string?)null, (string?)null, (string?)null)));
            Assert.That(rows[r4].Run, Is.EqualTo(("dispatched after the run", "[1]", "{\"a\":\"dispatched after the run\"}")));
            Assert.That(rows[r5].Run, Is.EqualTo(("the run's", "[9]", "{}")));
            Assert.That(rows[r6].Run, Is.EqualTo(("from an earlier batch", "[1]", "{\"a\":\"from an earlier batch\"}")));
            // The first attempt's row kept the consumer's rendering (a run row is not rewritten).
            Assert.That(rows[r1].Run.Input, Does.Contain("CustomerId=42"));
        });
    }

    [Test]
    public async Task RunsOfTasksDispatchedInEarlierBatches_HoldTheirOwnTasksTexts_ReadByTheProbedRowid()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        var planner = new LedgerPlanner(database);
        await using var executor = await database.OpenAsync(host.Ledger.ConnectionString, CancellationToken.None);
        var tasks = Enumerable.Range(0, 5).Select(_ => Guid.NewGuid()).ToArray();
        var runs = Enumerable.Range(0, 8).Select(_ => Guid.NewGuid()).ToArray();
        Guid seeded = Guid.NewGuid(), missing = Guid.NewGuid();

        // Five dispatches in one batch (rowids in this order), a consumer-created row without a dispatch in another.
        await planner.CommitAsync(executor, planner.Plan([.. tasks.Select((t, i) => Dispatch(t, "task " + i))]),
            TimeSpan.FromSeconds(10), CancellationToken.None);
        await planner.CommitAsync(executor, planner.Plan([Start(runs[0], seeded, 1)]), TimeSpan.FromSeconds(10), CancellationToken.None);
        // A stored run for task 1: its row is probed too, with runs.
        await planner.CommitAsync(executor, planner.Plan([Start(runs[1], tasks[1], 1)]), TimeSpan.FromSeconds(10), CancellationToken.None);

        // Runs of tasks 4, 1, 2 (two), the seeded row, and a task whose row is missing: not in the order of their rows.
        var plan = planner.Plan(
        [
            Start(runs[2], tasks[4], 2), Start(runs[3], tasks[1], 2), Start(runs[4], tasks[2], 2), Start(runs[5], tasks[2], 3),
            Start(runs[6], seeded, 2), Start(runs[7], missing, 2),
        ]);
        await planner.CommitAsync(executor, plan, TimeSpan.FromSeconds(10), CancellationToken.None);

        var rows = await RowsAsync(host.Ledger.ConnectionString);
        Assert.Multiple(() =>
        {
            Assert.That(((SqliteExecutor)executor).RunsReadByRowid, Is.EqualTo(5), "the runs whose task row the probe found");
            foreach (var run in runs)
            {
                Assert.That(rows[run].Run, Is.EqualTo(rows[run].Task), $"run {run}");
            }

            Assert.That(rows[runs[2]].Run, Is.EqualTo(("task 4", "[1]", "{\"a\":\"task 4\"}")));
            Assert.That(rows[runs[3]].Run, Is.EqualTo(("task 1", "[1]", "{\"a\":\"task 1\"}")));
            Assert.That(rows[runs[4]].Run, Is.EqualTo(("task 2", "[1]", "{\"a\":\"task 2\"}")));
            Assert.That(rows[runs[5]].Run, Is.EqualTo(("task 2", "[1]", "{\"a\":\"task 2\"}")));
            // The consumer's rendering, stored in the row by the first attempt and in the missing row by this batch.
            Assert.That(rows[runs[6]].Run.Input, Does.Contain("CustomerId=42"));
            Assert.That(rows[runs[7]].Run.Input, Does.Contain("CustomerId=42"));
        });
    }

    private static DeferredRendering Rendering() => new(new Charge(42, 10.5m), Renderer);

    private static TaskPayload Task(Guid id, string? input) => new()
    {
        Id = id, Name = "Charge", QueueName = "charge", DispatchedAt = T0, EstimatedTimeOfFirstArrival = T0,
        Input = input, TaskArgs = input is null ? null : "[1]", TaskKwargs = input is null ? null : $"{{\"a\":\"{input}\"}}",
    };

    private static TaskDispatched Dispatch(Guid id, string input) => new(Task(id, input));

    private static RunPayload Run(Guid runId, Guid taskId, int second) => new()
    {
        Id = runId, TaskId = taskId, Name = "Charge", QueueName = "charge", ConsumerType = "C", Start = T0.AddSeconds(second), Host = "h",
    };

    // As the run filter records it: unrendered, with the message's deferred rendering, and a seed without texts.
    private static RunStarted Start(Guid runId, Guid taskId, int second) => new(Run(runId, taskId, second), Task(taskId, null), false, Rendering());

    private static async Task<Dictionary<Guid, ((string? Input, string? TaskArgs, string? TaskKwargs) Run, (string? Input, string? TaskArgs, string? TaskKwargs) Task)>> RowsAsync(
        string connectionString)
    {
        await using var connection = new SqliteConnection(connectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT r.\"Id\", r.\"Input\", r.\"TaskArgs\", r.\"TaskKwargs\", t.\"Input\", t.\"TaskArgs\", t.\"TaskKwargs\" " +
                              "FROM \"JobLogTaskRuns\" r JOIN \"JobLogTasks\" t ON t.\"Id\" = r.\"TaskId\"";
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new Dictionary<Guid, ((string?, string?, string?), (string?, string?, string?))>();
        string? Text(int i) => reader.IsDBNull(i) ? null : reader.GetString(i);
        while (await reader.ReadAsync())
        {
            rows[Guid.Parse(reader.GetString(0))] = ((Text(1), Text(2), Text(3)), (Text(4), Text(5), Text(6)));
        }

        return rows;
    }
}
