using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// Session 35: a MassTransit job consumer (the job service on RabbitMQ, its job sagas in memory, JobLog's scheduler)
/// SIGKILLed during its jobs' attempt 0, then started again. The promise tried: no run of the jobs stays ACTIVE forever
/// (the killed attempts are closed when their host stops beating), each job's task says what became of it, and the
/// hosts list shows the killed process dead.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class JobKilledTests
{
    private static readonly string[] Jobs = ["--Fault:Jobs=true"];

    [Test]
    [CancelAfter(300_000)]
    public async Task JobConsumerKilledDuringAttemptZero_ThenStartedAgain_NoRunStaysActive_AndTheHostsListShowsItDead()
    {
        await using var world = await FaultWorld.SqliteAsync();
        var consumer = await world.StartWithAsync("consume", 0, 600_000, Jobs);
        await world.StartWithAsync("publish", 3, 0, Jobs);
        await world.WaitUntilAsync(() => world.Published.Count == 3, TimeSpan.FromSeconds(60), "3 jobs submitted");
        await world.WaitUntilAsync(
            async () => await world.CountAsync("SELECT COUNT(*) FROM \"JobLogTaskRuns\" WHERE \"State\" = 1 AND \"ConsumerType\" = 'ProbeJobConsumer'") == 3,
            TimeSpan.FromSeconds(90), "the 3 jobs' attempts 0 ACTIVE");

        await consumer.KillAsync();

        // Started again: quick jobs, and it sweeps every 0.5 s with a 5 s host timeout (the killed process's heartbeats stop).
        await world.StartWithAsync("consume", 0, 0, [.. Jobs, "--Fault:HostTimeoutMs=5000", "--Fault:SweepMs=500"]);
        await world.WaitUntilAsync(async () => await world.ActiveRunsAsync() == 0, TimeSpan.FromSeconds(120), "no run ACTIVE");
        var hosts = world.StartWorkerCommand("hosts", "--json", "--JobLog:HeartbeatInterval=00:00:01", "--JobLog:HostTimeout=00:00:05");
        await hosts.WaitForExitAsync(TimeSpan.FromSeconds(60));
        var jobs = new List<string>();
        foreach (var id in world.Published)
        {
            jobs.Add(await world.DescribeTaskAsync(id));
        }

        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        var (expired, _) = await world.ExpiredByHostAsync();
        var activeTasks = await world.CountAsync("SELECT COUNT(*) FROM \"JobLogTasks\" WHERE \"State\" = 2");
        TestContext.Out.WriteLine($"{tally}; attempts closed as their host's: {expired}; tasks ACTIVE {activeTasks}\n{string.Join("\n", jobs)}\nhosts: {hosts.Output}");
        Assert.Multiple(() =>
        {
            Assert.That(hosts.ExitCode, Is.Zero, hosts.Tail(20));
            Assert.That(tally.Stuck, Is.Zero, "runs still ACTIVE: " + tally);
            Assert.That(activeTasks, Is.Zero, "tasks still ACTIVE");
            Assert.That(expired, Is.GreaterThanOrEqualTo(3), "the killed attempts closed as 'stopped sending heartbeats'");
            Assert.That(jobs, Has.All.Contains("ProbeJobConsumer #0"), "each job's task has its attempt 0");
            Assert.That(ClockSkewTests.HostStates(hosts.Output), Has.Some.EqualTo(nameof(JobLog.Querying.HostState.Dead)).IgnoreCase, "the killed process is listed dead");
        });
    }
}
