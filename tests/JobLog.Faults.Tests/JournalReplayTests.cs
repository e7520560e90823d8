using System.Diagnostics;
using JobLog.Testing.Processes;
using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// The journals a killed process leaves are replayed by the next process started on the directory. The promise tried: a
/// process killed in the middle of that replay (an OOM kill, a crash loop at start) loses nothing of them, and two
/// processes started at once on the directory (a deployment's new replicas) replay them without losing or doubling runs.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class JournalReplayTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(3);

    private const string Runs = "SELECT COUNT(*) FROM \"JobLogTaskRuns\"";

    [Test]
    [CancelAfter(300_000)]
    public async Task ProcessKilledInTheMiddleOfItsJournalReplay_ThenTwoStartedAtOnce_NothingLost_NoRunStaysActive()
    {
        await using var world = await FaultWorld.PostgresAsync();
        var consumer = await world.StartConsumerAsync();
        var publisher = await world.StartPublisherAsync(20_000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 300, Drain, "300 probes consumed");

        // Thousands of records acknowledged through the journals during an outage, then both processes killed.
        await world.Postgres!.StopAsync();
        var atOutage = world.Consumed.Count;
        await world.WaitUntilAsync(() => world.Consumed.Count >= atOutage + 3000, Drain, "3000 more probes consumed during the outage");
        await publisher.KillAsync();
        await consumer.KillAsync();
        var consumedByTheKilled = world.Consumed.Count;
        await world.Postgres.StartAsync();
        var runsBefore = await world.CountAsync(Runs);

        // The next process is killed as soon as its writer has committed a first batch of the journals it took.
        var replaying = await world.LaunchConsumerAsync();
        var runsAtKill = runsBefore;
        for (var clock = Stopwatch.StartNew(); runsAtKill == runsBefore;)
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(90)), "the replay begun within 90 s\n" + replaying.Tail(30));
            runsAtKill = await world.CountAsync(Runs);
        }

        await replaying.KillAsync();
        TestContext.Out.WriteLine($"runs in the ledger: {runsBefore} after the outage, {runsAtKill} when the replaying process was killed; " +
            $"{consumedByTheKilled} probes consumed by the killed processes");
        Assert.That(runsAtKill, Is.LessThan(consumedByTheKilled), "the replaying process killed before it had replayed every run");

        var first = await world.LaunchConsumerAsync();
        var second = await world.LaunchConsumerAsync();
        await FaultWorld.WaitUntilReadyAsync(first, TimeSpan.FromSeconds(90));
        await FaultWorld.WaitUntilReadyAsync(second, TimeSpan.FromSeconds(90));
        await world.DrainAsync(Drain);
        await world.StopAllAsync();

        var tally = await world.TallyAsync();
        var doubled = await world.CountAsync(
            "SELECT COUNT(*) FROM (SELECT \"TaskId\" FROM \"JobLogTaskRuns\" WHERE \"State\" = 2 GROUP BY \"TaskId\" HAVING COUNT(*) > 1) d");
        TestContext.Out.WriteLine($"tasks with more than one SUCCEEDED run (redeliveries of the killed processes' messages): {doubled}");
        Assert.Multiple(() =>
        {
            Assert.That((tally.Lost, tally.Stuck), Is.EqualTo((0, 0)), tally.ToString());
            Assert.That(tally.Tasks, Is.EqualTo(tally.Published), tally.ToString());
            Assert.That(world.Output.Contains("[1103]", StringComparison.Ordinal), Is.False, "a journal segment unreadable (error 1103)\n" + world.Tails());
        });
    }

    /// <summary>
    /// Session 28: the journal's disk full when the next process starts on it (a tmpfs of 48 MiB, filled to the last byte
    /// after the processes were killed during an outage): it cannot journal its own records, and it must still replay the
    /// killed processes' segments (reading them takes no space, deleting them frees some) and lose nothing. The database
    /// is back before it starts, or only once it has consumed on the full disk (its replay then frees nothing).
    /// </summary>
    [Test]
    [CancelAfter(300_000)]
    public async Task KilledDuringAnOutage_TheJournalsDiskThenFull_TheNextProcessReplaysTheSegments_NothingLost([Values] bool databaseBackFirst)
    {
        await using var world = await FaultWorld.PostgresAsync();
        await world.UseSmallDiskAsync(48 * 1024 * 1024);
        await world.KilledAfterConsumingIntoAnOutageAsync(3000);

        var filled = 0L;
        await using (var filler = new FileStream(Path.Combine(world.JournalDirectory, "filler"), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1))
        {
            var chunk = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    await filler.WriteAsync(chunk);
                    filled += chunk.Length;
                }
            }
            catch (IOException ex)
            {
                TestContext.Out.WriteLine($"the journal's disk filled with {filled} bytes more: {ex.Message}");
            }
        }

        ChildProcess next;
        if (databaseBackFirst)
        {
            await world.Postgres!.StartAsync();
            next = await world.StartConsumerAsync();
        }
        else
        {
            // The replay cannot commit, so it frees no space: the next process's own appends are refused, and said.
            next = await world.StartConsumerAsync();
            var atStart = world.Consumed.Count;
            await world.StartPublisherAsync(300);
            await world.WaitUntilAsync(() => world.Consumed.Count > atStart + 100, Drain, "the next processes publish and consume on the full disk during the outage");
            await world.Postgres!.StartAsync();
        }

        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        TestContext.Out.WriteLine(tally);
        TestContext.Out.WriteLine($"journal refusals said (1100): {world.Output.Split("[1100]").Length - 1}");
        TestContext.Out.WriteLine("what the next process said of its journal:\n" +
            string.Join("\n", next.Output.Split('\n').Where(line => line.Contains("journal", StringComparison.OrdinalIgnoreCase)).Take(10)));
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, tally.ToString());
            Assert.That(tally.Stuck, Is.Zero, tally.ToString());
            Assert.That(tally.Tasks, Is.EqualTo(tally.Published), tally.ToString());
        });
    }
}
