using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace JobLog.Samples.RequestResponse;

/// <summary>A request: how many of this item are in stock?</summary>
public sealed record CheckStock(string Sku);

/// <summary>The response.</summary>
public sealed record StockLevel(string Sku, int Count);

/// <summary>An event nobody in this application subscribes to.</summary>
public sealed record StockChecked(string Sku, int Count);

/// <summary>A command that fails when there is not enough stock.</summary>
public sealed record ReserveStock(string Sku, int Quantity);

/// <summary>A message handled by a receive-endpoint handler (<c>e.Handler&lt;T&gt;</c>), not a consumer class.</summary>
public sealed record StockAudit(string Sku);

/// <summary>Answers stock requests and tells the world it did.</summary>
public sealed class CheckStockConsumer : IConsumer<CheckStock>
{
    public async Task Consume(ConsumeContext<CheckStock> context)
    {
        var count = RequestResponseSample.Stock.GetValueOrDefault(context.Message.Sku);
        await context.Publish(new StockChecked(context.Message.Sku, count));
        await context.RespondAsync(new StockLevel(context.Message.Sku, count));
    }
}

/// <summary>Reserves stock; throws when there is not enough.</summary>
public sealed class ReserveStockConsumer : IConsumer<ReserveStock>
{
    public Task Consume(ConsumeContext<ReserveStock> context)
    {
        var available = RequestResponseSample.Stock.GetValueOrDefault(context.Message.Sku);
        return context.Message.Quantity > available
            ? throw new InvalidOperationException($"Only {available} of {context.Message.Sku} in stock, {context.Message.Quantity} asked for.")
            : Task.CompletedTask;
    }
}

/// <summary>Handles the fault of a failed reservation (MassTransit publishes <c>Fault&lt;ReserveStock&gt;</c>).</summary>
public sealed class ReserveStockFaultConsumer(ILogger<ReserveStockFaultConsumer> logger) : IConsumer<Fault<ReserveStock>>
{
    public Task Consume(ConsumeContext<Fault<ReserveStock>> context)
    {
        logger.LogWarning("Reservation of {Sku} failed: {Reason}", context.Message.Message.Sku, context.Message.Exceptions.FirstOrDefault()?.Message);
        return Task.CompletedTask;
    }
}

/// <summary>
/// Requests and responses, an event nobody consumes, a fault and a receive-endpoint handler, with JobLog. Configuration:
/// <c>ConnectionStrings:JobLog</c> (SQLite, default <c>Data Source=joblog-requests.db</c>), <c>Transport</c>
/// (<c>InMemory</c>, default, or <c>RabbitMq</c> with <c>RabbitMq:Host</c>, <c>RabbitMq:VirtualHost</c>).
/// </summary>
public static class RequestResponseSample
{
    public static readonly IReadOnlyDictionary<string, int> Stock = new Dictionary<string, int> { ["apple"] = 12, ["pear"] = 0 };

    public static IHost CreateHost(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(args);
        var ledger = builder.Configuration.GetConnectionString("JobLog") ?? "Data Source=joblog-requests.db";
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
            x.AddConsumer<CheckStockConsumer>();
            x.AddConsumer<ReserveStockConsumer>();
            x.AddConsumer<ReserveStockFaultConsumer>();
            x.AddRequestClient<CheckStock>();
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
        cfg.UseMessageRetry(r => r.Immediate(1));
        cfg.UseTaskLogging(context);
        cfg.ReceiveEndpoint("stock-audit", e => e.Handler<StockAudit>(_ => Task.CompletedTask));
        cfg.ConfigureEndpoints(context);
    }

    /// <summary>Asks for two stock levels, reserves too much of one item, and audits one.</summary>
    public static async Task<IReadOnlyList<StockLevel>> RunAsync(IServiceProvider services, CancellationToken cancellationToken = default)
    {
        var client = services.GetRequiredService<IRequestClient<CheckStock>>();
        var levels = new List<StockLevel>();
        foreach (var sku in new[] { "apple", "pear" })
        {
            var response = await client.GetResponse<StockLevel>(new CheckStock(sku), cancellationToken);
            levels.Add(response.Message);
        }

        var bus = services.GetRequiredService<IBus>();
        await bus.Publish(new ReserveStock("pear", 3), cancellationToken);
        await bus.Publish(new StockAudit("apple"), cancellationToken);
        return levels;
    }
}
