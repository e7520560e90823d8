using JobLog.Worker.Demo;
using JobLog.Worker.DemoHttp;
using MassTransit;

namespace JobLog.Worker;

/// <summary>Composition of the Worker: the ledger, the bus with the demo consumers, the HTTP surface.</summary>
internal static class WorkerApp
{
    /// <summary>Builds the web application (worker + dashboard). <paramref name="configure"/> lets tests and the CLI adjust services.</summary>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        // appsettings.json from the build output, wherever the command runs; relative paths (joblog.db) stay relative to
        // the current directory.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
        {
            builder.WebHost.UseUrls(WorkerSettings.DefaultUrls);
        }

        var settings = WorkerSettings.From(builder.Configuration);
        AddLedger(builder.Services, builder.Configuration, settings);
        AddBus(builder.Services, settings);
        builder.Services.AddDemoHttp();
        builder.Services.AddHealthChecks().AddJobLogHealthChecks();
        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseJobLogRequests();
        // HEAD wherever GET is, as on the dashboard (a monitor's probe of the root was a 405).
        app.MapMethods("/", [HttpMethods.Get, HttpMethods.Head], () => Results.Redirect("/joblog"));
        app.MapHealthChecks("/healthz").JobLogExempt();
        app.MapDemoHttp();
        app.MapJobLogDashboard("/joblog");
        return app;
    }

    public static void AddLedger(IServiceCollection services, IConfiguration configuration, WorkerSettings settings)
    {
        services.AddJobLog(o =>
        {
            if (settings.Database == LedgerProvider.PostgreSql)
            {
                o.UseNpgsql(settings.ConnectionString);
            }
            else
            {
                o.UseSqlite(settings.ConnectionString);
            }

            o.Sweeper.Interval = TimeSpan.FromSeconds(5);
            // The worker itself and help are not commands worth a CommandLog; sweep, demo, migrate, ... are.
            foreach (var name in new[] { "run", "help", "--help", "-h" })
            {
                o.Commands.ExcludedNames.Add(name);
            }

            o.Release = typeof(WorkerApp).Assembly.GetName().Version?.ToString();
            WorkerSettings.BindJobLog(configuration, o);
            if (o.SpoolDirectory is { Length: 0 })
            {
                // An empty value turns the spool off.
                o.SpoolDirectory = null;
            }
        });
    }

    public static void AddBus(IServiceCollection services, WorkerSettings settings)
    {
        services.AddMassTransit(x =>
        {
            x.SetKebabCaseEndpointNameFormatter();
            x.AddConsumer<ChargeCardConsumer>();
            x.AddConsumer<SyncInventoryConsumer>();
            x.AddConsumer<SendInvoiceConsumer>();
            x.AddConsumer<BuildReportConsumer>();
            x.AddJobLogScheduler();
            if (settings.UsesRabbitMq)
            {
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(settings.RabbitHost, settings.RabbitVirtualHost, h =>
                    {
                        h.Username(settings.RabbitUser);
                        h.Password(settings.RabbitPassword);
                    });
                    if (settings.PrefetchCount is { } prefetch)
                    {
                        cfg.PrefetchCount = prefetch;
                    }

                    if (settings.ConcurrentMessageLimit is { } limit)
                    {
                        cfg.ConcurrentMessageLimit = limit;
                    }

                    ConfigureBus(context, cfg);
                });
            }
            else
            {
                x.UsingInMemory((context, cfg) => ConfigureBus(context, cfg));
            }
        });
    }

    private static void ConfigureBus<T>(IBusRegistrationContext context, IBusFactoryConfigurator<T> cfg)
        where T : IReceiveEndpointConfigurator
    {
        cfg.UseMessageRetry(r => r.Intervals(200, 500));
        cfg.UseTaskLogging(context);
        cfg.ConfigureEndpoints(context);
    }
}
