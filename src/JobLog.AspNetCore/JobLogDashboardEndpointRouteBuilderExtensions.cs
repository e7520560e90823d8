using JobLog.Querying;
using JobLog.AspNetCore.Dashboard;
using JobLog.AspNetCore.Requests;
using JobLog.Recording;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps JobLog's dashboard.</summary>
public static class JobLogDashboardEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps the dashboard (overview, tasks, inbound and outbound requests, commands) and its JSON API under
    /// <paramref name="prefix"/>. Without an authorization policy only local (loopback) requests are served and every
    /// other one gets 403; add one on the returned builder to open it: <c>.RequireAuthorization("ops")</c>.
    /// Read-only unless <see cref="JobLogDashboardOptions.EnableActions"/> is set, or failure actions are given their own
    /// policy (<c>o.Actions.RequireAuthorization("joblog-operator")</c>): an operator must pass both.
    /// </summary>
    /// <param name="endpoints">The application.</param>
    /// <param name="prefix">Where the dashboard lives. Default <c>/joblog</c>.</param>
    /// <param name="configure">Adjusts the options.</param>
    /// <returns>The dashboard's route group, for conventions such as <c>RequireAuthorization</c>.</returns>
    /// <exception cref="InvalidOperationException">
    /// <c>AddJobLog</c> was not called, or failure actions are on without <c>AddAntiforgery</c> and <c>AddAuthorization</c>.
    /// </exception>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public static RouteGroupBuilder MapJobLogDashboard(
        this IEndpointRouteBuilder endpoints,
        string prefix = "/joblog",
        Action<JobLogDashboardOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrWhiteSpace(prefix);
        if (endpoints.ServiceProvider.GetService<LedgerRecorder>() is null)
        {
            throw new InvalidOperationException("MapJobLogDashboard needs the ledger: call services.AddJobLog(...) first.");
        }

        var options = new JobLogDashboardOptions();
        configure?.Invoke(options);
        if (new JobLogDashboardOptionsValidator().Validate(null, options) is { Failed: true } invalid)
        {
            throw new ArgumentException(invalid.FailureMessage, nameof(configure));
        }

        if (options.Actions.Enabled
            && (endpoints.ServiceProvider.GetService<Microsoft.AspNetCore.Antiforgery.IAntiforgery>() is null
                || endpoints.ServiceProvider.GetService<Microsoft.AspNetCore.Authorization.IAuthorizationService>() is null))
        {
            throw new InvalidOperationException(
                "Failure actions (JobLogDashboardOptions.Actions) need antiforgery and authorization: call services.AddAntiforgery() and services.AddAuthorization(...).");
        }

        // The dashboard reads the ledger; its own (polling) requests are not business traffic to record, nor are those
        // under its prefix that none of its endpoints takes (404, 405).
        var path = "/" + prefix.Trim('/');
        DashboardPrefixes.Of(endpoints is IApplicationBuilder app ? app.Properties : endpoints.CreateApplicationBuilder().Properties).Add(path);
        return DashboardEndpoints.Map(endpoints, path, options).JobLogExempt();
    }
}
