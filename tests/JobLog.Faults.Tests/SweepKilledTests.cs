using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// The sweeper (<c>joblog sweep</c>, README "Tasks, runs and their states") SIGKILLed in the middle of a large stale
/// backlog, on SQLite and PostgreSQL. The promise tried: each batch commits whole (its expiries with the rollups their
/// triggers keep), so the next sweep finishes what the killed one left: every stale task EXPIRED once (the two sweeps'
/// expiries add up to the backlog), no run of a live consumer expired, and the rollups equal the ledger's counts.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class SweepKilledTests
{
    private const int Stale = 4000;
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(4);
    // The ACTIVE runs of tasks with no stale limit (the live consumer's).
    private const string LiveRuns = "SELECT r.\"Id\", r.\"State\" FROM \"JobLogTaskRuns\" r JOIN \"JobLogTasks\" t ON t.\"Id\" = r.\"TaskId\" WHERE r.\"State\" = 1 AND t.\"Stale\" IS NULL";
    private const string NoSweeper = "--Fault:SweepMs=3600000";
    private const string Expired = "SELECT COUNT(*) FROM \"JobLogTasks\" WHERE \"State\" = 6";

    [TestCase("sqlite")]
    [TestCase("postgres")]
    [CancelAfter(480_000)]
    public async Task SweepKilledMidway_TheNextSweepFinishes_EveryStaleTaskExpiredOnce(string database)
    {
        await using var world = database == "sqlite" ? await FaultWorld.SqliteAsync() : await FaultWorld.PostgresAsync();

        // Live: a consumer ten minutes in each of its probes (tasks with no stale limit), heartbeating every second. The
        // processes' own sweepers wait an hour: the sweeps are the CLI's.
        await world.StartWithAsync("consume", 0, 600_000, NoSweeper);
        var live = await world.StartWithAsync("publish", 8, 0, NoSweeper);
        await world.WaitUntilAsync(() => world.Published.Count == 8, Drain, "8 live probes published");
        await world.WaitUntilAsync(async () => await world.ActiveRunsAsync() > 0, Drain, "the live consumer's runs ACTIVE");
        await live.StopAsync(TimeSpan.FromSeconds(60));

        // The backlog: probes with a stale limit of a second that nobody finishes (the consumer is busy: the few it starts
        // have ACTIVE runs, which their task's expiry ends with it).
        var stale = await world.StartWithAsync("publish", Stale, 0, "--Fault:StaleMs=1000", NoSweeper);
        await world.WaitUntilAsync(() => world.Published.Count == Stale + 8, Drain, $"{Stale} stale probes published");
        await stale.StopAsync(TimeSpan.FromSeconds(60));
        await world.WaitUntilAsync(
            async () => await world.CountAsync("SELECT COUNT(*) FROM \"JobLogTasks\" WHERE \"Stale\" IS NOT NULL") == Stale, Drain, "the stale tasks written");
        var deadline = await LastStaleAsync(world);
        await world.WaitUntilAsync(() => DateTime.UtcNow > deadline.AddSeconds(1), Drain, "every stale deadline passed");
        var liveRuns = await world.GroupCountsAsync(LiveRuns);

        // Small batches, one connection: the sweep takes many commits, and is killed after a tenth of them.
        var first = world.StartWorkerCommand("sweep", "--JobLog:Sweeper:BatchSize=10", "--JobLog:Sweeper:Parallelism=1");
        while (await world.CountAsync(Expired) < Stale / 10)
        {
            Assert.That(first.HasExited, Is.False, "the sweep ended before it was killed\n" + first.Tail(20));
            await Task.Delay(10);
        }

        await first.KillAsync();
        var atKill = await world.CountAsync(Expired);
        var second = world.StartWorkerCommand("sweep");
        await second.WaitForExitAsync(TimeSpan.FromSeconds(180));
        var swept = System.Text.RegularExpressions.Regex.Match(second.Output, @"expired (\d+), healed (\d+)");
        var (expired, setAsStale) = (await world.CountAsync(Expired), await world.CountAsync("SELECT COUNT(*) FROM \"JobLogTasks\" WHERE \"IsSetAsStale\" = TRUE"));
        var liveAfter = await world.GroupCountsAsync(LiveRuns);
        var mismatches = await world.RollupMismatchesAsync();
        TestContext.Out.WriteLine(
            $"{database}: stale {Stale}; expired when killed {atKill}; the next sweep: '{swept.Value}'; expired {expired}, set as stale {setAsStale}; " +
            $"live runs ACTIVE before {liveRuns.Count}, after {liveRuns.Keys.Count(liveAfter.ContainsKey)}; rollup mismatches {mismatches.Count}");
        foreach (var mismatch in mismatches.Take(10))
        {
            TestContext.Out.WriteLine(mismatch);
        }

        Assert.Multiple(() =>
        {
            Assert.That(atKill, Is.LessThan(Stale), "the sweep killed before it was done");
            Assert.That(second.ExitCode, Is.Zero, "the next sweep\n" + second.Tail(30));
            Assert.That(swept.Success, Is.True, "the next sweep's result\n" + second.Tail(30));
            Assert.That(swept.Success ? int.Parse(swept.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : -1, Is.EqualTo(Stale - atKill),
                "the next sweep expired exactly what the killed one left");
            Assert.That((expired, setAsStale), Is.EqualTo((Stale, Stale)), "every stale task EXPIRED (and set as stale) once");
            Assert.That(liveRuns, Is.Not.Empty, "live runs to keep");
            Assert.That(liveRuns.Keys.Where(id => !liveAfter.ContainsKey(id)), Is.Empty, "no run of the live consumer expired");
            Assert.That(mismatches, Is.Empty, "the rollups equal the counts");
        });
    }

    /// <summary>The latest stale deadline of the ledger (UTC).</summary>
    private static async Task<DateTime> LastStaleAsync(FaultWorld world) => await world.ScalarAsync("SELECT MAX(\"Stale\") FROM \"JobLogTasks\"") switch
    {
        DateTime value => DateTime.SpecifyKind(value, DateTimeKind.Utc),
        string text => DateTime.Parse(text, System.Globalization.CultureInfo.InvariantCulture,
            System.Globalization.DateTimeStyles.AdjustToUniversal | System.Globalization.DateTimeStyles.AssumeUniversal),
        var other => throw new InvalidOperationException($"No stale deadline: {other}"),
    };
}
