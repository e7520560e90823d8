using JobLog.Testing;
using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace JobLog.MassTransit.Tests.Jobs;

/// <summary>A host with JobLog and MassTransit's job service (in-memory saga repositories, in-memory transport and scheduler).</summary>
public static class JobBus
{
    public static async Task<LedgerHost> StartAsync(
        Action<JobLogOptions>? options = null, Action<IBusRegistrationConfigurator>? more = null, Action<IServiceCollection>? services = null)
    {
        var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), options, collection =>
        {
            services?.Invoke(collection);
            collection.AddMassTransitTestHarness(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.SetTestTimeouts(testTimeout: TimeSpan.FromSeconds(60), testInactivityTimeout: TimeSpan.FromSeconds(5));
                x.AddDelayedMessageScheduler();
                x.SetJobConsumerOptions();
                x.AddJobSagaStateMachines();
                x.AddConsumer<ConvertVideoConsumer>(c => c.Options<JobOptions<ConvertVideo>>(o => o.SetRetry(r => r.None())));
                x.AddConsumer<BrokenJobConsumer>(c => c.Options<JobOptions<BrokenJob>>(o => o.SetRetry(r => r.Intervals(10, 10))));
                more?.Invoke(x);
                x.UsingInMemory((context, cfg) =>
                {
                    cfg.UseDelayedMessageScheduler();
                    cfg.UseTaskLogging(context);
                    cfg.ConfigureEndpoints(context);
                });
            });
        });
        await host.Services.GetTestHarness().Start();
        return host;
    }
}
