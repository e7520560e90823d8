using MassTransit;

namespace JobLog.MassTransit.Tests.Features;

public sealed record Line(int N);

public sealed class FailingLineBatchConsumer : IConsumer<Batch<Line>>
{
    public Task Consume(ConsumeContext<Batch<Line>> context) => throw new InvalidOperationException("batch of " + context.Message.Length + " failed");
}

public sealed record AskStock(string Sku, int DelayMs, bool Fail);

public sealed record StockOk(string Sku);

public sealed record StockLow(string Sku);

public sealed class AskStockConsumer : IConsumer<AskStock>
{
    public async Task Consume(ConsumeContext<AskStock> context)
    {
        await Task.Delay(context.Message.DelayMs);
        if (context.Message.Fail)
        {
            throw new InvalidOperationException("no stock service");
        }

        if (context.Message.Sku.StartsWith("low", StringComparison.Ordinal))
        {
            await context.RespondAsync(new StockLow(context.Message.Sku));
        }
        else
        {
            await context.RespondAsync(new StockOk(context.Message.Sku));
        }
    }
}

public interface ISecondBus : IBus;

public sealed record OnSecond(int N);

public sealed class OnSecondConsumer(IBus firstBus) : IConsumer<OnSecond>
{
    public async Task Consume(ConsumeContext<OnSecond> context)
    {
        await firstBus.Publish(new ChargeCard(context.Message.N, 1m));
        await context.Publish(new OnSecondChild(context.Message.N));
    }
}

public sealed record OnSecondChild(int N);

public sealed class OnSecondChildConsumer : IConsumer<OnSecondChild>
{
    public Task Consume(ConsumeContext<OnSecondChild> context) => Task.CompletedTask;
}

public sealed record Toggle(int N);

public sealed class ToggleConsumer : IConsumer<Toggle>
{
    public static volatile bool Broken = true;

    public Task Consume(ConsumeContext<Toggle> context) =>
        Broken ? throw new InvalidOperationException("broken " + context.Message.N) : Task.CompletedTask;
}

// Saga with a Schedule.
/// <param name="TimeoutSeconds">When the order expires unless paid (a test that pays it makes this far: under load a payment came after 1 s).</param>
public sealed record OrderOpened(Guid OrderId, int TimeoutSeconds = 1);

public sealed record OrderPaid(Guid OrderId);

public sealed record OrderExpired(Guid OrderId);

public sealed class TimedOrder : SagaStateMachineInstance
{
    public Guid CorrelationId { get; set; }

    public string CurrentState { get; set; } = "";

    public Guid? TimeoutToken { get; set; }
}

public sealed class TimedOrderMachine : MassTransitStateMachine<TimedOrder>
{
    public TimedOrderMachine()
    {
        InstanceState(x => x.CurrentState);
        Event(() => Opened, e => e.CorrelateById(m => m.Message.OrderId));
        Event(() => Paid, e => e.CorrelateById(m => m.Message.OrderId));
        Schedule(() => Timeout, x => x.TimeoutToken, s =>
        {
            s.Delay = TimeSpan.FromSeconds(1);
            s.Received = r => r.CorrelateById(m => m.Message.OrderId);
        });
        Initially(When(Opened).Schedule(Timeout, c => new OrderExpired(c.Saga.CorrelationId), c => TimeSpan.FromSeconds(c.Message.TimeoutSeconds)).TransitionTo(Open));
        During(Open,
            When(Paid).Unschedule(Timeout).TransitionTo(PaidState),
            When(Timeout.Received).TransitionTo(ExpiredState));
        During(PaidState, Ignore(Timeout.Received));
    }

    public State Open { get; private set; } = null!;

    public State PaidState { get; private set; } = null!;

    public State ExpiredState { get; private set; } = null!;

    public Event<OrderOpened> Opened { get; private set; } = null!;

    public Event<OrderPaid> Paid { get; private set; } = null!;

    public Schedule<TimedOrder, OrderExpired> Timeout { get; private set; } = null!;
}

// Courier: a compensation that fails.
public sealed record HoldArguments(int OrderId);

public sealed record HoldLog(int OrderId);

public sealed class HoldActivity : IActivity<HoldArguments, HoldLog>
{
    public Task<ExecutionResult> Execute(ExecuteContext<HoldArguments> context) =>
        Task.FromResult(context.CompletedWithVariables(new HoldLog(context.Arguments.OrderId), new { HeldAt = "w1" }));

    public Task<CompensationResult> Compensate(CompensateContext<HoldLog> context) =>
        throw new InvalidOperationException("cannot release hold " + context.Log.OrderId);
}

public sealed record PayArguments(int OrderId, string HeldAt);

public sealed class PayActivity : IExecuteActivity<PayArguments>
{
    public Task<ExecutionResult> Execute(ExecuteContext<PayArguments> context) =>
        throw new InvalidOperationException("payment refused " + context.Arguments.OrderId + " at " + context.Arguments.HeldAt);
}

public sealed record Stoppable(int N);

public sealed class StoppableConsumer : IConsumer<Stoppable>
{
    public static volatile bool Hang = true;
    public static readonly TaskCompletionSource Started = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task Consume(ConsumeContext<Stoppable> context)
    {
        if (Hang)
        {
            Started.TrySetResult();
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
        }
    }
}

public sealed record Wobbly(int Failures);

public sealed class WobblyConsumer : IConsumer<Wobbly>
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, int> s_attempts = new();

    public Task Consume(ConsumeContext<Wobbly> context)
    {
        var key = context.GetOriginalMessageId() ?? context.MessageId!.Value;
        var n = s_attempts.AddOrUpdate(key, 1, (_, v) => v + 1);
        return n <= context.Message.Failures ? throw new InvalidOperationException("wobble " + n) : Task.CompletedTask;
    }
}

// Saga with a Request activity.
public sealed record StartCheck(Guid OrderId, string Sku);

public sealed class CheckedOrder : SagaStateMachineInstance
{
    public Guid CorrelationId { get; set; }

    public string CurrentState { get; set; } = "";

    public Guid? StockRequestId { get; set; }
}

public sealed class CheckedOrderMachine : MassTransitStateMachine<CheckedOrder>
{
    public CheckedOrderMachine()
    {
        InstanceState(x => x.CurrentState);
        Event(() => Start, e => e.CorrelateById(m => m.Message.OrderId));
        Request(() => Stock, x => x.StockRequestId, r =>
        {
            r.ServiceAddress = new Uri("queue:ask-stock");
            r.Timeout = TimeSpan.FromSeconds(1);
        });
        Initially(When(Start)
            .Request(Stock, c => new AskStock(c.Message.Sku, c.Message.Sku == "slow" ? 3000 : 0, false))
            .TransitionTo(Stock.Pending));
        During(Stock.Pending,
            When(Stock.Completed).TransitionTo(Done),
            When(Stock.Completed2).TransitionTo(Done),
            When(Stock.TimeoutExpired).TransitionTo(TimedOut),
            When(Stock.Faulted).TransitionTo(TimedOut));
    }

    public State Done { get; private set; } = null!;

    public State TimedOut { get; private set; } = null!;

    public Event<StartCheck> Start { get; private set; } = null!;

    public Request<CheckedOrder, AskStock, StockOk, StockLow> Stock { get; private set; } = null!;
}

public sealed record Relay(int N);

public sealed class RelayConsumer : IConsumer<Relay>
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, int> s_attempts = new();

    public async Task Consume(ConsumeContext<Relay> context)
    {
        var key = context.GetOriginalMessageId() ?? context.MessageId!.Value;
        if (s_attempts.AddOrUpdate(key, 1, (_, v) => v + 1) == 1)
        {
            throw new InvalidOperationException("first attempt");
        }

        var endpoint = await context.GetSendEndpoint(new Uri("queue:charge-card"));
        await endpoint.Send(new ChargeCard(context.Message.N, 1m), context.ReceiveContext.TransportHeaders.Get<string>("X-Nothing") is null
            ? Pipe.Execute<SendContext<ChargeCard>>(x =>
            {
                // What a forwarding or copying consumer does: carry the inbound headers on.
                foreach (var header in context.Headers.GetAll())
                {
                    x.Headers.Set(header.Key, header.Value);
                }
            })
            : Pipe.Empty<SendContext<ChargeCard>>());
    }
}
