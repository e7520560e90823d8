using JobLog.Recording;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>The host's row: what its heartbeat carries, and when.</summary>
public class HostHeartbeatTests
{
    // Session 34 (session 33 apps, found not fixed): a stranded line reached the host's row with the next heartbeat only,
    // up to a HeartbeatInterval after the check that found it (and a cleared one stayed that long).
    [Test]
    public async Task AStrandedLineThatChanges_IsWrittenAtOnce_NotWithTheNextHeartbeat()
    {
        const string Line = "1 scheduled message overdue by more than 00:00:10 for a broker none of this process's buses reaches";
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.HeartbeatInterval = TimeSpan.FromMinutes(10);
            o.HostTimeout = TimeSpan.FromMinutes(30);
        });
        var instance = host.Services.GetRequiredService<LedgerRecorder>().InstanceId;
        var stranded = host.Services.GetRequiredService<StrandedWork>();
        await LedgerHost.EventuallyAsync(() => host.QueryAsync(db => db.Hosts.AnyAsync(h => h.InstanceId == instance)), TimeSpan.FromMinutes(1), "the first heartbeat");

        stranded.Set(StrandedKind.ScheduledMessages, Line);
        await LedgerHost.EventuallyAsync(() => host.QueryAsync(db => db.Hosts.AnyAsync(h => h.InstanceId == instance && h.Stranded == Line)),
            TimeSpan.FromMinutes(1), "the line on the host's row within a minute (the next heartbeat is 10 minutes away)");

        stranded.Set(StrandedKind.ScheduledMessages, null);
        await LedgerHost.EventuallyAsync(() => host.QueryAsync(db => db.Hosts.AnyAsync(h => h.InstanceId == instance && h.Stranded == null)),
            TimeSpan.FromMinutes(1), "cleared within a minute");
    }

    // Session 34 (apps), found not fixed: a writer's error reached the host's row with the next heartbeat only, up to a
    // HeartbeatInterval after the writer began to fail (and a recovered writer looked failing that long).
    [Test]
    public async Task AWriterThatBeginsToFail_OrRecovers_IsOnTheHostsRowAtOnce_NotWithTheNextHeartbeat()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.HeartbeatInterval = TimeSpan.FromMinutes(10);
            o.HostTimeout = TimeSpan.FromMinutes(30);
        });
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var instance = recorder.InstanceId;
        await LedgerHost.EventuallyAsync(() => host.QueryAsync(db => db.Hosts.AnyAsync(h => h.InstanceId == instance)), TimeSpan.FromMinutes(1), "the first heartbeat");

        // What the writer does before each wait of its retries (LedgerWriter.Retrying).
        recorder.NoteFailure(new InvalidOperationException("SQLite Error 13: 'database or disk is full'."));
        recorder.SetFailing(true);
        await LedgerHost.EventuallyAsync(
            () => host.QueryAsync(db => db.Hosts.AnyAsync(h => h.InstanceId == instance && h.WriterError != null && h.WriterError.Contains("disk is full") && h.WriterFailingSince != null)),
            TimeSpan.FromMinutes(1), "the writer's error on the host's row within a minute (the next heartbeat is 10 minutes away)");

        // Another failed attempt of the same outage is no transition: nothing to write at once.
        recorder.SetFailing(true);
        recorder.SetFailing(false);
        await LedgerHost.EventuallyAsync(
            () => host.QueryAsync(db => db.Hosts.AnyAsync(h => h.InstanceId == instance && h.WriterError == null && h.WriterFailingSince == null)),
            TimeSpan.FromMinutes(1), "cleared within a minute once the writer recovered");
    }
}
