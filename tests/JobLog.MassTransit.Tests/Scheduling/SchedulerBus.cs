using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace JobLog.MassTransit.Tests.Scheduling;

/// <summary>A host with JobLog, the JobLog scheduler and a bus on a throwaway RabbitMQ vhost (no delayed-message plugin).</summary>
public sealed class SchedulerBus : IAsyncDisposable
{
    private SchedulerBus(LedgerHost host, RabbitMqVhost vhost, bool ownsVhost)
    {
        Host = host;
        Vhost = vhost;
        OwnsVhost = ownsVhost;
    }

    public LedgerHost Host { get; }

    public RabbitMqVhost Vhost { get; }

    private bool OwnsVhost { get; }

    public IBus Bus => Host.Services.GetRequiredService<IBus>();

    public static async Task<SchedulerBus> StartAsync(
        TestLedger ledger,
        Action<IBusRegistrationConfigurator> registrations,
        Action<IBusRegistrationContext, IRabbitMqBusFactoryConfigurator>? configureBus = null,
        Action<JobLogSchedulerOptions>? scheduler = null,
        RabbitMqVhost? vhost = null,
        WarningLog? warnings = null)
    {
        var ownsVhost = vhost is null;
        vhost ??= await RabbitMqVhost.CreateAsync();
        var host = await LedgerHost.StartAsync(ledger, services: services =>
        {
            if (Environment.GetEnvironmentVariable("JOBLOG_TEST_DEBUG") == "1")
            {
                services.Configure<Microsoft.Extensions.Logging.LoggerFilterOptions>(o => o.MinLevel = Microsoft.Extensions.Logging.LogLevel.Debug);
            }

            if (warnings is not null)
            {
                services.AddSingleton<Microsoft.Extensions.Logging.ILoggerProvider>(warnings);
            }

            // Tests publish at once: the endpoints' bindings must exist by then.
            services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            services.AddMassTransit(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddJobLogScheduler(o =>
                {
                    o.PollInterval = TimeSpan.FromSeconds(2);
                    scheduler?.Invoke(o);
                });
                registrations(x);
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(RabbitMqVhost.Host, vhost.Name, h =>
                    {
                        h.Username("guest");
                        h.Password("guest");
                    });
                    configureBus?.Invoke(context, cfg);
                    cfg.UseTaskLogging(context);
                    cfg.ConfigureEndpoints(context);
                });
            });
        });
        return new SchedulerBus(host, vhost, ownsVhost);
    }

    public async Task<T> InScopeAsync<T>(Func<IServiceProvider, Task<T>> action)
    {
        await using var scope = Host.Services.CreateAsyncScope();
        return await action(scope.ServiceProvider);
    }

    public Task<ScheduledMessageLog?> ScheduledAsync(Guid id) =>
        Host.QueryAsync(db => db.ScheduledMessages.AsNoTracking().SingleOrDefaultAsync(s => s.Id == id));

    /// <summary>Waits until the task satisfies <paramref name="done"/>; the failure message shows what was last seen.</summary>
    public async Task<TaskLog> WaitForTaskAsync(Guid id, Func<TaskLog, bool> done, string because, TimeSpan? timeout = null)
    {
        TaskLog? task = null;
        try
        {
            await LedgerHost.EventuallyAsync(
                async () =>
                {
                    task = await Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == id));
                    return task is not null && done(task);
                },
                timeout,
                because);
        }
        catch (TimeoutException ex)
        {
            var runs = task is null ? "no task row" : string.Join("; ", task.Runs.OrderBy(r => r.Start).Select(r => $"#{r.Retries} {r.State}"));
            var all = await Host.TasksAsync();
            var ledger = string.Join(" | ", all.Select(t => $"{t.Id} {t.Name} {t.State} [{string.Join("; ", t.Runs.OrderBy(r => r.Start).Select(r => $"#{r.Retries} {r.State}"))}]"));
            throw new TimeoutException($"{because}: last seen {task?.State.ToString() ?? "nothing"} ({runs}); ledger: {ledger}", ex);
        }

        return task!;
    }

    /// <summary>Stops the host without deleting the ledger or the vhost (a restart test starts another on them).</summary>
    public async Task StopAsync()
    {
        await Host.Host.StopAsync();
        Host.Host.Dispose();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Host.DisposeAsync();
        }
        finally
        {
            if (OwnsVhost)
            {
                await Vhost.DisposeAsync();
            }
        }
    }
}
