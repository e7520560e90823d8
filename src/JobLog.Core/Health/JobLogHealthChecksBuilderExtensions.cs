using JobLog.Health;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers JobLog's health checks.</summary>
public static class JobLogHealthChecksBuilderExtensions
{
    /// <summary>Name of the writer check.</summary>
    public const string WriterCheckName = "joblog-writer";

    /// <summary>Name of the database check.</summary>
    public const string DatabaseCheckName = "joblog-database";

    /// <summary>
    /// Adds two checks tagged <c>joblog</c>: <c>joblog-writer</c> (Unhealthy while the writer cannot reach the database or
    /// write to it, its description naming the last error, or
    /// while its SQLite ledger file was deleted and no migrated one is back at its path; Degraded when its backlog is high,
    /// records were dropped, or the ledger file was deleted and made again) and <c>joblog-database</c> (a <c>SELECT 1</c> on
    /// the ledger). Requires <c>AddJobLog</c>. Idempotent.
    /// </summary>
    /// <param name="builder">The health checks builder from <c>services.AddHealthChecks()</c>.</param>
    /// <param name="configure">Adjusts the thresholds.</param>
    /// <param name="tags">Extra tags for both checks, e.g. <c>ready</c>.</param>
    /// <exception cref="OptionsValidationException">At start-up, on options out of range.</exception>
    public static IHealthChecksBuilder AddJobLogHealthChecks(
        this IHealthChecksBuilder builder,
        Action<JobLogHealthCheckOptions>? configure = null,
        params string[] tags)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = builder.Services.AddOptions<JobLogHealthCheckOptions>().ValidateOnStart();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        if (builder.Services.Any(d => d.ServiceType == typeof(LedgerWriterHealthCheck)))
        {
            return builder;
        }

        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<JobLogHealthCheckOptions>, JobLogHealthCheckOptionsValidator>());
        builder.Services.AddSingleton<LedgerWriterHealthCheck>();
        builder.Services.AddSingleton<LedgerDatabaseHealthCheck>();
        string[] allTags = ["joblog", .. tags];
        builder.Add(new HealthCheckRegistration(WriterCheckName, sp => sp.GetRequiredService<LedgerWriterHealthCheck>(), HealthStatus.Unhealthy, allTags));
        builder.Add(new HealthCheckRegistration(DatabaseCheckName, sp => sp.GetRequiredService<LedgerDatabaseHealthCheck>(), HealthStatus.Unhealthy, allTags));
        return builder;
    }
}
