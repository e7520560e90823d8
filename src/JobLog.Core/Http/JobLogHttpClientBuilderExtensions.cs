using JobLog.Http;
using JobLog.Recording;
using JobLog.Redaction;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Outbound HTTP logging for <c>IHttpClientFactory</c> clients.</summary>
public static class JobLogHttpClientBuilderExtensions
{
    /// <summary>
    /// Records every request this client sends as an <see cref="JobLog.OutputRequestLog"/>: linked to the inbound request
    /// it is made in, and related to the task run, command and <c>JobLogScope.Relate</c> objects around it. Headers,
    /// query and bodies are masked and bounded by <see cref="JobLog.RedactionOptions"/>; response bodies are captured only
    /// for text content types, as the caller reads them (streaming is preserved). A failed request (connection error,
    /// timeout) is recorded with status ERROR and its exception is rethrown unchanged; a send ended by the client's
    /// <c>HttpClient.Timeout</c> is recorded as HttpClient reports it to the caller (<c>TaskCanceledException: The request
    /// was canceled due to the configured HttpClient.Timeout of N seconds elapsing.</c>), a cancelled one as cancelled. Needs <c>services.AddJobLog(...)</c>.
    /// Idempotent per client: a second call on the same client does nothing.
    /// </summary>
    /// <param name="builder">The client's builder.</param>
    /// <param name="slug">Stored as every record's <c>Slug</c> (for example the partner's name). Default null.</param>
    /// <returns>The builder.</returns>
    public static IHttpClientBuilder AddJobLogging(this IHttpClientBuilder builder, string? slug = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (builder.Services.Any(d => d.ServiceType == typeof(JobLoggingMarker) && d.ImplementationInstance is JobLoggingMarker m && m.Name == builder.Name))
        {
            return builder;
        }

        builder.Services.AddSingleton(new JobLoggingMarker(builder.Name));
        builder.Services.TryAddSingleton(sp => new OutboundRequestRecorder(
            sp.GetService<LedgerRecorder>() ?? throw new InvalidOperationException("AddJobLogging() needs services.AddJobLog(o => ...)."),
            sp.GetRequiredService<Redactor>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<OutboundRequestRecorder>>()));
        var timeout = new ClientTimeout();
        builder.ConfigureHttpClient(timeout.Created);
        builder.AddHttpMessageHandler(sp => new JobLogHttpHandler(sp.GetRequiredService<OutboundRequestRecorder>(), slug, timeout));
        return builder;
    }

    private sealed record JobLoggingMarker(string Name);
}
