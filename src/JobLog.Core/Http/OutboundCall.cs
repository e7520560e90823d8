namespace JobLog.Http;

/// <summary>
/// One outbound request being recorded. Its record is enqueued once: when the response body has been read (or the
/// response had none worth capturing), or when the request failed.
/// </summary>
internal sealed class OutboundCall(OutboundRequestRecorder owner, OutputRequestLog log, bool isHead)
{
    private readonly Lock _lock = new();
    private CaptureBuffer? _body;
    private long? _contentLength;
    private bool _finished;

    public string? RequestBody
    {
        get => log.RequestBody;
        set => log.RequestBody = value;
    }

    /// <summary>Records the response head; a text body is then captured as the caller reads it (the content is wrapped).</summary>
    public void Respond(HttpResponseMessage response)
    {
        try
        {
            var code = (int)response.StatusCode;
            var content = response.Content;
            lock (_lock)
            {
                log.ResponseCode = code;
                log.Status = HttpLogFields.StatusOf(code);
                log.ResponseHeaders = owner.Redactor.NameValuesJson(OutboundRequestRecorder.Headers(response.Headers, content?.Headers));
            }

            if (isHead || content is null || content.Headers.ContentLength == 0
                || !owner.Redactor.IsTextContentType(content.Headers.ContentType?.ToString()))
            {
                Finish();
                return;
            }

            _contentLength = content.Headers.ContentLength;
            _body = new CaptureBuffer(owner.Redactor.MaxCaptureBytes);
            response.Content = new CapturingContent(content, this, _body);
        }
        catch (Exception ex)
        {
            owner.Failed(ex, log.Host);
            Finish();
        }
    }

    /// <summary>The request or its response body failed: ERROR with the exception (the caller rethrows it unchanged).</summary>
    public void Fail(Exception exception)
    {
        lock (_lock)
        {
            if (_finished)
            {
                return;
            }

            log.Status = RequestLogStatus.Error;
            log.ExceptionName = HttpLogFields.ExceptionName(exception);
            log.ErrorDescription = owner.Redactor.ExceptionText(exception);
        }

        Finish();
    }

    /// <summary>Enqueues the record (once). <paramref name="bodyComplete"/> is false when the body was abandoned half read.</summary>
    public void Finish(bool bodyComplete = true)
    {
        OutputRequestLog copy;
        lock (_lock)
        {
            if (_finished)
            {
                return;
            }

            _finished = true;
            try
            {
                log.ResponseTimestamp = owner.Time.GetUtcNow().UtcDateTime;
                if (_body is not null)
                {
                    var (bytes, truncated, total) = _body.Snapshot();
                    log.ResponseBody = bytes.Length == 0 && !bodyComplete
                        ? JobLog.Redaction.Redactor.NotRecorded(_contentLength)
                        : owner.Redactor.MaskBody(bytes, truncated || !bodyComplete, _contentLength ?? total);
                }
            }
            catch (Exception ex)
            {
                owner.Failed(ex, log.Host);
            }

            copy = log;
        }

        owner.Enqueue(copy);
    }
}
