using JobLog.MassTransit.Tests.Scheduling;
using JobLog.Testing;
using MassTransit;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public sealed record ShipmentCreated(Guid ShipmentId);

public sealed record ShipmentLabelled(Guid ShipmentId);

public sealed class Shipment : SagaStateMachineInstance
{
    public Guid CorrelationId { get; set; }

    public string? CurrentState { get; set; }
}

/// <summary>An event that may arrive before the saga exists: MassTransit redelivers it (the message scheduler) until it does.</summary>
public sealed class ShipmentMachine : MassTransitStateMachine<Shipment>
{
    public ShipmentMachine()
    {
        InstanceState(x => x.CurrentState);
        Event(() => Created, e => e.CorrelateById(m => m.Message.ShipmentId));
        Event(() => Labelled, e =>
        {
            e.CorrelateById(m => m.Message.ShipmentId);
            e.OnMissingInstance(m => m.Redeliver(r => r.Interval(10, TimeSpan.FromSeconds(1))));
        });
        Initially(When(Created).TransitionTo(Waiting));
        During(Waiting, When(Labelled).TransitionTo(Ready));
    }

    public State Waiting { get; private set; } = null!;

    public State Ready { get; private set; } = null!;

    public Event<ShipmentCreated> Created { get; private set; } = null!;

    public Event<ShipmentLabelled> Labelled { get; private set; } = null!;
}

public sealed record ShipmentWeighed(Guid ShipmentId, int Failures);

public sealed class Weighing : SagaStateMachineInstance
{
    public Guid CorrelationId { get; set; }

    public string? CurrentState { get; set; }
}

/// <summary>A saga whose event fails its first <see cref="ShipmentWeighed.Failures"/> deliveries (counted by the original MessageId).</summary>
public sealed class WeighingMachine : MassTransitStateMachine<Weighing>
{
    public static readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, int> Attempts = new();

    public WeighingMachine()
    {
        InstanceState(x => x.CurrentState);
        Event(() => Weighed, e => e.CorrelateById(m => m.Message.ShipmentId));
        Initially(When(Weighed)
            .Then(context =>
            {
                var key = context.GetOriginalMessageId() ?? context.MessageId!.Value;
                if (Attempts.AddOrUpdate(key, 1, (_, v) => v + 1) <= context.Message.Failures)
                {
                    throw new InvalidOperationException("scale not ready");
                }
            })
            .TransitionTo(Done));
    }

    public State Done { get; private set; } = null!;

    public Event<ShipmentWeighed> Weighed { get; private set; } = null!;
}

/// <summary>
/// A saga event that arrives before its instance, redelivered by the saga's <c>OnMissingInstance(m =&gt; m.Redeliver(…))</c>
/// through the JobLog scheduler on the real RabbitMQ: one task, the early attempts handed back (RETRIED), the last one the
/// saga's transition.
/// </summary>
public class RabbitMqSagaRedeliveryTests : OneSchedulerBusTests
{
    [Test]
    public async Task SagaEvent_BeforeItsInstance_IsRedeliveredUntilTheInstanceExists_RunsRetriedThenTheTransition()
    {
        var bus = await StartBusAsync(
            x => x.AddSagaStateMachine<ShipmentMachine, Shipment>().InMemoryRepository());
        var shipment = NewId.NextGuid();
        var labelled = NewId.NextGuid();
        await bus.Bus.Publish(new ShipmentLabelled(shipment), x => x.MessageId = labelled);
        await bus.WaitForTaskAsync(labelled, t => t.Runs.Any(r => r.Stop != null), "the early event's first attempt ended");
        await bus.Bus.Publish(new ShipmentCreated(shipment));
        var task = await bus.WaitForTaskAsync(labelled, t => t.State == TaskState.Succeeded, "the event consumed once the saga exists", TimeSpan.FromSeconds(40));
        await bus.Host.FlushAsync();
        task = await bus.Host.TaskAsync(labelled);
        TestContext.Out.WriteLine(Describe(task));
        var runs = task.Runs.OrderBy(r => r.Start).ToList();
        Assert.That(runs.SkipLast(1).Select(r => r.State), Has.All.EqualTo(TaskRunState.Retried), Describe(task));
        Assert.That(runs.SkipLast(1).Select(r => r.EstimatedTimeOfNextRetry), Has.All.Not.Null, "each hand-back says when it comes back");
        Assert.That(runs.Select(r => r.Retries), Is.EqualTo(Enumerable.Range(0, runs.Count)), "numbered across the redeliveries");
        Assert.That(runs[^1].State, Is.EqualTo(TaskRunState.Succeeded));
        Assert.That(runs[^1].Output, Does.Contain("Waiting → Ready"), "the last attempt is the saga's transition");
        Assert.That((await bus.Host.TasksAsync()).Where(t => !t.IsInternal && t.Name == "ShipmentLabelled").Select(t => t.Id), Is.EqualTo(new[] { labelled }),
            "the redeliveries (new MessageIds) are no tasks");
    }

    [TestCase(true, TestName = "SagaEvent_FailingTwiceUnderScheduledRedelivery_RunsRetriedThenTheTransition")]
    [TestCase(false, TestName = "SagaEvent_FailingTwiceUnderDelayedRedelivery_RunsRetriedThenTheTransition")]
    public async Task SagaEvent_FailingTwiceUnderRedelivery_RunsRetriedThenTheTransition(bool scheduled)
    {
        var bus = await StartBusAsync(
            x => x.AddSagaStateMachine<WeighingMachine, Weighing>().InMemoryRepository(),
            (_, cfg) =>
            {
                if (scheduled)
                {
                    cfg.UseScheduledRedelivery(r => r.Intervals(500, 500));
                }
                else
                {
                    cfg.UseDelayedRedelivery(r => r.Intervals(500, 500));
                }
            });
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new ShipmentWeighed(NewId.NextGuid(), 2), x => x.MessageId = id);
        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "consumed on the third delivery", TimeSpan.FromSeconds(40));
        await bus.Host.FlushAsync();
        task = await bus.Host.TaskAsync(id);
        var runs = task.Runs.OrderBy(r => r.Start).ToList();
        Assert.That(runs.Select(r => (r.ConsumerType, r.Retries, r.State)), Is.EqualTo(new[]
        {
            ("Weighing", 0, TaskRunState.Retried), ("Weighing", 1, TaskRunState.Retried), ("Weighing", 2, TaskRunState.Succeeded),
        }), Describe(task));
        Assert.That(runs.Take(2).Select(r => r.EstimatedTimeOfNextRetry), Has.All.Not.Null, Describe(task));
        Assert.That(runs[^1].Output, Does.Contain("(new) → Done"));
    }
}
