using JobLog.Testing.Processes;
using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// Session 30 (a new fault): the journal's directory deleted and made again at once (<c>rm -rf spool; mkdir -m 0700 spool</c>:
/// an operator's cleanup, a deployment script that "resets" its directories) while a publisher and a consumer run during an
/// outage, then both SIGKILLed. The processes' open segments are gone from the new directory, which looks like theirs.
/// The promise tried: every send that returned and every acknowledged delivery reaches the ledger, no run stays ACTIVE.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class JournalDirectoryRecreatedTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(3);

    [Test]
    [CancelAfter(300_000)]
    public async Task JournalDirectoryDeletedAndMadeAgainDuringAnOutage_ThenBothKilled_NothingLost_NoRunStaysActive()
    {
        await using var world = await FaultWorld.SqliteAsync();
        var consumer = await world.StartConsumerAsync();
        var publisher = await world.StartPublisherAsync(1_000_000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 300, Drain, "300 probes consumed");

        var outage = world.LockSqliteLedgerAsync(TimeSpan.FromSeconds(30));
        var before = (world.Published.Count, world.Consumed.Count);
        await world.DeleteJournalDirectoryAsync();
        // The operator's mkdir, unless a process made it again first (a journal that finds its files gone writes them again).
        await MachineCommands.RunAsync("mkdir", ["-p", "-m", "0700", world.JournalDirectory]);
        await world.WaitUntilAsync(() => world.Published.Count >= before.Item1 + 1000 && world.Consumed.Count >= before.Item2 + 500,
            Drain, "1000 probes published and 500 consumed after the directory was made again");
        await publisher.KillAsync();
        await consumer.KillAsync();
        await outage;

        await world.StartConsumerAsync();
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, "a send that returned, or a delivery acknowledged, after the deletion reaches the ledger\n" + world.Tails());
            Assert.That(tally.Stuck, Is.Zero, tally.ToString());
        });
    }
}
