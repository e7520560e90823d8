using JobLog.Recording;

namespace JobLog.Http;

/// <summary>
/// One outbound request being recorded. Its record is enqueued once: when the response body has been read (or the
/// response had none worth capturing), or when the request failed.
/// </summary>
internal sealed class OutboundCall(OutboundRequestRecorder owner, OutputRequestPayload log, bool isHead, ClientTimeout? timeout, CancellationToken sendToken)
{
    // Immutable: each step takes a copy, and the record enqueued is the last one.
    private OutputRequestPayload _log = log;
    private readonly Lock _lock = new();
    private CaptureBuffer? _body;
    private long? _contentLength;
    private DateTime _respondedAt;
    private bool _finished;

    // The monotonic clock at the start: the response's time is the request's plus the time since, so a wall clock stepped
    // meanwhile (NTP, a VM resumed) cannot answer the request before it was sent or stretch it by the step.
    private readonly long _started = owner.Time.GetTimestamp();

    // HttpClient's timeout runs on the machine's clock, whatever TimeProvider the application gave JobLog.
    private readonly long _sent = TimeProvider.System.GetTimestamp();

    private DateTime Now => _log.RequestTimestamp + owner.Time.GetElapsedTime(_started);

    public string? RequestBody
    {
        get => _log.RequestBody;
        set => _log = _log with { RequestBody = value };
    }

    /// <summary>
    /// True for an error answer (400 and above) with a short text body of declared length: it is read at once, so the
    /// record holds it even when nobody reads it (a retry handler disposes a failed attempt's response unread).
    /// </summary>
    public bool ReadsBodyAtOnce(HttpResponseMessage response) =>
        !isHead && (int)response.StatusCode >= 400 && response.Content is { } content
        && content.Headers.ContentLength is > 0 and var length && length <= owner.Redactor.MaxCaptureBytes
        && owner.Redactor.IsTextContentType(content.Headers.ContentType?.ToString());

    /// <summary>
    /// Records the response head; a text body is then captured as the caller reads it (the content is wrapped), or is
    /// <paramref name="body"/>, read at once (<see cref="ReadsBodyAtOnce"/>, the content buffered for the caller).
    /// </summary>
    public void Respond(HttpResponseMessage response, byte[]? body = null)
    {
        try
        {
            var code = (int)response.StatusCode;
            var content = response.Content;
            lock (_lock)
            {
                _log = _log with
                {
                    ResponseCode = code,
                    Status = HttpLogFields.StatusOf(code),
                    ResponseHeaders = owner.Redactor.NameValuesJson(OutboundRequestRecorder.Headers(response.Headers, content?.Headers)),
                };
            }

            if (isHead || content is null || content.Headers.ContentLength == 0
                || !owner.Redactor.IsTextContentType(content.Headers.ContentType?.ToString()))
            {
                Finish();
                return;
            }

            _contentLength = content.Headers.ContentLength;
            _respondedAt = Now;
            _body = new CaptureBuffer(owner.Redactor.MaxCaptureBytes);
            if (body is not null)
            {
                _body.Append(body);
                Finish();
                return;
            }

            owner.Opened(this);
            response.Content = new CapturingContent(content, this, _body);
        }
        catch (Exception ex)
        {
            owner.Failed(ex, _log.Host);
            Finish();
        }
    }

    /// <summary>
    /// The request or its response body failed: ERROR with the exception (the caller rethrows it unchanged), or, for a
    /// cancellation of the send's token at the client's timeout, the timeout as HttpClient then reports it
    /// (<see cref="ClientTimeout.AsTimeout"/>). <paramref name="token"/> is the token the failed operation was given.
    /// </summary>
    public void Fail(Exception exception, CancellationToken token = default)
    {
        exception = timeout?.AsTimeout(exception, token, sendToken, TimeProvider.System.GetElapsedTime(_sent)) ?? exception;
        lock (_lock)
        {
            if (_finished)
            {
                return;
            }

            _log = _log with
            {
                Status = RequestLogStatus.Error,
                ExceptionName = HttpLogFields.ExceptionName(exception),
                ErrorDescription = owner.Redactor.ExceptionText(exception),
            };
        }

        Finish();
    }

    public bool IsFinished
    {
        get
        {
            lock (_lock)
            {
                return _finished;
            }
        }
    }

    /// <summary>
    /// The response is still open, and either it was collected (<paramref name="collected"/>: the caller dropped it
    /// unread and undisposed) or the writer stops: recorded with what was read, its time the response head's.
    /// </summary>
    public void Abandon(bool collected)
    {
        if (IsFinished)
        {
            return;
        }

        if (collected)
        {
            owner.Abandoned(_log.Host);
        }

        Finish(bodyComplete: false, abandoned: true);
    }

    /// <summary>Enqueues the record (once). <paramref name="bodyComplete"/> is false when the body was abandoned half read.</summary>
    public void Finish(bool bodyComplete = true, bool abandoned = false)
    {
        OutputRequestPayload finished;
        lock (_lock)
        {
            if (_finished)
            {
                return;
            }

            _finished = true;
            owner.Closed(this);
            try
            {
                _log = _log with { ResponseTimestamp = abandoned ? _respondedAt : Now };
                if (_body is not null)
                {
                    var (bytes, truncated, total) = _body.Snapshot();
                    _log = _log with
                    {
                        ResponseBody = bytes.Length == 0 && !bodyComplete
                            ? JobLog.Redaction.Redactor.NotRecorded(_contentLength)
                            : owner.Redactor.MaskBody(bytes, truncated || !bodyComplete, _contentLength ?? total),
                    };
                }
            }
            catch (Exception ex)
            {
                owner.Failed(ex, _log.Host);
            }

            finished = _log;
        }

        owner.Enqueue(finished);
    }
}
