using JobLog;
using JobLog.AspNetCore.Requests;
using JobLog.Recording;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Inbound request logging.</summary>
public static class JobLogRequestsApplicationBuilderExtensions
{
    private const string InstalledKey = "JobLog.RequestLogging";

    /// <summary>
    /// Records every request as an <see cref="InputRequestLog"/>: an INCOMPLETE record before the endpoint runs, the
    /// completed one after (status from the response code or the exception, which is rethrown unchanged). Headers, query
    /// and bodies are masked and bounded by <see cref="RedactionOptions"/>; request bodies stay readable by the endpoint;
    /// response bodies are recorded only for text content types and never buffered whole. The client IP is
    /// <c>HttpContext.Connection.RemoteIpAddress</c> (configure <c>UseForwardedHeaders</c> with your known proxies).
    /// Place it after <c>UseRouting</c> (<c>WebApplication</c> routes first by default) so endpoint metadata is known,
    /// before authentication (so the user is read when the request ends) and before <c>UseRateLimiter</c> (so rejected
    /// requests are recorded as THROTTLED). Needs <c>services.AddJobLog(...)</c>. Idempotent.
    /// </summary>
    /// <param name="app">The application.</param>
    /// <param name="configure">Optional settings.</param>
    /// <returns>The application.</returns>
    /// <exception cref="InvalidOperationException">When <c>AddJobLog</c> was not called.</exception>
    /// <exception cref="ArgumentException">When an option is out of range.</exception>
    public static IApplicationBuilder UseJobLogRequests(this IApplicationBuilder app, Action<JobLogRequestOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (app.Properties.ContainsKey(InstalledKey))
        {
            return app;
        }

        if (app.ApplicationServices.GetService(typeof(LedgerRecorder)) is null)
        {
            throw new InvalidOperationException("UseJobLogRequests() needs services.AddJobLog(o => ...).");
        }

        var options = new JobLogRequestOptions();
        configure?.Invoke(options);
        if (new JobLogRequestOptionsValidator().Validate(null, options) is { Failed: true } invalid)
        {
            throw new ArgumentException(invalid.FailureMessage, nameof(configure));
        }

        app.Properties[InstalledKey] = true;
        ThrottleDetector.EnsureListening();
        return app.UseMiddleware<RequestLoggingMiddleware>(options, DashboardPrefixes.Of(app.Properties));
    }
}
