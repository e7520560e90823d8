using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace JobLog.Samples.Outbox;

/// <summary>An order was asked for.</summary>
public sealed record SubmitOrder(int OrderId, string Customer, decimal Total);

/// <summary>An order was accepted: published through the consumer outbox.</summary>
public sealed record OrderAccepted(int OrderId, string Customer, decimal Total);

/// <summary>An email to send, sent through the consumer outbox.</summary>
public sealed record SendConfirmation(int OrderId, string Customer);

/// <summary>Accepts an order; what it publishes and sends is held in the outbox until the consumer has finished.</summary>
public sealed class SubmitOrderConsumer(ILogger<SubmitOrderConsumer> logger) : IConsumer<SubmitOrder>
{
    public async Task Consume(ConsumeContext<SubmitOrder> context)
    {
        var order = context.Message;
        logger.LogInformation("Accepting order {OrderId} for {Customer}", order.OrderId, order.Customer);
        await context.Publish(new OrderAccepted(order.OrderId, order.Customer, order.Total));
        await context.Send(new Uri("queue:send-confirmation"), new SendConfirmation(order.OrderId, order.Customer));
    }
}

/// <summary>Subscribes to accepted orders.</summary>
public sealed class OrderAcceptedConsumer(ILogger<OrderAcceptedConsumer> logger) : IConsumer<OrderAccepted>
{
    public Task Consume(ConsumeContext<OrderAccepted> context)
    {
        logger.LogInformation("Order {OrderId} accepted: {Total}", context.Message.OrderId, context.Message.Total);
        return Task.CompletedTask;
    }
}

/// <summary>Sends the confirmation email.</summary>
public sealed class SendConfirmationConsumer : IConsumer<SendConfirmation>
{
    public Task Consume(ConsumeContext<SendConfirmation> context) => Task.CompletedTask;
}

/// <summary>
/// The consumer outbox (MassTransit's in-memory inbox/outbox, the same code path as the Entity Framework Core outbox)
/// with JobLog: configuration <c>ConnectionStrings:JobLog</c> (SQLite, default <c>Data Source=joblog-outbox.db</c>) and
/// <c>Transport</c> (<c>InMemory</c>, default, or <c>RabbitMq</c> with <c>RabbitMq:Host</c>, <c>RabbitMq:VirtualHost</c>).
/// </summary>
public static class OutboxSample
{
    public static IHost CreateHost(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(args);
        var ledger = builder.Configuration.GetConnectionString("JobLog") ?? "Data Source=joblog-outbox.db";
        var rabbit = string.Equals(builder.Configuration["Transport"], "RabbitMq", StringComparison.OrdinalIgnoreCase);

        // This application consumes its own events: a publish nobody here consumes is closed at once.
        builder.Services.AddJobLog(o =>
        {
            o.UseSqlite(ledger);
            o.CloseUnconsumedPublishes = true;
        });
        builder.Services.AddMassTransit(x =>
        {
            x.SetKebabCaseEndpointNameFormatter();
            x.AddConsumer<SubmitOrderConsumer>();
            x.AddConsumer<OrderAcceptedConsumer>();
            x.AddConsumer<SendConfirmationConsumer>();
            x.AddInMemoryInboxOutbox();
            x.AddConfigureEndpointsCallback((context, _, endpoint) => endpoint.UseInMemoryInboxOutbox(context));
            if (rabbit)
            {
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(builder.Configuration["RabbitMq:Host"] ?? "localhost", builder.Configuration["RabbitMq:VirtualHost"] ?? "/", h =>
                    {
                        h.Username(builder.Configuration["RabbitMq:Username"] ?? "guest");
                        h.Password(builder.Configuration["RabbitMq:Password"] ?? "guest");
                    });
                    cfg.UseTaskLogging(context);
                    cfg.ConfigureEndpoints(context);
                });
            }
            else
            {
                x.UsingInMemory((context, cfg) =>
                {
                    cfg.UseTaskLogging(context);
                    cfg.ConfigureEndpoints(context);
                });
            }
        });
        return builder.Build();
    }

    /// <summary>Submits <paramref name="orders"/> orders.</summary>
    public static async Task RunAsync(IServiceProvider services, int orders = 3, CancellationToken cancellationToken = default)
    {
        var bus = services.GetRequiredService<IBus>();
        for (var i = 1; i <= orders; i++)
        {
            await bus.Publish(new SubmitOrder(i, "customer-" + i, 10m * i), cancellationToken);
        }
    }
}
