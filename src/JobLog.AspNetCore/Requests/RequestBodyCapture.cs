using JobLog.Http;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc.Abstractions;
using Microsoft.AspNetCore.Mvc.ModelBinding;

namespace JobLog.AspNetCore.Requests;

/// <summary>
/// Replaces the request body: replays the bytes read ahead (at most the capture size), then reads through to the real
/// body, copying into the bounded capture. The endpoint reads the same bytes it would have read; memory stays bounded
/// whatever the upload's size. Over a seekable body (the application's <c>EnableBuffering</c> before JobLog) it seeks
/// as the body does, and each byte is captured once, however often the endpoint reads it again.
/// </summary>
internal sealed class RequestBodyCapture(Stream inner, CaptureBuffer buffer) : Stream
{
    private byte[] _replay = [];
    private int _replayLength;
    private int _replayOffset;
    private Task<int>? _pending;

    // The endpoint's place in the body, and how much of the body (from its start) the capture holds.
    private long _position;
    private long _captured;

    // A limit the endpoint set below the declared length after the read-ahead (ReadAheadBodySizeFeature).
    private long? _refusedOver;

    /// <summary>True once the real body reported its end.</summary>
    public bool Ended { get; private set; }

    /// <summary>
    /// True once a read of the real body failed as a body cut short does (a connection reset, Kestrel's
    /// <c>Unexpected end of request content</c> for a body shorter than declared).
    /// </summary>
    public bool ReadFailed { get; private set; }

    /// <summary>True once the endpoint (not the read-ahead) has read or moved in the body.</summary>
    public bool EndpointHasRead { get; private set; }

    public CaptureBuffer Buffer => buffer;

    public override bool CanRead => true;

    public override bool CanSeek => inner.CanSeek;

    public override bool CanWrite => false;

    public override long Length => inner.Length;

    public override long Position
    {
        get => inner.CanSeek ? _position : throw new NotSupportedException();
        set => Seek(value, SeekOrigin.Begin);
    }

    /// <summary>
    /// Whether the start of the body is read before the endpoint runs (so the INCOMPLETE record already holds it): only
    /// with the endpoint known, a declared length within the server's limit, and an endpoint that takes a body (it
    /// declares what it accepts, an MVC action binds a body or a form, or the method is POST, PUT or PATCH). A body sent
    /// to any other endpoint is only captured as the endpoint reads it, so a client cannot hold it by sending slowly.
    /// </summary>
    public static bool ShouldReadAhead(HttpContext context, Endpoint? endpoint)
    {
        var length = context.Request.ContentLength;
        var limit = context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
        if (endpoint is null || length is not > 0 || length > limit)
        {
            return false;
        }

        if (endpoint.Metadata.GetMetadata<IAcceptsMetadata>() is not null)
        {
            return true;
        }

        if (endpoint.Metadata.GetMetadata<ActionDescriptor>() is { } action)
        {
            return action.Parameters.Any(p => p.BindingInfo?.BindingSource is { } source
                && (source == BindingSource.Body || source == BindingSource.Form || source == BindingSource.FormFile));
        }

        var method = context.Request.Method;
        return HttpMethods.IsPost(method) || HttpMethods.IsPut(method) || HttpMethods.IsPatch(method);
    }

    /// <summary>
    /// Reads the start of the body ahead, for the record made before the endpoint runs: the <paramref name="declared"/>
    /// length, then on to its end while that needs no waiting (a body decompressed before JobLog is longer than the
    /// length the client declared), at most <paramref name="capacity"/> bytes, for at most <paramref name="deadline"/>:
    /// a slow client delays the endpoint by that much, no more. A read still waiting at the deadline, or once the
    /// declared length came, is not cancelled (a server's body stream is not reliably readable after a cancelled read):
    /// it stays pending, and the endpoint's first read takes its bytes. The buffer grows as bytes arrive, so a declared
    /// length that never comes costs nothing. Never throws because of the body: the endpoint meets the same failure
    /// when it reads.
    /// </summary>
    public async Task ReadAheadAsync(long declared, int capacity, TimeSpan deadline, TimeProvider time, CancellationToken cancellationToken)
    {
        var bytes = new byte[Math.Min(Math.Min(declared, capacity), 1024)];
        var read = 0;
        using var stop = new CancellationTokenSource();
        Task? expired = null;
        try
        {
            while (read < capacity)
            {
                if (read == bytes.Length)
                {
                    Array.Resize(ref bytes, (int)Math.Min(capacity, 2L * bytes.Length));
                }

                var reading = inner.ReadAsync(bytes.AsMemory(read), cancellationToken);
                if (!reading.IsCompleted)
                {
                    var task = reading.AsTask();
                    if (read >= declared)
                    {
                        Park(task);
                        break;
                    }

                    expired ??= Task.Delay(deadline > TimeSpan.Zero ? deadline : TimeSpan.Zero, time, stop.Token);
                    if (await Task.WhenAny(task, expired).ConfigureAwait(false) != task)
                    {
                        Park(task);
                        break;
                    }

                    reading = new ValueTask<int>(task);
                }

                var n = await reading.ConfigureAwait(false);
                if (n == 0)
                {
                    Ended = true;
                    break;
                }

                read += n;
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or BadHttpRequestException)
        {
            // Aborted or malformed: the record keeps what was read, the endpoint meets the same failure.
            _ = Broke(ex);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            // Whatever was read is replayed, even when reading failed.
            _replay = bytes;
            _replayLength = read;
            _captured = read;
            buffer.Append(bytes.AsSpan(0, read));
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    private void Park(Task<int> read)
    {
        _pending = read;
        _ = read.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
    }

    /// <summary>
    /// Makes the endpoint's next read fail as the server's does for a body longer than its limit (413), or, with
    /// null, no longer.
    /// </summary>
    public void RefuseOver(long? limit) => _refusedOver = limit;

    public override int Read(Span<byte> destination)
    {
        EndpointReads();
        if (_pending is not null)
        {
            TakePendingAsync().AsTask().GetAwaiter().GetResult();
        }

        if (TryReplay(destination, out var replayed))
        {
            return replayed;
        }

        int n;
        try
        {
            n = inner.Read(destination);
        }
        catch (Exception ex) when (Broke(ex))
        {
            throw;
        }

        return Seen(destination[..n], destination.Length);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        EndpointReads();
        if (_pending is not null)
        {
            await TakePendingAsync().ConfigureAwait(false);
        }

        if (TryReplay(destination.Span, out var replayed))
        {
            return replayed;
        }

        int n;
        try
        {
            n = await inner.ReadAsync(destination, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (Broke(ex))
        {
            throw;
        }

        return Seen(destination.Span[..n], destination.Length);
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        if (!inner.CanSeek)
        {
            throw new NotSupportedException();
        }

        EndpointHasRead = true;

        if (_pending is not null)
        {
            TakePendingAsync().AsTask().GetAwaiter().GetResult();
        }

        var target = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            SeekOrigin.End => inner.Length + offset,
            _ => throw new ArgumentOutOfRangeException(nameof(origin)),
        };
        ArgumentOutOfRangeException.ThrowIfNegative(target, nameof(offset));

        // The replay holds the body's first bytes; past them the body is read from its own place.
        _replayOffset = (int)Math.Min(target, _replayLength);
        inner.Position = Math.Max(target, _replayLength);
        _position = target;
        return target;
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private void EndpointReads()
    {
        EndpointHasRead = true;
        if (_refusedOver is { } limit)
        {
            // Kestrel's own words and code for a declared length over the limit.
            throw new BadHttpRequestException($"Request body too large. The max request body size is {limit} bytes.", StatusCodes.Status413PayloadTooLarge);
        }
    }

    /// <summary>The read the read-ahead left pending: its bytes join the replay (a failure surfaces here, to the endpoint).</summary>
    private async ValueTask TakePendingAsync()
    {
        var pending = _pending!;
        _pending = null;
        int n;
        try
        {
            n = await pending.ConfigureAwait(false);
        }
        catch (Exception ex) when (Broke(ex))
        {
            throw;
        }

        if (n == 0)
        {
            Ended = true;
            return;
        }

        buffer.Append(_replay.AsSpan(_replayLength, n));
        _replayLength += n;
        _captured += n;
    }

    /// <summary>Notes a read that failed as a body cut short does; never catches (an exception filter).</summary>
    private bool Broke(Exception exception)
    {
        if (exception is IOException or BadHttpRequestException)
        {
            ReadFailed = true;
        }

        return false;
    }

    private bool TryReplay(Span<byte> destination, out int count)
    {
        count = 0;
        if (_replayOffset >= _replayLength || destination.IsEmpty)
        {
            return false;
        }

        count = Math.Min(destination.Length, _replayLength - _replayOffset);
        _replay.AsSpan(_replayOffset, count).CopyTo(destination);
        _replayOffset += count;
        _position += count;
        return true;
    }

    private int Seen(ReadOnlySpan<byte> data, int requested)
    {
        if (data.Length == 0 && requested > 0)
        {
            Ended = true;
        }

        // Bytes read again after a seek back were captured the first time; bytes after a seek forward past the capture
        // would leave a gap in it, so they are not captured.
        if (_position <= _captured && _position + data.Length > _captured)
        {
            buffer.Append(data[(int)(_captured - _position)..]);
            _captured = _position + data.Length;
        }

        _position += data.Length;
        return data.Length;
    }
}
