using JobLog.Querying;
using JobLog.Recording;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// A fill of many failures' groups at once takes the group columns' statistics again (PostgreSQL): autovacuum does not for
/// a few percent of a table's rows, nor ever for a partitioned parent, and a planner that believed the columns empty read
/// a group's page at 10 M tasks in 164.8 ms, 78 ms after an ANALYZE (docs/scale.md "Session 42 (scale)").
/// </summary>
public class FailureGroupStatisticsTests
{
    private static readonly DateTime T0 = new(2026, 3, 10, 12, 0, 0, DateTimeKind.Utc);

    [TestCase(false)]
    [TestCase(true)]
    public async Task AFillOfManyGroups_TakesTheGroupColumnsStatisticsAgain_AFewDoNot(bool partitioned)
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(T0));
        await using var host = partitioned
            ? await PartitionedLedgerHosts.StartAsync(clock)
            : await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), services: s => s.AddSingleton<TimeProvider>(clock));
        var table = partitioned ? "JobLogTasks_" + JobLog.Storage.Partitioning.PartitionDay.Suffix(JobLog.Storage.Partitioning.PartitionDay.Of(T0)) : "JobLogTasks";

        // Autovacuum kept out of it (it could analyze the table at any time), the statistics taken before the groups exist.
        var autovacuumOff = $"ALTER TABLE \"{table}\" SET (autovacuum_enabled = false)";
        var analyze = $"ANALYZE \"{table}\"";
        await host.QueryAsync(db => db.Database.ExecuteSqlRawAsync(autovacuumOff));
        await FailAsync(host, 0, 20);
        await host.QueryAsync(db => db.Database.ExecuteSqlRawAsync(analyze));
        Assert.That(await NullFractionAsync(host, table), Is.EqualTo(1f), "the test's premise: the statistics say no failure has its group");

        // A few (fewer than the 500 of LedgerQueries.AnalyzeAfterFilled): the statistics are left as they are.
        await FillAsync(host);
        Assert.That(await NullFractionAsync(host, table), Is.EqualTo(1f), "20 groups");

        // Many: taken again, the groups seen.
        await FailAsync(host, 20, 500);
        await FillAsync(host);
        Assert.That(await NullFractionAsync(host, table), Is.EqualTo(0f), "every row of the table is an open failure with its group");
    }

    private static async Task FailAsync(LedgerHost host, int from, int count)
    {
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        for (var i = from; i < from + count; i++)
        {
            var at = T0.AddSeconds(i);
            var id = Guid.CreateVersion7(new DateTimeOffset(at));
            var task = new TaskPayload { Id = id, Name = "Charge", QueueName = "billing", DispatchedAt = at, EstimatedTimeOfFirstArrival = at };
            recorder.Enqueue(new TaskDispatched(task));
            var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = "Charge", QueueName = "billing", ConsumerType = "C", Start = at };
            recorder.Enqueue(new RunStarted(run, task, false));
            recorder.Enqueue(new RunFinished(run.Id, id, TaskRunState.Failed, at.AddSeconds(1), "Shop.DeclinedException: Declined " + (i % 3), null, null));
        }

        await host.FlushAsync();
    }

    private static async Task FillAsync(LedgerHost host)
    {
        await using var scope = host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
        Assert.That(await queries.FillFailureGroupsAsync(CancellationToken.None), Is.True);
    }

    private static Task<float> NullFractionAsync(LedgerHost host, string table) => host.QueryAsync(db =>
        db.Database.SqlQuery<float>(
            $"SELECT null_frac AS \"Value\" FROM pg_stats WHERE schemaname = current_schema() AND tablename = {table} AND attname = 'FailureGroupException'")
            .SingleAsync());
}
