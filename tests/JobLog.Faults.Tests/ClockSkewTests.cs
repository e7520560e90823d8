using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// Wall clocks that disagree: a host whose clock is minutes behind or ahead of another's (machines sharing a PostgreSQL
/// ledger, one without NTP; or one clock stepped by NTP after a pause), faked per process by the fault app's
/// <c>Fault:ClockOffsetMs</c> (JobLog's <see cref="TimeProvider"/>'s wall time moved; its monotonic time is the machine's).
/// The promise tried: a live host's runs are not closed by another process's host sweep, and a dead host's runs are closed
/// after <see cref="JobLogOptions.HostTimeout"/>, whatever the clocks say.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class ClockSkewTests
{
    private const int FiveMinutes = 300_000;

    private static readonly string[] QuickSweeper = ["--Fault:HostTimeoutMs=5000", "--Fault:SweepMs=500"];

    [TestCase(-FiveMinutes, 0, TestName = "LiveConsumerWhoseClockIsFiveMinutesBehind_ItsRunsAreNotExpiredByAnotherProcesssSweep")]
    [TestCase(0, FiveMinutes, TestName = "LiveConsumer_ItsRunsAreNotExpiredByTheSweepOfAProcessWhoseClockIsFiveMinutesAhead")]
    [CancelAfter(180_000)]
    public async Task LiveConsumer_ItsRunsAreNotExpired_WhateverTheClocksSay(int consumerOffsetMs, int sweeperOffsetMs)
    {
        await using var world = await FaultWorld.PostgresAsync();
        await world.StartWithAsync("consume", 0, 15_000, $"--Fault:ClockOffsetMs={consumerOffsetMs}");
        await world.StartWithAsync("publish", 4, 0, [.. QuickSweeper, $"--Fault:ClockOffsetMs={sweeperOffsetMs}"]);
        await world.WaitUntilAsync(() => world.Published.Count == 4, TimeSpan.FromSeconds(60), "4 probes published");

        // While the consumer sleeps in its 4 probes (15 s each, at once), the publisher sweeps every 0.5 s with a 5 s host
        // timeout, and the consumer beats every second.
        var sawActive = false;
        var expiredWhileAlive = 0;
        for (var waited = 0; world.Consumed.Count < 4; waited++)
        {
            Assert.That(waited, Is.LessThan(300), "the 4 probes consumed within 60 s");
            sawActive |= await world.ActiveRunsAsync() > 0;
            expiredWhileAlive = Math.Max(expiredWhileAlive, (await world.ExpiredByHostAsync()).Runs);
            await Task.Delay(200);
        }

        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(sawActive, Is.True, "the consumer's runs were seen ACTIVE");
            Assert.That(expiredWhileAlive, Is.Zero, "runs of a host beating every second closed as 'stopped sending heartbeats'");
            Assert.That((tally.Lost, tally.Stuck), Is.EqualTo((0, 0)), tally.ToString());
        });
    }

    /// <summary>
    /// Session 34: the consumer's own wall clock steps an hour (an NTP step, a VM resumed) 5 s into its 4 probes (15 s each),
    /// and it sweeps every 0.5 s with a 5 s host timeout itself: its runs finish SUCCEEDED, none is closed as expired, none
    /// ends before it started, nothing is lost or stuck.
    /// </summary>
    [TestCase(3_600_000, TestName = "ConsumerWhoseWallClockStepsAnHourAheadMidRun_ItsRunsFinish_NoneExpired")]
    [TestCase(-3_600_000, TestName = "ConsumerWhoseWallClockStepsAnHourBackMidRun_ItsRunsFinish_NoneExpired")]
    [CancelAfter(180_000)]
    public async Task ConsumerWhoseWallClockStepsMidRun_ItsRunsFinish_NoneExpired(int jumpMs)
    {
        await using var world = await FaultWorld.PostgresAsync();
        await world.StartWithAsync("consume", 0, 15_000, [.. QuickSweeper, $"--Fault:ClockJumpMs={jumpMs}", "--Fault:ClockJumpAfterMs=5000"]);
        await world.StartWithAsync("publish", 4, 0);
        await world.WaitUntilAsync(() => world.Published.Count == 4, TimeSpan.FromSeconds(60), "4 probes published");

        var expiredWhileAlive = 0;
        for (var waited = 0; world.Consumed.Count < 4; waited++)
        {
            Assert.That(waited, Is.LessThan(300), "the 4 probes consumed within 60 s");
            expiredWhileAlive = Math.Max(expiredWhileAlive, await world.CountAsync("SELECT COUNT(*) FROM \"JobLogTaskRuns\" WHERE \"State\" = 5"));
            await Task.Delay(200);
        }

        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        var succeeded = await world.CountAsync("SELECT COUNT(*) FROM \"JobLogTaskRuns\" WHERE \"State\" = 2");
        var backwards = await world.CountAsync("SELECT COUNT(*) FROM \"JobLogTaskRuns\" WHERE \"Stop\" < \"Start\"");
        var longest = await world.CountAsync("SELECT COALESCE(MAX(EXTRACT(EPOCH FROM \"Stop\" - \"Start\")), 0)::int FROM \"JobLogTaskRuns\"");
        TestContext.Out.WriteLine($"clock step {jumpMs} ms: {tally}; runs SUCCEEDED {succeeded}, expired while alive {expiredWhileAlive}, ending before they started {backwards}, longest run {longest} s");
        Assert.Multiple(() =>
        {
            Assert.That(expiredWhileAlive, Is.Zero, "runs of a live consumer closed as expired");
            Assert.That(succeeded, Is.EqualTo(4), "the 4 runs SUCCEEDED");
            Assert.That(backwards, Is.Zero, "runs whose stop is before their start");
            Assert.That(longest, Is.LessThan(60), "a run lasts its own 15 s, not the step");
            Assert.That((tally.Lost, tally.Stuck), Is.EqualTo((0, 0)), tally.ToString());
        });
    }

    /// <summary>
    /// Session 26: a process started while a live host whose clock is behind runs messages reads that host for the first
    /// time; its sweep judged the host by the clocks then, and closed its runs.
    /// </summary>
    [Test]
    [CancelAfter(180_000)]
    public async Task LiveConsumerWhoseClockIsFiveMinutesBehind_ItsRunsAreNotExpiredByTheFirstSweepOfAProcessStartedLater()
    {
        await using var world = await FaultWorld.PostgresAsync();
        await world.StartWithAsync("consume", 0, 15_000, $"--Fault:ClockOffsetMs={-FiveMinutes}");
        await world.StartWithAsync("publish", 4, 0);
        await world.WaitUntilAsync(() => world.Published.Count == 4, TimeSpan.FromSeconds(60), "4 probes published");
        await world.WaitUntilAsync(async () => await world.ActiveRunsAsync() == 4, TimeSpan.FromSeconds(120), "4 ACTIVE runs");

        // A process that sweeps every 0.5 s with a 5 s host timeout starts now: its first sweep reads the consumer first.
        await world.StartWithAsync("publish", 0, 0, QuickSweeper);
        var expiredWhileAlive = 0;
        for (var waited = 0; world.Consumed.Count < 4; waited++)
        {
            Assert.That(waited, Is.LessThan(300), "the 4 probes consumed within 60 s");
            expiredWhileAlive = Math.Max(expiredWhileAlive, (await world.ExpiredByHostAsync()).Runs);
            await Task.Delay(200);
        }

        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(expiredWhileAlive, Is.Zero, "runs of a host beating every second closed by the first sweep of a process started later");
            Assert.That((tally.Lost, tally.Stuck), Is.EqualTo((0, 0)), tally.ToString());
        });
    }

    /// <summary>
    /// Session 29: the Worker's one-shot <c>sweep</c> (no watch: it cannot wait) and its <c>hosts</c> list judged a host by
    /// comparing its heartbeat's wall clock with theirs. On PostgreSQL the heartbeats now carry the database's clock.
    /// </summary>
    [Test]
    [CancelAfter(180_000)]
    public async Task LiveConsumerWhoseClockIsTenMinutesBehind_TheWorkersOneShotSweepLeavesItsRuns_AndItsHostsListShowsNoneDead()
    {
        await using var world = await FaultWorld.PostgresAsync();
        await world.StartWithAsync("consume", 0, 30_000, $"--Fault:ClockOffsetMs={-2 * FiveMinutes}");
        await world.StartWithAsync("publish", 4, 0);
        await world.WaitUntilAsync(async () => await world.ActiveRunsAsync() == 4, TimeSpan.FromSeconds(60), "4 ACTIVE runs");

        var sweep = world.StartWorkerCommand("sweep");
        var hosts = world.StartWorkerCommand("hosts", "--json");
        await sweep.WaitForExitAsync(TimeSpan.FromSeconds(60));
        await hosts.WaitForExitAsync(TimeSpan.FromSeconds(60));
        var closed = (await world.ExpiredByHostAsync()).Runs;
        var listed = HostStates(hosts.Output);
        await world.WaitUntilAsync(() => world.Consumed.Count == 4, TimeSpan.FromSeconds(90), "the 4 probes consumed");
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        TestContext.Out.WriteLine($"hosts: {string.Join(", ", listed)}; {tally}");
        Assert.Multiple(() =>
        {
            Assert.That((sweep.ExitCode, hosts.ExitCode), Is.EqualTo((0, 0)), sweep.Tail(20) + hosts.Tail(20));
            Assert.That(closed, Is.Zero, "runs of a live host closed by the Worker's sweep");
            Assert.That(listed, Has.Count.GreaterThanOrEqualTo(2).And.None.EqualTo("dead").IgnoreCase, "the publisher, the consumer (and the sweep), by the hosts list");
            Assert.That((tally.Lost, tally.Stuck), Is.EqualTo((0, 0)), tally.ToString());
        });
    }

    /// <summary>The states in the JSON of <c>hosts --json</c>, by name.</summary>
    internal static List<string> HostStates(string output)
    {
        using var json = System.Text.Json.JsonDocument.Parse(output[output.IndexOf('[', StringComparison.Ordinal)..(output.LastIndexOf(']') + 1)]);
        return [.. json.RootElement.EnumerateArray().Select(h => h.EnumerateObject().Single(p => p.NameEquals("state") || p.NameEquals("State")).Value)
            .Select(v => v.ValueKind == System.Text.Json.JsonValueKind.Number ? ((JobLog.Querying.HostState)v.GetInt32()).ToString() : v.GetString()!)];
    }

    [Test]
    [CancelAfter(180_000)]
    public async Task ConsumerWhoseClockIsFiveMinutesAhead_Killed_ItsRunsAreExpiredAfterTheHostTimeout_NotAfterTheSkew()
    {
        await using var world = await FaultWorld.PostgresAsync();
        var consumer = await world.StartWithAsync("consume", 0, 120_000, $"--Fault:ClockOffsetMs={FiveMinutes}");
        await world.StartWithAsync("publish", 4, 0, QuickSweeper);
        await world.WaitUntilAsync(() => world.Published.Count == 4, TimeSpan.FromSeconds(60), "4 probes published");
        var active = 0;
        for (var waited = 0; active == 0; waited++)
        {
            Assert.That(waited, Is.LessThan(150), "ACTIVE runs in the ledger within 30 s");
            await Task.Delay(200);
            active = await world.ActiveRunsAsync();
        }

        await consumer.KillAsync();

        // No other consumer takes the probes back: only the host sweep of the publisher (5 s host timeout) closes the runs.
        for (var waited = 0; await world.ActiveRunsAsync() > 0; waited++)
        {
            Assert.That(waited, Is.LessThan(300),
                "the killed consumer's runs closed by the publisher's host sweep within 60 s (its heartbeats were 5 min ahead)");
            await Task.Delay(200);
        }

        Assert.That((await world.ExpiredByHostAsync()).Runs, Is.GreaterThanOrEqualTo(active), "each closed run says which host stopped");
    }
}
