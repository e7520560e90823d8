using JobLog.Recording;
using JobLog.Redaction;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>Every record kind survives the spool file, and a file in the first format (a previous version's) is replayed.</summary>
[Platform("Linux")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class SpoolFormatTests
{
    private static readonly DateTime T0 = new(2026, 12, 2, 10, 0, 0, DateTimeKind.Utc);
    private string _root = null!;

    [SetUp]
    public void SetUp()
    {
        _root = Path.Combine(Path.GetTempPath(), "joblog-test-format-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_root, recursive: true);

    [Test]
    public void EveryRecordKind_ReadBackFromTheSpool_IsEqualToWhatWasAppended()
    {
        var taskId = Guid.NewGuid();
        var runId = Guid.NewGuid();
        var task = new TaskPayload
        {
            Id = taskId, Name = "Charge", QueueName = "charge", Input = "Amount=3", TaskArgs = "[]", TaskKwargs = "{\"amount\":3}",
            DispatchedAt = T0, Expires = T0.AddHours(1), ParentRunId = Guid.NewGuid(), IsInternal = true, ExtraData = "{}",
        };
        var run = new RunPayload { Id = runId, TaskId = taskId, Name = "Charge", ConsumerType = "C", Start = T0, WaitingTime = 0.5, Redelivered = true };
        LedgerRecord[] records =
        [
            new TaskDispatched(task),
            new TaskDispatchFailed(taskId, "no route"),
            new RunStarted(run, task, expireOrphans: true),
            new RunFinished(runId, taskId, TaskRunState.Retried, T0.AddSeconds(1), "boom", "out", T0.AddSeconds(5)),
            new RunFailedForGood(runId, taskId),
            new RunNextRetryKnown(runId, T0.AddSeconds(9)),
            new TaskExtraDataSet(taskId, "{\"progress\":1}"),
            new CommandRecorded(new CommandPayload { Id = Guid.NewGuid(), Name = "sweep", Start = T0, Stop = T0, IsSuccessful = true, ExitCode = 0 }),
            new InputRequestRecorded(new InputRequestPayload
            {
                Id = Guid.NewGuid(), Host = "h", Method = "GET", Path = "/", RequestTimestamp = T0, UserId = "u", Type = InputRequestType.SuccessfulLogin,
            }),
            new OutputRequestRecorded(new OutputRequestPayload
            {
                Id = Guid.NewGuid(), Host = "psp", Method = "POST", Path = "/charge", RequestTimestamp = T0, InputRequestId = Guid.NewGuid(),
                RelatedObjects = [new RelatedObjectPayload { Id = Guid.NewGuid(), TaskRunLogId = runId }],
            }),
        ];

        var read = RoundTrip(records);

        Assert.That(read, Has.Count.EqualTo(records.Length));
        for (var i = 0; i < records.Length; i++)
        {
            Assert.That(read[i].GetType(), Is.EqualTo(records[i].GetType()));
            Assert.That(Describe(read[i]), Is.EqualTo(Describe(records[i])), records[i].GetType().Name);
        }
    }

    [Test]
    public void RunRenderedLazily_IsSpooledWithItsRendering()
    {
        var renderer = new MessageRenderer(new Redactor(new RedactionOptions()));
        var taskId = Guid.NewGuid();
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = taskId, Name = "Charge", ConsumerType = "C", Start = T0 };
        var seed = new TaskPayload { Id = taskId, Name = "Charge", DispatchedAt = T0 };
        var started = new RunStarted(run, seed, false, new DeferredRendering(new { Amount = 3 }, renderer));

        var read = (RunStarted)RoundTrip([started]).Single();

        Assert.That(read.Run.Input, Does.Contain("3"));
        Assert.That((read.TaskSeed.Input, read.TaskSeed.TaskKwargs), Is.EqualTo((read.Run.Input, read.Run.TaskKwargs)));
        Assert.That((started.Run.Input, started.TaskSeed.Input), Is.EqualTo(((string?)null, (string?)null)), "the queued record is not changed");
    }

    [Test]
    public void FileOfThePreviousFormat_IsReplayed_AndAnUnknownKindIsSkippedAndCounted()
    {
        var taskId = Guid.NewGuid();
        var runId = Guid.NewGuid();
        var path = Path.Combine(_root, "old.spool.jsonl");
        // Lines as the first spool format wrote them: one envelope with every field of every kind.
        File.WriteAllLines(path,
        [
            "{\"Kind\":\"runStarted\",\"Task\":{\"Id\":\"" + taskId + "\",\"TaskId\":\"" + taskId + "\",\"Name\":\"Charge\",\"DispatchedAt\":\"2026-12-02T10:00:00Z\",\"IsSetAsStale\":false,\"State\":1,\"IsInternal\":false,\"Runs\":[]},"
                + "\"Run\":{\"Id\":\"" + runId + "\",\"TaskId\":\"" + taskId + "\",\"Name\":\"Charge\",\"ConsumerType\":\"C\",\"Start\":\"2026-12-02T10:00:01Z\",\"State\":1,\"Retries\":0,\"Redelivered\":false},"
                + "\"ExpireOrphans\":true,\"RunId\":\"00000000-0000-0000-0000-000000000000\",\"TaskId\":\"00000000-0000-0000-0000-000000000000\",\"State\":0,\"Time\":\"0001-01-01T00:00:00\"}",
            "{\"Kind\":\"runFinished\",\"ExpireOrphans\":false,\"RunId\":\"" + runId + "\",\"TaskId\":\"" + taskId + "\",\"State\":2,\"Time\":\"2026-12-02T10:00:02Z\",\"Error\":\"boom\",\"Output\":\"out\"}",
            "{\"Kind\":\"extraData\",\"ExpireOrphans\":false,\"RunId\":\"00000000-0000-0000-0000-000000000000\",\"TaskId\":\"" + taskId + "\",\"State\":0,\"Time\":\"0001-01-01T00:00:00\",\"Output\":\"{}\"}",
            "{\"Kind\":\"somethingNewer\",\"TaskId\":\"" + taskId + "\"}",
        ]);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        using var spool = new LedgerSpool(path, 1 << 20);
        var read = new List<LedgerRecord>();
        spool.ReadNext(read, 100, out var unreadable);

        Assert.That(unreadable, Is.EqualTo(1));
        Assert.That(read, Has.Count.EqualTo(3));
        var started = (RunStarted)read[0];
        Assert.That((started.Run.Id, started.TaskSeed.Id, started.ExpireOrphans), Is.EqualTo((runId, taskId, true)));
        var finished = (RunFinished)read[1];
        Assert.That((finished.State, finished.Stop, finished.ErrorMessage, finished.Output), Is.EqualTo((TaskRunState.Succeeded, T0.AddSeconds(2), "boom", "out")));
        Assert.That(((TaskExtraDataSet)read[2]).ExtraData, Is.EqualTo("{}"));
    }

    private List<LedgerRecord> RoundTrip(IReadOnlyList<LedgerRecord> records)
    {
        using var spool = new LedgerSpool(Path.Combine(_root, "records.spool.jsonl"), 1 << 20);
        foreach (var record in records)
        {
            Assert.That(spool.TryAppend(record), Is.True);
        }

        var read = new List<LedgerRecord>();
        spool.ReadNext(read, 100, out var unreadable);
        Assert.That(unreadable, Is.Zero);
        return read;
    }

    // The payloads' lists compare by reference; their JSON is what must survive.
    private static string Describe(LedgerRecord record) =>
        System.Text.Json.JsonSerializer.Serialize(record, SpoolJson.Default.LedgerRecord);
}
