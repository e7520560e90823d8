using System.Collections.Concurrent;
using MassTransit;
using MassTransit.Configuration;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public record SlotSagaWork(Guid CorrelationId, int Id, bool Hold);

public sealed class SlotSaga : SagaStateMachineInstance
{
    public Guid CorrelationId { get; set; }

    public string? CurrentState { get; set; }
}

/// <summary>A saga whose event holds the saga's only slot (the message with <see cref="SlotSagaWork.Hold"/>) until the test opens the gate.</summary>
public sealed class SlotSagaMachine : MassTransitStateMachine<SlotSaga>
{
    public static readonly ConcurrentBag<int> Consumed = [];
    public static TaskCompletionSource Holding = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public static TaskCompletionSource Gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public SlotSagaMachine()
    {
        InstanceState(x => x.CurrentState);
        Event(() => Work, e => e.CorrelateById(m => m.Message.CorrelationId));
        Initially(
            When(Work)
                .ThenAsync(async context =>
                {
                    Consumed.Add(context.Message.Id);
                    if (context.Message.Hold)
                    {
                        Holding.TrySetResult();
                        await Gate.Task.WaitAsync(TimeSpan.FromSeconds(60));
                    }
                })
                .TransitionTo(Done));
    }

    public State Done { get; private set; } = null!;

    public Event<SlotSagaWork> Work { get; private set; } = null!;

    public static void Reset()
    {
        Consumed.Clear();
        Holding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>
/// A saga's own <c>ConcurrentMessageLimit</c> and <c>UseConcurrentMessageLimit</c> are applied by MassTransit on the saga's
/// message pipe after JobLog's run filter: the run must begin when the saga gets its slot.
/// </summary>
[NonParallelizable]
[TestFixture(Transport.InMemory)]
[TestFixture(Transport.RabbitMq)]
public class SagaConcurrencyLimitTests(Transport transport)
{
    private BusFixture? _bus;

    [SetUp]
    public void SetUp() => SlotSagaMachine.Reset();

    [TearDown]
    public async Task TearDown()
    {
        SlotSagaMachine.Gate.TrySetResult();
        if (_bus is not null)
        {
            await _bus.DisposeAsync();
            _bus = null;
        }
    }

    public enum Limit
    {
        /// <summary><c>s.ConcurrentMessageLimit = 1</c>.</summary>
        ConcurrentMessageLimit,

        /// <summary><c>s.UseConcurrentMessageLimit(1)</c>.</summary>
        UseConcurrentMessageLimit,

        /// <summary><c>s.UsePartitioner(1, key)</c>: the saga's own partitioner, on the saga's pipe inside the repository.</summary>
        UsePartitioner,
    }

    [TestCase(Limit.ConcurrentMessageLimit, TestName = "Saga_WaitingForTheSlotOfItsConcurrentMessageLimit_HasNoRunUntilTheSlotIsFree_ThenStartsWhenItGetsIt")]
    [TestCase(Limit.UseConcurrentMessageLimit, TestName = "Saga_WaitingForTheSlotOfItsUseConcurrentMessageLimit_HasNoRunUntilTheSlotIsFree_ThenStartsWhenItGetsIt")]
    [TestCase(Limit.UsePartitioner, TestName = "Saga_WaitingForItsPartitionOfItsUsePartitioner_HasNoRunUntilThePartitionIsFree_ThenStartsWhenItGetsIt")]
    public async Task Saga_WaitingForItsSlot_HasNoRunUntilTheSlotIsFree_ThenStartsWhenItGetsIt(Limit limit)
    {
        var bus = _bus = await BusFixture.StartAsync(
            transport,
            x => x.AddSagaStateMachine<SlotSagaMachine, SlotSaga>(s =>
            {
                switch (limit)
                {
                    case Limit.ConcurrentMessageLimit:
                        s.ConcurrentMessageLimit = 1;
                        break;
                    case Limit.UseConcurrentMessageLimit:
                        s.UseConcurrentMessageLimit(1);
                        break;
                    default:
                        s.UsePartitioner(1, _ => Guid.Empty);
                        break;
                }
            }).InMemoryRepository(),
            configureBus: (_, cfg) => cfg.AddPrePipeSpecification(new FilterPipeSpecification<ConsumeContext>(new ParkedSignalFilter())));

        var holder = NewId.NextGuid();
        var waiter = NewId.NextGuid();
        await bus.Bus.Publish(new SlotSagaWork(NewId.NextGuid(), 1, Hold: true), x => x.MessageId = holder);
        await SlotSagaMachine.Holding.Task.WaitAsync(TimeSpan.FromSeconds(120));
        await bus.Bus.Publish(new SlotSagaWork(NewId.NextGuid(), 2, Hold: false), x => x.MessageId = waiter);
        await ParkedSignalFilter.ParkedAsync(waiter);

        await bus.Host.FlushAsync();
        var waiting = await Find(bus, waiter);
        Assert.That(waiting?.Runs.Select(r => (r.ConsumerType, r.State)), Is.Empty.Or.Null, "no run while waiting for the saga's slot: " + Describe(waiting));

        var released = DateTime.UtcNow;
        SlotSagaMachine.Gate.TrySetResult();
        var task = await WaitFor(bus, waiter, t => t.State == TaskState.Succeeded, "the waiting message consumed");
        var run = task.Runs.Single();
        Assert.That(run.Start, Is.GreaterThanOrEqualTo(released.AddTicks(-(released.Ticks % 10))), Describe(task));
        Assert.That(run.Output, Does.Contain("(new) → Done"), "the saga's state line");
        var held = await WaitFor(bus, holder, t => t.State == TaskState.Succeeded, "the holder consumed");
        Assert.That(held.Runs.Single().Start, Is.LessThan(released), "a run that got its slot at once starts on receipt");
    }
}
