using JobLog.Testing;
using MassTransit;
using MassTransit.DependencyInjection.Registration;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace JobLog.MassTransit.Tests;

public enum Transport
{
    InMemory,
    RabbitMq,
}

/// <summary>A host with JobLog and a MassTransit test harness on the in-memory transport or a throwaway RabbitMQ vhost.</summary>
public sealed class BusFixture : IAsyncDisposable
{
    private BusFixture(LedgerHost host, RabbitMqVhost? vhost)
    {
        Host = host;
        Vhost = vhost;
    }

    public LedgerHost Host { get; }

    public RabbitMqVhost? Vhost { get; }

    public ITestHarness Harness => Host.Services.GetTestHarness();

    public IBus Bus => Harness.Bus;

    public static async Task<BusFixture> StartAsync(
        Transport transport,
        Action<IBusRegistrationConfigurator> consumers,
        int retries = 0,
        Action<JobLogOptions>? options = null,
        TestLedger? ledger = null,
        TimeSpan? retryInterval = null,
        Action<IBusRegistrationContext, IBusFactoryConfigurator>? configureBus = null,
        Action<IBusRegistrationContext, IBusFactoryConfigurator>? endpoints = null,
        Microsoft.Extensions.Logging.ILoggerProvider? logs = null,
        Action<IServiceCollection>? configureServices = null,
        Action<IRegistrationFilterConfigurator>? endpointFilter = null,
        IEndpointNameFormatter? formatter = null)
    {
        var vhost = transport == Transport.RabbitMq ? await RabbitMqVhost.CreateAsync() : null;
        var host = await LedgerHost.StartAsync(ledger ?? TestLedger.Sqlite(), options, services =>
        {
            if (logs is not null)
            {
                services.AddSingleton(logs);
            }

            configureServices?.Invoke(services);

            services.AddMassTransitTestHarness(x =>
            {
                if (formatter is null)
                {
                    x.SetKebabCaseEndpointNameFormatter();
                }
                else
                {
                    x.SetEndpointNameFormatter(formatter);
                }

                x.SetTestTimeouts(testTimeout: TimeSpan.FromSeconds(60), testInactivityTimeout: TimeSpan.FromSeconds(5));
                consumers(x);
                if (vhost is null)
                {
                    x.UsingInMemory((context, cfg) => Configure(context, cfg, retries, retryInterval, configureBus, endpoints, endpointFilter));
                }
                else
                {
                    x.UsingRabbitMq((context, cfg) =>
                    {
                        cfg.Host(RabbitMqVhost.Host, vhost.Name, h =>
                        {
                            h.Username("guest");
                            h.Password("guest");
                        });
                        Configure(context, cfg, retries, retryInterval, configureBus, endpoints, endpointFilter);
                    });
                }
            });
        });
        var fixture = new BusFixture(host, vhost);
        await fixture.Harness.Start();
        return fixture;
    }

    private static void Configure<T>(
        IBusRegistrationContext context, IBusFactoryConfigurator<T> cfg, int retries, TimeSpan? interval,
        Action<IBusRegistrationContext, IBusFactoryConfigurator>? configureBus,
        Action<IBusRegistrationContext, IBusFactoryConfigurator>? endpoints,
        Action<IRegistrationFilterConfigurator>? endpointFilter)
        where T : IReceiveEndpointConfigurator
    {
        configureBus?.Invoke(context, cfg);
        if (retries > 0 && interval is { } delay)
        {
            // With the bus as connector, a waiting retry is cancelled when the bus stops.
            cfg.UseMessageRetry(cfg, r =>
            {
                r.Interval(retries, delay);
                r.ConnectTaskLogging(context);
            });
        }
        else if (retries > 0)
        {
            cfg.UseMessageRetry(r => r.Immediate(retries));
        }

        cfg.UseTaskLogging(context);
        endpoints?.Invoke(context, cfg);
        if (endpointFilter is null)
        {
            cfg.ConfigureEndpoints(context);
        }
        else
        {
            cfg.ConfigureEndpoints(context, endpointFilter);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Host.DisposeAsync();
        }
        finally
        {
            if (Vhost is not null)
            {
                await Vhost.DisposeAsync();
            }
        }
    }
}
