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

/// <summary>The run rollup (finished runs per start minute × name: count, total and longest duration) against the runs it replaces.</summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class RunRollupsTests(LedgerProvider provider)
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
        _backups = Path.Combine(Path.GetTempPath(), "joblog-run-rollup-" + Guid.NewGuid().ToString("N"));
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), services: s => s.AddSingleton<TimeProvider>(_clock));
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
    public async Task RunRollup_AfterRunsRetriesExpiriesPurgesAndRestores_EqualsTheRuns()
    {
        // In the first minute: successes of 1-2 s, a failure of 64 s, a retried run then its retry of 60 s, a run that
        // never ends (the sweeper expires it), a run retried then failed for good; two names.
        for (var i = 0; i < 12; i++)
        {
            var name = i % 3 == 0 ? "Invoice" : "Report";
            var at = T0.AddSeconds(i * 4);
            var id = Dispatch(name, at, stale: T0.AddMinutes(30));
            switch (i % 6)
            {
                case 0 or 1:
                    Finish(Start(id, name, at.AddSeconds(1), 0), id, TaskRunState.Succeeded, at.AddSeconds(2 + (i % 2)));
                    break;
                case 2:
                    Finish(Start(id, name, at.AddSeconds(1), 0), id, TaskRunState.Failed, at.AddSeconds(65));
                    break;
                case 3:
                    Finish(Start(id, name, at.AddSeconds(1), 0), id, TaskRunState.Retried, at.AddSeconds(2));
                    await _host.FlushAsync();
                    await AssertRollupEqualsRunsAsync("after a RETRIED run");
                    Finish(Start(id, name, T0.AddMinutes(2), 1), id, TaskRunState.Succeeded, T0.AddMinutes(3));
                    break;
                case 4:
                    Start(id, name, at.AddSeconds(1), 0);
                    break;
                case 5:
                    var run = Start(id, name, at.AddSeconds(1), 0);
                    Finish(run, id, TaskRunState.Retried, at.AddSeconds(5));
                    _recorder.Enqueue(new RunFailedForGood(run, id));
                    break;
            }
        }

        await _host.FlushAsync();
        await AssertRollupEqualsRunsAsync("after the writer");
        Assert.That(await RollupAsync(), Has.Count.GreaterThanOrEqualTo(3), "the test's own premise: several minutes and names");

        _clock.Advance(TimeSpan.FromHours(1));
        var maintenance = _host.Services.GetRequiredService<LedgerMaintenance>();
        Assert.That((await maintenance.SweepAsync()).Expired, Is.EqualTo(2));
        await AssertRollupEqualsRunsAsync("after the sweeper's expiries");

        // Successes go, failures stay: the first minute loses its runs but the 64 s failures, so its longest is read again.
        var purge = await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddMinutes(10), null, BatchSize: 2, BackupDirectory: _backups));
        Assert.That(purge.Deleted, Is.GreaterThan(0));
        await AssertRollupEqualsRunsAsync("after a purge");

        var restored = await maintenance.RestoreAsync(purge.BackupFile!);
        Assert.That(restored.Restored, Is.EqualTo(purge.Deleted));
        await AssertRollupEqualsRunsAsync("after a restore");
    }

    [Test]
    public async Task RunRollup_WhenTheLongestRunOfAMinuteIsPurged_HoldsTheNextLongest()
    {
        var failed = Dispatch("Report", T0, stale: null);
        Finish(Start(failed, "Report", T0.AddSeconds(1), 0), failed, TaskRunState.Failed, T0.AddSeconds(11));
        var succeeded = Dispatch("Report", T0, stale: null);
        Finish(Start(succeeded, "Report", T0.AddSeconds(2), 0), succeeded, TaskRunState.Succeeded, T0.AddSeconds(42));
        await _host.FlushAsync();
        Assert.That((await RollupAsync()).Single().MaxMilliseconds, Is.EqualTo(40_000));

        var maintenance = _host.Services.GetRequiredService<LedgerMaintenance>();
        await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddHours(1), null));

        var minute = (await RollupAsync()).Single();
        Assert.That((minute.Runs, minute.TotalMilliseconds, minute.MaxMilliseconds), Is.EqualTo((1L, 10_000L, 10_000L)));
        var hour = (await _host.QueryAsync(db => db.Set<RunHourDurations>().AsNoTracking().ToListAsync())).Single();
        Assert.That((hour.Runs, hour.TotalMilliseconds, hour.MaxMilliseconds), Is.EqualTo((1L, 10_000L, 10_000L)), "the hour's longest read again");
        await AssertRollupEqualsRunsAsync("after the purge");
    }

    [Test]
    public async Task Overview_SlowestTaskNames_AreTheRunsOfTheWindow()
    {
        // Report: runs of 30 and 90 s in the window; Invoice: one of 10 s in the window, one of 500 s before it.
        Run("Report", T0.AddMinutes(50), 30);
        Run("Report", T0.AddMinutes(55), 90);
        Run("Invoice", T0.AddMinutes(40), 10);
        Run("Invoice", T0.AddMinutes(-30), 500);
        var active = Dispatch("Export", T0.AddMinutes(45), stale: null);
        Start(active, "Export", T0.AddMinutes(45), 0);
        await _host.FlushAsync();

        await using var scope = _host.Services.CreateAsyncScope();
        var (_, chart, slowest) = await scope.ServiceProvider.GetRequiredService<LedgerQueries>().OverviewAsync(false, T0.AddMinutes(59), default);

        Assert.That(chart.From, Is.EqualTo(T0));
        Assert.That(slowest.Select(s => (s.Name, s.Runs, s.AverageSeconds, s.MaxSeconds)),
            Is.EqualTo(new[] { ("Report", 2L, 60.0, 90.0), ("Invoice", 1L, 10.0, 10.0) }));
    }

    [Test]
    public async Task Overview_SlowestTaskNames_OfTheDayWindow_AreTheRunsStartedInItsHours()
    {
        // The day window from T0 - 18 h (now mid-hour, T0 + 5 h 17 min): Report 30 s at its first instant and 90 s in the
        // current hour; Invoice 10 s inside, 500 s one tick before it.
        var now = T0.AddHours(5).AddMinutes(17);
        Run("Report", T0.AddHours(-18), 30);
        Run("Report", T0.AddHours(5).AddMinutes(16), 90);
        Run("Invoice", T0.AddMinutes(59).AddSeconds(59), 10);
        Run("Invoice", T0.AddHours(-18).AddTicks(-1), 500);
        await _host.FlushAsync();
        await AssertRollupEqualsRunsAsync("after the writer");

        await using var scope = _host.Services.CreateAsyncScope();
        var (_, chart, slowest) = await scope.ServiceProvider.GetRequiredService<LedgerQueries>().OverviewAsync(true, now, default);

        Assert.That(chart.From, Is.EqualTo(T0.AddHours(-18)));
        Assert.That(slowest.Select(s => (s.Name, s.Runs, s.AverageSeconds, s.MaxSeconds)),
            Is.EqualTo(new[] { ("Report", 2L, 60.0, 90.0), ("Invoice", 1L, 10.0, 10.0) }));
    }

    [Test]
    public async Task Migration_OntoALedgerWrittenBeforeTheRunRollup_RollsUpItsRuns()
    {
        var contexts = _host.Services.GetRequiredService<JobLogContextFactory>();
        await using (var db = contexts.Create())
        {
            var migrations = db.Database.GetMigrations().ToList();
            var rollup = migrations.FindIndex(m => m.EndsWith("_ScaleRunRollup", StringComparison.Ordinal));
            Assert.That(rollup, Is.GreaterThan(0));
            await db.GetService<IMigrator>().MigrateAsync(migrations[rollup - 1]);

            // Today's model writes every run's JobRetryAttempt, a later migration's column: lent to the old schema for
            // these writes, and taken back before the migrations add it.
            await db.Database.ExecuteSqlRawAsync("ALTER TABLE \"JobLogTaskRuns\" ADD COLUMN \"JobRetryAttempt\" integer");
            for (var i = 0; i < 5; i++)
            {
                var task = new TaskLog { Id = Guid.NewGuid(), Name = "Report", DispatchedAt = T0, State = TaskState.Succeeded };
                task.Runs.Add(new TaskRunLog
                {
                    Id = Guid.NewGuid(), TaskId = task.Id, Name = "Report", ConsumerType = "C", Start = T0,
                    Stop = i < 4 ? T0.AddSeconds(10 * (i + 1)) : null, State = i < 4 ? TaskRunState.Succeeded : TaskRunState.Active,
                });
                db.TaskLogs.Add(task);
            }

            await db.SaveChangesAsync();
            await db.Database.ExecuteSqlRawAsync("ALTER TABLE \"JobLogTaskRuns\" DROP COLUMN \"JobRetryAttempt\"");
            await db.GetService<IMigrator>().MigrateAsync();
        }

        var minute = (await RollupAsync()).Single();
        Assert.That((minute.Minute, minute.Runs, minute.TotalMilliseconds, minute.MaxMilliseconds), Is.EqualTo((T0, 4L, 100_000L, 40_000L)));
    }

    private void Run(string name, DateTime start, int seconds)
    {
        var id = Dispatch(name, start, stale: null);
        Finish(Start(id, name, start, 0), id, TaskRunState.Succeeded, start.AddSeconds(seconds));
    }

    private Guid Dispatch(string name, DateTime at, DateTime? stale)
    {
        var id = Guid.NewGuid();
        _recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = name, DispatchedAt = at, EstimatedTimeOfFirstArrival = at, Stale = stale }));
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

    private Task<List<RunMinuteDurations>> RollupAsync() => _host.QueryAsync(db => db.Set<RunMinuteDurations>().AsNoTracking().ToListAsync());

    private async Task AssertRollupEqualsRunsAsync(string when)
    {
        var runs = await _host.QueryAsync(db => db.TaskRunLogs.AsNoTracking().ToListAsync());
        var rollup = await RollupAsync();
        Assert.That(runs, Is.Not.Empty);
        var expected = runs
            .Where(r => r.State is TaskRunState.Succeeded or TaskRunState.Failed or TaskRunState.Retried && r.Stop is not null)
            .Select(r => (Minute: new DateTime(r.Start.Ticks - (r.Start.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc), r.Name,
                Ms: (long)Math.Round((r.Stop!.Value - r.Start).TotalMilliseconds)))
            .GroupBy(r => (r.Minute, r.Name))
            .Select(g => (g.Key.Minute, g.Key.Name, (long)g.Count(), g.Sum(r => r.Ms), g.Max(r => r.Ms)));
        Assert.That(rollup.Select(m => (m.Minute, m.Name, m.Runs, m.TotalMilliseconds, m.MaxMilliseconds)), Is.EquivalentTo(expected), when);

        var hours = await _host.QueryAsync(db => db.Set<RunHourDurations>().AsNoTracking().ToListAsync());
        var expectedHours = runs
            .Where(r => r.State is TaskRunState.Succeeded or TaskRunState.Failed or TaskRunState.Retried && r.Stop is not null)
            .Select(r => (Hour: new DateTime(r.Start.Ticks - (r.Start.Ticks % TimeSpan.TicksPerHour), DateTimeKind.Utc), r.Name,
                Ms: (long)Math.Round((r.Stop!.Value - r.Start).TotalMilliseconds)))
            .GroupBy(r => (r.Hour, r.Name))
            .Select(g => (g.Key.Hour, g.Key.Name, (long)g.Count(), g.Sum(r => r.Ms), g.Max(r => r.Ms)));
        Assert.That(hours.Select(m => (m.Hour, m.Name, m.Runs, m.TotalMilliseconds, m.MaxMilliseconds)), Is.EquivalentTo(expectedHours), "per hour, " + when);
    }
}
