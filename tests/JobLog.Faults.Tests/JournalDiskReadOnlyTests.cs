using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// The journal's file system remounted read-only by the kernel during load (ext4's <c>errors=remount-ro</c> after an I/O
/// error), the files open: every append fails with EROFS. What is tried: the journal's refusal is said, acknowledgements
/// wait for the database's commit instead, no run stays ACTIVE after a SIGKILL of the processes, every publish has its
/// task; and the next process, on the same read-only directory, starts, records, and says why it has no journal.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class JournalDiskReadOnlyTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(3);

    [Test]
    [CancelAfter(300_000)]
    public async Task JournalsFileSystemRemountedReadOnlyDuringLoad_ThenTheProcessesKilled_NothingLost_NoRunStaysActive()
    {
        await using var world = await FaultWorld.SqliteAsync();
        await world.UseJournalDiskThatCanFailAsync();
        var consumer = await world.StartConsumerAsync();
        var publisher = await world.StartPublisherAsync(20_000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 300, Drain, "300 probes consumed");

        world.BreakJournalDisk();
        var atError = world.Consumed.Count;
        await world.WaitUntilAsync(() => world.Consumed.Count >= atError + 600, Drain, "600 more probes consumed on the read-only journal");
        await world.WaitUntilAsync(() => world.Output.Contains("[1100]", StringComparison.Ordinal), Drain, "the journal's refusal said (error 1100)");
        await publisher.KillAsync();
        await consumer.KillAsync();

        var next = await world.StartConsumerAsync();
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        TestContext.Out.WriteLine("what the next process, on the read-only directory, said of its journal:\n" +
            string.Join("\n", next.Output.Split('\n').Where(line => line.Contains("journal", StringComparison.OrdinalIgnoreCase))));
        TestContext.Out.WriteLine($"journal refusals said by the killed processes (1100): {world.Output.Split("[1100]").Length - 1}");
        // Session 27: acknowledgements their deadline let go before their records were committed (the journal refusing), said.
        TestContext.Out.WriteLine("acknowledgements given before their records were durable (1008):\n" +
            string.Join("\n", world.Output.Split('\n').Where(line => line.Contains("JobLog let", StringComparison.Ordinal))));
        // Not asserted: tally.Lost. Records appended to the journal's files just before the error, acknowledged from the
        // page cache and not yet committed to the ledger, can be lost with the file system (the kernel drops the dirty
        // pages of a file system it remounts read-only at once), and the next process cannot adopt the segments on the
        // read-only directory: a clean-clone CI run of session 26 lost 16 of 1,120 (another lost none). Open, in
        // docs/reviews/session26-faults.md; what is asserted is that nothing stays ACTIVE and every publish has its task.
        TestContext.Out.WriteLine($"lost with the journal's file system: {tally.Lost}");
        Assert.Multiple(() =>
        {
            Assert.That(tally.Stuck, Is.Zero, tally.ToString());
            Assert.That(tally.Tasks, Is.EqualTo(tally.Published), tally.ToString());

            // Session 26: the next process blamed live processes holding every slot, sending the operator after processes
            // instead of the disk.
            Assert.That(next.Output.Contains("Read-only file system", StringComparison.Ordinal), Is.True,
                "the next process says why it cannot use its journal: the read-only file system\n" + next.Tail(30));
        });
    }

    /// <summary>
    /// Session 27 (session 26's open item): the journal's file system fails during a database outage, at the moment the
    /// processes die (paused, the disk broken, then SIGKILLed: a machine's crash with its disk's error), and is mounted
    /// again before the next start, as after a restart. What the kernel had not written to the disk is gone then; with
    /// <see cref="JobLogOptions.FlushJournalToDisk"/> every acknowledged record was flushed before its acknowledgement.
    /// </summary>
    [Test]
    [CancelAfter(300_000)]
    public async Task JournalsFileSystemFailsDuringADatabaseOutage_AsTheProcessesDie_FlushedToDisk_EveryAcknowledgedRecordReachesTheLedger()
    {
        const string flush = "--JobLog:FlushJournalToDisk=true";
        await using var world = await FaultWorld.PostgresAsync();
        await world.UseJournalDiskThatCanFailAsync();
        var consumer = await world.StartWithAsync("consume", 0, 0, flush);
        var publisher = await world.StartWithAsync("publish", 3000, 0, flush);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 300, Drain, "300 probes consumed");
        await world.Postgres!.StopAsync();
        var atOutage = world.Consumed.Count;
        await world.WaitUntilAsync(() => world.Consumed.Count >= atOutage + 600, Drain, "600 more probes consumed during the outage, journaled");

        FaultWorld.Pause(publisher, consumer);
        world.BreakJournalDisk();
        await publisher.KillAsync();
        await consumer.KillAsync();
        await world.MountJournalDiskAgainAsync();
        await world.Postgres.StartAsync();

        await world.StartConsumerAsync();
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, "an acknowledged record flushed to the journal's disk survives the disk's error and the crash\n" + tally);
            Assert.That(tally.Stuck, Is.Zero, tally.ToString());
            Assert.That(tally.Tasks, Is.EqualTo(tally.Published), tally.ToString());
        });
    }

    /// <summary>
    /// Session 28 (session 27's open item): the processes killed during a database outage, what they acknowledged flushed
    /// to the journal's disk; the disk then fails (remounted read-only) and stays so. The next process can lock no slot
    /// there: before, it read none of the segments and said nothing of them (only that it had no journal), and the outage's
    /// records waited for a writable directory. Now it replays them and says that they stay (error 1105).
    /// </summary>
    [Test]
    [CancelAfter(300_000)]
    public async Task KilledDuringADatabaseOutage_TheJournalsFileSystemThenReadOnly_TheNextProcessReplaysWhatItCanRead()
    {
        await using var world = await FaultWorld.PostgresAsync();
        await world.UseJournalDiskThatCanFailAsync();
        await world.KilledAfterConsumingIntoAnOutageAsync(3000, "--JobLog:FlushJournalToDisk=true");
        world.BreakJournalDisk();
        await world.Postgres!.StartAsync();

        var next = await world.StartConsumerAsync();
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, "what the killed processes journaled is replayed from the read-only directory\n" + tally);
            Assert.That(tally.Stuck, Is.Zero, tally.ToString());
            Assert.That(tally.Tasks, Is.EqualTo(tally.Published), tally.ToString());
            Assert.That(next.Output.Contains("[1105]", StringComparison.Ordinal), Is.True,
                "the next process says it replays the read-only directory's segments and cannot delete them\n" + next.Tail(30));
        });
    }
}
