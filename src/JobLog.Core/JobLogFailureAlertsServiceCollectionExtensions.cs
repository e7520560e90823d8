using JobLog.Failures.Alerts;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Alerts on failure groups.</summary>
public static class JobLogFailureAlertsServiceCollectionExtensions
{
    /// <summary>
    /// Adds a hosted alerter that posts JSON (generic, Slack- or Teams-shaped) to webhooks when a new failure group
    /// appears or a group's failures per minute reach a threshold, at most once per group per cool-down. It runs on its
    /// own loop, never on the business path; each post goes through an <c>HttpClient</c> with JobLog's outbound handler
    /// (so it is an outbound request in the ledger) and is bounded by a timeout. Needs <c>services.AddJobLog(...)</c>.
    /// Idempotent: a second call only adds its configuration.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the webhooks and thresholds.</param>
    /// <returns>The services.</returns>
    public static IServiceCollection AddJobLogFailureAlerts(this IServiceCollection services, Action<FailureAlertOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<FailureAlertOptions>().Configure(configure)
            .Validate(o => o.Webhooks.All(w => w.Url is null || (w.Url.IsAbsoluteUri && w.Url.Scheme is "http" or "https")),
                "FailureAlertOptions.Webhooks: every Url must be an absolute http or https URL.")
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<FailureAlertOptions>, FailureAlertOptionsValidator>());
        if (services.Any(d => d.ServiceType == typeof(FailureAlerter)))
        {
            return services;
        }

        services.AddHttpClient(FailureAlerter.HttpClientName).AddJobLogging("joblog-alerts");
        services.AddSingleton<FailureAlerter>();
        services.AddHostedService(sp => sp.GetRequiredService<FailureAlerter>());
        return services;
    }
}
