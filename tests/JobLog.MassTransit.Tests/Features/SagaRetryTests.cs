using System.Collections.Concurrent;
using MassTransit;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public record FlakySagaWork(Guid CorrelationId, int Failures);

public sealed class FlakySaga : SagaStateMachineInstance
{
    public Guid CorrelationId { get; set; }

    public string? CurrentState { get; set; }
}

/// <summary>A saga whose event fails <see cref="FlakySagaWork.Failures"/> times before it is handled.</summary>
public sealed class FlakySagaMachine : MassTransitStateMachine<FlakySaga>
{
    private static readonly ConcurrentDictionary<Guid, int> s_attempts = new();

    public FlakySagaMachine()
    {
        InstanceState(x => x.CurrentState);
        Event(() => Work, e => e.CorrelateById(m => m.Message.CorrelationId));
        Initially(
            When(Work)
                .Then(context =>
                {
                    var attempt = s_attempts.AddOrUpdate(context.Message.CorrelationId, 1, (_, n) => n + 1);
                    if (attempt <= context.Message.Failures)
                    {
                        throw new InvalidOperationException($"flaky saga failure {attempt}");
                    }
                })
                .TransitionTo(Done));
    }

    public State Done { get; private set; } = null!;

    public Event<FlakySagaWork> Work { get; private set; } = null!;
}

/// <summary><c>UseMessageRetry</c> on a saga's configurator: MassTransit adds it after JobLog's run filter. Each attempt must be a run.</summary>
[TestFixture(Transport.InMemory)]
public class SagaRetryTests(Transport transport)
{
    [Test]
    public async Task Saga_RetriedByItsOwnUseMessageRetry_RecordsARunPerAttempt()
    {
        await using var bus = await BusFixture.StartAsync(
            transport, x => x.AddSagaStateMachine<FlakySagaMachine, FlakySaga>(s => s.UseMessageRetry(r => r.Immediate(3))).InMemoryRepository());
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new FlakySagaWork(NewId.NextGuid(), 2), x => x.MessageId = id);

        var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the saga's event handled");
        var runs = task.Runs.OrderBy(r => r.Start).Select(r => r.State).ToList();
        Assert.That(runs, Is.EqualTo(new[] { TaskRunState.Retried, TaskRunState.Retried, TaskRunState.Succeeded }), Describe(task));
        Assert.That(task.Runs.Where(r => r.State == TaskRunState.Retried).Select(r => r.ErrorMessage), Has.All.Contain("flaky saga failure"));
    }
}
