using JobLog.Recording;
using JobLog.Storage;
using JobLog.Sweeping;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Sweeping;

/// <summary>The sweeper's host pass: runs of a host whose heartbeat stopped are closed, whatever the task's stale limit.</summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class HostSweepTests(LedgerProvider provider)
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);
    private LedgerHost _host = null!;
    private LedgerRecorder _recorder = null!;
    private FakeTimeProvider _clock = null!;

    [SetUp]
    public async Task SetUp()
    {
        _clock = new FakeTimeProvider(new DateTimeOffset(T0));
        var ledger = await Ledgers.CreateAsync(provider);
        if (provider == LedgerProvider.PostgreSql)
        {
            await FakeTheDatabasesClockAsync(ledger);
        }

        _host = await LedgerHost.StartAsync(
            ledger,
            o =>
            {
                o.Sweeper.BatchSize = 3;
                o.HeartbeatInterval = TimeSpan.FromSeconds(15);
                o.HostTimeout = TimeSpan.FromMinutes(2);
            },
            s => s.AddSingleton<TimeProvider>(_clock));
        _recorder = _host.Services.GetRequiredService<LedgerRecorder>();
    }

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    /// <summary>
    /// PostgreSQL stamps and judges heartbeats with its own clock (<c>now()</c>, <see cref="LedgerDatabase.Clock"/>): in
    /// this database, a <c>public.now()</c> found before <c>pg_catalog</c>'s reads the test's clock, which
    /// <see cref="AdvanceAsync"/> moves with <see cref="_clock"/>.
    /// </summary>
    private async Task FakeTheDatabasesClockAsync(TestLedger ledger)
    {
        await using (var connection = new Npgsql.NpgsqlConnection(ledger.ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new Npgsql.NpgsqlCommand(
                "CREATE TABLE test_clock (at timestamptz NOT NULL); INSERT INTO test_clock VALUES (@at); " +
                "CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql STABLE AS 'SELECT at FROM test_clock'; " +
                $"ALTER DATABASE \"{ledger.DatabaseName}\" SET search_path = public, pg_catalog", connection);
            command.Parameters.AddWithValue("at", _clock.GetUtcNow());
            await command.ExecuteNonQueryAsync();
        }

        // The setting applies to sessions that start from now on.
        Npgsql.NpgsqlConnection.ClearAllPools();
    }

    /// <summary>Moves the test's clock, and on PostgreSQL the database's with it.</summary>
    private async Task AdvanceAsync(TimeSpan by)
    {
        _clock.Advance(by);
        if (provider == LedgerProvider.PostgreSql)
        {
            await _host.QueryAsync(db => db.Database.ExecuteSqlAsync($"UPDATE test_clock SET at = {_clock.GetUtcNow()}"));
        }
    }

    private TaskLogSweeper Sweeper => _host.Services.GetRequiredService<TaskLogSweeper>();

    private async Task<Guid> AddHostAsync(string name, DateTime lastHeartbeat, DateTime? stoppedAt = null)
    {
        var id = Guid.NewGuid();
        await _host.QueryAsync(async db =>
        {
            db.Hosts.Add(new HostLog
            {
                InstanceId = id, Name = name, ProcessId = 4242, StartedAt = T0, LastHeartbeat = lastHeartbeat, StoppedAt = stoppedAt,
            });
            return await db.SaveChangesAsync();
        });
        return id;
    }

    /// <summary>A task without a stale limit whose run of <paramref name="instance"/> is ACTIVE.</summary>
    private (Guid Task, Guid Run) StartRun(Guid? instance)
    {
        var task = Guid.NewGuid();
        var run = new RunPayload
        {
            Id = Guid.NewGuid(), TaskId = task, Name = "Report", ConsumerType = "C", Start = T0.AddSeconds(1), HostInstanceId = instance,
        };
        _recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = task, Name = "Report", DispatchedAt = T0, EstimatedTimeOfFirstArrival = T0 }));
        _recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = task, Name = "Report", DispatchedAt = T0 }, false));
        return (task, run.Id);
    }

    [Test]
    public async Task Sweep_HostWhoseHeartbeatStopped_ExpiresItsActiveRunsAndResolvesTheirTasks()
    {
        var dead = await AddHostAsync("worker-1", T0);
        var runs = Enumerable.Range(0, 5).Select(_ => StartRun(dead)).ToList();
        await _host.FlushAsync();
        await AdvanceAsync(TimeSpan.FromMinutes(3));

        var result = await Sweeper.SweepOnceAsync(CancellationToken.None);

        Assert.That(result.HostRuns, Is.EqualTo(5), "closed in batches of 3");
        foreach (var (taskId, runId) in runs)
        {
            var task = await _host.TaskAsync(taskId);
            var run = task.Runs.Single(r => r.Id == runId);
            Assert.That((task.State, run.State, run.Stop), Is.EqualTo((TaskState.Expired, TaskRunState.Expired, (DateTime?)T0.AddMinutes(3))));
            Assert.That(run.ErrorMessage, Does.Contain("host worker-1 (pid 4242, instance " + dead + ") stopped sending heartbeats at 2026-03-01 08:00:00 UTC"));
        }
    }

    [TestCase(TaskRunState.Succeeded, TaskState.Succeeded)]
    [TestCase(TaskRunState.Failed, TaskState.Failed)]
    public async Task Sweep_HostThatWasOnlySlow_ItsRunsLateEndReplacesTheExpiry(TaskRunState end, TaskState expected)
    {
        // A GC pause or a database hiccup longer than HostTimeout: the host is declared gone and its run expired, then
        // the run's real end arrives. What happened wins over the sweep's guess: a failure must be a FAILED task (listed
        // with the failures, retryable), not an EXPIRED one.
        var slow = await AddHostAsync("worker-6", T0);
        var (taskId, runId) = StartRun(slow);
        await _host.FlushAsync();
        await AdvanceAsync(TimeSpan.FromMinutes(3));
        Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).HostRuns, Is.EqualTo(1));
        Assert.That((await _host.TaskAsync(taskId)).State, Is.EqualTo(TaskState.Expired));

        var stop = T0.AddMinutes(3).AddSeconds(5);
        var error = end == TaskRunState.Failed ? "InvalidOperationException: card declined" : null;
        _recorder.Enqueue(new RunFinished(runId, taskId, end, stop, error, end == TaskRunState.Succeeded ? "ok" : null, null));
        await _host.FlushAsync();

        var task = await _host.TaskAsync(taskId);
        var run = task.Runs.Single(r => r.Id == runId);
        Assert.That((run.State, run.Stop, run.ErrorMessage), Is.EqualTo((end, (DateTime?)stop, error)));
        Assert.That((task.State, task.Stop), Is.EqualTo((expected, (DateTime?)stop)));
    }

    [Test]
    public async Task Sweep_HostThatWasOnlySlow_ALateStartDoesNotReopenTheExpiredRun()
    {
        var slow = await AddHostAsync("worker-7", T0);
        var (taskId, runId) = StartRun(slow);
        await _host.FlushAsync();
        await AdvanceAsync(TimeSpan.FromMinutes(3));
        await Sweeper.SweepOnceAsync(CancellationToken.None);

        // A journal replayed after the sweep carries the run's start again: only an end replaces the sweep's guess.
        var run = (await _host.TaskAsync(taskId)).Runs.Single(r => r.Id == runId);
        _recorder.Enqueue(new RunStarted(
            new RunPayload { Id = runId, TaskId = taskId, Name = "Report", ConsumerType = "C", Start = run.Start, HostInstanceId = slow },
            new TaskPayload { Id = taskId, Name = "Report", DispatchedAt = T0 }, false));
        await _host.FlushAsync();

        var task = await _host.TaskAsync(taskId);
        Assert.That((task.State, task.Runs.Single(r => r.Id == runId).State), Is.EqualTo((TaskState.Expired, TaskRunState.Expired)));
    }

    [Test]
    public void HostReason_StartsWithThePrefixALateEndRecognises()
    {
        Assert.That(TaskLogSweeper.HostReason("w", 1, Guid.Empty, T0, null), Does.StartWith(LedgerSql.HostExpiredPrefix));
        Assert.That(TaskLogSweeper.HostReason("w", 1, Guid.Empty, T0, T0), Does.StartWith(LedgerSql.HostExpiredPrefix));
    }

    [Test]
    public async Task Sweep_LiveHost_LeavesItsActiveRuns()
    {
        await AdvanceAsync(TimeSpan.FromMinutes(3));
        var live = await AddHostAsync("worker-2", T0.AddMinutes(2.5));
        var (taskId, _) = StartRun(live);
        var (oldTaskId, _) = StartRun(null);
        await _host.FlushAsync();

        var result = await Sweeper.SweepOnceAsync(CancellationToken.None);

        Assert.That(result.HostRuns, Is.Zero);
        Assert.That((await _host.TaskAsync(taskId)).State, Is.EqualTo(TaskState.Active));
        Assert.That((await _host.TaskAsync(oldTaskId)).State, Is.EqualTo(TaskState.Active), "a run without an instance is left to the stale rule");
    }

    [Test]
    public async Task Sweep_LiveHostWhoseClockIsFiveMinutesBehind_LeavesItsRunsWhileItBeats_AndClosesThemOnceItStops()
    {
        var skewed = await AddHostAsync("worker-behind", T0);
        var (taskId, runId) = StartRun(skewed);
        await _host.FlushAsync();
        Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).HostRuns, Is.Zero, "first read: a heartbeat of now");

        await BeatsBehindAndSweepsCloseNothingAsync(skewed, beats: 8);
        Assert.That((await _host.TaskAsync(taskId)).State, Is.EqualTo(TaskState.Active));

        await AdvanceAsync(TimeSpan.FromMinutes(1));
        Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).HostRuns, Is.Zero, "silent for 1 min of a 2 min timeout");
        await AdvanceAsync(TimeSpan.FromMinutes(1));
        Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).HostRuns, Is.EqualTo(1), "silent for the 2 min timeout");
        Assert.That((await _host.TaskAsync(taskId)).Runs.Single(r => r.Id == runId).State, Is.EqualTo(TaskRunState.Expired));
    }

    [Test]
    public async Task Sweep_HostWhoseClockIsFiveMinutesAhead_ClosesItsRunsTheTimeoutAfterItsHeartbeatStopped()
    {
        var ahead = await AddHostAsync("worker-ahead", T0 + TimeSpan.FromMinutes(5));
        var (taskId, runId) = StartRun(ahead);
        await _host.FlushAsync();
        Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).HostRuns, Is.Zero, "first read: a heartbeat in this clock's future");

        await AdvanceAsync(TimeSpan.FromMinutes(2));
        Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).HostRuns, Is.EqualTo(1), "its heartbeat unchanged for the 2 min timeout");
        Assert.That((await _host.TaskAsync(taskId)).Runs.Single(r => r.Id == runId).State, Is.EqualTo(TaskRunState.Expired));
    }

    [Test]
    public async Task Sweep_HostFoundGoneAtItsFirstRead_ARunOfItReplayedLater_IsClosedByTheNextSweep()
    {
        var dead = await AddHostAsync("worker-dead", T0);
        StartRun(dead);
        await _host.FlushAsync();
        await AdvanceAsync(TimeSpan.FromMinutes(3));
        Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).HostRuns, Is.EqualTo(1), "first read: silent for 3 min by the clock");

        // A start of it that another process replays from its journal only now.
        var (taskId, runId) = StartRun(dead);
        await _host.FlushAsync();
        await AdvanceAsync(TimeSpan.FromSeconds(30));

        Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).HostRuns, Is.EqualTo(1), "the next sweep");
        Assert.That((await _host.TaskAsync(taskId)).Runs.Single(r => r.Id == runId).State, Is.EqualTo(TaskRunState.Expired));
    }

    // Session 26: the hosted sweeper of a process started while a live host whose clock is behind runs closed its runs at
    // its first read (the clocks said silent for 5 min); it watches such a host for two heartbeat intervals first.
    [Test]
    public async Task HostedSweep_LiveHostWhoseClockIsFiveMinutesBehind_ReadFirstNow_LeavesItsRunsWhileItBeats()
    {
        var skewed = await AddHostAsync("worker-behind", T0 - TimeSpan.FromMinutes(5));
        var (taskId, _) = StartRun(skewed);
        await _host.FlushAsync();
        Sweeper.SweepsAgain = true;
        Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).HostRuns, Is.Zero, "first read: silent for 5 min by the clocks");

        await BeatsBehindAndSweepsCloseNothingAsync(skewed, beats: 4);
        Assert.That((await _host.TaskAsync(taskId)).State, Is.EqualTo(TaskState.Active));
    }

    [Test]
    public async Task HostedSweep_HostDeadBeforeItsFirstRead_IsClosedTwoHeartbeatIntervalsLater()
    {
        var dead = await AddHostAsync("worker-dead", T0);
        var (taskId, runId) = StartRun(dead);
        await _host.FlushAsync();
        await AdvanceAsync(TimeSpan.FromMinutes(3));
        Sweeper.SweepsAgain = true;
        Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).HostRuns, Is.Zero, "first read: watched first");

        await AdvanceAsync(TimeSpan.FromSeconds(15));
        Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).HostRuns, Is.Zero, "silent for one heartbeat interval of this sweeper's watch");
        await AdvanceAsync(TimeSpan.FromSeconds(15));
        Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).HostRuns, Is.EqualTo(1), "silent for two");
        Assert.That((await _host.TaskAsync(taskId)).Runs.Single(r => r.Id == runId).State, Is.EqualTo(TaskRunState.Expired));
    }

    /// <summary>
    /// <paramref name="beats"/> heartbeats of <paramref name="instance"/>, every 15 s, stamped by a clock 5 min behind this
    /// one; the sweep after each closes none of its runs.
    /// </summary>
    private async Task BeatsBehindAndSweepsCloseNothingAsync(Guid instance, int beats)
    {
        for (var beat = 1; beat <= beats; beat++)
        {
            await AdvanceAsync(TimeSpan.FromSeconds(15));
            await SetHeartbeatAsync(instance, _clock.GetUtcNow().UtcDateTime - TimeSpan.FromMinutes(5));
            Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).HostRuns, Is.Zero, $"sweep after beat {beat}");
        }
    }

    private Task SetHeartbeatAsync(Guid instance, DateTime at) =>
        _host.QueryAsync(db => db.Hosts.Where(h => h.InstanceId == instance).ExecuteUpdateAsync(u => u.SetProperty(h => h.LastHeartbeat, at)));

    [Test]
    public async Task Sweep_GracefullyStoppedHost_ClosesWhatItLeftActive()
    {
        var stopped = await AddHostAsync("worker-3", T0.AddSeconds(30), stoppedAt: T0.AddSeconds(30));
        var (taskId, runId) = StartRun(stopped);
        await _host.FlushAsync();
        await AdvanceAsync(TimeSpan.FromMinutes(1));

        var result = await Sweeper.SweepOnceAsync(CancellationToken.None);

        var task = await _host.TaskAsync(taskId);
        Assert.That(result.HostRuns, Is.EqualTo(1));
        Assert.That(task.State, Is.EqualTo(TaskState.Expired));
        Assert.That(task.Runs.Single(r => r.Id == runId).ErrorMessage, Does.Contain("host worker-3 (pid 4242, instance " + stopped + ") stopped at 2026-03-01 08:00:30 UTC"));
    }

    // Session 34 (apps), found not fixed: the host pass read every JobLogHosts row each sweep (and judged every stopped one
    // in a transaction of its own), on every worker, every interval: with a week of rolling deploys, thousands.
    [Test]
    public async Task Sweep_WithFiveThousandStoppedHosts_ReadsOnlyTheHostsWithActiveRuns_AndStillClosesTheDeadOnes()
    {
        await _host.QueryAsync(async db =>
        {
            for (var i = 0; i < 5_000; i++)
            {
                var at = T0.AddSeconds(-i);
                db.Hosts.Add(new HostLog { InstanceId = Guid.NewGuid(), Name = "old-" + i, ProcessId = i, StartedAt = at, LastHeartbeat = at, StoppedAt = at });
            }

            for (var i = 0; i < 300; i++)
            {
                db.Hosts.Add(new HostLog { InstanceId = Guid.NewGuid(), Name = "crashed-" + i, ProcessId = i, StartedAt = T0, LastHeartbeat = T0.AddSeconds(-i) });
            }

            return await db.SaveChangesAsync();
        });
        var dead = await AddHostAsync("worker-dead", T0);
        var stopped = await AddHostAsync("worker-stopped", T0.AddSeconds(30), stoppedAt: T0.AddSeconds(30));
        var live = await AddHostAsync("worker-live", T0.AddMinutes(2.5));
        var deadRuns = new[] { StartRun(dead), StartRun(dead) };
        var stoppedRun = StartRun(stopped);
        var liveRun = StartRun(live);
        await _host.FlushAsync();
        await AdvanceAsync(TimeSpan.FromMinutes(3));

        var first = await Sweeper.SweepOnceAsync(CancellationToken.None);

        Assert.That((first.HostRuns, Sweeper.HostsRead), Is.EqualTo((3, 3)), "the three hosts with ACTIVE runs, none of the 5,300 without");
        foreach (var (taskId, runId) in deadRuns.Append(stoppedRun))
        {
            Assert.That((await _host.TaskAsync(taskId)).Runs.Single(r => r.Id == runId).State, Is.EqualTo(TaskRunState.Expired));
        }

        Assert.That((await _host.TaskAsync(liveRun.Task)).State, Is.EqualTo(TaskState.Active));

        await AdvanceAsync(TimeSpan.FromSeconds(30));
        var second = await Sweeper.SweepOnceAsync(CancellationToken.None);
        Assert.That((second.HostRuns, Sweeper.HostsRead), Is.EqualTo((0, 1)), "the live host only");
        Assert.That(await _host.QueryAsync(db => db.Hosts.CountAsync(h => h.InstanceId != _recorder.InstanceId)), Is.EqualTo(5_303),
            "nothing deleted: no instance is a week old");
    }

    [Test]
    public async Task HostsToJudge_ReadsTheOpenRunsThenEachHostByItsKey_NeverScansTheHosts()
    {
        var plan = await _host.QueryAsync(async db =>
        {
            for (var i = 0; i < 2_000; i++)
            {
                db.Hosts.Add(new HostLog { InstanceId = Guid.NewGuid(), Name = "old-" + i, StartedAt = T0, LastHeartbeat = T0, StoppedAt = T0 });
            }

            await db.SaveChangesAsync();
            await db.Database.OpenConnectionAsync();
            var connection = db.Database.GetDbConnection();
            await using (var analyze = connection.CreateCommand())
            {
                analyze.CommandText = "ANALYZE";
                await analyze.ExecuteNonQueryAsync();
            }

            await using var command = connection.CreateCommand();
            command.CommandText = (provider == LedgerProvider.Sqlite ? "EXPLAIN QUERY PLAN " : "EXPLAIN ") + LedgerDatabase.For(provider).HostsToJudge;
            var lines = new List<string>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                lines.Add(reader.GetValue(reader.FieldCount - 1).ToString()!);
            }

            return string.Join('\n', lines);
        });

        Assert.That(plan, Does.Contain(LedgerModel.Hosts), plan);
        Assert.That(plan, Does.Not.Match($"(SCAN|Seq Scan on) \"?{LedgerModel.Hosts}"), plan);
    }

    [Test]
    public async Task Sweep_HostGoneForAWeek_IsDeleted()
    {
        var old = await AddHostAsync("worker-4", T0, stoppedAt: T0);
        var recent = await AddHostAsync("worker-5", T0.AddDays(7.5));
        await AdvanceAsync(TimeSpan.FromDays(8));

        await Sweeper.SweepOnceAsync(CancellationToken.None);

        var left = await _host.QueryAsync(db => db.Hosts.AsNoTracking().Select(h => h.InstanceId).ToListAsync());
        Assert.That(left, Does.Not.Contain(old));
        Assert.That(left, Does.Contain(recent));
    }

    [Test]
    public async Task Heartbeat_WritesThisInstanceAndMarksItStopped()
    {
        var heartbeat = _host.Services.GetRequiredService<HostHeartbeat>();
        // The hosted heartbeat's first beat (at T0) must not land after the explicit one below.
        await LedgerHost.EventuallyAsync(
            () => _host.QueryAsync(db => db.Hosts.AnyAsync(h => h.InstanceId == _recorder.InstanceId)), because: "the first heartbeat");
        await AdvanceAsync(TimeSpan.FromSeconds(5));
        await heartbeat.BeatAsync(CancellationToken.None);

        var row = await _host.QueryAsync(db => db.Hosts.AsNoTracking().SingleAsync(h => h.InstanceId == _recorder.InstanceId));
        Assert.That((row.Name, row.ProcessId, row.StartedAt, row.LastHeartbeat, row.StoppedAt),
            Is.EqualTo((_recorder.Options.Host, Environment.ProcessId, T0, T0.AddSeconds(5), (DateTime?)null)));

        await heartbeat.StopAsync(CancellationToken.None);

        row = await _host.QueryAsync(db => db.Hosts.AsNoTracking().SingleAsync(h => h.InstanceId == _recorder.InstanceId));
        Assert.That(row.StoppedAt, Is.EqualTo(T0.AddSeconds(5)));
    }
}
