using JobLog.Internal;
using JobLog.Recording;
using JobLog.Redaction;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace JobLog.AspNetCore.Requests;

/// <summary>What every request's recording needs.</summary>
internal sealed class RequestLoggingServices(
    LedgerRecorder recorder,
    Redactor redactor,
    TimeProvider time,
    JobLogRequestOptions options,
    ILogger logger)
{
    public Redactor Redactor => redactor;

    public TimeProvider Time => time;

    public JobLogRequestOptions Options => options;

    public ILogger Logger => logger;

    public void Enqueue(InputRequestPayload log) => recorder.Enqueue(new InputRequestRecorded(log));
}

/// <summary>
/// <c>UseJobLogRequests()</c>: records each request before and after the endpoint, and makes it the ambient input
/// request, so outbound requests and dispatched tasks know their parent.
/// </summary>
internal sealed class RequestLoggingMiddleware(
    RequestDelegate next,
    LedgerRecorder recorder,
    Redactor redactor,
    TimeProvider time,
    ILogger<RequestLoggingMiddleware> logger,
    JobLogRequestOptions options,
    DashboardPrefixes dashboards)
{
    private readonly RequestLoggingServices _services = new(recorder, redactor, time, options, logger);
    private int _warnedBeforeRouting;

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.Features.Get<RequestRecording>() is { } recorded)
        {
            await recorded.ReExecuteAsync(next).ConfigureAwait(false);
            return;
        }

        var endpoint = context.GetEndpoint();
        if (endpoint?.Metadata.GetMetadata<JobLogExemptAttribute>() is not null || IsExcluded(context.Request.Path)
            || (endpoint is not Microsoft.AspNetCore.Routing.RouteEndpoint && dashboards.Contains(context.Request.Path)))
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        RequestRecording? recording = null;
        try
        {
            recording = new RequestRecording(context, _services);
            await recording.StartAsync(endpoint).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.RequestNotRecorded(logger, ex, LogValue.Visible(context.Request.Method), LogValue.Visible(context.Request.Path.Value));
            // The request body stays wrapped: bytes read ahead are replayed from it.
            recording?.Restore(requestBody: false);
            context.Features.Set<RequestRecording>(null);
            await next(context).ConfigureAwait(false);
            return;
        }

        using var scope = JobLogScope.Push(new AmbientFrame(AmbientKind.InputRequest, recording.Id, JobLogScope.Current));
        ThrottleDetector.Track(recording);
        try
        {
            await next(context).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await CompleteAsync(context, recording, endpoint, ex).ConfigureAwait(false);
            throw;
        }

        await CompleteAsync(context, recording, endpoint, null).ConfigureAwait(false);
    }

    private async Task CompleteAsync(HttpContext context, RequestRecording recording, Endpoint? startEndpoint, Exception? exception)
    {
        try
        {
            if (startEndpoint is null && context.GetEndpoint() is not null && Interlocked.Exchange(ref _warnedBeforeRouting, 1) == 0)
            {
                Log.BeforeRouting(logger);
            }

            await recording.CompleteAsync(exception).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.RequestNotRecorded(logger, ex, LogValue.Visible(context.Request.Method), LogValue.Visible(context.Request.Path.Value));
            recording.Restore(requestBody: true);
        }
    }

    private bool IsExcluded(PathString path)
    {
        foreach (var prefix in options.ExcludedPaths)
        {
            if (path.StartsWithSegments(prefix, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }
}
