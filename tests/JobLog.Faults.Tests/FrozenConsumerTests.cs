using JobLog.Testing.Processes;
using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// A consumer paused (SIGSTOP: a frozen container or VM, a debugger, a long stall) for longer than the host timeout while
/// it runs messages: another process's host sweep takes it for dead and expires its runs. The promise tried: when it goes on
/// (SIGCONT) and finishes them, the ledger tells what happened (SUCCEEDED runs and tasks), no EXPIRED guess is left, and
/// nothing is lost or stuck.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class FrozenConsumerTests
{
    [Test]
    [CancelAfter(180_000)]
    public async Task ConsumerFrozenLongerThanTheHostTimeout_ItsRunsExpiredMeanwhile_ThenItGoesOnAndFinishes_TheLedgerShowsThemSucceeded()
    {
        await using var world = await FaultWorld.PostgresAsync();
        var consumer = await world.StartWithAsync("consume", 0, 8_000);
        await world.StartWithAsync("publish", 4, 0, "--Fault:HostTimeoutMs=3000", "--Fault:SweepMs=500");
        await world.WaitUntilAsync(() => world.Published.Count == 4, TimeSpan.FromSeconds(60), "4 probes published");
        await world.WaitUntilAsync(async () => await world.ActiveRunsAsync() == 4, TimeSpan.FromSeconds(120), "4 ACTIVE runs");

        await MachineCommands.RunAsync("kill", ["-STOP", consumer.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        try
        {
            // The publisher's sweep (3 s host timeout) takes the frozen consumer for dead.
            await world.WaitUntilAsync(async () => (await world.ExpiredByHostAsync()).Runs == 4, TimeSpan.FromSeconds(60),
                "the frozen consumer's 4 runs expired by the publisher's host sweep");
        }
        finally
        {
            await MachineCommands.RunAsync("kill", ["-CONT", consumer.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        }

        await world.WaitUntilAsync(() => world.Consumed.Count == 4, TimeSpan.FromSeconds(60), "the 4 probes consumed once the consumer goes on");
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        var (expiredRuns, expiredTasks) = await world.ExpiredByHostAsync();
        var succeededTasks = await world.CountAsync("SELECT COUNT(*) FROM \"JobLogTasks\" WHERE \"State\" = 3");
        Assert.Multiple(() =>
        {
            Assert.That((tally.Lost, tally.Stuck, tally.Runs), Is.EqualTo((0, 0, 4)), tally.ToString());
            Assert.That((expiredRuns, expiredTasks), Is.EqualTo((0, 0)), "the host sweep's guesses replaced by the real ends");
            Assert.That(succeededTasks, Is.EqualTo(4), "the tasks SUCCEEDED");
        });
    }
}
