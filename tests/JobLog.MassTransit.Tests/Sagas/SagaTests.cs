using JobLog.Testing;
using MassTransit;
using MassTransit.Saga;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Sagas;

public sealed class OrderState : SagaStateMachineInstance
{
    public Guid CorrelationId { get; set; }

    public string CurrentState { get; set; } = "";
}

public sealed record OrderSubmitted(Guid OrderId);

public sealed record OrderShipped(Guid OrderId);

/// <summary>A conflict as a saga repository reports a lost optimistic-concurrency or serialization race.</summary>
public sealed class SagaConflictException(string message) : Exception(message);

public sealed class OrderStateMachine : MassTransitStateMachine<OrderState>
{
    private int _conflicts;

    public OrderStateMachine(int conflicts)
    {
        _conflicts = conflicts;
        InstanceState(x => x.CurrentState);
        Event(() => Submitted, e => e.CorrelateById(m => m.Message.OrderId));
        Event(() => Shipped, e => e.CorrelateById(m => m.Message.OrderId));
        Initially(When(Submitted).TransitionTo(Open));
        During(Open, When(Shipped)
            .Then(_ =>
            {
                if (Interlocked.Decrement(ref _conflicts) >= 0)
                {
                    throw new SagaConflictException("could not serialize access due to concurrent update (40001)");
                }
            })
            .TransitionTo(Shipping));
    }

    public State Open { get; private set; } = null!;

    public State Shipping { get; private set; } = null!;

    public Event<OrderSubmitted> Submitted { get; private set; } = null!;

    public Event<OrderShipped> Shipped { get; private set; } = null!;
}

/// <summary>Retries inside the repository, as EF Core's execution strategy does on a serialization failure.</summary>
public sealed class RetryingSagaRepository<TSaga>(ISagaRepository<TSaga> inner) : ISagaRepository<TSaga>
    where TSaga : class, ISaga
{
    public async Task Send<T>(ConsumeContext<T> context, ISagaPolicy<TSaga, T> policy, IPipe<SagaConsumeContext<TSaga, T>> next)
        where T : class
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await inner.Send(context, policy, next);
                return;
            }
            catch (Exception ex) when (attempt < 3 && ex.GetBaseException() is SagaConflictException)
            {
                // The saga repository wraps what the saga threw.
            }
        }
    }

    public Task SendQuery<T>(ConsumeContext<T> context, ISagaQuery<TSaga> query, ISagaPolicy<TSaga, T> policy, IPipe<SagaConsumeContext<TSaga, T>> next)
        where T : class => inner.SendQuery(context, query, policy, next);

    public void Probe(ProbeContext context) => inner.Probe(context);
}

/// <summary>Sagas: a run per attempt, repository retries included; the saga's id and state on the run; refusals said as such.</summary>
public class SagaTests
{
    private static async Task<BusFixture> Start(int conflicts, bool repositoryRetries, int messageRetries = 0)
    {
        var repository = new InMemorySagaRepository<OrderState>();
        return await BusFixture.StartAsync(Transport.InMemory, _ => { }, retries: messageRetries, endpoints: (_, cfg) =>
            cfg.ReceiveEndpoint("order-state", e => e.StateMachineSaga(
                new OrderStateMachine(conflicts), repositoryRetries ? new RetryingSagaRepository<OrderState>(repository) : repository)));
    }

    private static async Task<TaskLog> Settled(BusFixture bus, Guid id)
    {
        // The task row may not be written yet: a delivery is acknowledged once its records are journaled.
        await LedgerHost.EventuallyAsync(
            async () => await bus.Host.QueryAsync(db => db.TaskLogs.AnyAsync(t => t.Id == id && (t.State == TaskState.Succeeded || t.State == TaskState.Failed))),
            because: "settled");
        return await bus.Host.TaskAsync(id);
    }

    [Test]
    public async Task Saga_RetriedInsideTheRepositoryAfterAConflict_RecordsARunPerAttempt()
    {
        await using var bus = await Start(conflicts: 1, repositoryRetries: true);
        var order = NewId.NextGuid();
        var submitted = NewId.NextGuid();
        var shipped = NewId.NextGuid();

        await bus.Bus.Publish(new OrderSubmitted(order), x => x.MessageId = submitted);
        await Settled(bus, submitted);
        await bus.Bus.Publish(new OrderShipped(order), x => x.MessageId = shipped);

        var task = await Settled(bus, shipped);
        var runs = task.Runs.OrderBy(r => r.Retries).ToList();
        Assert.That(runs.Select(r => (r.State, r.Retries, r.ConsumerType)), Is.EqualTo(new[]
        {
            (TaskRunState.Retried, 0, "OrderState"), (TaskRunState.Succeeded, 1, "OrderState"),
        }));
        Assert.That(runs[0].ErrorMessage, Does.Contain("SagaConflictException").And.Contain("40001"));
        Assert.That(runs[0].EstimatedTimeOfNextRetry, Is.EqualTo(runs[1].Start));
        Assert.That(runs[1].Output, Does.Contain($"Saga OrderState {order}: Open → Shipping"));
        Assert.That(task.State, Is.EqualTo(TaskState.Succeeded));
    }

    [Test]
    public async Task Saga_RetriedByMessageRetry_RecordsEachAttempt_WithTheSagaStateBeforeAndAfter()
    {
        await using var bus = await Start(conflicts: 1, repositoryRetries: false, messageRetries: 2);
        var order = NewId.NextGuid();
        var submitted = NewId.NextGuid();
        var shipped = NewId.NextGuid();

        await bus.Bus.Publish(new OrderSubmitted(order), x => x.MessageId = submitted);
        var created = await Settled(bus, submitted);
        await bus.Bus.Publish(new OrderShipped(order), x => x.MessageId = shipped);

        var task = await Settled(bus, shipped);
        Assert.That(created.Runs.Single().Output, Does.Contain($"Saga OrderState {order}: (new) → Open"));
        Assert.That(task.Runs.OrderBy(r => r.Retries).Select(r => r.State), Is.EqualTo(new[] { TaskRunState.Retried, TaskRunState.Succeeded }));
        Assert.That(task.Runs.Single(r => r.State == TaskRunState.Retried).Output, Does.Contain($"Saga OrderState {order}: Open"));
        Assert.That(task.Runs.Single(r => r.State == TaskRunState.Succeeded).Output, Does.Contain("Open → Shipping"));
    }

    [Test]
    public async Task Saga_EventNotAcceptedInItsState_FailsWithAClearNotAcceptedError()
    {
        await using var bus = await Start(conflicts: 0, repositoryRetries: false);
        var order = NewId.NextGuid();
        var submitted = NewId.NextGuid();
        var again = NewId.NextGuid();

        await bus.Bus.Publish(new OrderSubmitted(order), x => x.MessageId = submitted);
        await Settled(bus, submitted);
        await bus.Bus.Publish(new OrderSubmitted(order), x => x.MessageId = again);

        var task = await Settled(bus, again);
        var run = task.Runs.Single();
        Assert.That(run.State, Is.EqualTo(TaskRunState.Failed));
        Assert.That(run.ErrorMessage, Does.StartWith("Not accepted: the saga's current state does not accept this event")
            .And.Contain("NotAcceptedStateMachineException"));
        Assert.That(run.Output, Does.Contain($"Saga OrderState {order}: Open"));
    }
}
