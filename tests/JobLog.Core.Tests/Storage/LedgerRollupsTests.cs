using JobLog.Maintenance;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Retention;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

/// <summary>
/// The task rollups (per state × name, per minute and per hour × state × name) against the COUNT(*) they replace; on a
/// partitioned PostgreSQL ledger too, whose minute and hour rollups are views over the day rollups.
/// </summary>
[TestFixture(LedgerProvider.Sqlite, false)]
[TestFixture(LedgerProvider.PostgreSql, false)]
[TestFixture(LedgerProvider.PostgreSql, true)]
public class LedgerRollupsTests(LedgerProvider provider, bool partitioned)
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);
    private LedgerHost _host = null!;
    private LedgerRecorder _recorder = null!;
    private FakeTimeProvider _clock = null!;
    private string _backups = null!;

    [SetUp]
    public async Task SetUp()
    {
        _clock = new FakeTimeProvider(new DateTimeOffset(T0));
        _backups = Path.Combine(Path.GetTempPath(), "joblog-rollups-" + Guid.NewGuid().ToString("N"));
        _host = partitioned
            ? await Querying.PartitionedLedgerHosts.StartAsync(_clock)
            : await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), services: s => s.AddSingleton<TimeProvider>(_clock));
        _recorder = _host.Services.GetRequiredService<LedgerRecorder>();
    }

    [TearDown]
    public async Task TearDown()
    {
        await _host.DisposeAsync();
        if (Directory.Exists(_backups))
        {
            Directory.Delete(_backups, recursive: true);
        }
    }

    [Test]
    public async Task Rollups_AfterRunsRetriesExpiriesPurgesAndRestores_EqualTheCounts()
    {
        // Succeeded, failed, retried then succeeded, still running, waiting; two names; one infrastructure message.
        for (var i = 0; i < 12; i++)
        {
            var name = i % 3 == 0 ? "Invoice" : "Report";
            var id = Dispatch(name, T0.AddSeconds(i * 10), stale: T0.AddMinutes(30), isInternal: i == 11);
            switch (i % 6)
            {
                case 0 or 1:
                    Finish(Start(id, name, T0.AddSeconds((i * 10) + 1), 0), id, TaskRunState.Succeeded, T0.AddSeconds((i * 10) + 2));
                    break;
                case 2:
                    Finish(Start(id, name, T0.AddSeconds((i * 10) + 1), 0), id, TaskRunState.Failed, T0.AddSeconds((i * 10) + 65));
                    break;
                case 3:
                    Finish(Start(id, name, T0.AddSeconds((i * 10) + 1), 0), id, TaskRunState.Retried, T0.AddSeconds((i * 10) + 2));
                    await _host.FlushAsync();
                    await AssertRollupsEqualCountsAsync("after a RETRIED run");
                    Finish(Start(id, name, T0.AddMinutes(2), 1), id, TaskRunState.Succeeded, T0.AddMinutes(3));
                    break;
                case 4:
                    Start(id, name, T0.AddSeconds((i * 10) + 1), 0);
                    break;
            }
        }

        await _host.FlushAsync();
        await AssertRollupsEqualCountsAsync("after the writer");
        var stateCounts = await StateCountsAsync();
        Assert.That(stateCounts[TaskState.Succeeded] + stateCounts[TaskState.Failed], Is.EqualTo(8), "the test's own premise");

        _clock.Advance(TimeSpan.FromHours(1));
        var maintenance = _host.Services.GetRequiredService<LedgerMaintenance>();
        var swept = await maintenance.SweepAsync();
        Assert.That(swept.Expired, Is.EqualTo(4));
        await AssertRollupsEqualCountsAsync("after the sweeper's expiries");

        var purge = await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddMinutes(2.5), T0.AddMinutes(2.5), BatchSize: 3, BackupDirectory: _backups));
        Assert.That(purge.Deleted, Is.GreaterThan(0));
        await AssertRollupsEqualCountsAsync("after a purge");

        var restored = await maintenance.RestoreAsync(purge.BackupFile!);
        Assert.That(restored.Restored, Is.EqualTo(purge.Deleted));
        await AssertRollupsEqualCountsAsync("after a restore");
        Assert.That(await StateCountsAsync(), Is.EquivalentTo(await ActualStateCountsAsync()));
    }

    [Test]
    public async Task Overview_CountsAndChart_AreTheLedgersCounts()
    {
        for (var i = 0; i < 5; i++)
        {
            var id = Dispatch("Report", T0.AddMinutes(i), stale: null, isInternal: false);
            Finish(Start(id, "Report", T0.AddMinutes(i), 0), id, i == 4 ? TaskRunState.Failed : TaskRunState.Succeeded, T0.AddMinutes(i).AddSeconds(30));
        }

        var internalId = Dispatch("MassTransit.Fault", T0, stale: null, isInternal: true);
        Finish(Start(internalId, "MassTransit.Fault", T0, 0), internalId, TaskRunState.Succeeded, T0.AddSeconds(5));
        Dispatch("Report", T0, stale: null, isInternal: false);
        await _host.FlushAsync();

        await using var scope = _host.Services.CreateAsyncScope();
        var (counts, chart, _) = await scope.ServiceProvider.GetRequiredService<LedgerQueries>().OverviewAsync(false, T0.AddMinutes(10), default);

        Assert.That(counts.Where(c => c.Count > 0).Select(c => (c.State, c.Count)),
            Is.EquivalentTo(new[] { (TaskState.Waiting, 1L), (TaskState.Succeeded, 4L), (TaskState.Failed, 1L) }), "the internal task is not counted");
        var busy = chart.Buckets.Where(b => b.Finished > 0).Select(b => (b.Start, b.Succeeded, b.Failed)).ToList();
        Assert.That(busy, Is.EqualTo(Enumerable.Range(0, 5).Select(i => (T0.AddMinutes(i), i == 4 ? 0 : 1, i == 4 ? 1 : 0)).ToList()));
    }

    [Test]
    public async Task Migration_OntoALedgerWrittenBeforeRollups_CountsItsRows()
    {
        Assume.That(partitioned, Is.False, "a partitioned ledger's rollup migrations are not reverted (PartitionedMigrationDownTests)");
        var contexts = _host.Services.GetRequiredService<JobLogContextFactory>();
        await using (var db = contexts.Create())
        {
            // The migration just before the rollups' (the entities below carry every column up to it).
            var migrations = db.Database.GetMigrations().ToList();
            var rollups = migrations.FindIndex(m => m.EndsWith("_ScaleTaskRollups", StringComparison.Ordinal));
            Assert.That(rollups, Is.GreaterThan(0));
            await db.GetService<IMigrator>().MigrateAsync(migrations[rollups - 1]);
            for (var i = 0; i < 7; i++)
            {
                db.TaskLogs.Add(new TaskLog
                {
                    Id = Guid.NewGuid(), Name = i < 3 ? "Invoice" : "Report", DispatchedAt = T0, State = i < 5 ? TaskState.Succeeded : TaskState.Waiting,
                    Stop = i < 5 ? T0.AddSeconds(i * 20) : null,
                });
            }

            await db.SaveChangesAsync();
            await db.GetService<IMigrator>().MigrateAsync();
        }

        await AssertRollupsEqualCountsAsync("after the migration");
        Assert.That(await StateCountsAsync(), Is.EquivalentTo(new Dictionary<TaskState, long> { [TaskState.Succeeded] = 5, [TaskState.Waiting] = 2 }));
    }

    [Test]
    public async Task Migration_OntoALedgerWithMinutesButNoHours_BuildsTheHoursFromTheMinutes()
    {
        Assume.That(partitioned, Is.False, "a partitioned ledger's rollup migrations are not reverted (PartitionedMigrationDownTests)");
        var contexts = _host.Services.GetRequiredService<JobLogContextFactory>();
        await using (var db = contexts.Create())
        {
            var migrations = db.Database.GetMigrations().ToList();
            var hours = migrations.FindIndex(m => m.EndsWith("_HourrollTaskHours", StringComparison.Ordinal));
            Assert.That(hours, Is.GreaterThan(0));
            await db.GetService<IMigrator>().MigrateAsync(migrations[hours - 1]);

            // Today's writer writes every run's JobRetryAttempt, a later migration's column: lent to the old schema for
            // these writes, and taken back before the migrations add it.
            await db.Database.ExecuteSqlRawAsync("ALTER TABLE \"JobLogTaskRuns\" ADD COLUMN \"JobRetryAttempt\" integer");
        }

        // Written through the minutes-only triggers, then the migration; then the new triggers keep the hours.
        for (var i = 0; i < 6; i++)
        {
            var id = Dispatch(i < 2 ? "Invoice" : "Report", T0.AddMinutes(i * 25), stale: null, isInternal: false);
            Finish(Start(id, "Report", T0.AddMinutes(i * 25), 0), id, TaskRunState.Succeeded, T0.AddMinutes((i * 25) + 1));
        }

        await _host.FlushAsync();
        await using (var db = contexts.Create())
        {
            await db.Database.ExecuteSqlRawAsync("ALTER TABLE \"JobLogTaskRuns\" DROP COLUMN \"JobRetryAttempt\"");
            await db.GetService<IMigrator>().MigrateAsync();
        }

        await AssertRollupsEqualCountsAsync("after the migration");
        var late = Dispatch("Report", T0.AddMinutes(20), stale: null, isInternal: false);
        Finish(Start(late, "Report", T0.AddMinutes(20), 0), late, TaskRunState.Failed, T0.AddMinutes(21));
        await _host.FlushAsync();
        await AssertRollupsEqualCountsAsync("after a write through the new triggers");
    }

    [Test]
    public async Task Overview_DayWindow_AfterRetriesExpiriesPurgesAndRestores_IsTheLedgersCountPerHour()
    {
        // Mid-hour: the window is the 24 whole hours up to the end of the current one, whose bucket is partly elapsed.
        var now = T0.AddHours(5).AddMinutes(17);
        var from = T0.AddHours(-18);
        DateTime[] stops =
        [
            from.AddTicks(-1), from, from.AddMinutes(59).AddSeconds(59), T0.AddMinutes(1), T0.AddMinutes(61), T0.AddMinutes(119).AddSeconds(59.5),
            T0.AddHours(5).AddMinutes(16), T0.AddHours(5).AddMinutes(16).AddSeconds(30), T0.AddHours(6),
        ];
        for (var i = 0; i < stops.Length; i++)
        {
            var name = i % 2 == 0 ? "Invoice" : "Report";
            var id = Dispatch(name, stops[i].AddSeconds(-5), stale: null, isInternal: i == 3);
            Finish(Start(id, name, stops[i].AddSeconds(-4), 0), id, i % 3 == 1 ? TaskRunState.Failed : TaskRunState.Succeeded, stops[i]);
        }

        // A retry whose first run ends in one hour and whose second in the next: the task's hour moves.
        var retried = Dispatch("Report", T0.AddMinutes(50), stale: null, isInternal: false);
        Finish(Start(retried, "Report", T0.AddMinutes(50), 0), retried, TaskRunState.Failed, T0.AddMinutes(55));
        await _host.FlushAsync();
        await AssertDayChartIsTheLedgersAsync(now, "after the first run failed");
        Finish(Start(retried, "Report", T0.AddMinutes(58), 1), retried, TaskRunState.Succeeded, T0.AddMinutes(63));
        for (var i = 0; i < 3; i++)
        {
            Dispatch("Invoice", T0.AddHours(4).AddMinutes(i), stale: T0.AddHours(4).AddMinutes(30), isInternal: false);
        }

        await _host.FlushAsync();
        await AssertDayChartIsTheLedgersAsync(now, "after the writer");

        _clock.SetUtcNow(new DateTimeOffset(now.AddMinutes(-2)));
        var maintenance = _host.Services.GetRequiredService<LedgerMaintenance>();
        Assert.That((await maintenance.SweepAsync()).Expired, Is.EqualTo(3));
        await AssertDayChartIsTheLedgersAsync(now, "after the sweeper's expiries");

        var purge = await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddMinutes(62), T0.AddMinutes(62), BatchSize: 2, BackupDirectory: _backups));
        Assert.That(purge.Deleted, Is.GreaterThan(0));
        await AssertDayChartIsTheLedgersAsync(now, "after a purge");
        await AssertRollupsEqualCountsAsync("after a purge");

        await maintenance.RestoreAsync(purge.BackupFile!);
        await AssertDayChartIsTheLedgersAsync(now, "after a restore");
        await AssertRollupsEqualCountsAsync("after a restore");
    }

    private async Task AssertDayChartIsTheLedgersAsync(DateTime now, string when)
    {
        await using var scope = _host.Services.CreateAsyncScope();
        var (_, chart, _) = await scope.ServiceProvider.GetRequiredService<LedgerQueries>().OverviewAsync(true, now, default);
        var tasks = await _host.QueryAsync(db => db.TaskLogs.AsNoTracking().Where(t => !t.IsInternal && t.Stop != null).ToListAsync());
        var expected = Enumerable.Range(0, 24).Select(i => chart.From.AddHours(i)).Select(start =>
        {
            var ended = tasks.Where(t => t.Stop >= start && t.Stop < start.AddHours(1)).ToList();
            return (start, ended.Count(t => t.State == TaskState.Succeeded), ended.Count(t => t.State == TaskState.Failed), ended.Count(t => t.State == TaskState.Expired));
        }).ToList();
        Assert.That(chart.From, Is.EqualTo(T0.AddHours(-18)), when);
        Assert.That(chart.Buckets.Select(b => (b.Start, b.Succeeded, b.Failed, b.Expired)), Is.EqualTo(expected), "the day chart's hours, " + when);
        Assert.That(expected.Sum(e => e.Item2 + e.Item3 + e.Item4), Is.GreaterThan(0), "the test's own premise");
    }

    private Guid Dispatch(string name, DateTime at, DateTime? stale, bool isInternal)
    {
        var id = Guid.NewGuid();
        _recorder.Enqueue(new TaskDispatched(new TaskPayload
        {
            Id = id, Name = name, DispatchedAt = at, EstimatedTimeOfFirstArrival = at, Stale = stale, IsInternal = isInternal,
        }));
        return id;
    }

    private Guid Start(Guid id, string name, DateTime at, int retries)
    {
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = name, ConsumerType = "C", Start = at, Redelivered = retries > 0 };
        _recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = id, Name = name, DispatchedAt = at }, false));
        return run.Id;
    }

    private void Finish(Guid runId, Guid id, TaskRunState state, DateTime at) =>
        _recorder.Enqueue(new RunFinished(runId, id, state, at, state == TaskRunState.Succeeded ? null : "boom", null, null));

    private Task<Dictionary<TaskState, long>> StateCountsAsync() => _host.QueryAsync(async db =>
        (await db.Set<TaskStateCount>().Where(c => !c.IsInternal && c.Count != 0).ToListAsync())
            .GroupBy(c => c.State).ToDictionary(g => g.Key, g => g.Sum(c => c.Count)));

    private Task<Dictionary<TaskState, long>> ActualStateCountsAsync() => _host.QueryAsync(async db =>
        (await db.TaskLogs.Where(t => !t.IsInternal).GroupBy(t => t.State).Select(g => new { g.Key, Count = g.LongCount() }).ToListAsync())
            .ToDictionary(g => g.Key, g => g.Count));

    private async Task AssertRollupsEqualCountsAsync(string when)
    {
        var tasks = await _host.QueryAsync(db => db.TaskLogs.AsNoTracking().ToListAsync());
        var counts = await _host.QueryAsync(db => db.Set<TaskStateCount>().AsNoTracking().ToListAsync());
        var minutes = await _host.QueryAsync(db => db.Set<TaskMinuteCount>().AsNoTracking().ToListAsync());
        Assert.That(tasks, Is.Not.Empty);

        var expectedCounts = tasks.GroupBy(t => (t.State, t.Name, t.IsInternal)).Select(g => (g.Key.State, g.Key.Name, g.Key.IsInternal, (long)g.Count()));
        Assert.That(counts.Where(c => c.Count != 0).Select(c => (c.State, c.Name, c.IsInternal, c.Count)), Is.EquivalentTo(expectedCounts), "per state and name, " + when);

        var expectedMinutes = tasks.Where(t => t.Stop is not null)
            .GroupBy(t => (new DateTime(t.Stop!.Value.Ticks - (t.Stop.Value.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc), t.State, t.Name, t.IsInternal))
            .Select(g => (g.Key.Item1, g.Key.State, g.Key.Name, g.Key.IsInternal, (long)g.Count()));
        // On a partitioned ledger the minute and hour rollups are views with a row per day of a key: readers sum.
        Assert.That(minutes.GroupBy(m => (m.Minute, m.State, m.Name, m.IsInternal)).Select(g => (g.Key.Minute, g.Key.State, g.Key.Name, g.Key.IsInternal, g.Sum(m => m.Count))),
            Is.EquivalentTo(expectedMinutes), "per minute, " + when);

        var hours = await _host.QueryAsync(db => db.Set<TaskHourCount>().AsNoTracking().ToListAsync());
        var expectedHours = tasks.Where(t => t.Stop is not null)
            .GroupBy(t => (new DateTime(t.Stop!.Value.Ticks - (t.Stop.Value.Ticks % TimeSpan.TicksPerHour), DateTimeKind.Utc), t.State, t.Name, t.IsInternal))
            .Select(g => (g.Key.Item1, g.Key.State, g.Key.Name, g.Key.IsInternal, (long)g.Count()));
        Assert.That(hours.GroupBy(m => (m.Hour, m.State, m.Name, m.IsInternal)).Select(g => (g.Key.Hour, g.Key.State, g.Key.Name, g.Key.IsInternal, g.Sum(m => m.Count))),
            Is.EquivalentTo(expectedHours), "per hour, " + when);
        Assert.That(hours.Where(h => h.Count == 0), Is.Empty, "no empty hour rows, " + when);
    }
}
