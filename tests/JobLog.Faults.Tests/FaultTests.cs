using JobLog.Testing;
using JobLog.Testing.Processes;
using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// The promise of the README's durability table, tried with real processes and real faults (default durability,
/// Acknowledged): a probe whose send returned has its task, a probe whose consumer finished has its SUCCEEDED run, and
/// no run stays ACTIVE once the processes have stopped.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class FaultTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(3);

    [Test]
    [CancelAfter(300_000)]
    public async Task ConsumerKilled_EveryConsumedProbeHasItsRun_AndNoRunStaysActive()
    {
        await using var world = await FaultWorld.SqliteAsync();
        await world.StartPublisherAsync(2000);
        var first = await world.StartConsumerAsync();
        await world.WaitUntilAsync(() => world.Consumed.Count >= 300, Drain, "300 probes consumed");
        await first.KillAsync();

        await world.StartConsumerAsync();
        await world.WaitUntilAsync(() => world.Published.Count == 2000, Drain, "2000 probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();

        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Published, Is.EqualTo(2000));
            Assert.That(tally.Lost, Is.Zero, world.Tails);
            Assert.That(tally.Stuck, Is.Zero, "runs of the killed consumer are closed when their messages come back");
            Assert.That(tally.Tasks, Is.EqualTo(tally.Published));
        });
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task PublisherKilled_EverySendThatReturnedIsATask()
    {
        await using var world = await FaultWorld.SqliteAsync();
        var publisher = await world.StartPublisherAsync(1_000_000);
        await world.WaitUntilAsync(() => world.Published.Count >= 1000, Drain, "1000 probes published");
        await publisher.KillAsync();

        // Sends that returned may still be only in the killed publisher's journal: the next process on this ledger
        // replays it first. The consumer is that process; draining and stopping it gracefully ends the world.
        await world.StartConsumerAsync();
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Published, Is.GreaterThanOrEqualTo(1000));
            Assert.That(tally.Lost, Is.Zero, "a send that returned is a task row, even when the publisher is killed right after");
            Assert.That(tally.WithoutProducerFields, Is.Zero, "the replayed journal carries the publisher's own fields");
        });
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task PublisherAndConsumerOnOneSqliteLedger_KeepTheProducersFields()
    {
        await using var world = await FaultWorld.SqliteAsync();
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(3000);
        await world.WaitUntilAsync(() => world.Published.Count == 3000, Drain, "3000 probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();

        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero);
            Assert.That(tally.Stuck, Is.Zero);
            Assert.That(tally.WithoutProducerFields, Is.Zero, "two processes on one SQLite ledger: the publisher's Host and Release are kept");
        });
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task DatabaseStoppedDuringLoad_NothingLost_NoRunStaysActive()
    {
        await using var world = await FaultWorld.PostgresAsync();
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(3000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 500, Drain, "500 probes consumed");

        await world.Postgres!.StopAsync();
        await Task.Delay(TimeSpan.FromSeconds(10));
        await world.Postgres.StartAsync();

        await AssertEveryProbeReachesTheLedgerAsync(world, 3000);
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task SqliteLedgerLockedDuringLoad_NothingLost_NoRunStaysActive()
    {
        await using var world = await FaultWorld.SqliteAsync();
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(3000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 300, Drain, "300 probes consumed");
        var before = world.Consumed.Count;

        await world.LockSqliteLedgerAsync(TimeSpan.FromSeconds(10));

        Assert.That(world.Consumed.Count, Is.GreaterThan(before), "the bus went on while the ledger was locked");
        await AssertEveryProbeReachesTheLedgerAsync(world, 3000);
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task JournalDirectoryDeletedDuringAnOutage_ThenThePublisherKilled_EverySendThatReturnedIsATask()
    {
        await using var world = await FaultWorld.SqliteAsync();
        var publisher = await world.StartPublisherAsync(1_000_000);
        await world.WaitUntilAsync(() => world.Published.Count >= 300, Drain, "300 probes published");

        // An outage (the ledger locked by another program): nothing commits, so every send that returns from now on is
        // only in the publisher's journal. Then its directory is deleted under it, and the publisher killed.
        var outage = world.LockSqliteLedgerAsync(TimeSpan.FromSeconds(10));
        var before = world.Published.Count;
        await world.DeleteJournalDirectoryAsync();
        await world.WaitUntilAsync(() => world.Published.Count >= before + 1000, Drain, "1000 probes published after the deletion");
        await publisher.KillAsync();
        await outage;

        // The next process on the ledger replays what the killed one journaled.
        await world.StartConsumerAsync();
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Published, Is.GreaterThanOrEqualTo(before + 1000));
            Assert.That(tally.Lost, Is.Zero, "a send that returned after the deletion is a task too\n" + world.Tails());
            Assert.That(tally.WithoutProducerFields, Is.Zero, $"the publisher's own records of every send reach the ledger, not only the consumer's seeds ({tally})");
            Assert.That(world.Output, Does.Contain("[1102]"), "the publisher said its journal's files were deleted");
        });
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task SpoolDirectoryDeletedWhileTheQueueOverflowsDuringAnOutage_ThenThePublisherKilled_EverySendThatReturnedIsATask()
    {
        // Session 23: sends that returned while the queue was full are only in the spool file (not the journal); its
        // directory deleted under the publisher, then the publisher killed.
        await using var world = await FaultWorld.SqliteAsync();
        world.QueueCapacity = 1000;
        var publisher = await world.StartPublisherAsync(1_000_000);
        await world.WaitUntilAsync(() => world.Published.Count >= 300, Drain, "300 probes published");

        var outage = world.LockSqliteLedgerAsync(TimeSpan.FromSeconds(20));
        var before = world.Published.Count;
        await world.WaitUntilAsync(() => world.Published.Count >= before + 3000, Drain, "3000 probes published during the outage (the queue overflows)");
        await world.DeleteJournalDirectoryAsync();
        var deleted = world.Published.Count;
        await world.WaitUntilAsync(() => world.Published.Count >= deleted + 500, Drain, "500 probes published after the deletion");
        await publisher.KillAsync();
        await outage;

        await world.StartConsumerAsync();
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(world.Output, Does.Contain("[1043]"), "the publisher's queue overflowed to its spool");
            Assert.That(tally.Lost, Is.Zero, "a send that returned is a task, spooled or journaled\n" + world.Tails());
            Assert.That(tally.WithoutProducerFields, Is.Zero, $"the publisher's own records of every send reach the ledger ({tally})\n" + world.Tails());
        });
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task JournalOnAFullDisk_AcknowledgementsWaitForTheDatabase_NothingLost_RefusalsLoggedAtASteadyRate()
    {
        await using var world = await FaultWorld.SqliteAsync();
        await world.UseSmallDiskAsync(64 * 1024);
        var consumer = await world.StartConsumerAsync();
        await world.StartPublisherAsync(3000);
        await world.WaitUntilAsync(() => world.Published.Count == 3000, Drain, "3000 probes published");
        await world.DrainAsync(Drain);
        var elapsed = DateTime.UtcNow - consumer.StartedAt;
        await world.StopAllAsync();

        var tally = await world.TallyAsync();
        var refusals = world.Output.Split('\n').Count(line => line.Contains("journal refused", StringComparison.Ordinal));
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, "with the database up, a refused append means the acknowledgement waits for the commit");
            Assert.That(tally.Stuck, Is.Zero);
            Assert.That(refusals, Is.GreaterThan(0), "the refusal is said\n" + world.Tails());
            // At most one line per 10 s per process (publisher and consumer), not one per refused record.
            Assert.That(refusals, Is.LessThanOrEqualTo(2 * ((int)(elapsed.TotalSeconds / 10) + 2)), "logged at a steady rate");
        });
    }

    [Test]
    [CancelAfter(400_000)]
    public async Task BrokerRestartedDuringLoad_NothingLost_NoRunStaysActive()
    {
        await using var world = await FaultWorld.SqliteWithOwnBrokerAsync();
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(3000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 500, Drain, "500 probes consumed");

        await world.Rabbit!.RestartAsync(TimeSpan.FromSeconds(5));

        await AssertEveryProbeReachesTheLedgerAsync(world, 3000, "a delivery cut by the restart comes back, and its earlier run is closed");
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task ConsumerKilledDuringDatabaseOutage_EveryConsumedProbeReachesTheLedger()
    {
        await using var world = await FaultWorld.PostgresAsync();
        var consumer = await world.StartConsumerAsync();
        await world.StartPublisherAsync(3000);
        await KillDuringAnOutageAsync(world, consumer);

        await world.StartConsumerAsync();
        await world.WaitUntilAsync(() => world.Published.Count == 3000, Drain, "3000 probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();

        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, "a delivery acknowledged during the outage survives the SIGKILL");
            Assert.That(tally.Stuck, Is.Zero);
        });
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task ConsumerKilledDuringDatabaseOutage_WhileAnotherRunsOn_EveryConsumedProbeReachesTheLedgerWithoutARestart()
    {
        await using var world = await FaultWorld.PostgresAsync();
        var killed = await world.StartConsumerAsync();
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(3000);
        await KillDuringAnOutageAsync(world, killed);

        // No process starts again: the consumer that runs on (or the publisher) replays what the killed one journaled.
        await world.WaitUntilAsync(() => world.Published.Count == 3000, Drain, "3000 probes published");
        await world.DrainAsync(Drain);
        var lost = int.MaxValue;
        for (var waited = 0; lost > 0; waited++)
        {
            Assert.That(waited, Is.LessThan(300), $"every consumed probe in the ledger within 60 s, without a restart ({lost} missing)\n{world.Tails()}");
            await Task.Delay(200);
            lost = (await world.TallyAsync()).Lost;
        }

        await world.StopAllAsync();

        // The killed attempts' runs (in its journal, replayed after their redeliveries' runs) are closed by the host sweep.
        await Task.Delay(TimeSpan.FromSeconds(3));
        await world.SweepAsync(hostTimeout: TimeSpan.FromSeconds(2));
        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, "a delivery acknowledged during the outage survives the SIGKILL");
            Assert.That(tally.Stuck, Is.Zero, "no run stays ACTIVE");
            Assert.That(tally.Tasks, Is.EqualTo(3000));
        });
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task SlowConsumerKilled_WithNoOtherConsumer_ItsRunsAreExpiredByTheHostSweep()
    {
        await using var world = await FaultWorld.SqliteAsync();
        var consumer = await world.StartConsumerAsync(delayMs: 60_000);
        await world.StartPublisherAsync(40);
        await world.WaitUntilAsync(() => world.Published.Count == 40, Drain, "40 probes published");
        var active = 0;
        for (var waited = 0; active == 0; waited++)
        {
            Assert.That(waited, Is.LessThan(150), "ACTIVE runs in the ledger within 30 s");
            await Task.Delay(200);
            active = (await world.TallyAsync()).Stuck;
        }

        await consumer.KillAsync();
        await world.StopAllAsync();

        // Nothing redelivers these messages (no consumer of the queue is left): only the host's silence closes its runs.
        await Task.Delay(TimeSpan.FromSeconds(3));
        var result = await world.SweepAsync(hostTimeout: TimeSpan.FromSeconds(2));

        var tally = await world.TallyAsync();
        var (expiredRuns, expiredTasks) = await world.ExpiredByHostAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Stuck, Is.Zero, "no run stays ACTIVE once its host stopped sending heartbeats");
            Assert.That(result.HostRuns, Is.GreaterThanOrEqualTo(active));
            Assert.That(expiredRuns, Is.EqualTo(result.HostRuns), "each closed run says which host stopped");
            Assert.That(expiredTasks, Is.EqualTo(expiredRuns), "their tasks (without a stale limit) are EXPIRED");
        });
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task KilledDuringStartupMigrationOfASqliteLedger_TheNextProcessStartsAndRecords()
    {
        await using var world = await FaultWorld.SqliteAsync();
        await world.CreateEmptyWalLedgerAsync();
        var first = await world.LaunchConsumerAsync();
        await world.WaitForMigrationLockAsync(first, TimeSpan.FromSeconds(90));
        await first.KillAsync();

        // EF Core's lock on SQLite is a row, not a lock the killed process's death releases: the next start must not wait
        // for it for ever.
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(500);
        await world.WaitUntilAsync(() => world.Published.Count == 500, Drain, "500 probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();

        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, world.Tails);
            Assert.That(tally.Stuck, Is.Zero);
            Assert.That(tally.Tasks, Is.EqualTo(500));
            Assert.That(world.Output, Does.Contain("removed the migration lock"), "the first process was killed holding the lock");
        });
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task PublisherKilledDuringDatabaseOutage_ThenRestartedWithRotatedCredentials_EverySendThatReturnedIsATask()
    {
        await using var world = await FaultWorld.PostgresAsync();
        var publisher = await world.StartPublisherAsync(1_000_000);
        await world.WaitUntilAsync(() => world.Published.Count >= 200, Drain, "200 probes published");
        await world.Postgres!.StopAsync();
        var before = world.Published.Count;
        await world.WaitUntilAsync(() => world.Published.Count >= before + 300, Drain, "300 more probes published during the outage");
        await publisher.KillAsync();
        await world.Postgres.StartAsync();

        // The next process on this ledger comes with another password (trust authentication ignores it): the same
        // database, so it replays what the killed one journaled.
        await world.StartPublisherAsync(0, "Password=rotated-after-the-crash");
        await world.StopAllAsync();

        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Published, Is.GreaterThanOrEqualTo(500));
            Assert.That(tally.Lost, Is.Zero, "a send that returned is a task row, whatever the next process's credentials");
        });
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task LedgerDatabaseDroppedAndCreatedEmptyDuringLoad_EveryLaterProbeReachesTheLedger()
    {
        await using var world = await FaultWorld.PostgresAsync();
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(3000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 500, Drain, "500 probes consumed");

        // What the dropped database held is gone with it; what is acknowledged from then on must reach the new one, not
        // be dropped because its tables are missing.
        var (gonePublished, goneConsumed) = await world.DropLedgerDatabaseAsync();
        await world.CreateLedgerDatabaseAsync();

        await world.WaitUntilAsync(() => world.Published.Count == 3000, Drain, "3000 probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();

        var tally = await world.TallyAsync(gonePublished, goneConsumed);
        Assert.Multiple(() =>
        {
            Assert.That(tally.Published, Is.GreaterThan(0));
            Assert.That(tally.Lost, Is.Zero, world.Tails);
            Assert.That(tally.Stuck, Is.Zero);
        });
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task SqliteLedgerFileDeletedDuringLoad_EveryLaterProbeReachesTheLedgerMadeAgain()
    {
        await using var world = await FaultWorld.SqliteAsync();
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(6000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 300, Drain, "300 probes consumed");

        // What the deleted file held is gone with it; what both processes acknowledge from then on must reach the ledger
        // made again at its path, not the deleted file their connections still have open.
        var (gonePublished, goneConsumed) = await world.DeleteSqliteLedgerAsync();

        await world.WaitUntilAsync(() => world.Published.Count == 6000, Drain, "6000 probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();

        var tally = await world.TallyAsync(gonePublished, goneConsumed);
        Assert.Multiple(() =>
        {
            Assert.That(tally.Published, Is.GreaterThan(500), $"probes published after the deletion: {tally}");
            Assert.That(tally.Lost, Is.Zero, $"{tally}\n{world.Tails()}");
            Assert.That(tally.Stuck, Is.Zero);
            Assert.That(tally.WithoutProducerFields, Is.Zero, "the publisher's own records reach the ledger made again, not only the consumer's seeds");
            Assert.That(world.Output, Does.Contain("LedgerWriter[1023]"), "the processes said their ledger was deleted");
        });
    }

    [Test]
    [CancelAfter(180_000)]
    public async Task JobLogSessionCutOffMidTransaction_ItsRowLockIsReleased_AndAnotherProcesssWriterGetsThrough()
    {
        // Session 23: a JobLog process whose network to the database is cut (or that froze) while one of its sessions is in
        // a transaction: without a limit, the server keeps the session and its locks until its own TCP keepalive gives up
        // (two hours and more by default), and the other processes' writers wait behind them.
        await using var world = await FaultWorld.PostgresBehindLinkAsync();
        var cluster = world.Postgres!;
        var spool = Directory.CreateTempSubdirectory("joblog-faults-idle-").FullName;
        Action<JobLogOptions> options = o =>
        {
            o.IdleInTransactionTimeout = TimeSpan.FromSeconds(5);
            o.CommandTimeout = TimeSpan.FromSeconds(120);
            o.SpoolDirectory = spool;
        };
        await using var cutOff = await LedgerHost.StartAsync(TestLedger.ExistingPostgres(cluster.ConnectionString), options);
        await using var other = await LedgerHost.StartAsync(TestLedger.ExistingPostgres(cluster.LocalConnectionString), options);
        var id = Guid.NewGuid();
        cutOff.RecordDispatch(id);
        await cutOff.FlushAsync();

        // One of its sessions (through the link, as its writer's) holds the task's row in a transaction; then the link is cut.
        var held = await cutOff.OpenJobLogSessionAsync();
        try
        {
            await using (var lockRow = held.CreateCommand())
            {
                lockRow.CommandText = $"BEGIN; SELECT 1 FROM \"JobLogTasks\" WHERE \"Id\" = '{id}' FOR UPDATE";
                Assert.That(await lockRow.ExecuteScalarAsync(), Is.EqualTo(1));
            }

            await cluster.CutLinkAsync();

            // The other process (on the server's machine, through its socket) consumes the task: its writer updates the row.
            other.RecordSucceededRun(id);
            Assert.That(await other.TryFlushAsync(TimeSpan.FromSeconds(60)), Is.True, "the other process's writer got past the cut-off session's lock within 60 s");
            Assert.That((await other.TaskAsync(id)).State, Is.EqualTo(TaskState.Succeeded));
        }
        finally
        {
            await cluster.RestoreLinkAsync();
            try
            {
                await held.DisposeAsync();
            }
            catch (Exception ex) when (ex is Npgsql.NpgsqlException or IOException or TimeoutException)
            {
                // The server ended it: what this test is about.
            }
        }
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task DatabaseSilentDuringLoad_AcknowledgementsGoOn_NothingLost_NoRunStaysActive()
    {
        await using var world = await FaultWorld.PostgresBehindLinkAsync();
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(2000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 300, Drain, "300 probes consumed");

        // Silent, not refusing: connections and statements in flight get no answer at all, so only JobLog's own time
        // limits end them. The cut lasts past the connection timeout (5 s), so the writer's retries meet it too.
        await world.Postgres!.CutLinkAsync();
        var before = world.Consumed.Count;
        await world.WaitUntilAsync(() => world.Consumed.Count >= before + 300, Drain, "300 more probes consumed while the database is silent");
        await Task.Delay(TimeSpan.FromSeconds(15));
        await world.Postgres.RestoreLinkAsync();

        await AssertEveryProbeReachesTheLedgerAsync(world, 2000);
    }

    [Test]
    [CancelAfter(300_000)]
    public async Task ConnectionLostSilentlyWhileAStartWaitsInItsMigration_TheProcessStarts()
    {
        await using var world = await FaultWorld.PostgresBehindLinkAsync();

        // Another process migrates (holds the history); this one waits in its migration, which has no time limit.
        var (history, consumer) = await world.ConsumerWaitingInItsMigrationAsync();
        await using (history)
        {
            // The connection's state is lost on the way (a NAT gateway's idle timeout, a failover): the session the start
            // waits on is gone, and nothing tells the process (the reset is lost; afterwards it sends nothing itself).
            await world.Postgres!.CutLinkAsync();
            await world.Postgres.ForgetConnectionsAsync();
            await world.Postgres.RestoreLinkAsync();

            await FaultWorld.WaitUntilReadyAsync(consumer, TimeSpan.FromSeconds(120));
        }

        await world.StartPublisherAsync(200);
        await AssertEveryProbeReachesTheLedgerAsync(world, 200);
    }

    [Test]
    [CancelAfter(400_000)]
    public async Task ServerSilentWhileAStartMigrates_TheStartGoesOnAfterABoundedWait_AndNothingIsLost()
    {
        await using var world = await FaultWorld.PostgresBehindLinkAsync();

        // Another process migrates (holds the history); this one waits in its migration, which has no time limit. Then the
        // server falls silent (the link cut: every packet dropped, nothing refused), and stays so.
        var (history, consumer) = await world.ConsumerWaitingInItsMigrationAsync();
        await using (history)
        {
            // While the server answers, the start waits for the migration (as for an index build), probe after probe.
            await Task.Delay(TimeSpan.FromSeconds(12.5)); // two and a half probes (LedgerStartupService.ProbeEvery: 5 s)
            Assert.That(consumer.Output, Does.Not.Contain("fault-app ready"), "the start waits while the server answers\n" + consumer.Tail(30));
            await world.Postgres!.CutLinkAsync();

            // Without a bound, the start waited for TCP keepalive to give the session up: 30 s + 9 × 10 s.
            await FaultWorld.WaitUntilReadyAsync(consumer, TimeSpan.FromSeconds(60));
            Assert.That(consumer.Output, Does.Contain("LedgerStartupService[1026]"), "the start says why it goes on\n" + consumer.Tail(30));

            // Acknowledgements go on through the journal while the server is silent, for a publisher that starts now too.
            await world.StartPublisherAsync(200);
            await world.WaitUntilAsync(() => world.Consumed.Count == 200, Drain, "200 probes consumed while the server is silent");
            await world.Postgres.RestoreLinkAsync();
        }

        await AssertEveryProbeReachesTheLedgerAsync(world, 200);
    }

    /// <summary>
    /// 300 probes consumed, the database stopped, 300 more consumed during the outage (acknowledged through the journal),
    /// <paramref name="consumer"/> SIGKILLed, the database started again.
    /// </summary>
    private static async Task KillDuringAnOutageAsync(FaultWorld world, ChildProcess consumer)
    {
        await world.WaitUntilAsync(() => world.Consumed.Count >= 300, Drain, "300 probes consumed");
        await world.Postgres!.StopAsync();
        var before = world.Consumed.Count;
        await world.WaitUntilAsync(() => world.Consumed.Count >= before + 300, Drain, "300 more probes consumed during the outage");
        await consumer.KillAsync();
        await world.Postgres.StartAsync();
    }

    /// <summary>
    /// Once all <paramref name="published"/> probes are published and drained and the processes stopped: none lost, no run
    /// left ACTIVE (<paramref name="stuckBecause"/> says why that matters here), one task per probe.
    /// </summary>
    /// <summary>
    /// Session 24 (a new fault): the publisher and the consumer frozen (SIGSTOP) again and again during load, each time for
    /// longer than the server lets a session sit idle in a transaction (<c>idle_in_transaction_session_timeout</c> 300 ms, set in
    /// their connection strings): a writer frozen inside its transaction finds its session ended by the server (25P03) when
    /// it wakes, and its batch must be written again; the other process's writer must not wait behind its locks.
    /// </summary>
    [Test]
    [CancelAfter(300_000)]
    public async Task ProcessesFrozenDuringLoad_AlsoInsideTheirTransactions_LongerThanTheIdleInTransactionTimeout_NothingLost_NoRunStaysActive()
    {
        const string timeout = "Options=-c idle_in_transaction_session_timeout=300";
        await using var world = await FaultWorld.PostgresAsync();
        var consumer = await world.StartConsumerAsync(timeout);
        var publisher = await world.StartPublisherAsync(4000, timeout);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 300, Drain, "300 probes consumed");
        var caught = 0;
        for (var round = 0; round < 8 && world.Published.Count < 4000; round++)
        {
            // Both frozen the moment one of their sessions is inside a transaction; then each alone, blindly.
            caught += await world.FreezeInATransactionAsync(TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(5), publisher, consumer) ? 1 : 0;
            await FaultWorld.FreezeAsync(TimeSpan.FromSeconds(1), round % 2 == 0 ? publisher : consumer);
        }

        await AssertEveryProbeReachesTheLedgerAsync(world, 4000);
        // Whether a freeze fell inside a transaction is chance: said, not asserted.
        TestContext.Out.WriteLine($"freezes the moment a session was in a transaction: {caught}; sessions the server ended (25P03) in the processes' logs: {world.Output.Split("25P03").Length - 1}; batches tried again: {world.Output.Split("could not write").Length - 1}");
    }

    private static async Task AssertEveryProbeReachesTheLedgerAsync(FaultWorld world, int published, string stuckBecause = "")
    {
        await world.WaitUntilAsync(() => world.Published.Count == published, Drain, $"{published} probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();

        var tally = await world.TallyAsync();
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, world.Tails);
            Assert.That(tally.Stuck, Is.Zero, stuckBecause);
            Assert.That(tally.Tasks, Is.EqualTo(published));
        });
    }
}
