using JobLog.Querying;
using JobLog.Recording;
using JobLog.Sweeping;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Sweeping;

/// <summary>
/// On PostgreSQL, hosts are stamped and judged by the database's clock: a live host whose wall clock is off, or a sweeper
/// and a hosts list whose clock is, neither closes its runs nor shows it dead (real clocks, not HostSweepTests' fake one).
/// </summary>
[TestFixture]
public class HostClockTests
{
    // Session 29 (faults): a heartbeat carried its host's wall clock, and the host pass and the Hosts page compared it
    // with theirs. A one-shot sweep closed the runs of a live host whose clock was 10 minutes behind, and the page showed
    // it dead.
    [Test]
    public async Task LiveHost_ItsClockOrTheSweepersTenMinutesOff_IsNotSwept_AndNotShownDead([Values] bool sweepersClockAhead)
    {
        await using var ledger = await Ledgers.CreateAsync(LedgerProvider.PostgreSql);
        Action<JobLogOptions> options = o =>
        {
            o.HeartbeatInterval = TimeSpan.FromSeconds(15);
            o.HostTimeout = TimeSpan.FromMinutes(2);
        };
        var off = TimeSpan.FromMinutes(10);
        await using var live = await LedgerHost.StartAsync(ledger, options,
            s => s.AddSingleton<TimeProvider>(new FakeTimeProvider(DateTimeOffset.UtcNow - (sweepersClockAhead ? TimeSpan.Zero : off))));
        var recorder = live.Services.GetRequiredService<LedgerRecorder>();
        await LedgerHost.EventuallyAsync(
            () => live.QueryAsync(db => db.Hosts.AnyAsync(h => h.InstanceId == recorder.InstanceId)), because: "the live host's first heartbeat");
        var task = new TaskPayload { Id = Guid.NewGuid(), Name = "Report", DispatchedAt = DateTime.UtcNow };
        recorder.Enqueue(new TaskDispatched(task));
        recorder.Enqueue(new RunStarted(
            new RunPayload { Id = Guid.NewGuid(), TaskId = task.Id, Name = "Report", ConsumerType = "C", Start = DateTime.UtcNow, HostInstanceId = recorder.InstanceId },
            task, false));
        await live.FlushAsync();

        var sweepersClock = new FakeTimeProvider(DateTimeOffset.UtcNow + (sweepersClockAhead ? off : TimeSpan.Zero));
        await using var sweeping = await LedgerHost.StartAsync(ledger, options, s => s.AddSingleton<TimeProvider>(sweepersClock));

        // A one-shot sweep (the CLI's) judges a host it reads for the first time by the clocks.
        var swept = await sweeping.Services.GetRequiredService<TaskLogSweeper>().SweepOnceAsync(CancellationToken.None);
        await using var scope = sweeping.Services.CreateAsyncScope();
        var hosts = await scope.ServiceProvider.GetRequiredService<LedgerQueries>()
            .HostsAsync(new HostFilter(), TimeSpan.FromSeconds(15), TimeSpan.FromMinutes(2), sweepersClock.GetUtcNow().UtcDateTime, CancellationToken.None);

        Assert.That(swept.HostRuns, Is.Zero, "the live host's run is left");
        Assert.That((await live.TaskAsync(task.Id)).State, Is.EqualTo(TaskState.Active));
        Assert.That(hosts.Items.Single(h => h.InstanceId == recorder.InstanceId).State, Is.EqualTo(HostState.Alive));
        // Session 30: its age too (the Hosts page's "(... ago)", the CLI's AGE), by the clock the heartbeat is stamped with.
        Assert.That(hosts.Items.Single(h => h.InstanceId == recorder.InstanceId).SecondsSinceHeartbeat, Is.LessThan(off.TotalSeconds / 2));
    }
}
