using System.Diagnostics;
using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// A graceful stop (SIGTERM, a deployment's rolling restart) while the database is down: the promise tried is that the
/// stop ends (JobLog's writer cannot drain into a database that is not there), without waiting for the database when
/// everything left is journaled, and that what the processes acknowledged and published before it reaches the ledger
/// through the next process once the database is back.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class StopDuringOutageTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(3);

    [Test]
    [CancelAfter(400_000)]
    public async Task PublisherAndConsumerStoppedGracefullyDuringADatabaseOutage_TheStopEnds_AndNothingIsLost()
    {
        await using var world = await FaultWorld.PostgresAsync();
        await StopBothDuringAnOutageAsync(world);

        await world.Postgres!.StartAsync();
        await world.StartConsumerAsync();
        await world.DrainAsync(Drain);
        await world.StopAllAsync();

        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, "what was acknowledged or published before the stop reaches the ledger: " + tally);
            Assert.That(tally.Stuck, Is.Zero, tally.ToString());
        });
    }

    /// <summary>
    /// Session 27 (session 26's open item): the same stop, then no process of the application starts again (a service scaled
    /// to zero, a machine being retired): the operator runs the Worker's <c>replay</c> on the journal's directory once the
    /// database is back, and what the stopped processes kept there reaches the ledger.
    /// </summary>
    [Test]
    [CancelAfter(400_000)]
    public async Task StoppedGracefullyDuringADatabaseOutage_NoProcessStartsAgain_TheWorkersReplayWritesWhatTheJournalKept()
    {
        await using var world = await FaultWorld.PostgresAsync();
        await StopBothDuringAnOutageAsync(world);
        await world.Postgres!.StartAsync();

        var replay = world.StartWorkerCommand("replay", "--JobLog:SpoolDirectory=" + world.JournalDirectory);
        await replay.WaitForExitAsync(TimeSpan.FromSeconds(120));
        TestContext.Out.WriteLine("replay: " + replay.Tail(5));
        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(replay.ExitCode, Is.Zero, "the replay\n" + replay.Tail(30));
            Assert.That(replay.Output.Contains($"journal segments of this ledger left in {world.JournalDirectory}: 0 ", StringComparison.Ordinal), Is.True,
                "the replay says none of the ledger's segments is left\n" + replay.Tail(30));
            Assert.That(tally.Lost, Is.Zero, "what was acknowledged or published before the stop reaches the ledger without a restart: " + tally);
            Assert.That(tally.Tasks, Is.EqualTo(tally.Published), tally.ToString());
        });
    }

    /// <summary>
    /// Session 30 (session 29's open item): the same stop while the database is silent (its link cut: every packet dropped,
    /// nothing refused), with a connect timeout longer than the stop may take (<c>Timeout=60</c>; a pooled session whose
    /// server fell silent waits the whole command timeout the same way). The stop is bounded by its drain's deadline, says
    /// that the records are kept in the journal (1007), not that they are lost (1005), and the next process writes them.
    /// </summary>
    [Test]
    [CancelAfter(400_000)]
    public async Task StoppedGracefullyWhileTheDatabaseIsSilent_WithAConnectTimeoutLongerThanTheStop_SaysTheRecordsAreKept_AndNothingIsLost()
    {
        await using var world = await FaultWorld.PostgresBehindLinkAsync();
        var consumer = await world.StartConsumerAsync("Timeout=60");
        var publisher = await world.StartPublisherAsync(2000, "Timeout=60");
        await world.WaitUntilAsync(() => world.Consumed.Count >= 300, Drain, "300 probes consumed");

        await world.Postgres!.CutLinkAsync();
        var atCut = (world.Published.Count, world.Consumed.Count);
        await world.WaitUntilAsync(() => world.Published.Count >= atCut.Item1 + 300 && world.Consumed.Count >= atCut.Item2 + 300,
            Drain, "300 more probes published and consumed while the database is silent");
        var clock = Stopwatch.StartNew();
        await consumer.StopAsync(TimeSpan.FromSeconds(90));
        var consumerStop = clock.Elapsed;
        clock.Restart();
        await publisher.StopAsync(TimeSpan.FromSeconds(90));
        TestContext.Out.WriteLine($"graceful stop while the database is silent: consumer {consumerStop}, publisher {clock.Elapsed}");
        Assert.Multiple(() =>
        {
            foreach (var stopped in new[] { consumer, publisher })
            {
                Assert.That(stopped.Output.Contains("[1005]", StringComparison.Ordinal), Is.False, stopped.Name + ": no record reported lost at the stop\n" + stopped.Tail(20));
                Assert.That(stopped.Output.Contains("[1007]", StringComparison.Ordinal), Is.True, stopped.Name + ": the stop says the records are kept in the journal\n" + stopped.Tail(20));
            }
        });

        await world.Postgres.RestoreLinkAsync();
        await world.StartConsumerAsync();
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, "what was acknowledged or published before the stop reaches the ledger: " + tally);
            Assert.That(tally.Stuck, Is.Zero, tally.ToString());
        });
    }

    /// <summary>
    /// A publisher and a consumer under load, PostgreSQL stopped, 300 more probes published and consumed into the outage,
    /// then both stopped gracefully: each stop ends at once, saying where its records are kept.
    /// </summary>
    private static async Task StopBothDuringAnOutageAsync(FaultWorld world)
    {
        var consumer = await world.StartConsumerAsync();
        var publisher = await world.StartPublisherAsync(3000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 500, Drain, "500 probes consumed");

        await world.Postgres!.StopAsync();
        var atOutage = (world.Published.Count, world.Consumed.Count);
        await world.WaitUntilAsync(() => world.Published.Count >= atOutage.Item1 + 300 && world.Consumed.Count >= atOutage.Item2 + 300,
            Drain, "300 more probes published and consumed during the outage");

        var clock = Stopwatch.StartNew();
        await consumer.StopAsync(TimeSpan.FromSeconds(90));
        var consumerStop = clock.Elapsed;
        clock.Restart();
        await publisher.StopAsync(TimeSpan.FromSeconds(90));
        var publisherStop = clock.Elapsed;
        TestContext.Out.WriteLine($"graceful stop during the outage: consumer {consumerStop}, publisher {publisherStop}");
        Assert.Multiple(() =>
        {
            // Session 26: the records are journaled, so the writer stops at the database's first failure and says where they
            // are (warning 1007), instead of trying to drain until the host's shutdown timeout and reporting them as records
            // it could not write (error 1005) while the next process writes them.
            foreach (var stopped in new[] { consumer, publisher })
            {
                Assert.That(stopped.Output.Contains("[1005]", StringComparison.Ordinal), Is.False, stopped.Name + ": no record reported lost at the stop\n" + stopped.Tail(20));
                Assert.That(stopped.Output.Contains("[1007]", StringComparison.Ordinal), Is.True, stopped.Name + ": the stop says the records are kept in the journal\n" + stopped.Tail(20));
            }
        });
    }
}
