using System.Text.Json;
using JobLog.Failures;
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
/// The failures pages on a partitioned PostgreSQL ledger (docs/scale.md "Session 12 (tenm)"): the queue and error of each
/// open failure's last failed run are looked up in the task's own day's partition, not in every day's.
/// </summary>
public class PartitionedFailureQueriesTests
{
    private static readonly DateTime T0 = new(2026, 3, 10, 12, 0, 0, DateTimeKind.Utc);

    [Test]
    public async Task FailureGroups_OnAPartitionedLedger_ReadTheLastFailedRunOfEachTaskInItsOwnDayOnly()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(T0));
        await using var host = await PartitionedLedgerHosts.StartAsync(clock);

        // Two failures two days ago and yesterday (retried once, then failed in the consumer's own queue), one today.
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var days = new[] { T0.AddDays(-2), T0.AddDays(-1), T0 };
        foreach (var day in days)
        {
            Fail(recorder, Guid.CreateVersion7(new DateTimeOffset(day)), day, "Shop.DeclinedException: Declined\n   at Shop.Charge.Handle()");
        }

        await host.FlushAsync();

        await using (var scope = host.Services.CreateAsyncScope())
        {
            var groups = await scope.ServiceProvider.GetRequiredService<LedgerQueries>().FailureGroupsAsync(new FailureFilter(), T0, default);
            Assert.That(groups.Groups.Select(g => (g.Key, g.Count)), Is.EqualTo(new[] { ("Shop.DeclinedException at Shop.Charge.Handle", 3) }));
            var byQueue = await scope.ServiceProvider.GetRequiredService<LedgerQueries>()
                .FailureGroupsAsync(new FailureFilter { By = FailureGrouping.Queue, Queue = "billing" }, T0, default);
            Assert.That(byQueue.Groups.Select(g => (g.Key, g.Count)), Is.EqualTo(new[] { ("billing", 3) }), "the run's queue, found in the task's day");
        }

        var plan = await host.QueryAsync(async db =>
        {
            var queries = new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.PostgreSql));
            await db.Database.OpenConnectionAsync();
            await using var command = (NpgsqlCommand)db.Database.GetDbConnection().CreateCommand();
            command.CommandText = "EXPLAIN (ANALYZE, FORMAT JSON) " + QueryPlans.Inline(queries.OpenFailuresSql(new FailureFilter(), partitioned: true));
            return (string)(await command.ExecuteScalarAsync())!;
        });

        // The run partitions read under the failures' lookups: only those of the three days. Probing every partition for
        // each failure reads the undated one and the days ahead too (3 failures × 2 lookups × every partition).
        var read = new SortedSet<string>(StringComparer.Ordinal);
        using (var json = JsonDocument.Parse(plan))
        {
            CollectRunsRead(json.RootElement[0].GetProperty("Plan"), read);
        }

        var expected = days.Select(d => LedgerModel.Runs + "_" + PartitionDay.Suffix(PartitionDay.Of(d)));
        Assert.That(read, Is.Not.Empty, plan);
        Assert.That(read, Is.SubsetOf(expected), plan);
    }

    private static void Fail(LedgerRecorder recorder, Guid id, DateTime at, string error)
    {
        var task = new TaskPayload { Id = id, Name = "Charge", QueueName = "orders", DispatchedAt = at, EstimatedTimeOfFirstArrival = at };
        recorder.Enqueue(new TaskDispatched(task));
        foreach (var (k, state) in new[] { (1, TaskRunState.Retried), (2, TaskRunState.Failed) })
        {
            var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = "Charge", QueueName = "billing", ConsumerType = "C", Start = at.AddSeconds(k) };
            recorder.Enqueue(new RunStarted(run, task, false));
            recorder.Enqueue(new RunFinished(run.Id, id, state, at.AddSeconds(k + 0.5), error, null, null));
        }
    }

    private static void CollectRunsRead(JsonElement node, ISet<string> read)
    {
        if (node.TryGetProperty("Relation Name", out var r) && r.GetString() is { } relation
            && relation.StartsWith(LedgerModel.Runs, StringComparison.Ordinal) && node.GetProperty("Actual Loops").GetInt64() > 0)
        {
            read.Add(relation);
        }

        if (node.TryGetProperty("Plans", out var children))
        {
            foreach (var child in children.EnumerateArray())
            {
                CollectRunsRead(child, read);
            }
        }
    }
}
