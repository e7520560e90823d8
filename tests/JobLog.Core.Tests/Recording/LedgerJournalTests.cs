using JobLog.Recording;
using JobLog.Recording.Journal;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>The journal masks each record once, for the disk, and hands that masked record to the writer.</summary>
[Platform("Linux")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class LedgerJournalTests
{
    private const string Secret = "Password=hunter2";
    private string _root = null!;

    [SetUp]
    public void SetUp() => _root = Directory.CreateTempSubdirectory("joblog-test-ledger-journal-").FullName;

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Test]
    public async Task JournalDirectoryDeletedWhileTheJournalIsIdle_ItsUncommittedRecordsAreInAFileAgainWithoutWaitingForTheNextRecord()
    {
        var journaled = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var segments = JournalSegments.Claim(_root, "Data Source=ledger-journal-test.db", 1 << 20, flushToDisk: false)!;
        var refusals = new JournalRefusals(NullLogger.Instance, TimeProvider.System, _ => { });
        var id = Guid.NewGuid();
        await using var journal = new LedgerJournal(segments, record => record, last => journaled.TrySetResult(last), refusals, _ => Assert.Fail("nothing is refused"));
        journal.Append(new QueuedRecord(new RunNextRetryKnown(id, DateTime.UtcNow), 1));
        await journaled.Task.WaitAsync(TimeSpan.FromSeconds(120));

        // Acknowledged, not committed; then the directory goes, and no other record comes to notice it.
        Directory.Delete(_root, recursive: true);

        await LedgerHost.EventuallyAsync(
            () => Task.FromResult(Directory.Exists(_root) && Directory.GetFiles(_root, "*.journal").Any(f => File.ReadAllText(f).Contains(id.ToString(), StringComparison.OrdinalIgnoreCase))),
            TimeSpan.FromSeconds(10),
            "the uncommitted record is in a segment at the journal's path again");
    }

    /// <summary>
    /// The writer takes records from the queue without waiting for the journal, so it may commit a record before the
    /// journal's thread appends it. The checkpoint then found nothing to delete, and the segment the append made, holding
    /// only committed records, stayed until the next commit: for ever in a process that went idle, replayed again by the
    /// next start (found as a flaky StoppedProcessJournalTests case, session 24).
    /// </summary>
    [Test]
    public async Task ARecordCommittedBeforeItsAppend_ItsSegmentIsDeletedAfterTheAppend_WithoutAnotherCommit()
    {
        var journaled = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var segments = JournalSegments.Claim(_root, "Data Source=ledger-journal-test.db", 1 << 20, flushToDisk: false)!;
        var refusals = new JournalRefusals(NullLogger.Instance, TimeProvider.System, _ => { });
        await using var journal = new LedgerJournal(segments, record => record, last => journaled.TrySetResult(last), refusals, _ => Assert.Fail("nothing is refused"));

        journal.Checkpoint(1); // the writer committed record 1 first
        journal.Append(new QueuedRecord(new RunNextRetryKnown(Guid.NewGuid(), DateTime.UtcNow), 1));
        await journaled.Task.WaitAsync(TimeSpan.FromSeconds(120));

        await LedgerHost.EventuallyAsync(
            () => Task.FromResult(Directory.GetFiles(_root, "*.journal").Length == 0),
            TimeSpan.FromSeconds(10),
            "the segment holding only a committed record is deleted");
    }

    [Test]
    public async Task TakeMasked_ReturnsTheRecordAsTheJournalMaskedIt_OncePerSequence()
    {
        var masked = new Dictionary<long, LedgerRecord>();
        var journaled = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var segments = JournalSegments.Claim(_root, "Data Source=ledger-journal-test.db", 1 << 20, flushToDisk: false)!;
        var refusals = new JournalRefusals(NullLogger.Instance, TimeProvider.System, _ => { });
        var records = Enumerable.Range(1, 3).Select(i => new QueuedRecord(new RunNextRetryKnown(Guid.NewGuid(), DateTime.UtcNow), i)).ToArray();
        await using (var journal = new LedgerJournal(
            segments,
            record =>
            {
                var copy = record with { };
                lock (masked)
                {
                    masked[records.Single(r => ReferenceEquals(r.Record, record)).Sequence] = copy;
                }

                return copy;
            },
            last =>
            {
                if (last == 3)
                {
                    journaled.TrySetResult(last);
                }
            },
            refusals,
            _ => Assert.Fail("nothing is refused")))
        {
            foreach (var record in records)
            {
                journal.Append(record);
            }

            await journaled.Task.WaitAsync(TimeSpan.FromSeconds(120));

            Assert.That(journal.TakeMasked(2), Is.SameAs(masked[2]), "the journal's masked copy, not the queued record");
            Assert.That(journal.TakeMasked(1), Is.Null, "taken in order: an older one is gone (the writer masked it itself)");
            Assert.That(journal.TakeMasked(3), Is.SameAs(masked[3]));
            Assert.That(journal.TakeMasked(3), Is.Null, "once");
            Assert.That(journal.TakeMasked(4), Is.Null, "not journaled yet");
        }
    }

    /// <summary>
    /// A wait for the journal appends what is queued on the waiting thread when no append is under way, instead of
    /// waking the journal's thread and then being woken by it: two thread hops per acknowledged delivery, 0.33 ms of
    /// mean wait per acknowledgement on the quiet bench (session 32, issue 13).
    /// </summary>
    [Test]
    public async Task AWaitForTheJournal_IsOverWhenItReturns_ItsRecordAppendedByTheWaitingThread()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.Durability = LedgerDurability.Journaled;
            o.SpoolDirectory = _root;
        });
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await using var blocker = await host.LockSqliteLedgerAsync();

        const int Waits = 200;
        var over = 0;
        var id = Guid.Empty;
        for (var i = 0; i < Waits; i++)
        {
            id = Guid.NewGuid();
            var sequence = recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow }));
            var wait = recorder.WaitCommittedAsync(sequence);
            over += wait.IsCompletedSuccessfully ? 1 : 0;
            await wait;
        }

        Assert.That(over, Is.EqualTo(Waits), "every wait was over when it returned: its record was appended by the waiting thread");
        var segments = Directory.GetFiles(_root, "*.journal").Select(File.ReadAllText).ToArray();
        Assert.That(segments.Any(s => s.Contains(id.ToString(), StringComparison.OrdinalIgnoreCase)), Is.True, "the last record is in the journal");

        await using (var rollback = blocker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK";
            await rollback.ExecuteNonQueryAsync();
        }

        await host.FlushAsync();
        Assert.That(await host.QueryAsync(db => db.TaskLogs.CountAsync()), Is.EqualTo(Waits), "every record reaches the ledger once");
    }

    [Test]
    public async Task ASecret_JournaledWhileTheDatabaseIsLocked_IsMaskedInTheJournalAndInTheLedger()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.Durability = LedgerDurability.Journaled;
            o.SpoolDirectory = _root;
        });
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var id = Guid.NewGuid();
        await using var blocker = await host.LockSqliteLedgerAsync();

        // Journaled (and masked there) before the writer can take it: the writer commits the journal's masked record.
        var sequence = recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "T", Input = Secret, DispatchedAt = DateTime.UtcNow }));
        await recorder.WaitCommittedAsync(sequence).AsTask().WaitAsync(TimeSpan.FromSeconds(120));
        var segments = Directory.GetFiles(_root, "*.journal").Select(File.ReadAllText).ToArray();
        Assert.That(segments.Any(s => s.Contains(id.ToString(), StringComparison.OrdinalIgnoreCase)), Is.True, "the record is in the journal");
        Assert.That(segments.Any(s => s.Contains("hunter2", StringComparison.Ordinal)), Is.False, "masked before the disk");

        await using (var rollback = blocker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK";
            await rollback.ExecuteNonQueryAsync();
        }

        await host.FlushAsync();
        var input = await host.QueryAsync(db => db.TaskLogs.Where(t => t.Id == id).Select(t => t.Input).SingleAsync());
        Assert.That(input, Does.Not.Contain("hunter2"));
    }
}
