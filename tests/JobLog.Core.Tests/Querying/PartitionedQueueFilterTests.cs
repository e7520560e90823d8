using System.Text.Json;
using System.Text.RegularExpressions;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Storage.Partitioning;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// The task list's queue filter on a partitioned PostgreSQL ledger (docs/scale.md "Session 10 (part)"): the tasks sent
/// to the queue and those a run consumed from it, each task's runs looked up in its own day's partition only.
/// </summary>
public class PartitionedQueueFilterTests
{
    private static readonly DateTime T0 = new(2026, 3, 10, 12, 0, 0, DateTimeKind.Utc);

    [Test]
    public async Task QueueFilter_OnAPartitionedLedger_FindsTheTasksOfTheQueue_AndReadsTheRunsOfTheirDaysOnly()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(T0));
        await using var host = await PartitionedLedgerHosts.StartAsync(clock);

        // A published event (sent to its exchange, consumed from "billing"), a command sent to "billing", another queue's task.
        var consumed = Guid.CreateVersion7(new DateTimeOffset(T0.AddDays(-2)));
        var sent = Guid.CreateVersion7(new DateTimeOffset(T0.AddDays(-1)));
        var other = Guid.CreateVersion7(new DateTimeOffset(T0));
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        Run(recorder, consumed, "Invoiced", T0.AddDays(-2), "Invoiced", "billing");
        Run(recorder, sent, "Charge", T0.AddDays(-1), "billing", "billing");
        Run(recorder, other, "Ship", T0, "shipping", "shipping");
        await host.FlushAsync();

        var filter = new TaskFilter { Queue = "billing" };
        await using (var scope = host.Services.CreateAsyncScope())
        {
            var page = await scope.ServiceProvider.GetRequiredService<LedgerQueries>().TasksAsync(filter, default);
            Assert.That(page.Items.Select(t => t.Id), Is.EqualTo(new[] { sent, consumed }));
        }

        var plan = await host.QueryAsync(async db =>
        {
            var queries = new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.PostgreSql));
            await db.Database.OpenConnectionAsync();
            await using var command = (NpgsqlCommand)db.Database.GetDbConnection().CreateCommand();
            command.CommandText = "EXPLAIN (ANALYZE, FORMAT JSON) " + QueryPlans.Inline(queries.TaskPage(filter, partitioned: true).ToQueryString());
            return (string)(await command.ExecuteScalarAsync())!;
        });

        // The run partitions the queue's EXISTS read (under the scans of the task partitions): only those of the days
        // that have tasks. Hashing the runs of the queue, or probing every partition for each task, reads the empty
        // partitions of the days ahead too.
        var read = new SortedSet<string>(StringComparer.Ordinal);
        using (var json = JsonDocument.Parse(plan))
        {
            CollectRunsReadUnderTasks(json.RootElement[0].GetProperty("Plan"), read);
        }

        var days = new[] { T0.AddDays(-2), T0.AddDays(-1), T0 }.Select(d => LedgerModel.Runs + "_" + PartitionDay.Suffix(PartitionDay.Of(d)));
        Assert.That(read, Is.Not.Empty, plan);
        Assert.That(read, Is.SubsetOf(days), plan);
        Assert.That(plan, Does.Not.Contain("Hashed SubPlan").IgnoreCase, "the runs of the queue are not hashed once per task partition");
    }

    [TestCase(LedgerProvider.Sqlite, false)]
    [TestCase(LedgerProvider.PostgreSql, false)]
    [TestCase(LedgerProvider.PostgreSql, true)]
    public async Task QueueFilter_ARareQueuesTasksAreListedFirst_ABusyQueueIsWalked(LedgerProvider provider, bool partitioned)
    {
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), o => o.Partitioning.Enabled = partitioned);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var now = DateTime.UtcNow;
        var charges = new[] { Guid.NewGuid(), Guid.NewGuid() };
        Run(recorder, charges[0], "Charge", now, "billing", "billing");
        Run(recorder, charges[1], "Charge", now.AddSeconds(1), "billing", "billing");
        var shipped = Guid.NewGuid();
        Run(recorder, shipped, "Shipped", now, "events", "shipping");
        await host.FlushAsync();

        // Two tasks sent to billing and their two runs: four index entries, busy at a threshold of three. Shipping has one
        // task (sent to its exchange) and one run: listed, with the task once.
        var listed = await host.QueryAsync(async db =>
        {
            var queries = new LedgerQueries(db, LedgerDatabase.For(provider)) { BusyQueueRuns = 3 };
            return (await queries.FewTasksOfQueueAsync("billing", default), await queries.FewTasksOfQueueAsync("shipping", default),
                await queries.FewTasksOfQueueAsync("nowhere", default));
        });
        Assert.That(listed.Item1, Is.Null, "billing is busy");
        Assert.That(listed.Item2, Is.EqualTo(new[] { shipped }));
        Assert.That(listed.Item3, Is.Empty);

        var pages = await host.QueryAsync(async db =>
        {
            var queries = new LedgerQueries(db, LedgerDatabase.For(provider)) { BusyQueueRuns = 3 };
            return (await queries.TasksAsync(new TaskFilter { Queue = "billing" }, default), await queries.TasksAsync(new TaskFilter { Queue = "shipping" }, default),
                await queries.TasksAsync(new TaskFilter { Queue = "shipping", Name = "Charge" }, default), await queries.TasksAsync(new TaskFilter { Queue = "events" }, default));
        });
        Assert.That(pages.Item1.Items.Select(t => t.Id), Is.EqualTo(charges.Reverse()), "busy: walked");
        Assert.That(pages.Item2.Items.Select(t => t.Id), Is.EqualTo(new[] { shipped }), "rare: consumed from the queue");
        Assert.That(pages.Item3.Items, Is.Empty, "the other filters still apply to the listed tasks");
        Assert.That(pages.Item4.Items.Select(t => t.Id), Is.EqualTo(new[] { shipped }), "rare: sent to the exchange");
    }

    [TestCase(LedgerProvider.Sqlite)]
    [TestCase(LedgerProvider.PostgreSql)]
    public async Task QueueFilter_ARareQueuesTasks_AreListedFromTheIndexes_NotByReadingEveryTask(LedgerProvider provider)
    {
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));
        var plan = await host.QueryAsync(async db =>
        {
            // EF's query string declares its parameters in leading lines (SQLite: .param set @queue 'shipping'; PostgreSQL:
            // -- @queue='shipping'); bound here instead.
            var sql = new LedgerQueries(db, LedgerDatabase.For(provider)).FewTasksOfQueueSql("shipping").Split('\n');
            await db.Database.OpenConnectionAsync();
            await using var command = db.Database.GetDbConnection().CreateCommand();
            command.CommandText = (provider == LedgerProvider.Sqlite ? "EXPLAIN QUERY PLAN " : "EXPLAIN ")
                + string.Join('\n', sql.Where(l => !l.StartsWith("--", StringComparison.Ordinal) && !l.StartsWith(".param", StringComparison.Ordinal)));
            foreach (var name in Regex.Matches(command.CommandText, "@\\w+").Select(m => m.Value).Distinct())
            {
                var parameter = command.CreateParameter();
                parameter.ParameterName = name;
                parameter.Value = name.StartsWith("@queue", StringComparison.Ordinal) ? "shipping" : 400;
                command.Parameters.Add(parameter);
            }
            var lines = new List<string>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                lines.Add(reader.GetValue(reader.FieldCount - 1).ToString()!);
            }

            return string.Join('\n', lines);
        });

        // Each half reads its queue's entries of an index whose first column is the queue; neither scans its table.
        Assert.That(plan, Does.Contain("IX_JobLogTasks_QueueName_DispatchedAt"), plan);
        // SQLite's runs of a queue are in start order (migration SqliteRunQueueIndex), PostgreSQL's by task.
        Assert.That(plan, Does.Contain(provider == LedgerProvider.Sqlite ? LedgerModel.RunsQueueStartIndex : "IX_JobLogTaskRuns_QueueName_TaskId"), plan);
        Assert.That(plan, Does.Not.Match("(?i)seq scan|SCAN \"?JobLogTask"), plan);
    }

    private static void Run(LedgerRecorder recorder, Guid id, string name, DateTime at, string taskQueue, string runQueue)
    {
        recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = name, QueueName = taskQueue, DispatchedAt = at, EstimatedTimeOfFirstArrival = at }));
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = name, QueueName = runQueue, ConsumerType = "C", Start = at.AddSeconds(1) };
        recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = id, Name = name, DispatchedAt = at }, false));
        recorder.Enqueue(new RunFinished(run.Id, id, TaskRunState.Succeeded, at.AddSeconds(2), null, null, null));
    }

    private static void CollectRunsReadUnderTasks(JsonElement node, ISet<string> read, bool underTasks = false)
    {
        var relation = node.TryGetProperty("Relation Name", out var r) ? r.GetString() : null;
        if (underTasks && relation is not null && relation.StartsWith(LedgerModel.Runs, StringComparison.Ordinal)
            && node.GetProperty("Actual Loops").GetInt64() > 0)
        {
            read.Add(relation);
        }

        if (!node.TryGetProperty("Plans", out var children))
        {
            return;
        }

        var isTasks = relation is not null && relation.StartsWith(LedgerModel.Tasks, StringComparison.Ordinal);
        foreach (var child in children.EnumerateArray())
        {
            var subPlan = child.TryGetProperty("Parent Relationship", out var p) && p.GetString() == "SubPlan";
            CollectRunsReadUnderTasks(child, read, underTasks || (isTasks && subPlan));
        }
    }
}
