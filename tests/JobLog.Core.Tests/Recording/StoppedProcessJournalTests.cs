using System.Buffers;
using System.Text.Json;
using JobLog.Recording;
using JobLog.Recording.Journal;
using JobLog.Storage;
using JobLog.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>
/// A process killed while another process of the same ledger runs on the machine: what it acknowledged is in its journal
/// segments, and the running process replays them without waiting for a process to start (session 23).
/// </summary>
public class StoppedProcessJournalTests
{
    private string _spool = null!;

    [SetUp]
    public void SetUp() => _spool = Path.Combine(Path.GetTempPath(), "joblog-test-stopped-" + Guid.NewGuid().ToString("N"));

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(_spool))
        {
            Directory.Delete(_spool, recursive: true);
        }
    }

    [Test]
    public async Task AProcessKilledWhileAnotherRuns_ItsJournaledRecordsReachTheLedgerThroughTheRunningOne_AndItsSlotIsFreedAfter()
    {
        var ledger = TestLedger.Sqlite();
        var options = ledger.Apply(new JobLogOptions());
        var name = LedgerDatabase.For(options.Provider).Identity(options.ConnectionString!);
        await using var running = await LedgerHost.StartAsync(ledger, o => o.SpoolDirectory = _spool);
        var first = Guid.NewGuid();
        running.RecordDispatch(first);
        await running.FlushAsync();

        // Another process of this ledger journals a task and its run, then is killed: nothing of it was committed.
        var killed = JournalSegments.Claim(_spool, name, 1 << 20, flushToDisk: false)!;
        var taskId = Guid.NewGuid();
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = taskId, Name = "Charge", ConsumerType = "ChargeConsumer", Start = DateTime.UtcNow };
        killed.Append(Lines(
            new TaskDispatched(new TaskPayload { Id = taskId, Name = "Charge", DispatchedAt = DateTime.UtcNow }),
            new RunStarted(run, new TaskPayload { Id = taskId, Name = "Charge", DispatchedAt = DateTime.UtcNow }, false),
            new RunFinished(run.Id, taskId, TaskRunState.Succeeded, DateTime.UtcNow, null, "charged", null)), 3);
        killed.Dispose(); // its locks go with the process
        await LedgerHost.EventuallyAsync(
            () => Task.FromResult(Directory.GetFiles(_spool, "*.journal").Length == 1),
            TimeSpan.FromSeconds(10),
            "only the killed process's segment is left (the running one's are checkpointed after their commit)");

        await LedgerHost.EventuallyAsync(
            async () => (await running.TaskAsync(taskId)).State == TaskState.Succeeded,
            TimeSpan.FromSeconds(40), // a look every 10 s (LedgerRecorder.StoppedJournalsEvery)
            "the killed process's task reaches the ledger through the running process");
        var task = await running.TaskAsync(taskId);
        Assert.That(task.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { ("ChargeConsumer", TaskRunState.Succeeded) }));
        await LedgerHost.EventuallyAsync(
            () => Task.FromResult(Directory.GetFiles(_spool, "*.journal").Length == 0),
            TimeSpan.FromSeconds(10),
            "the replayed segment is deleted once committed");

        // The running process let the killed one's slot go: every slot but its own can be claimed by processes that start.
        var claimed = new List<JournalSegments?>();
        try
        {
            for (var i = 0; i < JournalSegments.Slots - 1; i++)
            {
                claimed.Add(JournalSegments.Claim(_spool, name, 1 << 20, flushToDisk: false));
            }

            Assert.That(claimed, Has.All.Not.Null, "a slot for each process that starts");
        }
        finally
        {
            foreach (var segments in claimed)
            {
                segments?.Dispose();
            }
        }
    }

    [Test]
    public async Task AProcessKilledWhileAnotherRuns_WhatItSpooledWhenItsQueueWasFull_ReachesTheLedgerThroughTheRunningOne()
    {
        var (started, name) = await StartRunningAsync();
        await using var running = started;

        // Another process of this ledger spools a task (its queue was full: acknowledged, not journaled), then is killed.
        var taskId = Guid.NewGuid();
        var killed = new LedgerSpool(LedgerSpool.FileFor(_spool, name, slot: 5), 1 << 20);
        Assert.That(killed.TryAppend(new TaskDispatched(new TaskPayload { Id = taskId, Name = "Refund", DispatchedAt = DateTime.UtcNow })), Is.True);
        killed.Dispose();
        Assert.That(Directory.GetFiles(_spool, "*.spool.jsonl"), Has.Length.EqualTo(1));

        await LedgerHost.EventuallyAsync(
            async () => (await running.TaskAsync(taskId)).Name == "Refund",
            TimeSpan.FromSeconds(40), // a look every 10 s (LedgerRecorder.StoppedJournalsEvery)
            "the killed process's spooled task reaches the ledger through the running process");
        await LedgerHost.EventuallyAsync(
            () => Task.FromResult(Directory.GetFiles(_spool, "*.spool.jsonl").Length == 0),
            TimeSpan.FromSeconds(10),
            "the replayed spool file is deleted once committed");
        using var slot = LedgerSpool.Claim(_spool, name, 1 << 20, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        Assert.That(slot, Is.Not.Null, "a spool slot for a process that starts");
    }

    /// <summary>
    /// Session 24: a process with <see cref="LedgerDurability.Buffered"/> opened no journal, so it never took the journal
    /// segments killed processes of its ledger left, neither at start nor while it ran: on a machine where only such a
    /// process runs on (or after a switch from <c>Journaled</c> to <c>Buffered</c>), what they acknowledged waited for ever.
    /// Now it holds a slot to take them, and replays them as a journaled process does.
    /// </summary>
    [Test]
    public async Task AProcessKilledWhileABufferedOneRuns_ItsJournaledRecordsReachTheLedgerThroughTheBufferedOne()
    {
        var ledger = TestLedger.Sqlite();
        var options = ledger.Apply(new JobLogOptions());
        var name = LedgerDatabase.For(options.Provider).Identity(options.ConnectionString!);
        var atStart = Guid.NewGuid();
        var before = JournalSegments.Claim(_spool, name, 1 << 20, flushToDisk: false)!;
        before.Append(Lines(new TaskDispatched(new TaskPayload { Id = atStart, Name = "Left", DispatchedAt = DateTime.UtcNow })), 1);
        before.Dispose(); // killed before the buffered process starts

        await using var running = await LedgerHost.StartAsync(ledger, o =>
        {
            o.SpoolDirectory = _spool;
            o.Durability = LedgerDurability.Buffered;
        });
        var killed = JournalSegments.Claim(_spool, name, 1 << 20, flushToDisk: false)!;
        var taskId = Guid.NewGuid();
        killed.Append(Lines(new TaskDispatched(new TaskPayload { Id = taskId, Name = "Charge", DispatchedAt = DateTime.UtcNow })), 1);
        killed.Dispose();

        await LedgerHost.EventuallyAsync(
            async () => (await running.TaskAsync(atStart)).Name == "Left" && (await running.TaskAsync(taskId)).Name == "Charge",
            TimeSpan.FromSeconds(40), // a look every 10 s (LedgerRecorder.StoppedJournalsEvery)
            "the killed processes' tasks reach the ledger through the buffered process");
        await LedgerHost.EventuallyAsync(
            () => Task.FromResult(Directory.GetFiles(_spool, "*.journal").Length == 0),
            TimeSpan.FromSeconds(10),
            "the replayed segments are deleted once committed");
    }

    /// <summary>
    /// Session 24: a running process took a killed process's spool file only up to a journal segment's 16 MiB (it read the
    /// file whole); a larger one (a queue full for long: up to <see cref="JobLogOptions.MaxSpoolBytes"/>) waited for the next
    /// process to start on the machine, for ever when none did. Now it is replayed in parts of at most 16 MiB, and deleted
    /// once all of it is committed.
    /// </summary>
    [Test]
    public async Task AProcessKilledWhileAnotherRuns_ASpoolFileLargerThanASegment_ReachesTheLedgerThroughTheRunningOne()
    {
        var (started, name) = await StartRunningAsync();
        await using var running = started;

        var path = LedgerSpool.FileFor(_spool, name, slot: 5);
        var killed = new LedgerSpool(path, 1L << 30);
        var ids = new List<Guid>();
        var input = new string('x', 2000);
        while (new FileInfo(path) is var file && (!file.Exists || file.Length <= LedgerRecorder.JournalSegmentBytes + (1 << 20)))
        {
            var id = Guid.NewGuid();
            ids.Add(id);
            Assert.That(killed.TryAppend(new TaskDispatched(new TaskPayload { Id = id, Name = "Refund", DispatchedAt = DateTime.UtcNow, Input = input })), Is.True);
        }

        killed.Dispose();
        await LedgerHost.EventuallyAsync(
            async () => await running.QueryAsync(db => Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.CountAsync(db.TaskLogs, t => t.Name == "Refund")) == ids.Count,
            TimeSpan.FromSeconds(90), // a look every 10 s (LedgerRecorder.StoppedJournalsEvery), then the writes
            $"the killed process's {ids.Count} spooled tasks ({new FileInfo(path).Length} bytes) reach the ledger through the running process");
        await LedgerHost.EventuallyAsync(
            () => Task.FromResult(Directory.GetFiles(_spool, "*.spool.jsonl").Length == 0),
            TimeSpan.FromSeconds(10),
            "the replayed spool file is deleted once all of it is committed");
    }

    /// <summary>A process of a new SQLite ledger that runs on (one record committed), and the ledger's name in file names.</summary>
    private async Task<(LedgerHost Running, string Name)> StartRunningAsync()
    {
        var ledger = TestLedger.Sqlite();
        var options = ledger.Apply(new JobLogOptions());
        var running = await LedgerHost.StartAsync(ledger, o => o.SpoolDirectory = _spool);
        running.RecordDispatch(Guid.NewGuid());
        await running.FlushAsync();
        return (running, LedgerDatabase.For(options.Provider).Identity(options.ConnectionString!));
    }

    private static byte[] Lines(params LedgerRecord[] records)
    {
        var output = new ArrayBufferWriter<byte>();
        var scratch = new ArrayBufferWriter<byte>();
        using var writer = new Utf8JsonWriter(output);
        foreach (var record in records)
        {
            JournalCodec.Write(writer, output, record, scratch);
            output.Write("\n"u8);
        }

        return output.WrittenSpan.ToArray();
    }
}
