using JobLog;
using JobLog.Context;
using JobLog.Internal;
using JobLog.Recording;
using JobLog.Redaction;
using JobLog.Storage;
using JobLog.Sweeping;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers JobLog's ledger.</summary>
public static class JobLogServiceCollectionExtensions
{
    /// <summary>
    /// Adds the ledger: the <see cref="JobLogDbContext"/>, the recorder and its writer, schema migration at start-up,
    /// the stale-task sweeper, and the ILogger capture of run output; for reading and tooling, the scoped
    /// <see cref="JobLog.Querying.LedgerQueries"/> and the <see cref="JobLog.Maintenance.LedgerMaintenance"/>. Idempotent:
    /// a second call only applies <paramref name="configure"/>.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Configures the options; it must choose a database (<c>o.UseSqlite(...)</c> or <c>o.UseNpgsql(...)</c>).</param>
    /// <exception cref="OptionsValidationException">At start-up, when no database is chosen or an option is out of range.</exception>
    public static IServiceCollection AddJobLog(this IServiceCollection services, Action<JobLogOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);

        services.AddOptions<JobLogOptions>().Configure(configure).ValidateOnStart();
        if (services.Any(d => d.ServiceType == typeof(LedgerRecorder)))
        {
            return services;
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<JobLogOptions>, JobLogOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.AddLogging();
        services.TryAddSingleton<JobLogMetrics>();
        services.TryAddSingleton<Redactor>();
        services.TryAddSingleton<MessageRenderer>();
        services.TryAddSingleton<JobLogContextFactory>();
        services.TryAddSingleton(sp => sp.GetRequiredService<JobLogContextFactory>().Database);
        services.TryAddSingleton<LedgerPlanner>();
        services.TryAddSingleton<LedgerSchema>();
        services.TryAddSingleton<LedgerRecorder>();
        services.TryAddSingleton<LedgerWriter>();
        services.TryAddSingleton<StrandedWork>();
        services.TryAddSingleton<HostHeartbeat>();
        services.TryAddSingleton<TaskLogSweeper>();
        services.TryAddSingleton<LedgerRefusals>();
        services.TryAddSingleton(CommandLogger.Create);
        services.TryAddSingleton<JobLog.Retention.LedgerPurger>();
        services.TryAddSingleton(JobLog.Maintenance.LedgerMaintenance.Create);
        services.TryAddScoped(sp => sp.GetRequiredService<JobLogContextFactory>().Create());
        services.TryAddScoped(sp => new JobLog.Querying.LedgerQueries(
            sp.GetRequiredService<JobLogDbContext>(), sp.GetRequiredService<LedgerDatabase>(), sp.GetRequiredService<IOptions<JobLogOptions>>().Value.SearchIndex)
        {
            SearchBudget = sp.GetRequiredService<IOptions<JobLogOptions>>().Value.SearchBudget,
        });
        services.TryAddSingleton<OutputCapture>();
        AddFailures(services);
        AddOutputCapture(services);

        // Order matters: the schema first, then the heartbeat, then the writer; hosted services stop in reverse, so the
        // writer drains last but one, and the heartbeat marks this host stopped after it.
        services.AddHostedService<LedgerStartupService>();
        // Over a ledger opened read-only, the services that write it on their own do not start (LedgerWritingHost); the
        // writer does, since what this process records must be kept (journaled) until a process that can write takes it.
        services.AddHostedService(sp => new LedgerWritingHost<HostHeartbeat>(sp.GetRequiredService<HostHeartbeat>(), sp.GetRequiredService<JobLogContextFactory>()));
        services.AddHostedService(sp => sp.GetRequiredService<LedgerWriter>());
        services.TryAddSingleton<JobLog.Storage.Partitioning.LedgerPartitionService>();
        services.AddHostedService(sp => new LedgerWritingHost<JobLog.Storage.Partitioning.LedgerPartitionService>(
            sp.GetRequiredService<JobLog.Storage.Partitioning.LedgerPartitionService>(), sp.GetRequiredService<JobLogContextFactory>()));
        services.AddHostedService(sp => new LedgerWritingHost<TaskLogSweeper>(
            sp.GetRequiredService<TaskLogSweeper>(), sp.GetRequiredService<JobLogContextFactory>(), () => sp.GetRequiredService<IOptions<JobLogOptions>>().Value.Sweeper.Enabled));
        return services;
    }

    /// <summary>
    /// Output capture whatever the logging provider. <c>ILogger&lt;T&gt;</c> (what consumers are given) tees each line into
    /// the current run's output and passes it on to the registered <see cref="ILoggerFactory"/>, whichever it is and
    /// whenever it was registered: added, not tried, it wins over Microsoft.Extensions.Logging's <c>Logger&lt;T&gt;</c>, and
    /// neither Serilog nor NLog registers its own. The factory registered so far (Microsoft.Extensions.Logging's, or
    /// Serilog's when <c>UseSerilog</c> came first) is decorated too, for loggers made with <c>CreateLogger(name)</c>.
    /// </summary>
    private static void AddOutputCapture(IServiceCollection services)
    {
        services.AddSingleton(typeof(ILogger<>), typeof(CapturingLogger<>));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<ILoggerProvider, CapturingLoggerProvider>());
        for (var i = services.Count - 1; i >= 0; i--)
        {
            var original = services[i];
            if (original.ServiceType != typeof(ILoggerFactory) || original.IsKeyedService)
            {
                continue;
            }

            services[i] = ServiceDescriptor.Singleton<ILoggerFactory>(sp =>
            {
                var capture = sp.GetRequiredService<OutputCapture>();
                return original.ImplementationInstance is ILoggerFactory instance
                    ? new CapturingLoggerFactory(instance, ownsInner: false, capture)
                    : new CapturingLoggerFactory(
                        (ILoggerFactory)(original.ImplementationFactory?.Invoke(sp) ?? ActivatorUtilities.CreateInstance(sp, original.ImplementationType!)),
                        ownsInner: true,
                        capture);
            });
            break;
        }
    }

    /// <summary>
    /// Acting on failures (docs/architecture.md#failures): <see cref="JobLog.Failures.IFailureActions"/> and the Data
    /// Protection that encrypts kept messages (the application's own keys when it configured Data Protection).
    /// </summary>
    private static void AddFailures(IServiceCollection services)
    {
        services.AddDataProtection();
        services.TryAddSingleton(sp => new ParentStampKey(sp.GetRequiredService<IDataProtectionProvider>(), sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton<JobLog.Failures.RetrySignal>();
        services.TryAddSingleton<JobLog.Failures.KeptMessageCodec>();
        services.TryAddSingleton<JobLog.Failures.LedgerFailureActions>();
        services.TryAddSingleton<JobLog.Failures.IFailureActions>(sp => sp.GetRequiredService<JobLog.Failures.LedgerFailureActions>());
        services.TryAddSingleton<JobLog.Failures.IKeptMessageActions>(sp => sp.GetRequiredService<JobLog.Failures.LedgerFailureActions>());
    }
}
