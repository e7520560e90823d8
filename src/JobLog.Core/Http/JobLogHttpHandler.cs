namespace JobLog.Http;

/// <summary>
/// Records every request sent through its client as an <see cref="OutputRequestLog"/>. Failures of the request are
/// recorded and rethrown unchanged; failures of the recording are logged and never reach the caller.
/// </summary>
internal sealed class JobLogHttpHandler(OutboundRequestRecorder recorder, string? slug) : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var call = await recorder.BeginAsync(request, slug, cancellationToken).ConfigureAwait(false);
        if (call is null)
        {
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }

        HttpResponseMessage response;
        byte[]? errorBody = null;
        try
        {
            response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            if (call.ReadsBodyAtOnce(response))
            {
                // Buffered (a short body), so the caller still reads it whole.
                await response.Content.LoadIntoBufferAsync(cancellationToken).ConfigureAwait(false);
                errorBody = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            call.Fail(ex);
            throw;
        }

        call.Respond(response, errorBody);
        return response;
    }

    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var call = recorder.BeginSync(request, slug, cancellationToken);
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
            call.Fail(ex);
            throw;
        }

        call.Respond(response);
        return response;
    }
}
