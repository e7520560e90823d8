using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// The SQLite ledger's own disk full (not the journal's: that one is <c>FaultTests.JournalOnAFullDisk_…</c>): the
/// database answers, reads work, and every write fails with SQLITE_FULL until space is freed. The promise tried: nothing
/// acknowledged or published meanwhile is lost; it reaches the ledger once the disk has room again.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class LedgerDiskFullTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(3);

    [Test]
    [CancelAfter(400_000)]
    public async Task SqliteLedgersDiskFullDuringLoad_ThenFreed_NothingLost_NoRunStaysActive()
    {
        await using var world = await FaultWorld.SqliteOnASmallDiskAsync(48 * 1024 * 1024);
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(3000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 300, Drain, "300 probes consumed");

        var filler = world.FillLedgerDisk();
        var before = world.Consumed.Count;
        await world.WaitUntilAsync(() => world.Consumed.Count >= before + 600, Drain, "600 more probes consumed while the ledger's disk is full");
        await world.WaitUntilAsync(() => world.Output.Contains("SQLite Error 13", StringComparison.Ordinal), Drain, "a writer meets the full disk (SQLITE_FULL)");
        File.Delete(filler);

        await world.WaitUntilAsync(() => world.Published.Count == 3000, Drain, "3000 probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        var rejected = world.Output.Split('\n').Count(line => line.Contains("dropped a record", StringComparison.Ordinal));
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, $"records kept while the ledger's disk was full ({rejected} log lines say a record was dropped): {tally}");
            Assert.That(tally.Stuck, Is.Zero, tally.ToString());
        });
    }
}
