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

    [GlobalSetup]
    public void Setup()
    {
        _renderer = new MessageRenderer(new Redactor(new RedactionOptions()));
        _sqlite = new LedgerPlanner(LedgerDatabase.For(LedgerProvider.Sqlite));
        var rendered = _renderer.Render(_message);
        var now = DateTime.UtcNow;
        _oneBatch = [];
        _runsOnly = [];
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
        }
    }

    [Benchmark(Description = "MessageRenderer.Render (once per publish, once per delivery)")]
    public object Render() => _renderer.Render(_message);

    [Benchmark(Description = "LedgerPlanner.Plan, 1,000 messages in one batch (dispatch + run)", OperationsPerInvoke = 1000)]
    public object PlanOneBatch() => _sqlite.Plan(_oneBatch);

    [Benchmark(Description = "LedgerPlanner.Plan, 1,000 runs (Acknowledged: the dispatch was in an earlier batch)", OperationsPerInvoke = 1000)]
    public object PlanRuns() => _sqlite.Plan(_runsOnly);
}
