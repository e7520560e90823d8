using JobLog.Recording;
using JobLog.Redaction;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

/// <summary>
/// The consume path does not render the message: runs take the task row's rendering, and the writer renders only to create
/// a missing task row (on PostgreSQL, for every consumer-side row it sends, at most once per delivery).
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class LedgerDeferredRenderingTests(LedgerProvider provider)
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);
    private LedgerHost _host = null!;
    private LedgerRecorder _recorder = null!;
    private MessageRenderer _renderer = null!;

    [SetUp]
    public async Task SetUp()
    {
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));
        _recorder = _host.Services.GetRequiredService<LedgerRecorder>();
        _renderer = _host.Services.GetRequiredService<MessageRenderer>();
    }

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    public sealed record Charge(int CustomerId, string Password)
    {
        private int _reads;

        public int Amount
        {
            get
            {
                Interlocked.Increment(ref _reads);
                return 10;
            }
        }

        public int Reads() => Volatile.Read(ref _reads);
    }

    private static (RunPayload Run, TaskPayload Seed) Consumed(Guid taskId, DateTime start) =>
        (new RunPayload { Id = Guid.NewGuid(), TaskId = taskId, Name = "Charge", ConsumerType = "C", Start = start, Host = "h" },
         new TaskPayload { Id = taskId, Name = "Charge", QueueName = "charge", DispatchedAt = T0, EstimatedTimeOfFirstArrival = T0 });

    [Test]
    public async Task RunWithoutTheProducersRow_CreatesTheTaskFromTheConsumersRendering_AndTheRunSharesIt()
    {
        var id = Guid.NewGuid();
        var (run, seed) = Consumed(id, T0.AddSeconds(1));
        _recorder.Enqueue(new RunStarted(run, seed, false, new DeferredRendering(new Charge(42, "hunter2"), _renderer)));
        _recorder.Enqueue(new RunFinished(run.Id, id, TaskRunState.Succeeded, T0.AddSeconds(2), null, null, null));
        await _host.FlushAsync();

        var task = await _host.TaskAsync(id);

        Assert.That(task.Input, Does.Contain("CustomerId=42").And.Not.Contain("hunter2"));
        Assert.That(task.TaskKwargs, Does.Contain("[Filtered]"));
        Assert.That((task.Runs.Single().Input, task.Runs.Single().TaskArgs, task.Runs.Single().TaskKwargs),
            Is.EqualTo((task.Input, task.TaskArgs, task.TaskKwargs)));
        Assert.That(task.State, Is.EqualTo(TaskState.Succeeded));
    }

    [Test]
    public async Task RunOfADispatchedTask_TakesTheProducersRendering_WithoutRenderingTheMessage()
    {
        var id = Guid.NewGuid();
        _recorder.Enqueue(new TaskDispatched(new TaskPayload
        {
            Id = id, Name = "Charge", Input = "from the producer", TaskArgs = "[1]", TaskKwargs = "{\"a\":1}", DispatchedAt = T0,
        }));
        await _host.FlushAsync();
        var message = new Charge(42, "x");
        var (run, seed) = Consumed(id, T0.AddSeconds(1));
        _recorder.Enqueue(new RunStarted(run, seed, false, new DeferredRendering(message, _renderer)));
        _recorder.Enqueue(new RunFinished(run.Id, id, TaskRunState.Succeeded, T0.AddSeconds(2), null, null, null));
        await _host.FlushAsync();

        var stored = await _host.QueryAsync(db => db.TaskRunLogs.AsNoTracking().SingleAsync(r => r.Id == run.Id));

        Assert.That((stored.Input, stored.TaskArgs, stored.TaskKwargs), Is.EqualTo(("from the producer", "[1]", "{\"a\":1}")));
        // SQLite probes for the row and renders only when it is missing; PostgreSQL renders on the writer's thread
        // rather than spend a round trip asking, and the producer's row wins (ON CONFLICT DO NOTHING).
        Assert.That(message.Reads(), Is.EqualTo(provider == LedgerProvider.Sqlite ? 0 : 1), "renderings of the message");
    }

    [Test]
    public async Task DispatchAndRunInOneBatch_RunTakesTheProducersRendering()
    {
        var id = Guid.NewGuid();
        _recorder.Enqueue(new TaskDispatched(new TaskPayload
        {
            Id = id, Name = "Charge", Input = "from the producer", TaskArgs = "[]", TaskKwargs = "{}", DispatchedAt = T0,
        }));
        var (run, seed) = Consumed(id, T0.AddSeconds(1));
        _recorder.Enqueue(new RunStarted(run, seed, false, new DeferredRendering(new Charge(42, "x"), _renderer)));
        await _host.FlushAsync();

        var task = await _host.TaskAsync(id);

        Assert.That((task.Input, task.Runs.Single().Input), Is.EqualTo(("from the producer", "from the producer")));
        Assert.That((task.State, task.Start), Is.EqualTo((TaskState.Active, (DateTime?)T0.AddSeconds(1))));
    }

    [Test]
    public async Task DispatchAndRunInOneBatch_OverAConsumersRow_RunTakesWhatTheTaskRowHolds()
    {
        // The consumer's first attempt created the row from its own rendering; the producer's dispatch then arrives in one
        // batch with the second attempt: the row takes the producer's fields, and so does the run.
        var id = Guid.NewGuid();
        var (first, seed) = Consumed(id, T0.AddSeconds(1));
        _recorder.Enqueue(new RunStarted(first, seed, false, new DeferredRendering(new Charge(42, "x"), _renderer)));
        _recorder.Enqueue(new RunFinished(first.Id, id, TaskRunState.Retried, T0.AddSeconds(2), "boom", null, null));
        await _host.FlushAsync();
        _recorder.Enqueue(new TaskDispatched(new TaskPayload
        {
            Id = id, Name = "Charge", Input = "from the producer", TaskArgs = "[1]", TaskKwargs = "{\"a\":1}", DispatchedAt = T0,
        }));
        var (second, _) = Consumed(id, T0.AddSeconds(3));
        _recorder.Enqueue(new RunStarted(second, seed, false, new DeferredRendering(new Charge(42, "x"), _renderer)));
        await _host.FlushAsync();

        var task = await _host.TaskAsync(id);
        var run = task.Runs.Single(r => r.Id == second.Id);

        Assert.That((task.Input, task.TaskArgs, task.TaskKwargs), Is.EqualTo(("from the producer", "[1]", "{\"a\":1}")));
        Assert.That((run.Input, run.TaskArgs, run.TaskKwargs), Is.EqualTo((task.Input, task.TaskArgs, task.TaskKwargs)));
    }

    [Test]
    public async Task DispatchedTwiceAndRunInOneBatch_RunTakesTheLastDispatch_AsTheTaskRowDoes()
    {
        var id = Guid.NewGuid();
        _recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "Charge", Input = "first", TaskArgs = "[1]", DispatchedAt = T0 }));
        var (run, seed) = Consumed(id, T0.AddSeconds(1));
        _recorder.Enqueue(new RunStarted(run, seed, false, new DeferredRendering(new Charge(42, "x"), _renderer)));
        // The last dispatch's fields win; this one has no rendering at all (null texts).
        _recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "Charge", DispatchedAt = T0 }));
        await _host.FlushAsync();

        var task = await _host.TaskAsync(id);
        var stored = task.Runs.Single();

        Assert.That((task.Input, task.TaskArgs, task.TaskKwargs), Is.EqualTo(((string?)null, (string?)null, (string?)null)));
        Assert.That((stored.Input, stored.TaskArgs, stored.TaskKwargs), Is.EqualTo((task.Input, task.TaskArgs, task.TaskKwargs)));
    }

    [Test]
    public async Task RunWithItsOwnRendering_KeepsIt()
    {
        var id = Guid.NewGuid();
        _recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "Charge", Input = "task", DispatchedAt = T0 }));
        var (consumed, seed) = Consumed(id, T0.AddSeconds(1));
        var run = consumed with { Input = "run" };
        _recorder.Enqueue(new RunStarted(run, seed, false, new DeferredRendering(new Charge(42, "x"), _renderer)));
        await _host.FlushAsync();

        var task = await _host.TaskAsync(id);

        Assert.That(task.Runs.Single().Input, Is.EqualTo("run"));
    }

    [Test]
    public void DeferredRendering_WhenTheMessageCannotBeRendered_GivesAMarker_AndRendersOnce()
    {
        var message = new Exploding();
        var rendering = new DeferredRendering(message, _renderer);

        var first = rendering.Value;
        var second = rendering.Value;

        Assert.That(first.Input, Does.StartWith("[not"));
        Assert.That(second, Is.EqualTo(first));
        Assert.That(message.Reads(), Is.EqualTo(1));
    }

    public sealed class Exploding
    {
        private int _reads;

        public int Value
        {
            get
            {
                Interlocked.Increment(ref _reads);
                throw new InvalidTimeZoneException("boom");
            }
        }

        public int Reads() => Volatile.Read(ref _reads);
    }
}
