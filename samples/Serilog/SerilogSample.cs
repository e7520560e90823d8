using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serilog;
using Serilog.Events;

namespace JobLog.Samples.Serilog;

/// <summary>
/// A MassTransit application logging with Serilog's <c>UseSerilog()</c>, as most do, with JobLog added (<c>AddJobLog</c>,
/// <c>UseTaskLogging</c>). It places three orders (one for an item the warehouse does not stock), waits for them, and prints
/// each run's Output from the ledger: the consumer's own lines, not EF Core's SQL or MassTransit's, although Serilog writes
/// all of them to the console.
/// </summary>
internal static class SerilogSample
{
    public const string MissingSku = "SKU-404";

    public static IHost Build(string[] args) =>
        Host.CreateDefaultBuilder(args)
            .UseSerilog((_, logger) => logger
                .MinimumLevel.Information()
                .MinimumLevel.Override("Microsoft.Hosting", LogEventLevel.Warning)
                .MinimumLevel.Override("MassTransit", LogEventLevel.Warning)
                .WriteTo.Console(outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {SourceContext}: {Message:lj}{NewLine}{Exception}"))
            .ConfigureServices((context, services) =>
            {
                services.AddDbContext<OrdersDbContext>(o => o.UseSqlite(context.Configuration.GetConnectionString("Orders") ?? "Data Source=orders.db"));
                services.AddJobLog(o => o.UseSqlite(context.Configuration.GetConnectionString("JobLog") ?? "Data Source=joblog.db"));
                services.AddMassTransit(x =>
                {
                    x.SetKebabCaseEndpointNameFormatter();
                    x.AddConsumer<PlaceOrderConsumer>();
                    x.UsingInMemory((registration, cfg) =>
                    {
                        cfg.UseTaskLogging(registration);
                        cfg.ConfigureEndpoints(registration);
                    });
                });
            })
            .Build();

    public static async Task<int> RunAsync(string[] args, TextWriter output, CancellationToken cancellationToken)
    {
        using var host = Build(args);
        await using (var scope = host.Services.CreateAsyncScope())
        {
            await scope.ServiceProvider.GetRequiredService<OrdersDbContext>().Database.EnsureCreatedAsync(cancellationToken);
        }

        await host.StartAsync(cancellationToken);
        try
        {
            var bus = host.Services.GetRequiredService<IBus>();
            var orders = new[] { new PlaceOrder(1, "SKU-001", 2), new PlaceOrder(2, "SKU-002", 1), new PlaceOrder(3, MissingSku, 5) };
            var ids = new List<Guid>();
            foreach (var order in orders)
            {
                var id = NewId.NextGuid();
                ids.Add(id);
                await bus.Publish(order, x => x.MessageId = id, cancellationToken);
            }

            var tasks = await WaitForAsync(host.Services, ids, TimeSpan.FromSeconds(30), cancellationToken);
            foreach (var task in tasks.OrderBy(t => t.DispatchedAt))
            {
                foreach (var run in task.Runs)
                {
                    await output.WriteLineAsync($"--- {task.Name} {task.Input}: run {run.State}, Output:\n{run.Output}");
                }
            }

            return tasks.Count == ids.Count ? 0 : 1;
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>The tasks once each has finished (or the timeout passed), read from the ledger with JobLog's DbContext.</summary>
    private static async Task<List<TaskLog>> WaitForAsync(IServiceProvider services, List<Guid> ids, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            await using var scope = services.CreateAsyncScope();
            var tasks = await scope.ServiceProvider.GetRequiredService<JobLogDbContext>().TaskLogs.AsNoTracking().Include(t => t.Runs)
                .Where(t => ids.Contains(t.Id)).ToListAsync(cancellationToken);
            if ((tasks.Count == ids.Count && tasks.All(t => t.State.IsFinal())) || DateTime.UtcNow > deadline)
            {
                return tasks;
            }

            await Task.Delay(200, cancellationToken);
        }
    }
}
