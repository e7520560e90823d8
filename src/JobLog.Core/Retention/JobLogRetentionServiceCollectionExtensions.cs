using JobLog.Retention;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers JobLog's retention.</summary>
public static class JobLogRetentionServiceCollectionExtensions
{
    /// <summary>
    /// Turns retention on: a hosted service deletes, every <see cref="JobLogRetentionOptions.Interval"/>, finished rows
    /// past their period: by default successes after 30 days and failures after 90 days, for every kind. Unfinished rows
    /// are never deleted. Requires <c>AddJobLog</c>. Idempotent: a second call only applies <paramref name="configure"/>.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Adjusts the periods; set one to null to keep those rows forever.</param>
    /// <exception cref="OptionsValidationException">At start-up, when a period, the interval or the batch size is not positive.</exception>
    public static IServiceCollection AddJobLogRetention(this IServiceCollection services, Action<JobLogRetentionOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<JobLogRetentionOptions>().ValidateOnStart();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        if (services.Any(d => d.ServiceType == typeof(LedgerRetentionService)))
        {
            return services;
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<JobLogRetentionOptions>, JobLogRetentionOptionsValidator>());
        services.TryAddSingleton<LedgerPurger>();
        services.AddSingleton<LedgerRetentionService>();
        services.AddHostedService(sp => new JobLog.Storage.LedgerWritingHost<LedgerRetentionService>(sp.GetRequiredService<LedgerRetentionService>(), sp.GetRequiredService<JobLog.Storage.JobLogContextFactory>()));
        return services;
    }
}
