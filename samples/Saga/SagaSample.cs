using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace JobLog.Samples.Saga;

/// <summary>An order was submitted: starts the saga.</summary>
public sealed record OrderSubmitted(Guid OrderId, string Customer);

/// <summary>The order was paid.</summary>
public sealed record PaymentReceived(Guid OrderId, decimal Amount);

/// <summary>The order was shipped: ends the saga.</summary>
public sealed record OrderShipped(Guid OrderId);

/// <summary>The saga's state, kept by the repository.</summary>
public sealed class OrderState : SagaStateMachineInstance
{
    public Guid CorrelationId { get; set; }

    public string CurrentState { get; set; } = "";

    public string Customer { get; set; } = "";
}

/// <summary>
/// The database lost a race: what a saga repository reports on an optimistic-concurrency or serialization failure
/// (PostgreSQL 40001). The sample raises it on the first payment of every order to show the retry in the ledger.
/// </summary>
public sealed class ConcurrencyConflictException(string message) : Exception(message);

/// <summary>Submitted → Paid → (shipped: finalized).</summary>
public sealed class OrderStateMachine : MassTransitStateMachine<OrderState>
{
    private readonly HashSet<Guid> _conflicted = [];

    public OrderStateMachine()
    {
        InstanceState(x => x.CurrentState);
        Event(() => Submitted, e => e.CorrelateById(m => m.Message.OrderId));
        Event(() => Payment, e => e.CorrelateById(m => m.Message.OrderId));
        Event(() => Shipped, e => e.CorrelateById(m => m.Message.OrderId));

        Initially(When(Submitted).Then(c => c.Saga.Customer = c.Message.Customer).TransitionTo(AwaitingPayment));
        During(AwaitingPayment, When(Payment)
            .Then(c =>
            {
                bool first;
                lock (_conflicted)
                {
                    first = _conflicted.Add(c.Saga.CorrelationId);
                }

                if (first)
                {
                    throw new ConcurrencyConflictException("could not serialize access due to concurrent update (40001)");
                }
            })
            .TransitionTo(Paid));
        During(Paid, When(Shipped).Finalize());
        SetCompletedWhenFinalized();
    }

    public State AwaitingPayment { get; private set; } = null!;

    public State Paid { get; private set; } = null!;

    public Event<OrderSubmitted> Submitted { get; private set; } = null!;

    public Event<PaymentReceived> Payment { get; private set; } = null!;

    public Event<OrderShipped> Shipped { get; private set; } = null!;
}

/// <summary>
/// A state machine saga on MassTransit's in-memory saga repository, retried on concurrency conflicts, with JobLog.
/// Configuration: <c>ConnectionStrings:JobLog</c> (SQLite, default <c>Data Source=joblog-saga.db</c>), <c>Transport</c>
/// (<c>InMemory</c>, default, or <c>RabbitMq</c> with <c>RabbitMq:Host</c>, <c>RabbitMq:VirtualHost</c>).
/// </summary>
public static class SagaSample
{
    public static IHost CreateHost(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(args);
        var ledger = builder.Configuration.GetConnectionString("JobLog") ?? "Data Source=joblog-saga.db";
        var rabbit = string.Equals(builder.Configuration["Transport"], "RabbitMq", StringComparison.OrdinalIgnoreCase);

        builder.Services.AddJobLog(o => o.UseSqlite(ledger));
        builder.Services.AddMassTransit(x =>
        {
            x.SetKebabCaseEndpointNameFormatter();
            x.AddSagaStateMachine<OrderStateMachine, OrderState>().InMemoryRepository();
            if (rabbit)
            {
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(builder.Configuration["RabbitMq:Host"] ?? "localhost", builder.Configuration["RabbitMq:VirtualHost"] ?? "/", h =>
                    {
                        h.Username(builder.Configuration["RabbitMq:Username"] ?? "guest");
                        h.Password(builder.Configuration["RabbitMq:Password"] ?? "guest");
                    });
                    Configure(context, cfg);
                });
            }
            else
            {
                x.UsingInMemory((context, cfg) => Configure(context, cfg));
            }
        });
        return builder.Build();
    }

    private static void Configure<T>(IBusRegistrationContext context, IBusFactoryConfigurator<T> cfg)
        where T : IReceiveEndpointConfigurator
    {
        // Retry what a lost race throws, as with any saga repository that checks concurrency.
        cfg.UseMessageRetry(r =>
        {
            r.Handle<ConcurrencyConflictException>();
            r.Immediate(3);
        });
        cfg.UseTaskLogging(context);
        cfg.ConfigureEndpoints(context);
    }

    /// <summary>
    /// Submits, pays and ships <paramref name="orders"/> orders (each first payment meets a concurrency conflict and is
    /// retried), then ships an order that was never paid: its saga does not accept the event.
    /// </summary>
    /// <returns>The paid orders' ids and the unpaid order's id.</returns>
    public static async Task<(IReadOnlyList<Guid> Paid, Guid Unpaid)> RunAsync(IServiceProvider services, int orders = 2, CancellationToken cancellationToken = default)
    {
        var bus = services.GetRequiredService<IBus>();
        var ids = Enumerable.Range(0, orders).Select(_ => NewId.NextGuid()).ToList();
        var unpaid = NewId.NextGuid();
        foreach (var id in ids.Append(unpaid))
        {
            await bus.Publish(new OrderSubmitted(id, "customer-" + id.ToString()[..4]), cancellationToken);
        }

        await Task.Delay(TimeSpan.FromMilliseconds(300), cancellationToken);
        foreach (var id in ids)
        {
            await bus.Publish(new PaymentReceived(id, 25m), cancellationToken);
        }

        await Task.Delay(TimeSpan.FromMilliseconds(300), cancellationToken);
        foreach (var id in ids.Append(unpaid))
        {
            await bus.Publish(new OrderShipped(id), cancellationToken);
        }

        return (ids, unpaid);
    }
}
