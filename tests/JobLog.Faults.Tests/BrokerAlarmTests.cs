using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// A RabbitMQ resource alarm (memory or disk) blocks every publishing connection until it clears: the fault app's sends
/// wait, are cancelled after 15 s and tried again with the same MessageId. The promise tried: a send that returned is a
/// task, a consumed probe has its SUCCEEDED run, and a send that was cancelled meanwhile, tried again and consumed, is a
/// SUCCEEDED task without the cancelled attempt's "Dispatch failed" error (session 26).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class BrokerAlarmTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(3);

    [Test]
    [CancelAfter(400_000)]
    public async Task MemoryAlarmBlocksThePublisher_ForLongerThanItsSendTimeout_NothingLost_AndTheLedgerSaysWhatHappened()
    {
        await using var world = await FaultWorld.SqliteWithOwnBrokerAsync();
        var publisher = await world.StartPublisherAsync(20_000);
        await world.StartConsumerAsync();
        await world.WaitUntilAsync(() => world.Published.Count >= 100, Drain, "100 probes published");

        await world.Rabbit!.SetMemoryAlarmAsync(on: true);
        var atAlarm = world.Published.Count;
        await world.WaitUntilAsync(() => publisher.Output.Split("fault-app send failed").Length > 2, Drain, "2 sends cancelled by the publisher's 15 s timeout");
        var duringAlarm = world.Published.Count - atAlarm;
        await world.Rabbit.SetMemoryAlarmAsync(on: false);

        await world.WaitUntilAsync(() => world.Published.Count == 20_000, Drain, "20000 probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        var failedButSucceeded = await world.CountAsync(
            "SELECT COUNT(*) FROM \"JobLogTasks\" WHERE \"ErrorMessage\" LIKE 'Dispatch failed%' AND \"State\" = 3");
        var failedTasks = await world.CountAsync("SELECT COUNT(*) FROM \"JobLogTasks\" WHERE \"ErrorMessage\" LIKE 'Dispatch failed%'");
        TestContext.Out.WriteLine($"sends returned during the alarm: {duringAlarm}; tasks marked 'Dispatch failed': {failedTasks}, of them SUCCEEDED: {failedButSucceeded}");
        Assert.Multiple(() =>
        {
            Assert.That((tally.Lost, tally.Stuck), Is.EqualTo((0, 0)), tally.ToString());
            Assert.That(tally.Tasks, Is.EqualTo(20_000), tally.ToString());
            Assert.That(failedButSucceeded, Is.Zero,
                "a task whose send was tried again and consumed keeps no 'Dispatch failed' error of the cancelled attempt");
        });
    }
}
