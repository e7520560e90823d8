using MassTransit;
using MassTransit.Courier.Contracts;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Samples.Courier;

/// <summary>The sample application: the bus with three activities, JobLog, and the dashboard.</summary>
public static class CourierSample
{
    public const string DefaultLedger = "Data Source=courier-sample.db";

    public static WebApplication Build(string[] args, string? ledger = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.Services.AddJobLog(o => o.UseSqlite(ledger ?? builder.Configuration["Ledger"] ?? DefaultLedger));
        builder.Services.AddMassTransit(x =>
        {
            x.SetKebabCaseEndpointNameFormatter();
            x.AddActivity<ReserveStockActivity, ReserveStockArguments, ReserveStockLog>();
            x.AddActivity<ChargeCardActivity, ChargeCardArguments, ChargeCardLog>();
            x.AddExecuteActivity<ShipOrderActivity, ShipOrderArguments>();
            x.UsingInMemory((context, cfg) =>
            {
                // Applies to activities too: a faulting activity is tried three times before Courier compensates.
                cfg.UseMessageRetry(r => r.Intervals(50, 100));
                cfg.UseTaskLogging(context);
                cfg.ConfigureEndpoints(context);
            });
        });
        var app = builder.Build();
        app.MapJobLogDashboard("/joblog");
        return app;
    }

    /// <summary>Builds an order's routing slip: reserve the stock, charge the card, ship.</summary>
    public static RoutingSlip Order(int orderId, decimal amount)
    {
        static Uri Execute(string name) => new($"queue:{name}");
        var formatter = KebabCaseEndpointNameFormatter.Instance;
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddActivity("ReserveStock", Execute(formatter.ExecuteActivity<ReserveStockActivity, ReserveStockArguments>()),
            new { OrderId = orderId, Sku = "BOOK-42", Quantity = 1 });
        builder.AddActivity("ChargeCard", Execute(formatter.ExecuteActivity<ChargeCardActivity, ChargeCardArguments>()),
            new { OrderId = orderId, Amount = amount });
        builder.AddActivity("ShipOrder", Execute(formatter.ExecuteActivity<ShipOrderActivity, ShipOrderArguments>()), new { OrderId = orderId });
        builder.AddVariable("OrderId", orderId);
        return builder.Build();
    }

    /// <summary>Executes two orders, one that completes and one whose card is declined, and waits for their tasks to end.</summary>
    public static async Task<(Guid Completed, Guid Faulted)> RunScenarioAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        var bus = services.GetRequiredService<IBus>();
        var completed = Order(1001, 25m);
        var faulted = Order(1002, 5000m);
        await bus.Execute(completed, cancellationToken);
        await bus.Execute(faulted, cancellationToken);
        await WaitAsync(services, [completed.TrackingNumber, faulted.TrackingNumber], cancellationToken);
        return (completed.TrackingNumber, faulted.TrackingNumber);
    }

    private static async Task WaitAsync(IServiceProvider services, Guid[] ids, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        while (true)
        {
            await using (var scope = services.CreateAsyncScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
                var done = await db.TaskLogs.CountAsync(
                    t => ids.Contains(t.Id) && (t.State == TaskState.Succeeded || t.State == TaskState.Failed), timeout.Token);
                if (done == ids.Length)
                {
                    return;
                }
            }

            await Task.Delay(200, timeout.Token);
        }
    }
}
