using System.Net;

namespace JobLog.Http;

/// <summary>
/// Wraps a text response's content: whoever reads it (HttpClient buffering it, or the caller streaming it) reads through
/// a tee that keeps the first bytes. Nothing is read ahead, so streaming responses stay streaming.
/// </summary>
internal sealed class CapturingContent : HttpContent
{
    private readonly HttpContent _inner;
    private readonly OutboundCall _call;
    private readonly CaptureBuffer _buffer;

    // Reachable from this content and from the streams read from it, never from the call: when the caller drops the
    // response unread and undisposed, the collector finalizes it and the record is written (see Abandonment).
    private readonly Abandonment _abandonment;

    public CapturingContent(HttpContent inner, OutboundCall call, CaptureBuffer buffer)
    {
        _inner = inner;
        _call = call;
        _buffer = buffer;
        _abandonment = new Abandonment(call);
        foreach (var (name, values) in inner.Headers.NonValidated)
        {
            Headers.TryAddWithoutValidation(name, values);
        }
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        var source = await ReadInnerAsync(cancellationToken).ConfigureAwait(false);
        await using var tee = new TeeReadStream(source, _call, _buffer, _abandonment);
        try
        {
            await tee.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // The destination refused the body (HttpClient's buffer past MaxResponseContentBufferSize, the caller's
            // stream): the caller gets this exception, not the body, and the record says so. A failed read is already
            // recorded by the tee (Fail is once).
            _call.Fail(ex, cancellationToken);
            throw;
        }
    }

    protected override void SerializeToStream(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        using var tee = new TeeReadStream(ReadInner(cancellationToken), _call, _buffer, _abandonment);
        try
        {
            tee.CopyTo(stream);
        }
        catch (Exception ex)
        {
            _call.Fail(ex, cancellationToken);
            throw;
        }
    }

    protected override async Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) =>
        new TeeReadStream(await ReadInnerAsync(cancellationToken).ConfigureAwait(false), _call, _buffer, _abandonment);

    protected override Task<Stream> CreateContentReadStreamAsync() => CreateContentReadStreamAsync(CancellationToken.None);

    protected override Stream CreateContentReadStream(CancellationToken cancellationToken) =>
        new TeeReadStream(ReadInner(cancellationToken), _call, _buffer, _abandonment);

    protected override bool TryComputeLength(out long length)
    {
        length = _inner.Headers.ContentLength ?? 0;
        return _inner.Headers.ContentLength.HasValue;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inner.Dispose();
            _call.Finish(bodyComplete: false);
            GC.SuppressFinalize(_abandonment);
        }

        base.Dispose(disposing);
    }

    private async Task<Stream> ReadInnerAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await _inner.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _call.Fail(ex, cancellationToken);
            throw;
        }
    }

    private Stream ReadInner(CancellationToken cancellationToken)
    {
        try
        {
            return _inner.ReadAsStream(cancellationToken);
        }
        catch (Exception ex)
        {
            _call.Fail(ex, cancellationToken);
            throw;
        }
    }

    /// <summary>Reads through to the inner stream, copying into the capture; the end of the stream finishes the record.</summary>
    private sealed class TeeReadStream(Stream inner, OutboundCall call, CaptureBuffer buffer, Abandonment abandonment) : Stream
    {
        // Keeps the finalizer off while the caller still reads this stream without the response.
        private readonly Abandonment _abandonment = abandonment;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> destination)
        {
            int read;
            try
            {
                read = inner.Read(destination);
            }
            catch (Exception ex)
            {
                call.Fail(ex);
                throw;
            }

            return Seen(destination[..read], destination.Length);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
        {
            int read;
            try
            {
                read = await inner.ReadAsync(destination, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                call.Fail(ex, cancellationToken);
                throw;
            }

            return Seen(destination.Span[..read], destination.Length);
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
                call.Finish(bodyComplete: false);
            }

            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            await inner.DisposeAsync().ConfigureAwait(false);
            call.Finish(bodyComplete: false);
            await base.DisposeAsync().ConfigureAwait(false);
        }

        private int Seen(ReadOnlySpan<byte> data, int requested)
        {
            buffer.Append(data);
            if (data.Length == 0 && requested > 0)
            {
                call.Finish();
                GC.SuppressFinalize(_abandonment);
            }

            return data.Length;
        }
    }

    /// <summary>
    /// Finalized when the caller dropped the response without reading it to its end or disposing it: the record would
    /// otherwise never be written. The call is recorded on the thread pool (never on the finalizer thread).
    /// </summary>
    private sealed class Abandonment(OutboundCall call)
    {
        ~Abandonment()
        {
            if (!call.IsFinished)
            {
                ThreadPool.UnsafeQueueUserWorkItem(static c => c.Abandon(collected: true), call, preferLocal: false);
            }
        }
    }
}
