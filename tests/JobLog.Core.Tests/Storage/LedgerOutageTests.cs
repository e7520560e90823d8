using System.Diagnostics;
using JobLog.Core.Tests.Recording;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

public class LedgerOutageTests
{
    [Test]
    public async Task DatabaseLocked_BusinessPathDoesNotWait_AndTheLedgerCatchesUp()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.Durability = LedgerDurability.Committed;
            o.AcknowledgeTimeout = TimeSpan.FromMilliseconds(500);
            o.CommandTimeout = TimeSpan.FromSeconds(1);
            o.MaxRetryDelay = TimeSpan.FromMilliseconds(200);
        });
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await using var blocker = await host.LockSqliteLedgerAsync();

        var stopwatch = Stopwatch.StartNew();
        var ids = new List<Guid>();
        for (var i = 0; i < 50; i++)
        {
            var id = Guid.NewGuid();
            ids.Add(id);
            var sequence = recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow }));
            await recorder.WaitCommittedAsync(sequence);
        }

        stopwatch.Stop();
        Assert.That(recorder.IsFailing, Is.True, "the writer noticed the outage");
        // Each wait is bounded by AcknowledgeTimeout, and once the writer knows the database is down nobody waits.
        Assert.That(stopwatch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(15)));

        await using (var rollback = blocker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK";
            await rollback.ExecuteNonQueryAsync();
        }

        await host.FlushAsync();
        var stored = await host.QueryAsync(db => db.TaskLogs.CountAsync());
        Assert.That(stored, Is.EqualTo(ids.Count));
        Assert.That(recorder.IsFailing, Is.False);
    }

    // Session 28 (faults): a process started while the database is down waits in its start-up migration, and its writer
    // tries no batch, so nothing told the acknowledgements that the database fails: with a journal that refuses (a full
    // disk) or Committed durability, each waited AcknowledgeTimeout (JournalReplayTests' full disk: 39 waits of 5 s, 1008).
    [Test]
    public async Task StartedWhileTheDatabaseIsDown_TheRecorderKnowsItFails_BeforeAnyBatch()
    {
        // Nothing listens on port 1: each attempt of the migration is refused at once.
        await using var host = await LedgerHost.StartAsync(
            TestLedger.ExistingPostgres("Host=127.0.0.1;Port=1;Username=joblog;Password=joblog;Database=joblog_down;Timeout=2"),
            o => o.Durability = LedgerDurability.Committed);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();

        // Then an acknowledgement is given at once (CommitWaiters), instead of after AcknowledgeTimeout.
        await LedgerHost.EventuallyAsync(() => Task.FromResult(recorder.IsFailing), because: "the failing migration tells the recorder");
    }

    // Session 28 (faults): a stop whose migration failed probed the database once more, to learn whether it answers (then
    // the stop tries again). Against a host that drops packets, the migration had waited the connect timeout and the probe
    // waited it again (Npgsql's default: 15 s each).
    [Test]
    public async Task StopAfterAMigrationThatGotNoAnswer_DoesNotProbeTheSilentDatabaseAgain()
    {
        using var silent = new SilentServer();
        await using var host = await silent.JournaledHostAsync(timeoutSeconds: 2);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await RecorderTestKit.EnqueueJournaledAsync(
            recorder, new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));

        await host.Services.GetRequiredService<LedgerWriter>().StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.That(silent.Taken, Is.EqualTo(1), "the migration's connection, and no probe after it");
        Assert.That(recorder.Backlog, Is.EqualTo(1), "the record left in the journal for a next process");
    }

    // Session 30 (faults; session 29's open item): the same after a batch. A ledger migrated before the database fell
    // silent: the stop's batch waited the connect timeout, then the probe (is the batch itself bad?) waited it again.
    [Test]
    public async Task StopAfterABatchThatGotNoAnswer_DoesNotProbeTheSilentDatabaseAgain()
    {
        using var silent = new SilentServer();
        await using var host = await silent.JournaledHostAsync(timeoutSeconds: 2, migrated: true);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await RecorderTestKit.EnqueueJournaledAsync(
            recorder, new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));

        await host.Services.GetRequiredService<LedgerWriter>().StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.That(silent.Taken, Is.EqualTo(1), "the batch's connection, and no probe after it");
        Assert.That(recorder.Backlog, Is.EqualTo(1), "the record left in the journal for a next process");
    }

    // Session 30 (faults): a connect timeout longer than what the stop may take (a connection string's Timeout=60, or a
    // pooled session whose server fell silent, waiting CommandTimeout): the host's shutdown timeout (or the drain's 30 s)
    // ended the stop in its first attempt, and the stop said it lost the records (1005), which the journal kept.
    // Session 31: and the attempt's open did not end at the cancelled token (Npgsql waits its connect Timeout in the startup
    // exchange, 'Timeout during reading attempt' after 60 s): the stop waited past its deadline under load.
    [Test]
    public async Task StopEndedByItsDeadline_InItsFirstAttemptAtASilentDatabase_SaysTheRecordsAreKept_NotLost()
    {
        using var silent = new SilentServer();
        var logs = new WarningCollector();
        await using var host = await silent.JournaledHostAsync(timeoutSeconds: 60, migrated: true, logs);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await RecorderTestKit.EnqueueJournaledAsync(
            recorder, new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));
        using var shutdown = new CancellationTokenSource();

        var stop = host.Services.GetRequiredService<LedgerWriter>().StopAsync(shutdown.Token);
        await LedgerHost.EventuallyAsync(() => Task.FromResult(silent.Taken > 0), because: "the stop's batch waits for the silent server");
        await shutdown.CancelAsync();
        await stop.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.That((logs.Count(1005), logs.Count(1007)), Is.EqualTo((0, 1)), string.Join("\n", logs.Errors));
        Assert.That(recorder.Backlog, Is.EqualTo(1), "the record left in the journal for a next process");
    }

    /// <summary>A PostgreSQL server that takes each connection and never answers it (a host that drops packets), and counts them.</summary>
    private sealed class SilentServer : IDisposable
    {
        private readonly System.Net.Sockets.TcpListener _listener = new(System.Net.IPAddress.Loopback, 0);
        private readonly System.Collections.Concurrent.ConcurrentQueue<System.Net.Sockets.TcpClient> _taken = new();
        private readonly string _journal = Directory.CreateTempSubdirectory("joblog-silent-").FullName;

        public SilentServer()
        {
            _listener.Start();
            _ = Task.Run(async () =>
            {
                while (true)
                {
                    _taken.Enqueue(await _listener.AcceptTcpClientAsync());
                }
            });
        }

        public int Taken => _taken.Count;

        /// <summary>
        /// A Journaled host on the silent server, not started. <paramref name="migrated"/>: the ledger is taken as migrated
        /// (no migration at start: the first statement is the batch's), as for a database that fell silent after the start.
        /// </summary>
        public Task<LedgerHost> JournaledHostAsync(int timeoutSeconds, bool migrated = false, WarningCollector? logs = null)
        {
            var port = ((System.Net.IPEndPoint)_listener.LocalEndpoint).Port;
            return LedgerHost.StartAsync(
                // One socket per open: with GSS encryption or SSL left to "prefer", Npgsql may open a second socket within
                // one open when its first negotiation fails (a clean-clone CI run under load counted 2 with one open).
                TestLedger.ExistingPostgres(
                    $"Host=127.0.0.1;Port={port};Username=joblog;Password=joblog;Database=joblog_silent;Timeout={timeoutSeconds};SSL Mode=Disable;GSS Encryption Mode=Disable"),
                o =>
                {
                    o.Durability = LedgerDurability.Journaled;
                    o.SpoolDirectory = _journal;
                    o.MigrateOnStartup = !migrated;
                },
                services => services.AddSingleton<ILoggerProvider>(logs ?? new WarningCollector()),
                start: false);
        }

        public void Dispose()
        {
            foreach (var client in _taken)
            {
                client.Dispose();
            }

            _listener.Stop();
            Directory.Delete(_journal, recursive: true);
        }
    }

    [Test]
    public async Task CommittedWait_IsReleasedByTheCommit_AndMeasured()
    {
        var waits = new List<double>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "JobLog" && instrument.Name == "joblog.acknowledge.wait_duration")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, value, _, _) =>
        {
            lock (waits)
            {
                waits.Add(value);
            }
        });
        listener.Start();
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o => o.Durability = LedgerDurability.Committed);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var id = Guid.NewGuid();

        // A short lock (well within the busy timeout): the writer waits for it, and so does the business path.
        await using var blocker = await host.LockSqliteLedgerAsync();

        var sequence = recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow }));
        var called = Stopwatch.GetTimestamp();
        var wait = recorder.WaitCommittedAsync(sequence).AsTask();
        var waiting = Stopwatch.GetTimestamp();
        await Task.Delay(300);
        Assert.That(wait.IsCompleted, Is.False, "waits for the commit");
        var unlocked = Stopwatch.GetTimestamp();
        await using (var rollback = blocker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK";
            await rollback.ExecuteNonQueryAsync();
        }

        await wait.WaitAsync(TimeSpan.FromSeconds(120));
        var released = Stopwatch.GetTimestamp();

        // Released means committed: another connection sees the row at once.
        Assert.That(await host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Id == id)), Is.EqualTo(1));
        // Recorded as the wait is released (the waiter's continuation may run first).
        await LedgerHost.EventuallyAsync(() => { lock (waits) { return Task.FromResult(waits.Count > 0); } }, because: "the wait is measured");
        lock (waits)
        {
            // The wait measured is the one the caller saw, lock included: at least from its start to the lock's end, at most
            // from the call to the release. Brackets of the test's own clock readings, true at any speed.
            Assert.That(waits, Has.Count.EqualTo(1), "the wait is measured once");
            Assert.That(waits[0], Is.InRange(Stopwatch.GetElapsedTime(waiting, unlocked).TotalSeconds, Stopwatch.GetElapsedTime(called, released).TotalSeconds),
                "seconds waited, lock included");
        }
    }

    [Test]
    public async Task JournaledWait_IsReleasedByTheJournal_WhileTheDatabaseIsLocked_AndTheRowFollows()
    {
        // Its own journal directory: the shared default holds other tests' segments, which their writers delete at any moment.
        var spool = Directory.CreateTempSubdirectory("joblog-outage-").FullName;
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.Durability = LedgerDurability.Journaled;
            o.SpoolDirectory = spool;
        });
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var id = Guid.NewGuid();
        await using var blocker = await host.LockSqliteLedgerAsync();

        var sequence = recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow }));
        await recorder.WaitCommittedAsync(sequence).AsTask().WaitAsync(TimeSpan.FromSeconds(120));

        // Released by the journal's append: the record is on disk, not yet in the (locked) database.
        var journal = Directory.GetFiles(host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<JobLogOptions>>().Value.SpoolDirectory!, "*.journal");
        Assert.That(journal.Any(f => File.ReadAllText(f).Contains(id.ToString(), StringComparison.OrdinalIgnoreCase)), Is.True, "the record is in a journal segment");

        await using (var rollback = blocker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK";
            await rollback.ExecuteNonQueryAsync();
        }

        await host.FlushAsync();
        Assert.That(await host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Id == id)), Is.EqualTo(1));
    }

    [Test]
    public async Task QueueFull_WithoutSpool_DropsAndCounts_InsteadOfBlocking()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.QueueCapacity = 1000;
            o.SpoolDirectory = null;
        }, start: false);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();

        for (var i = 0; i < 1500; i++)
        {
            recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));
        }

        Assert.That(recorder.Backlog, Is.EqualTo(1000));
        Assert.That(recorder.Dropped, Is.EqualTo(500));
    }

    [Test]
    public async Task QueueFull_DropsAfterTheLastReport_AreReportedAtTheStop()
    {
        var logs = new WarningCollector();
        var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.QueueCapacity = 1000;
            o.SpoolDirectory = null;
        }, services => services.AddSingleton<ILoggerProvider>(logs), start: false);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        for (var i = 0; i < 1500; i++)
        {
            recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));
        }

        // The first drop is reported at once and the next 499 within the same 10 s: without a report at the stop, the
        // log would say one record was dropped.
        await host.DisposeAsync();

        Assert.That(logs.Errors, Has.Some.Contains("500 in all"), string.Join(Environment.NewLine, logs.Errors));
    }

    [Test]
    public async Task QueueFull_SpoolsToDisk_AndReplaysInOrderWhenTheDatabaseReturns()
    {
        var spool = Path.Combine(Path.GetTempPath(), "joblog-test-spool-" + Guid.NewGuid().ToString("N"));
        // Declared before the host, so deleted after it has stopped: a running host may still write into it.
        using var deleteSpool = new DeleteDirectory(spool);
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.QueueCapacity = 1000;
            o.MaxBatchSize = 500;
            o.SpoolDirectory = spool;
            o.AcknowledgeTimeout = TimeSpan.FromMilliseconds(200);
            o.CommandTimeout = TimeSpan.FromSeconds(1);
            o.MaxRetryDelay = TimeSpan.FromMilliseconds(200);
        });
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await using var blocker = await host.LockSqliteLedgerAsync();

        var ids = Enumerable.Range(0, 3000).Select(_ => Guid.NewGuid()).ToList();
        foreach (var id in ids)
        {
            recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow }));
        }

        // Spooled, in order: the run starts and finishes after its task, all three in the file.
        var last = ids[^1];
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = last, Name = "T", ConsumerType = "C", Start = DateTime.UtcNow };
        Assert.That(recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = last, Name = "T", DispatchedAt = DateTime.UtcNow }, false)), Is.Zero);
        Assert.That(recorder.Enqueue(new RunFinished(run.Id, last, TaskRunState.Succeeded, DateTime.UtcNow, null, "done", null)), Is.Zero);
        Assert.That((recorder.IsSpooling, recorder.Dropped), Is.EqualTo((true, 0L)));
        Assert.That(recorder.Spooled, Is.GreaterThanOrEqualTo(1000 + 2));
        var file = Directory.GetFiles(spool, "*.jsonl").Single();
        Assert.That(new FileInfo(file).Length, Is.GreaterThan(0));

        await using (var rollback = blocker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK";
            await rollback.ExecuteNonQueryAsync();
        }

        await LedgerHost.EventuallyAsync(
            async () => await host.QueryAsync(db => db.TaskLogs.CountAsync()) == ids.Count && !recorder.IsSpooling,
            TimeSpan.FromSeconds(30), "every spooled record reaches the ledger");
        var task = await host.TaskAsync(last);
        Assert.That((task.State, task.Runs.Single().Output), Is.EqualTo((TaskState.Succeeded, "done")));
        Assert.That(File.Exists(file), Is.False, "the replayed spool file is deleted");
        Assert.That(recorder.Dropped, Is.Zero);

        // Records queue in memory again.
        Assert.That(recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow })), Is.GreaterThan(0));
    }

    [Test]
    public async Task QueueFull_SpooledRecord_IsMaskedBeforeItReachesTheSpoolFile()
    {
        var spool = Path.Combine(Path.GetTempPath(), "joblog-test-spool-" + Guid.NewGuid().ToString("N"));
        // Declared before the host, so deleted after it has stopped: a running host may still write into it.
        using var deleteSpool = new DeleteDirectory(spool);
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.QueueCapacity = 1000;
            o.MaxBatchSize = 500;
            o.SpoolDirectory = spool;
            o.CommandTimeout = TimeSpan.FromSeconds(1);
            o.MaxRetryDelay = TimeSpan.FromMilliseconds(200);
        });
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await using var blocker = await host.LockSqliteLedgerAsync();

        var id = Guid.NewGuid();
        for (var i = 0; i < 3000; i++)
        {
            recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));
        }

        // Free texts are masked by the writer; a record that overflows to disk must not wait for it.
        const string secret = "Host=db;Username=app;Password=Spool-S3cret-91";
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = "T", ConsumerType = "C", Start = DateTime.UtcNow };
        Assert.That(recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow }, false)), Is.Zero);
        Assert.That(recorder.Enqueue(new RunFinished(run.Id, id, TaskRunState.Failed, DateTime.UtcNow, "could not connect: " + secret, "connecting with " + secret, null)), Is.Zero);
        var file = Directory.GetFiles(spool, "*.jsonl").Single();
        Assert.That(await File.ReadAllTextAsync(file), Does.Not.Contain("Spool-S3cret-91"));

        await using (var rollback = blocker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK";
            await rollback.ExecuteNonQueryAsync();
        }

        await LedgerHost.EventuallyAsync(
            async () => await host.QueryAsync(db => db.TaskRunLogs.CountAsync(r => r.TaskId == id && r.State == TaskRunState.Failed)) == 1,
            TimeSpan.FromSeconds(30), "the spooled run reaches the ledger");
        var stored = (await host.TaskAsync(id)).Runs.Single();
        Assert.That(new[] { stored.ErrorMessage, stored.Output }, Has.None.Contains("Spool-S3cret-91").And.All.Not.Null);
    }

    [Test]
    public async Task SpoolLeftByAStoppedProcess_IsReplayedByTheNext_SkippingUnreadableLines([Values] bool namedByAnEarlierVersion)
    {
        var spool = Path.Combine(Path.GetTempPath(), "joblog-test-spool-" + Guid.NewGuid().ToString("N"));
        // Declared before the host, so deleted after it has stopped: a running host may still write into it.
        using var deleteSpool = new DeleteDirectory(spool);
        var ledger = TestLedger.Sqlite();
        var options = new JobLogOptions { SpoolDirectory = spool };
        ledger.Apply(options);
        // Versions before session 21 named the file after the connection string; an upgrade replays it too.
        var path = LedgerSpool.FileFor(spool, namedByAnEarlierVersion ? options.ConnectionString! : LedgerDatabase.For(options.Provider).Identity(options.ConnectionString!));
        var ids = new[] { Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid() };
        using (var previous = new LedgerSpool(path, 1 << 20))
        {
            Assert.That(previous.TryAppend(new TaskDispatched(new TaskPayload { Id = ids[0], Name = "A", DispatchedAt = DateTime.UtcNow })), Is.True);
            Assert.That(previous.TryAppend(new TaskDispatched(new TaskPayload { Id = ids[1], Name = "B <script>", DispatchedAt = DateTime.UtcNow })), Is.True);
        }

        // A line cut by a crash, then a later record.
        await File.AppendAllTextAsync(path, "{\"Kind\":\"dispatched\",\"Task\":{\"Id\n");
        using (var previous = new LedgerSpool(path, 1 << 20))
        {
            Assert.That(previous.TryAppend(new TaskDispatched(new TaskPayload { Id = ids[2], Name = "C", DispatchedAt = DateTime.UtcNow })), Is.True);
        }

        await using var host = await LedgerHost.StartAsync(ledger, o => o.SpoolDirectory = spool);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await LedgerHost.EventuallyAsync(
            async () => await host.QueryAsync(db => db.TaskLogs.CountAsync()) == 3 && !recorder.IsSpooling,
            TimeSpan.FromSeconds(30), "the previous process's records reach the ledger");

        var names = await host.QueryAsync(db => db.TaskLogs.OrderBy(t => t.Name).Select(t => t.Name).ToListAsync());
        Assert.That(names, Is.EqualTo(new[] { "A", "B <script>", "C" }));
        Assert.That((recorder.Dropped, File.Exists(path)), Is.EqualTo((1L, false)), "the cut line is skipped and counted");
    }

    [Test]
    public async Task TwoHostsOnOneLedger_SpoolToFilesOfTheirOwn()
    {
        var spool = Path.Combine(Path.GetTempPath(), "joblog-test-spool-" + Guid.NewGuid().ToString("N"));
        // Declared before the host, so deleted after it has stopped: a running host may still write into it.
        using var deleteSpool = new DeleteDirectory(spool);
        var ledger = TestLedger.Sqlite();
        Action<JobLogOptions> options = o =>
        {
            o.SpoolDirectory = spool;
            o.QueueCapacity = 1000;
        };
        await using var first = await LedgerHost.StartAsync(ledger, options, start: false);
        await using var second = await LedgerHost.StartAsync(ledger, options, start: false);
        var a = first.Services.GetRequiredService<LedgerRecorder>();
        var b = second.Services.GetRequiredService<LedgerRecorder>();

        for (var i = 0; i < 1001; i++)
        {
            a.Enqueue(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "A", DispatchedAt = DateTime.UtcNow }));
            b.Enqueue(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "B", DispatchedAt = DateTime.UtcNow }));
        }

        Assert.That((a.Spooled, b.Spooled), Is.EqualTo((1L, 1L)));
        var files = Directory.GetFiles(spool, "*.jsonl").Order().ToList();
        Assert.That(files, Has.Count.EqualTo(2));
        Assert.That(files.Select(f => File.ReadAllText(f).Contains("\"Name\":\"A\"", StringComparison.Ordinal)), Is.EqualTo(new[] { true, false }));
        a.Dispose();
        b.Dispose();
    }

    [Test]
    public async Task SpoolFull_DropsAndCounts()
    {
        var spool = Path.Combine(Path.GetTempPath(), "joblog-test-spool-" + Guid.NewGuid().ToString("N"));
        // Declared before the host, so deleted after it has stopped: a running host may still write into it.
        using var deleteSpool = new DeleteDirectory(spool);
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.QueueCapacity = 1000;
            o.SpoolDirectory = spool;
            o.MaxSpoolBytes = 4096;
        }, start: false);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();

        for (var i = 0; i < 1200; i++)
        {
            recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));
        }

        Assert.That(recorder.Backlog, Is.EqualTo(1000));
        Assert.That(recorder.Spooled, Is.InRange(1, 199), "a few records fit in 4 KB");
        Assert.That(recorder.Spooled + recorder.Dropped, Is.EqualTo(200));
        Assert.That(new FileInfo(Directory.GetFiles(spool, "*.jsonl").Single()).Length, Is.LessThanOrEqualTo(4096));
        recorder.Dispose();
    }

    [Test]
    public async Task Shutdown_FlushesWhatIsQueued()
    {
        var ledger = TestLedger.Sqlite();
        var host = await LedgerHost.StartAsync(ledger, o => o.Durability = LedgerDurability.Buffered);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        for (var i = 0; i < 2000; i++)
        {
            recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));
        }

        await host.Host.StopAsync();
        host.Host.Dispose();

        await using var reader = await LedgerHost.StartAsync(ledger);
        Assert.That(await reader.QueryAsync(db => db.TaskLogs.CountAsync()), Is.EqualTo(2000));
    }

    [Test]
    public void AddJobLog_WithoutADatabase_FailsAtStartWithAClearMessage()
    {
        var services = new ServiceCollection();
        services.AddJobLog(_ => { });
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(
            () => _ = provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<JobLogOptions>>().Value);
        Assert.That(ex!.Message, Does.Contain("UseSqlite"));
    }

    private sealed class DeleteDirectory(string path) : IDisposable
    {
        public void Dispose()
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
    }
}
