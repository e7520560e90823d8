using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// Session 30 (a new fault): the broker restarted while the ledger is unavailable too (the SQLite file locked by another
/// writer: the processes' writers hold their batches, dispatches held for their runs among them, and acknowledge from the
/// journal), then both processes SIGKILLed before the ledger is free. The promise tried: a send that returned, or a
/// delivery acknowledged, before the kill reaches the ledger through the next process; no run stays ACTIVE.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class BrokerRestartTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(3);

    [Test]
    [CancelAfter(400_000)]
    public async Task BrokerRestartedWhileTheLedgerIsLocked_ThenBothProcessesKilled_NothingLost_NoRunStaysActive()
    {
        await using var world = await FaultWorld.SqliteWithOwnBrokerAsync();
        var consumer = await world.StartConsumerAsync();
        var publisher = await world.StartPublisherAsync(1_000_000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 500, Drain, "500 probes consumed");

        var locked = world.LockSqliteLedgerAsync(TimeSpan.FromSeconds(60));
        var atLock = world.Consumed.Count;
        await world.WaitUntilAsync(() => world.Consumed.Count >= atLock + 300, Drain, "300 more probes consumed while the ledger is locked");
        await world.Rabbit!.RestartAsync(TimeSpan.FromSeconds(5));
        var atRestart = (world.Published.Count, world.Consumed.Count);
        await world.WaitUntilAsync(() => world.Published.Count >= atRestart.Item1 + 200 && world.Consumed.Count >= atRestart.Item2 + 200,
            Drain, "200 more probes published and consumed after the broker's restart, the ledger still locked");
        Assert.That(locked.IsCompleted, Is.False, "the ledger is still locked at the kill");
        await publisher.KillAsync();
        await consumer.KillAsync();
        await locked;

        await world.StartConsumerAsync();
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, "what was acknowledged or published before the kill reaches the ledger: " + tally + "\n" + world.Tails());
            Assert.That(tally.Stuck, Is.Zero, tally.ToString());
        });
    }
}
