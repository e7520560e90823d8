using JobLog.Recording;
using JobLog.Recording.Journal;
using JobLog.Testing;
using JobLog.Testing.Processes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>
/// The journal's directory read-only (its file system remounted so after an error): the segments stopped processes left
/// there are replayed but cannot be deleted. A small tmpfs, mounted and remounted read-only by the test (as root).
/// </summary>
[TestFixture]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class ReadOnlyJournalTests
{
    // Session 28 (faults) replayed them at every start: as long as the outage's records each time, and what the ledger
    // deleted since (a retention purge) came back.
    [Test]
    public async Task SegmentsReplayedFromAReadOnlyDirectory_AreNotReplayedAgainAtTheNextStart()
    {
        Assume.That(Environment.UserName, Is.EqualTo("root"), "mounting a file system takes root");
        var journal = Directory.CreateTempSubdirectory("joblog-ro-").FullName;
        await MachineCommands.RunAsync("mount", ["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", journal]);
        await using var ledger = TestLedger.Sqlite();
        try
        {
            // A process journals three dispatches and dies before its writer commits them.
            var killed = await StartAsync(ledger, journal, start: false);
            var earlier = new[] { Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid() };
            await RecorderTestKit.EnqueueJournaledAsync(killed.Services.GetRequiredService<LedgerRecorder>(), [.. earlier.Select(Dispatch)]);
            killed.Host.Dispose();
            await MachineCommands.RunAsync("mount", ["-o", "remount,ro", journal]);

            await using (var next = await StartAsync(ledger, journal, start: true))
            {
                await LedgerHost.EventuallyAsync(
                    async () => await next.QueryAsync(db => db.TaskLogs.CountAsync()) == 3, because: "the read-only directory's segments replayed");
            }

            // A retention purge deletes them.
            await using (var purge = await StartAsync(ledger, journal, start: false))
            {
                await purge.QueryAsync(db => db.TaskLogs.ExecuteDeleteAsync());
            }

            await using var third = await StartAsync(ledger, journal, start: true);
            var now = Guid.NewGuid();
            third.Services.GetRequiredService<LedgerRecorder>().Enqueue(Dispatch(now));
            await third.FlushAsync();

            // Left-overs are replayed before anything queued now: had they been, they would be in the ledger by now.
            var ids = await third.QueryAsync(db => db.TaskLogs.AsNoTracking().Select(t => t.Id).ToListAsync());
            Assert.That(ids, Is.EqualTo(new[] { now }), "the purged tasks are not brought back");
        }
        finally
        {
            await MachineCommands.RunAsync("umount", ["-l", journal]);
            File.Delete(ReadOnlyReplays.NoteOf(journal));
            Directory.Delete(journal, recursive: true);
        }
    }

    private static TaskDispatched Dispatch(Guid id) => new(new TaskPayload { Id = id, Name = "ChargeCard", DispatchedAt = DateTime.UtcNow });

    private static async Task<LedgerHost> StartAsync(TestLedger ledger, string journal, bool start)
    {
        var host = await LedgerHost.StartAsync(ledger, o =>
        {
            o.Durability = LedgerDurability.Journaled;
            o.SpoolDirectory = journal;
        }, start: start);
        if (!start)
        {
            await host.Services.GetRequiredService<JobLog.Storage.LedgerSchema>().EnsureReadyAsync(CancellationToken.None);
        }

        return host;
    }
}
