using BenchmarkDotNet.Attributes;
using JobLog.Bench.Throughput;
using JobLog.Recording;
using JobLog.Redaction;
using JobLog.Storage;
using MassTransit;

namespace JobLog.Bench.Micro;

/// <summary>
/// What JobLog costs per message outside the database: rendering a message (done on publish and again on consume),
/// and planning a batch. Run with <c>micro</c>; BenchmarkDotNet's memory diagnoser gives exact allocations.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class HotPathBenchmarks
{
    private readonly ChargeCard _message = new(42, 10.5m, "EUR", "order-42");
    private MessageRenderer _renderer = null!;
    private LedgerPlanner _sqlite = null!;
    private List<LedgerRecord> _oneBatch = null!;
    private List<LedgerRecord> _runsOnly = null!;
    private List<LedgerRecord> _asOnTheBus = null!;
    private RecordMasking _masking = null!;
    private System.Buffers.ArrayBufferWriter<byte> _journalBuffer = null!;
    private System.Text.Json.Utf8JsonWriter _journalWriter = null!;
    private System.Buffers.ArrayBufferWriter<byte> _journalScratch = new(4096);

    private Exception _failure = null!;
    private readonly Guid _instance = NewId.NextGuid();

    [GlobalSetup]
    public void Setup()
    {
        _failure = Failure();
        var redactor = new Redactor(new RedactionOptions());
        _renderer = new MessageRenderer(redactor);
        _masking = new RecordMasking(redactor);
        _journalBuffer = new System.Buffers.ArrayBufferWriter<byte>(1 << 20);
        _journalWriter = new System.Text.Json.Utf8JsonWriter(_journalBuffer, new System.Text.Json.JsonWriterOptions { SkipValidation = true });
        _sqlite = new LedgerPlanner(LedgerDatabase.For(LedgerProvider.Sqlite));
        var rendered = _renderer.Render(_message);
        var now = DateTime.UtcNow;
        _oneBatch = [];
        _runsOnly = [];
        _asOnTheBus = [];
        for (var i = 0; i < 1000; i++)
        {
            var taskId = NewId.NextGuid();
            var task = new TaskPayload
            {
                Id = taskId, Name = "ChargeCard", QueueName = "charge-card", Input = rendered.Input, TaskArgs = rendered.TaskArgs,
                TaskKwargs = rendered.TaskKwargs, DispatchedAt = now, EstimatedTimeOfFirstArrival = now, Host = "bench",
            };
            var run = new RunPayload
            {
                Id = NewId.NextGuid(), TaskId = taskId, Name = "ChargeCard", QueueName = "charge-card", ConsumerType = "ChargeCardConsumer",
                Input = rendered.Input, TaskArgs = rendered.TaskArgs, TaskKwargs = rendered.TaskKwargs, Start = now, Host = "bench",
            };
            var started = new RunStarted(run, task, false);
            var finished = new RunFinished(run.Id, taskId, TaskRunState.Succeeded, now, null, null, null);
            _oneBatch.AddRange([new TaskDispatched(task), started, finished]);
            _runsOnly.AddRange([started, finished]);

            // What the bus's filters also set (ConsumedRecords, TaskDispatchObserver): the nullable values the journal
            // writes (docs/benchmarks.md, "Session 45 (perf)").
            var conversation = NewId.NextGuid();
            const string source = "rabbitmq://localhost/bench/host_bench_bus_abcdefg?temporary=true";
            var seed = new TaskPayload
            {
                Id = taskId, Name = "ChargeCard", QueueName = "charge-card", DispatchedAt = now, EstimatedTimeOfFirstArrival = now,
                ConversationId = conversation, SourceAddress = source,
            };
            var onTheBus = run with { Input = null, TaskArgs = null, TaskKwargs = null, WaitingTime = 0.0125, HostInstanceId = _instance };
            _asOnTheBus.AddRange(
            [
                new TaskDispatched(task with { ConversationId = conversation, SourceAddress = source }),
                new RunStarted(onTheBus, seed, false),
                finished,
            ]);
        }
    }

    [Benchmark(Description = "MessageRenderer.Render (once per publish, once per delivery)")]
    public object Render() => _renderer.Render(_message);

    [Benchmark(Description = "LedgerPlanner.Plan, 1,000 messages in one batch (dispatch + run)", OperationsPerInvoke = 1000)]
    public object PlanOneBatch() => _sqlite.Plan(_oneBatch);

    [Benchmark(Description = "LedgerPlanner.Plan, 1,000 runs (Acknowledged: the dispatch was in an earlier batch)", OperationsPerInvoke = 1000)]
    public object PlanRuns() => _sqlite.Plan(_runsOnly);

    [Benchmark(Description = "RecordMasking.Apply, 1,000 messages (dispatch + run start + run end)", OperationsPerInvoke = 1000)]
    public int Mask()
    {
        var changed = 0;
        foreach (var record in _oneBatch)
        {
            changed += ReferenceEquals(_masking.Apply(record), record) ? 0 : 1;
        }

        return changed;
    }

    [Benchmark(Description = "A retried run's error: ExceptionTexts.Of, then RecordMasking.Apply of its RunFinished (per failed attempt)")]
    public object FailedAttempt()
    {
        var text = ExceptionTexts.Of(_failure);
        return _masking.Apply(new RunFinished(Guid.Empty, Guid.Empty, TaskRunState.Retried, default, text, null, null));
    }

    // An exception thrown through a few async frames, as a consumer's is.
    private static Exception Failure()
    {
        try
        {
            ThrowAsync(4).GetAwaiter().GetResult();
        }
        catch (InvalidOperationException ex)
        {
            return ex;
        }

        throw new InvalidOperationException("not thrown");
    }

    private static async Task ThrowAsync(int depth)
    {
        await Task.Yield();
        if (depth == 0)
        {
            throw new InvalidOperationException("Card declined (benchmark: fails before the last attempt).");
        }

        await ThrowAsync(depth - 1).ConfigureAwait(false);
    }

    [Benchmark(Description = "Journal encoding, 1,000 messages (dispatch + run start + run end)", OperationsPerInvoke = 1000)]
    public int JournalWrite()
    {
        _journalBuffer.ResetWrittenCount();
        foreach (var record in _oneBatch)
        {
            Recording.Journal.JournalCodec.Write(_journalWriter, _journalBuffer, record, _journalScratch);
        }

        return _journalBuffer.WrittenCount;
    }

    [Benchmark(Description = "Journal encoding, 1,000 messages as the bus records them (with the consume side's nullable values)", OperationsPerInvoke = 1000)]
    public int JournalWriteAsOnTheBus()
    {
        _journalBuffer.ResetWrittenCount();
        foreach (var record in _asOnTheBus)
        {
            Recording.Journal.JournalCodec.Write(_journalWriter, _journalBuffer, record, _journalScratch);
        }

        return _journalBuffer.WrittenCount;
    }
}
