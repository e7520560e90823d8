using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>The spool file (the queue's overflow) when its directory is deleted, and spool files stopped processes left (session 23).</summary>
public class SpoolRecoveryTests
{
    [Test]
    public async Task SpoolDirectoryDeletedDuringAnOutage_TheSpooledRecordsAreInAFileAgain_AndReachTheLedger([Values] bool moreRecordsAfter)
    {
        var spool = Path.Combine(Path.GetTempPath(), "joblog-test-spool-" + Guid.NewGuid().ToString("N"));
        try
        {
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

            var ids = new List<Guid>();
            var spooled = new List<Guid>();
            void Record(int count)
            {
                for (var i = 0; i < count; i++)
                {
                    var id = Guid.NewGuid();
                    ids.Add(id);
                    if (recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow })) == 0)
                    {
                        spooled.Add(id);
                    }
                }
            }

            Record(3000);
            Assert.That((recorder.IsSpooling, spooled.Count), Is.EqualTo((true, recorder.Spooled)));
            Assert.That(spooled, Is.Not.Empty);

            // An operator or a temporary-file cleaner: the spool file (and the journal) go with the directory.
            Directory.Delete(spool, recursive: true);
            if (moreRecordsAfter)
            {
                Record(200);
            }

            // A crash from now on must not lose them: every spooled record is in a spool file at the directory's path again.
            await LedgerHost.EventuallyAsync(
                () => Task.FromResult(Directory.Exists(spool) && SpooledIds(spool).IsSupersetOf(spooled)),
                TimeSpan.FromSeconds(10), "every spooled record is in a spool file at its path again");

            await using (var rollback = blocker.CreateCommand())
            {
                rollback.CommandText = "ROLLBACK";
                await rollback.ExecuteNonQueryAsync();
            }

            await LedgerHost.EventuallyAsync(
                async () => await host.QueryAsync(db => db.TaskLogs.CountAsync()) == ids.Count && !recorder.IsSpooling,
                TimeSpan.FromSeconds(30), "every record reaches the ledger");
            Assert.That(recorder.Dropped, Is.Zero);
            Assert.That(Directory.GetFiles(spool, "*.jsonl"), Is.Empty, "the replayed spool file is deleted");
        }
        finally
        {
            if (Directory.Exists(spool))
            {
                Directory.Delete(spool, recursive: true);
            }
        }
    }

    /// <summary>
    /// Session 31 (a clean-clone CI run's fault test, 'without producer fields 4041'): a cleaner deleting the spool's
    /// directory while the process writes the file again (its directory gone between the process's mkdir and its lock
    /// file's open) made the write-again fail; the append that met it was refused (a record dropped) and the writer's read
    /// gave the spool up (1048), so the spooled records were in no file and lost at the kill. The deleted file's handle
    /// still holds them: a failed write-again is tried again, nothing is dropped or given up.
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task SpoolDirectoryDeletedAgainAndAgainWhileRecordsAreSpooled_NothingIsDroppedOrGivenUp_AndEveryRecordReachesTheLedger()
    {
        var spool = Path.Combine(Path.GetTempPath(), "joblog-test-spool-" + Guid.NewGuid().ToString("N"));
        try
        {
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
            var ids = new List<Guid>();
            void Record(int count)
            {
                for (var i = 0; i < count; i++)
                {
                    var id = Guid.NewGuid();
                    ids.Add(id);
                    recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow }));
                }
            }

            await using (var blocker = await host.LockSqliteLedgerAsync())
            {
                Record(3000);
                Assert.That(recorder.IsSpooling, Is.True);

                // The cleaner: the directory deleted again and again, racing every write-again of the file.
                using var stop = new CancellationTokenSource();
                var deletions = 0;
                var cleaner = Task.Run(() =>
                {
                    while (!stop.IsCancellationRequested)
                    {
                        try
                        {
                            Directory.Delete(spool, recursive: true);
                            deletions++;
                        }
                        catch (IOException)
                        {
                            // Missing, or a file made in it meanwhile: again.
                        }
                    }
                });
                for (var round = 0; round < 40; round++)
                {
                    Record(25);
                    await Task.Delay(25);
                }

                await stop.CancelAsync();
                await cleaner;
                TestContext.Out.WriteLine($"deletions: {deletions}");
                Assert.That(deletions, Is.GreaterThan(1), "the cleaner raced the writes");

                await using var rollback = blocker.CreateCommand();
                rollback.CommandText = "ROLLBACK";
                await rollback.ExecuteNonQueryAsync();
            }

            await LedgerHost.EventuallyAsync(
                async () => await host.QueryAsync(db => db.TaskLogs.CountAsync()) == ids.Count && !recorder.IsSpooling,
                TimeSpan.FromSeconds(30), "every record reaches the ledger");
            Assert.That(recorder.Dropped, Is.Zero);
        }
        finally
        {
            if (Directory.Exists(spool))
            {
                Directory.Delete(spool, recursive: true);
            }
        }
    }

    /// <summary>
    /// Session 31: a spool that could not be written again goes on with its deleted file's handle; its slot's lock went with
    /// the directory, so another process may have taken the slot and made its own file at the same path. Once everything
    /// is replayed, finishing must not delete that file (it is not this spool's).
    /// </summary>
    [Test]
    [Platform("Linux")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void SpoolReplayedFromItsDeletedFile_DoesNotDeleteTheFileAnotherProcessMadeAtItsPath()
    {
        var root = Path.Combine(Path.GetTempPath(), "joblog-test-spool-" + Guid.NewGuid().ToString("N"));
        var spool = Path.Combine(root, "spool");
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        try
        {
            using var owner = LedgerSpool.Claim(spool, "ledger", 1 << 20, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)!;
            var id = Guid.NewGuid();
            Assert.That(owner.TryAppend(new TaskDispatched(new TaskPayload { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow })), Is.True);

            // Deleted, then made again writable by others: this spool refuses it, so its file is not written again.
            Directory.Delete(spool, recursive: true);
            Directory.CreateDirectory(spool, Private);
            File.SetUnixFileMode(spool, Private | UnixFileMode.OtherWrite);
            var theirs = owner.Path;
            File.WriteAllText(theirs, "another process's spooled records\n");
            Assert.That(owner.TryAppend(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow })), Is.True,
                "appended to the deleted file's handle");
            Assert.That(() => owner.CheckFile(), Throws.InstanceOf<IOException>(), "the refusal is said by the check");

            var read = new List<LedgerRecord>();
            owner.ReadNext(read, 100, out var unreadable);
            Assert.That((read.Count, unreadable), Is.EqualTo((2, 0)), "both records read from the deleted file");
            owner.MarkReplayed();
            Assert.That(owner.TryFinish(), Is.True);
            Assert.That(File.Exists(theirs) ? File.ReadAllText(theirs) : "(deleted)", Is.EqualTo("another process's spooled records\n"));

            // The next overflow, the directory fit again: not into the other process's file, whose slot it holds.
            File.SetUnixFileMode(spool, Private);
            using (var theirLock = new FileStream(theirs + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
            {
                Assert.That(owner.TryAppend(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow })), Is.True);
                Assert.That(File.ReadAllText(theirs), Is.EqualTo("another process's spooled records\n"), "their file untouched");
                Assert.That(owner.Path, Is.Not.EqualTo(theirs), "a slot of its own");
            }
        }
        finally
        {
            if (Directory.Exists(root))
            {
                File.SetUnixFileMode(spool, Private);
                Directory.Delete(root, recursive: true);
            }
        }
    }

    [Test]
    public async Task SpoolFilesLeftInTwoSlotsByStoppedProcesses_AreBothReplayedByTheNextProcess()
    {
        var spool = Path.Combine(Path.GetTempPath(), "joblog-test-spool-" + Guid.NewGuid().ToString("N"));
        try
        {
            var ledger = TestLedger.Sqlite();
            var options = new JobLogOptions { SpoolDirectory = spool };
            ledger.Apply(options);
            var name = LedgerDatabase.For(options.Provider).Identity(options.ConnectionString!);
            var ids = new[] { Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid() };

            // Two processes that overflowed into slots 0 and 1, then were killed before their replay.
            Assert.That(SpoolFiles.CheckDirectory(spool, create: true), Is.Null);
            using (var first = new LedgerSpool(LedgerSpool.FileFor(spool, name, 0), 1 << 20))
            {
                Assert.That(first.TryAppend(new TaskDispatched(new TaskPayload { Id = ids[0], Name = "A", DispatchedAt = DateTime.UtcNow })), Is.True);
            }

            using (var second = new LedgerSpool(LedgerSpool.FileFor(spool, name, 1), 1 << 20))
            {
                Assert.That(second.TryAppend(new TaskDispatched(new TaskPayload { Id = ids[1], Name = "B", DispatchedAt = DateTime.UtcNow })), Is.True);
                Assert.That(second.TryAppend(new TaskDispatched(new TaskPayload { Id = ids[2], Name = "C", DispatchedAt = DateTime.UtcNow })), Is.True);
            }

            // One process starts: it replays both.
            await using var host = await LedgerHost.StartAsync(ledger, o => o.SpoolDirectory = spool);
            var recorder = host.Services.GetRequiredService<LedgerRecorder>();
            await LedgerHost.EventuallyAsync(
                async () => await host.QueryAsync(db => db.TaskLogs.CountAsync()) == 3 && !recorder.IsSpooling,
                TimeSpan.FromSeconds(15), "both stopped processes' spooled records reach the ledger");
            Assert.That(Directory.GetFiles(spool, "*.jsonl"), Is.Empty, "both spool files are replayed and deleted");
            Assert.That(recorder.Dropped, Is.Zero);
        }
        finally
        {
            if (Directory.Exists(spool))
            {
                Directory.Delete(spool, recursive: true);
            }
        }
    }

    private static HashSet<Guid> SpooledIds(string directory)
    {
        var ids = new HashSet<Guid>();
        foreach (var file in Directory.GetFiles(directory, "*.spool.jsonl"))
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            while (reader.ReadLine() is { } line)
            {
                var at = line.IndexOf("\"Id\":\"", StringComparison.Ordinal);
                if (at >= 0 && Guid.TryParse(line.AsSpan(at + 6, 36), out var id))
                {
                    ids.Add(id);
                }
            }
        }

        return ids;
    }
}
