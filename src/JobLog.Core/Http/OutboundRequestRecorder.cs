using System.Collections.Concurrent;
using System.Net.Http.Json;
using JobLog.Internal;
using JobLog.Recording;
using JobLog.Redaction;
using Microsoft.Extensions.Logging;

namespace JobLog.Http;

/// <summary>Builds <see cref="OutputRequestRecorded"/> records for the logging handlers of every client. Never throws.</summary>
internal sealed class OutboundRequestRecorder
{
    private readonly LedgerRecorder _recorder;
    private readonly Redactor _redactor;
    private readonly TimeProvider _time;
    private readonly ILogger<OutboundRequestRecorder> _logger;

    // Calls whose response body the caller has not finished with: recorded when it is read or disposed, when the
    // response is collected unread (the caller leaked it), or when the writer stops.
    private readonly ConcurrentDictionary<OutboundCall, byte> _open = new();
    private int _abandonWarned;

    public OutboundRequestRecorder(LedgerRecorder recorder, Redactor redactor, TimeProvider time, ILogger<OutboundRequestRecorder> logger)
    {
        _recorder = recorder;
        _redactor = redactor;
        _time = time;
        _logger = logger;
        recorder.BeforeStop(RecordOpen);
    }

    public Redactor Redactor => _redactor;

    public TimeProvider Time => _time;

    /// <summary>Calls whose response is still open (tests).</summary>
    internal int OpenCount => _open.Count;

    internal void Opened(OutboundCall call) => _open.TryAdd(call, 0);

    internal void Closed(OutboundCall call) => _open.TryRemove(call, out _);

    /// <summary>A response was collected unread and undisposed: the caller's leak, said once a process.</summary>
    internal void Abandoned(string host)
    {
        if (Interlocked.Exchange(ref _abandonWarned, 1) == 0)
        {
            Log.OutputResponseAbandoned(_logger, host);
        }
    }

    private void RecordOpen()
    {
        foreach (var call in _open.Keys)
        {
            call.Abandon(collected: false);
        }
    }

    /// <summary>Starts recording <paramref name="request"/>, or returns null when it cannot be recorded (logged).</summary>
    public async ValueTask<OutboundCall?> BeginAsync(HttpRequestMessage request, string? slug, ClientTimeout? timeout, CancellationToken cancellationToken)
    {
        try
        {
            var call = Begin(request, slug, timeout, cancellationToken);
            call.RequestBody = await RequestBodyAsync(request.Content, cancellationToken).ConfigureAwait(false);
            return call;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.OutputRequestNotRecorded(_logger, ex, request.RequestUri?.Host ?? "");
            return null;
        }
        catch (OperationCanceledException)
        {
            // The caller's token: the request itself is cancelled right after, and that is what gets recorded.
            return Begin(request, slug, timeout, cancellationToken);
        }
    }

    /// <summary>The synchronous counterpart of <see cref="BeginAsync"/> (<c>HttpClient.Send</c>).</summary>
    public OutboundCall? BeginSync(HttpRequestMessage request, string? slug, ClientTimeout? timeout, CancellationToken cancellationToken)
    {
        try
        {
            var call = Begin(request, slug, timeout, cancellationToken);
            call.RequestBody = RequestBodySync(request.Content, cancellationToken);
            return call;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.OutputRequestNotRecorded(_logger, ex, request.RequestUri?.Host ?? "");
            return null;
        }
        catch (OperationCanceledException)
        {
            return Begin(request, slug, timeout, cancellationToken);
        }
    }

    internal void Enqueue(OutputRequestPayload log)
    {
        try
        {
            _recorder.Enqueue(new OutputRequestRecorded(log));
        }
        catch (Exception ex)
        {
            Log.OutputRequestNotRecorded(_logger, ex, LogValue.Visible(log.Host));
        }
    }

    internal void Failed(Exception exception, string host) => Log.OutputRequestNotRecorded(_logger, exception, LogValue.Visible(host));

    private OutboundCall Begin(HttpRequestMessage request, string? slug, ClientTimeout? timeout, CancellationToken sendToken)
    {
        var now = _time.GetUtcNow();
        var uri = request.RequestUri;
        var absolute = uri is { IsAbsoluteUri: true };
        var query = absolute ? HttpLogFields.ParseQuery(uri!.Query) : null;
        var log = new OutputRequestPayload
        {
            Id = Guid.CreateVersion7(now),
            Host = absolute ? HttpLogFields.Name(uri!.Authority) : "",
            Method = HttpLogFields.Name(request.Method.Method.ToUpperInvariant(), HttpLogFields.MaxMethodLength),
            Path = absolute ? HttpLogFields.Path(Uri.UnescapeDataString(uri!.AbsolutePath)) : HttpLogFields.Path(uri?.OriginalString),
            IsSecure = absolute && uri!.Scheme == Uri.UriSchemeHttps,
            Queries = query is null || query.Count == 0 ? null : _redactor.NameValuesJson(query),
            Slug = slug is null ? null : HttpLogFields.Name(slug),
            RequestTimestamp = now.UtcDateTime,
            RequestHeaders = _redactor.NameValuesJson(Headers(request.Headers, request.Content?.Headers)),
        };
        return new OutboundCall(this, Relate(log, JobLogScope.Current, now), request.Method == HttpMethod.Head, timeout, sendToken);
    }

    /// <summary>The ambient chain: the input request it happens in, and the task run, command and objects it relates to.</summary>
    private static OutputRequestPayload Relate(OutputRequestPayload log, AmbientFrame? frame, DateTimeOffset now)
    {
        if (frame is null)
        {
            return log;
        }

        Guid? inputRequestId = null;
        var related = new List<RelatedObjectPayload>();
        var seen = new HashSet<(AmbientKind, Guid, string?, string?)>();
        foreach (var f in frame.Chain())
        {
            switch (f.Kind)
            {
                case AmbientKind.InputRequest:
                    inputRequestId ??= f.Id;
                    break;
                case AmbientKind.TaskRun when seen.Add((f.Kind, f.Id, null, null)):
                    related.Add(new RelatedObjectPayload { Id = Guid.CreateVersion7(now), TaskRunLogId = f.Id });
                    break;
                case AmbientKind.Command when seen.Add((f.Kind, f.Id, null, null)):
                    related.Add(new RelatedObjectPayload { Id = Guid.CreateVersion7(now), CommandLogId = f.Id });
                    break;
                case AmbientKind.Related when f.RelatedObject is { } o && seen.Add((f.Kind, Guid.Empty, o.ContentType, o.ObjectId)):
                    related.Add(new RelatedObjectPayload
                    {
                        Id = Guid.CreateVersion7(now),
                        ContentType = HttpLogFields.Name(o.ContentType),
                        ObjectId = HttpLogFields.Name(o.ObjectId),
                    });
                    break;
            }
        }

        return log with { InputRequestId = inputRequestId, RelatedObjects = related };
    }

    internal static IEnumerable<KeyValuePair<string, IEnumerable<string?>>> Headers(
        System.Net.Http.Headers.HttpHeaders headers, System.Net.Http.Headers.HttpHeaders? contentHeaders)
    {
        foreach (var (name, values) in headers.NonValidated)
        {
            yield return new(name, values.Select(v => (string?)v));
        }

        if (contentHeaders is not null)
        {
            foreach (var (name, values) in contentHeaders.NonValidated)
            {
                yield return new(name, values.Select(v => (string?)v));
            }
        }
    }

    /// <summary>
    /// Content that can be serialized again without consuming anything (bytes, strings, forms, JSON values, multipart
    /// of those) is copied into a bounded capture; a stream is never read here, only marked.
    /// </summary>
    private async Task<string?> RequestBodyAsync(HttpContent? content, CancellationToken cancellationToken)
    {
        if (content is null)
        {
            return null;
        }

        if (!IsReplayable(content))
        {
            return Redactor.NotRecorded(content.Headers.ContentLength);
        }

        var sink = new CaptureSink(_redactor.MaxCaptureBytes);
        try
        {
            await content.CopyToAsync(sink, cancellationToken).ConfigureAwait(false);
        }
        catch (CaptureSink.FullException)
        {
            // Enough for the stored text: the rest of the body is not serialized twice.
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The capture failed (a JSON value that does not serialize, ...): the request goes on, its body unrecorded.
            Log.OutputRequestBodyNotCaptured(_logger, ex);
            return Redactor.NotRecorded(content.Headers.ContentLength);
        }

        return Masked(content, sink);
    }

    private string? RequestBodySync(HttpContent? content, CancellationToken cancellationToken)
    {
        if (content is null)
        {
            return null;
        }

        if (!IsReplayable(content))
        {
            return Redactor.NotRecorded(content.Headers.ContentLength);
        }

        var sink = new CaptureSink(_redactor.MaxCaptureBytes);
        try
        {
            content.CopyTo(sink, null, cancellationToken);
        }
        catch (CaptureSink.FullException)
        {
            // As above.
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.OutputRequestBodyNotCaptured(_logger, ex);
            return Redactor.NotRecorded(content.Headers.ContentLength);
        }

        return Masked(content, sink);
    }

    private string? Masked(HttpContent content, CaptureSink sink)
    {
        var (bytes, truncated, total) = sink.Buffer.Snapshot();
        truncated |= sink.Stopped;
        return _redactor.MaskBody(bytes, truncated, content.Headers.ContentLength ?? total);
    }

    private static bool IsReplayable(HttpContent content) => content switch
    {
        ByteArrayContent or ReadOnlyMemoryContent or JsonContent => true,
        MultipartContent multipart => multipart.All(IsReplayable),
        _ => false,
    };

    /// <summary>A write-only stream that keeps the first bytes; past the capture it stops the serialization.</summary>
    private sealed class CaptureSink(int capacity) : Stream
    {
        public CaptureBuffer Buffer { get; } = new(capacity);

        public bool Stopped { get; private set; }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (Buffer.IsFull && buffer.Length > 0)
            {
                Stopped = true;
                throw new FullException();
            }

            Buffer.Append(buffer);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Write(buffer.AsSpan(offset, count));
            return Task.CompletedTask;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override void Flush()
        {
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public sealed class FullException : Exception
        {
            public FullException()
                : base("The capture is full.")
            {
            }
        }
    }
}
