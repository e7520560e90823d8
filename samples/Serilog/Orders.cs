using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace JobLog.Samples.Serilog;

/// <summary>A customer placed an order: reserve the stock and save it.</summary>
internal sealed record PlaceOrder(int OrderId, string Sku, int Quantity);

internal sealed class Order
{
    public int Id { get; set; }

    public required string Sku { get; set; }

    public int Quantity { get; set; }
}

/// <summary>The application's own database (EF Core logs its SQL through Serilog, like any EF Core application).</summary>
internal sealed class OrdersDbContext(DbContextOptions<OrdersDbContext> options) : DbContext(options)
{
    public DbSet<Order> Orders => Set<Order>();
}

/// <summary>Logs what it does with ILogger&lt;T&gt;, as consumers do; the lines reach Serilog and the run's Output.</summary>
internal sealed class PlaceOrderConsumer(OrdersDbContext db, ILogger<PlaceOrderConsumer> logger) : IConsumer<PlaceOrder>
{
    public async Task Consume(ConsumeContext<PlaceOrder> context)
    {
        var order = context.Message;
        logger.LogInformation("Reserving {Quantity} x {Sku} for order {OrderId}", order.Quantity, order.Sku, order.OrderId);
        if (order.Sku == SerilogSample.MissingSku)
        {
            logger.LogWarning("The warehouse has no {Sku}", order.Sku);
            throw new InvalidOperationException($"Order {order.OrderId}: {order.Sku} is not stocked.");
        }

        db.Orders.Add(new Order { Id = order.OrderId, Sku = order.Sku, Quantity = order.Quantity });
        await db.SaveChangesAsync(context.CancellationToken);
        logger.LogInformation("Order {OrderId} saved", order.OrderId);
    }
}
