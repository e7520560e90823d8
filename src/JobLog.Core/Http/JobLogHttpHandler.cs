namespace JobLog.Http;

/// <summary>
/// Records every request sent through its client as an <see cref="OutputRequestLog"/>. Failures of the request are
/// recorded and rethrown unchanged; failures of the recording are logged and never reach the caller.
/// </summary>
internal sealed class JobLogHttpHandler(OutboundRequestRecorder recorder, string? slug, ClientTimeout? timeout = null) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var call = await recorder.BeginAsync(request, slug, timeout, cancellationToken).ConfigureAwait(false);
        if (call is null)
        {
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }

        HttpResponseMessage response;
        try
        {
            response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            call.Fail(ex, cancellationToken);
            throw;
        }

        call.Respond(response, await ErrorBodyAsync(call, response, cancellationToken).ConfigureAwait(false));
        return response;
    }

    /// <summary>
    /// A short error body read at once (<see cref="OutboundCall.ReadsBodyAtOnce"/>), buffered so the caller still reads it
    /// whole; null when it is not one, or when reading it failed (a connection reset in the body): the caller gets the
    /// response as it would without JobLog, and meets the failure if it reads the body.
    /// </summary>
    private static async Task<byte[]?> ErrorBodyAsync(OutboundCall call, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (!call.ReadsBodyAtOnce(response))
        {
            return null;
        }

        try
        {
            await response.Content.LoadIntoBufferAsync(cancellationToken).ConfigureAwait(false);
            return await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return null;
        }
    }

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var call = recorder.BeginSync(request, slug, timeout, cancellationToken);
        if (call is null)
        {
            return base.Send(request, cancellationToken);
        }

        HttpResponseMessage response;
        try
        {
            response = base.Send(request, cancellationToken);
        }
        catch (Exception ex)
        {
            call.Fail(ex, cancellationToken);
            throw;
        }

        call.Respond(response);
        return response;
    }
}
