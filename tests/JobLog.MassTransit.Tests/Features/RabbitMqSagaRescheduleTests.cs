using JobLog.MassTransit.Tests.Scheduling;
using JobLog.Testing;
using MassTransit;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public sealed record SessionOpened(Guid SessionId);

public sealed record SessionTouched(Guid SessionId);

public sealed record SessionIdle(Guid SessionId);

public sealed class IdleSession : SagaStateMachineInstance
{
    public Guid CorrelationId { get; set; }

    public string CurrentState { get; set; } = "";

    public Guid? IdleToken { get; set; }
}

/// <summary>An idle timeout that each activity pushes back: <c>Schedule</c> again while one is pending (MassTransit cancels the pending one).</summary>
public sealed class IdleSessionMachine : MassTransitStateMachine<IdleSession>
{
    public IdleSessionMachine()
    {
        InstanceState(x => x.CurrentState);
        Event(() => Opened, e => e.CorrelateById(m => m.Message.SessionId));
        Event(() => Touched, e => e.CorrelateById(m => m.Message.SessionId));
        Schedule(() => Idle, x => x.IdleToken, s =>
        {
            s.Delay = TimeSpan.FromSeconds(2);
            s.Received = r => r.CorrelateById(m => m.Message.SessionId);
        });
        Initially(When(Opened).Schedule(Idle, c => new SessionIdle(c.Saga.CorrelationId)).TransitionTo(Active));
        During(Active,
            When(Touched).Schedule(Idle, c => new SessionIdle(c.Saga.CorrelationId)),
            When(Idle.Received).TransitionTo(Closed));
    }

    public State Active { get; private set; } = null!;

    public State Closed { get; private set; } = null!;

    public Event<SessionOpened> Opened { get; private set; } = null!;

    public Event<SessionTouched> Touched { get; private set; } = null!;

    public Schedule<IdleSession, SessionIdle> Idle { get; private set; } = null!;
}

/// <summary>A saga's <c>Schedule</c> rescheduled on the JobLog scheduler (RabbitMQ): the pushed-back timeout and the one that fires.</summary>
public class RabbitMqSagaRescheduleTests : OneSchedulerBusTests
{
    [Test]
    public async Task SagaSchedule_RescheduledByALaterEvent_TheFirstTimeoutIsExpiredCancelled_TheSecondFires()
    {
        var bus = await StartBusAsync(x => x.AddSagaStateMachine<IdleSessionMachine, IdleSession>().InMemoryRepository());
        var session = NewId.NextGuid();
        await bus.Bus.Publish(new SessionOpened(session));
        await LedgerHost.EventuallyAsync(async () => (await bus.Host.TasksAsync()).Any(t => t.Name == nameof(SessionIdle)),
            TimeSpan.FromSeconds(20), "the first timeout scheduled");
        await bus.Bus.Publish(new SessionTouched(session));

        List<TaskLog> timeouts = [];
        await LedgerHost.EventuallyAsync(
            async () => (timeouts = (await bus.Host.TasksAsync()).Where(t => t.Name == nameof(SessionIdle)).ToList())
                .Count(t => t.State is not (TaskState.Waiting or TaskState.Active)) == 2,
            TimeSpan.FromSeconds(30), "both timeouts settled");
        foreach (var t in timeouts.OrderBy(t => t.EstimatedTimeOfFirstArrival))
        {
            TestContext.Out.WriteLine($"eta={t.EstimatedTimeOfFirstArrival:O} err={t.ErrorMessage} " + Describe(t));
        }

        var (first, second) = (timeouts.MinBy(t => t.DispatchedAt)!, timeouts.MaxBy(t => t.DispatchedAt)!);
        Assert.That((first.State, second.State), Is.EqualTo((TaskState.Expired, TaskState.Succeeded)));
        Assert.That(first.ErrorMessage, Does.StartWith("Cancelled: CancelScheduledSend("), "the pushed-back timeout says it was cancelled");
        Assert.That(first.Runs, Is.Empty, "the cancelled timeout never ran");
        var fired = second.Runs.Single();
        Assert.That((fired.ConsumerType, fired.State), Is.EqualTo((nameof(IdleSession), TaskRunState.Succeeded)));
        Assert.That(fired.Output, Does.Contain("Active → Closed"));
        Assert.That(fired.Start, Is.GreaterThanOrEqualTo(second.EstimatedTimeOfFirstArrival!.Value), "fired at its ETA, not the first one's");
    }
}
