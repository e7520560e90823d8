using System.Globalization;
using System.Net;
using System.Security.Claims;
using JobLog.Http;
using JobLog.Internal;
using JobLog.Recording;
using JobLog.Redaction;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace JobLog.AspNetCore.Requests;

/// <summary>
/// One inbound request being recorded; also the request feature behind <c>MarkJobLogLogin</c>. The draft is immutable:
/// each step takes a copy, and each record enqueued is the draft of that moment.
/// </summary>
internal sealed class RequestRecording
{
    private const string ClientDisconnected = "The client disconnected before the response was complete.";

    private readonly HttpContext _context;
    private readonly RequestLoggingServices _services;
    private InputRequestPayload _log;
    private Stream? _originalBody;
    private RequestBodyCapture? _requestBody;
    private ResponseBodyCapture? _responseBody;
    private ReadAheadBodySizeFeature? _bodySize;
    private Exception? _deferred;
    private readonly Lock _answer = new();
    private bool _answered;
    private CancellationTokenRegistration _aborted;
    private bool _hasBody;
    private volatile bool _throttled;
    private volatile int _login;
    private readonly long _started;

    public RequestRecording(HttpContext context, RequestLoggingServices services)
    {
        _context = context;
        _services = services;
        var now = services.Time.GetUtcNow();
        _started = services.Time.GetTimestamp();
        var request = context.Request;
        _log = new InputRequestPayload
        {
            Id = Guid.CreateVersion7(now),
            Host = HttpLogFields.Name(request.Host.Value),
            Method = HttpLogFields.Name(request.Method.ToUpperInvariant(), HttpLogFields.MaxMethodLength),
            Path = HttpLogFields.Path(request.PathBase.Add(request.Path).Value),
            IsSecure = request.IsHttps,
            RequestTimestamp = now.UtcDateTime,
            Ip = Ip(context.Connection.RemoteIpAddress),
            Status = RequestLogStatus.Incomplete,
        };
    }

    public Guid Id => _log.Id;

    /// <summary>
    /// The request's arrival plus the monotonic time since: a wall clock stepped meanwhile (NTP, a VM resumed) cannot answer
    /// the request before it came or stretch it by the step.
    /// </summary>
    private DateTime Now => _log.RequestTimestamp + _services.Time.GetElapsedTime(_started);

    private Redactor Redactor => _services.Redactor;

    public void MarkLogin(bool succeeded) => _login = succeeded ? 1 : -1;

    public void MarkThrottled() => _throttled = true;

    /// <summary>Fills the request fields, installs the body captures and enqueues the INCOMPLETE record.</summary>
    public async Task StartAsync(Endpoint? endpoint)
    {
        var request = _context.Request;
        var redactor = Redactor;
        _log = _log with
        {
            Queries = request.QueryString.HasValue && request.Query.Count > 0
                ? redactor.NameValuesJson(request.Query.Select(q => new KeyValuePair<string, IEnumerable<string?>>(q.Key, q.Value)))
                : null,
            RequestHeaders = redactor.NameValuesJson(request.Headers.Select(h => new KeyValuePair<string, IEnumerable<string?>>(h.Key, h.Value))),
            Slug = Slug(endpoint),
            UserId = UserId(_context.User),
        };
        _context.Features.Set(this);

        var detection = _context.Features.Get<IHttpRequestBodyDetectionFeature>();
        _hasBody = request.ContentLength > 0 || (detection?.CanHaveBody ?? request.ContentLength is null);
        var upgrade = _context.Features.Get<IHttpUpgradeFeature>()?.IsUpgradableRequest == true
            || _context.Features.Get<IHttpExtendedConnectFeature>()?.IsExtendedConnect == true;
        var hidden = endpoint?.Metadata.GetMetadata<HideRequestBodyAttribute>() is not null;
        if (_hasBody && !upgrade && _services.Options.RecordRequestBody && !hidden)
        {
            _originalBody = request.Body;
            _requestBody = new RequestBodyCapture(_originalBody, new CaptureBuffer(redactor.MaxCaptureBytes));
            request.Body = _requestBody;
            await ReadAheadAsync(endpoint).ConfigureAwait(false);
        }

        if (_services.Options.RecordResponseBody && _context.Features.Get<IHttpResponseBodyFeature>() is { } responseBody)
        {
            _responseBody = new ResponseBodyCapture(responseBody, _context.Response, redactor, new CaptureBuffer(redactor.MaxCaptureBytes));
            _context.Features.Set<IHttpResponseBodyFeature>(_responseBody);
        }

        _log = _log with { RequestBody = RequestBody(hidden) };
        _services.Enqueue(_log);
    }

    /// <summary>True once the record waits for the server to finish the response (see <see cref="CompleteAsync"/>).</summary>
    public bool Deferred => _deferred is not null;

    /// <summary>
    /// Completes the record after the endpoint ran (or threw <paramref name="exception"/>) and puts the features back.
    /// An exception leaving JobLog before the response started may still be answered by a handler around JobLog
    /// (<c>UseExceptionHandler</c> with a status code selector, an <c>IExceptionHandler</c> or a path, the developer
    /// page): the record then keeps the exception and is completed when the server has sent the response, with the
    /// status the client got (<see cref="CompleteDeferred"/>).
    /// </summary>
    public async Task CompleteAsync(Exception? exception)
    {
        if (_responseBody is not null && exception is null)
        {
            await FlushAsync(_responseBody).ConfigureAwait(false);
        }

        // An error code with nothing written yet: a status code page around JobLog (UseStatusCodePages) writes the body
        // after JobLog. The capture stays, passing writes through, and the record takes the page once it is sent.
        var page = exception is null && _responseBody is { Capturing: null } && !_context.Response.HasStarted && _context.Response.StatusCode >= 400;
        Restore(requestBody: true, responseBody: !page);
        if (exception is not null && !_context.Response.HasStarted)
        {
            _deferred = exception;
            _log = Finished(exception) with { ResponseCode = null, Status = RequestLogStatus.Incomplete };
            _services.Enqueue(_log);
            AwaitAnswer();
            return;
        }

        // An exception handler inside JobLog answered for the endpoint: the record names what it handled.
        _log = Finished(exception ?? _context.Features.Get<IExceptionHandlerFeature>()?.Error);
        if (exception is null && ServerTimedOut() is { } timedOut)
        {
            // The endpoint caught the cancellation of the server's own timeout and returned.
            _log = _log with { ErrorDescription = _log.ErrorDescription is null ? timedOut : Redactor.Bound(timedOut + "\n" + _log.ErrorDescription) };
        }
        else if (ClientLeftEarly())
        {
            // The endpoint caught the cancellation of the client going away and returned.
            _log = _log with { ErrorDescription = _log.ErrorDescription is null ? ClientDisconnected : Redactor.Bound(ClientDisconnected + "\n" + _log.ErrorDescription) };
        }

        if (page)
        {
            // Completed once the server has sent the response (a completed record is final in the ledger).
            _log = _log with { Status = RequestLogStatus.Incomplete };
            _responseBody!.PassThrough();
            AwaitAnswer();
            return;
        }

        _services.Enqueue(_log);
    }

    /// <summary>
    /// Completes the record when the server has sent the response (<see cref="CompleteDeferred"/>). A server that aborts
    /// the request instead of answering it (ASP.NET Core's TestServer, for an exception nothing handled) never runs
    /// OnCompleted: the record then says what the server would have sent (<see cref="CompleteAborted"/>).
    /// </summary>
    private void AwaitAnswer()
    {
        _context.Response.OnCompleted(static state => ((RequestRecording)state).CompleteDeferred(), this);
        if (ServerTimedOut() is null)
        {
            // RequestAborted cancelled by the server's own timeout is not an aborted request: the timeout middleware
            // around JobLog answers it (504).
            _aborted = _context.RequestAborted.UnsafeRegister(static state => ((RequestRecording)state!).CompleteAborted(), this);
        }
    }

    /// <summary>
    /// The client went away before the whole response reached it (the endpoint returned after <c>RequestAborted</c>):
    /// with a declared length, only when less was written, since a client may close the connection right after a
    /// complete response; without one, the server ends the response after the endpoint, so it was not complete.
    /// </summary>
    private bool ClientLeftEarly() =>
        _context.RequestAborted.IsCancellationRequested && ServerTimedOut() is null
        && (_context.Response.ContentLength is not { } length || (_responseBody is not null && _responseBody.Written < length));

    /// <summary>
    /// The pipeline run again for this request by a handler around JobLog (<c>UseExceptionHandler("/error")</c>,
    /// <c>UseStatusCodePagesWithReExecute</c>): it is the same request, so no second record. A record waiting for its
    /// answer captures the handler's response body, and outbound requests the handler makes are linked to it.
    /// </summary>
    public async Task ReExecuteAsync(RequestDelegate next)
    {
        if (!Deferred || !_services.Options.RecordResponseBody || _context.Features.Get<IHttpResponseBodyFeature>() is not { } inner)
        {
            await next(_context).ConfigureAwait(false);
            return;
        }

        var capture = new ResponseBodyCapture(inner, _context.Response, Redactor, new CaptureBuffer(Redactor.MaxCaptureBytes));
        _responseBody = capture;
        _context.Features.Set<IHttpResponseBodyFeature>(capture);
        using (JobLogScope.Push(new AmbientFrame(AmbientKind.InputRequest, Id, JobLogScope.Current)))
        {
            try
            {
                await next(_context).ConfigureAwait(false);
                await FlushAsync(capture).ConfigureAwait(false);
            }
            finally
            {
                Restore(requestBody: false);
            }
        }
    }

    private Task CompleteDeferred()
    {
        _aborted.Unregister();
        try
        {
            lock (_answer)
            {
                _answered = true;
                _log = Finished(null) with
                {
                    ExceptionName = _log.ExceptionName,
                    ErrorDescription = _log.ErrorDescription,
                };
                _services.Enqueue(_log);
            }
        }
        catch (Exception ex)
        {
            Log.RequestNotRecorded(_services.Logger, ex, LogValue.Visible(_context.Request.Method), LogValue.Visible(_log.Path));
        }

        return Task.CompletedTask;
    }

    /// <summary>How long an aborted request's record waits for the server's answer before it says what a server sends.</summary>
    private static readonly TimeSpan AbortedGrace = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The request aborted before the server answered: a server that answers anyway (Kestrel, after a client went away)
    /// runs <see cref="CompleteDeferred"/> at once; one that does not (TestServer) leaves the record to say, after
    /// <see cref="AbortedGrace"/>, what a server sends for an exception nothing handled (500, or the bad request's code).
    /// </summary>
    private void CompleteAborted() =>
        _ = Task.Delay(AbortedGrace).ContinueWith(static (_, state) => ((RequestRecording)state!).CompleteUnanswered(), this, TaskScheduler.Default);

    private void CompleteUnanswered()
    {
        lock (_answer)
        {
            if (_answered)
            {
                return;
            }

            // An exception's record has no code yet; an error code's (waiting for a status code page) has its own.
            var code = _deferred is BadHttpRequestException bad ? bad.StatusCode : _log.ResponseCode ?? 500;
            _log = _log with
            {
                ResponseTimestamp = Now,
                ResponseCode = code,
                Status = HttpLogFields.StatusOf(code),
            };
            _services.Enqueue(_log);
        }
    }

    private async Task FlushAsync(ResponseBodyCapture capture)
    {
        try
        {
            await capture.FlushWriterAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
            Log.ResponseFlushFailed(_services.Logger, ex, LogValue.Visible(_log.Path));
        }
    }

    /// <summary>The record as the response stands, with <paramref name="exception"/> as its error.</summary>
    private InputRequestPayload Finished(Exception? exception)
    {
        var response = _context.Response;
        var endpoint = _context.GetEndpoint();
        var log = _log with
        {
            ResponseTimestamp = Now,
            Slug = Slug(endpoint) ?? _log.Slug,
            UserId = UserId(_context.User) ?? _log.UserId,
            RequestBody = RequestBody(endpoint?.Metadata.GetMetadata<HideRequestBodyAttribute>() is not null),
            ResponseHeaders = Redactor.NameValuesJson(response.Headers.Select(h => new KeyValuePair<string, IEnumerable<string?>>(h.Key, h.Value))),
            ResponseBody = ResponseBody(),
            Type = _throttled ? InputRequestType.Throttled
                : _login > 0 ? InputRequestType.SuccessfulLogin
                : _login < 0 ? InputRequestType.UnsuccessfulLogin
                : InputRequestType.Common,
            ResponseCode = response.StatusCode,
            Status = HttpLogFields.StatusOf(response.StatusCode),
        };
        if (exception is null)
        {
            return log;
        }

        // The endpoint failed because the client went away (a cancelled write or read): not the server's error. Unless
        // the server's own timeout cancelled RequestAborted: then the request timed out, and the client is still there.
        var timedOut = ServerTimedOut();
        var disconnected = timedOut is null && exception is OperationCanceledException or IOException && _context.RequestAborted.IsCancellationRequested;
        return log with
        {
            // A response already started when the endpoint threw: the server ends it as it is.
            Status = _deferred is null && !disconnected ? RequestLogStatus.Error : log.Status,
            ExceptionName = HttpLogFields.ExceptionName(exception),
            ErrorDescription = disconnected ? Redactor.Bound(ClientDisconnected + "\n" + Redactor.ExceptionText(exception))
                : timedOut is not null ? Redactor.Bound(timedOut + "\n" + Redactor.ExceptionText(exception))
                : Redactor.ExceptionText(exception),
        };
    }

    /// <summary>
    /// What the record says when the server's own request timeout (ASP.NET Core's <c>RequestTimeouts</c> middleware
    /// around JobLog: its <see cref="IHttpRequestTimeoutFeature"/> is in place while JobLog runs) cancelled
    /// <c>RequestAborted</c>; null when it did not. The length is the one the middleware chose (the endpoint's policy or
    /// attribute, else the default policy).
    /// </summary>
    private string? ServerTimedOut()
    {
        if (_context.Features.Get<IHttpRequestTimeoutFeature>() is not { RequestTimeoutToken.IsCancellationRequested: true })
        {
            return null;
        }

        return RequestTimeout() is { } timeout && timeout > TimeSpan.Zero
            ? string.Create(CultureInfo.InvariantCulture, $"The request timed out: the server's request timeout of {timeout.TotalSeconds} seconds (RequestTimeouts) cancelled RequestAborted.")
            : "The request timed out: the server's request timeout (RequestTimeouts) cancelled RequestAborted.";
    }

    private TimeSpan? RequestTimeout()
    {
        var metadata = _context.GetEndpoint()?.Metadata;
        if (metadata?.GetMetadata<RequestTimeoutPolicy>() is { } policy)
        {
            return policy.Timeout;
        }

        var options = _context.RequestServices?.GetService<IOptionsMonitor<RequestTimeoutOptions>>()?.CurrentValue;
        if (metadata?.GetMetadata<RequestTimeoutAttribute>() is { } attribute)
        {
            return attribute.Timeout
                ?? (attribute.PolicyName is { } name && options?.Policies.TryGetValue(name, out var named) == true ? named.Timeout : null);
        }

        return options?.DefaultPolicy?.Timeout;
    }

    /// <summary>
    /// Puts the original response feature back, and the original request body when <paramref name="requestBody"/>
    /// (not before the endpoint ran: bytes already read ahead are only in the capture). The recording stays a feature
    /// of the request, so that the pipeline run again for it (<see cref="ReExecuteAsync"/>) is not a second record. The
    /// response capture stays when not <paramref name="responseBody"/>.
    /// </summary>
    public void Restore(bool requestBody, bool responseBody = true)
    {
        if (requestBody && _originalBody is not null)
        {
            _context.Request.Body = _originalBody;
            _originalBody = null;
        }

        if (requestBody && _bodySize is not null && ReferenceEquals(_context.Features.Get<IHttpMaxRequestBodySizeFeature>(), _bodySize))
        {
            _context.Features.Set(_bodySize.Inner);
        }

        if (responseBody && _responseBody is not null && ReferenceEquals(_context.Features.Get<IHttpResponseBodyFeature>(), _responseBody))
        {
            _context.Features.Set(_responseBody.Inner);
        }
    }

    /// <summary>
    /// The start of the body, before the endpoint runs, when <see cref="RequestBodyCapture.ShouldReadAhead"/> says so;
    /// the body size limit then stays the endpoint's to set (<see cref="ReadAheadBodySizeFeature"/>).
    /// </summary>
    private async Task ReadAheadAsync(Endpoint? endpoint)
    {
        if (_requestBody is null || !RequestBodyCapture.ShouldReadAhead(_context, endpoint))
        {
            return;
        }

        var declared = _context.Request.ContentLength!.Value;
        if (_context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { } limit)
        {
            _bodySize = new ReadAheadBodySizeFeature(limit, _requestBody, declared);
            _context.Features.Set<IHttpMaxRequestBodySizeFeature>(_bodySize);
        }

        await _requestBody.ReadAheadAsync(
            declared, Redactor.MaxCaptureBytes, _services.Options.ReadAheadTimeout, _services.Time, _context.RequestAborted).ConfigureAwait(false);
    }

    private string? RequestBody(bool hidden)
    {
        var declared = _context.Request.ContentLength;
        if (hidden)
        {
            return declared > 0 || _requestBody?.Buffer.Total > 0 || (declared is null && _hasBody && _requestBody is null)
                ? Redactor.Replacement
                : null;
        }

        if (_requestBody is null)
        {
            return declared > 0 ? Redactor.NotRecorded(declared) : null;
        }

        var (bytes, truncated, total) = _requestBody.Buffer.Snapshot();
        var complete = _requestBody.Ended || (declared is { } d && total >= d);

        // A body that ended before its declared length (the client left, or sent less and closed): what was read is
        // all there is, and its size is what came, never the length the client declared.
        var cutShort = !complete && declared > 0
            && (_requestBody.ReadFailed || (_requestBody.EndpointHasRead && _context.RequestAborted.IsCancellationRequested));
        if (bytes.Length == 0)
        {
            return cutShort ? Redactor.CutShort(total, declared!.Value)
                : declared > 0 ? Redactor.NotRecorded(declared)
                : null;
        }

        return Redactor.MaskBody(bytes, truncated || !complete, cutShort ? total : declared ?? total);
    }

    private string? ResponseBody()
    {
        if (_responseBody is not { Capturing: true })
        {
            return null;
        }

        if (_responseBody.Encoded is (string encoding, var length))
        {
            return $"[{encoding} body: {length} bytes]";
        }

        var (bytes, truncated, total) = _responseBody.Buffer.Snapshot();
        return Redactor.MaskBody(bytes, truncated, total);
    }

    private static string? Slug(Endpoint? endpoint)
    {
        var slug = endpoint?.Metadata.GetMetadata<JobLogSlugAttribute>()?.Slug ?? endpoint?.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName;
        return slug is null ? null : HttpLogFields.Name(slug);
    }

    private static string? UserId(ClaimsPrincipal? user)
    {
        if (user?.Identity is not { IsAuthenticated: true } identity)
        {
            return null;
        }

        var id = user.FindFirst(ClaimTypes.NameIdentifier)?.Value ?? identity.Name;
        return id is null ? null : HttpLogFields.Name(id);
    }

    private static string? Ip(IPAddress? address) =>
        address is null ? null : (address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address).ToString();
}
