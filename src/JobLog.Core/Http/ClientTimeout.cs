using System.Globalization;

namespace JobLog.Http;

/// <summary>
/// The <see cref="HttpClient.Timeout"/> of the clients of one name, so that a send the handler sees cancelled can be
/// recorded as HttpClient reports it: the handler gets one token for the caller's cancellation and the client's timeout
/// alike, and HttpClient tells them apart only after the handler has thrown. The last client created is kept weakly and
/// its timeout read when needed (a typed client, or the caller, sets it after the factory made the client).
/// </summary>
internal sealed class ClientTimeout
{
    private WeakReference<HttpClient>? _last;
    private TimeSpan _timeout = Timeout.InfiniteTimeSpan;

    /// <summary>An <c>HttpClientActions</c> action: the factory made <paramref name="client"/>.</summary>
    public void Created(HttpClient client)
    {
        _last = new WeakReference<HttpClient>(client);
        _timeout = client.Timeout;
    }

    /// <summary>The timeout of the clients of this name, null when infinite or unknown.</summary>
    public TimeSpan? Current
    {
        get
        {
            if (_last is { } last && last.TryGetTarget(out var client))
            {
                _timeout = client.Timeout;
            }

            return _timeout == Timeout.InfiniteTimeSpan || _timeout <= TimeSpan.Zero ? null : _timeout;
        }
    }

    /// <summary>
    /// <paramref name="exception"/> as HttpClient rethrows it when its timeout ended the send: a cancellation of the
    /// send's own token (<paramref name="sendToken"/>, HttpClient's; not a later read of a streamed body under the
    /// caller's token), <paramref name="elapsed"/> since the send reached JobLog at least the timeout (less a margin:
    /// HttpClient started its clock a moment before). Null when it is not one: a caller's cancellation, or a timeout
    /// of a handler or policy above (Polly's), stays as it was seen.
    /// </summary>
    public Exception? AsTimeout(Exception exception, CancellationToken token, CancellationToken sendToken, TimeSpan elapsed)
    {
        if (exception is not OperationCanceledException || !token.IsCancellationRequested || token != sendToken || Current is not { } timeout)
        {
            return null;
        }

        var margin = TimeSpan.FromTicks(Math.Min(timeout.Ticks / 10, TimeSpan.TicksPerSecond));
        if (elapsed < timeout - margin)
        {
            return null;
        }

        // HttpClient's words (SR.net_http_request_timedout) and shape: a TaskCanceledException around a TimeoutException.
        return new TaskCanceledException(
            string.Format(CultureInfo.InvariantCulture, "The request was canceled due to the configured HttpClient.Timeout of {0} seconds elapsing.", timeout.TotalSeconds),
            new TimeoutException(exception.Message, exception));
    }
}
