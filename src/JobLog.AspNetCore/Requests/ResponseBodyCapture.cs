using System.IO.Pipelines;
using JobLog.Http;
using JobLog.Redaction;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace JobLog.AspNetCore.Requests;

/// <summary>
/// Stands in for the response body feature: every write goes straight to the real body (nothing is held back, so
/// streaming responses stream), and the first bytes of a text response are copied into the bounded capture. Bytes
/// that reach JobLog already encoded (compression above JobLog in the pipeline, or an endpoint sending them encoded)
/// are only counted; compression below JobLog encodes after JobLog has copied them.
/// </summary>
internal sealed class ResponseBodyCapture(IHttpResponseBodyFeature inner, HttpResponse response, Redactor redactor, CaptureBuffer buffer)
    : Stream, IHttpResponseBodyFeature
{
    private PipeWriter? _writer;
    private bool? _capturing;
    private bool _started;
    private string? _encoding;
    private long _encodedBytes;

    public IHttpResponseBodyFeature Inner => inner;

    /// <summary>True when the response is text and its first bytes are captured; null when nothing was written.</summary>
    public bool? Capturing => _capturing;

    public CaptureBuffer Buffer => buffer;

    /// <summary>How many bytes were written through JobLog (captured or not).</summary>
    public long Written { get; private set; }

    /// <summary>The content coding of the bytes JobLog sees (null when they are not encoded), and how many there were.</summary>
    public (string? Encoding, long Bytes) Encoded => (_encoding, _encodedBytes);

    Stream IHttpResponseBodyFeature.Stream => this;

    public PipeWriter Writer => _writer ??= PipeWriter.Create(this, new StreamPipeWriterOptions(leaveOpen: true));

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public void DisableBuffering() => inner.DisableBuffering();

    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        Starting();
        return inner.StartAsync(cancellationToken);
    }

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
    {
        // A file is sent by the server itself (often zero-copy): not captured.
        Starting();
        _capturing = false;
        return inner.SendFileAsync(path, offset, count, cancellationToken);
    }

    public async Task CompleteAsync()
    {
        if (_writer is not null)
        {
            await _writer.CompleteAsync().ConfigureAwait(false);
        }

        await inner.CompleteAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// From now on a write through <see cref="Writer"/> goes straight to the real one (and is observed on its way): for
    /// what middleware around JobLog writes after it (a status code page), which the server's own flush must reach.
    /// </summary>
    public void PassThrough() => _writer = new PassThroughWriter(inner.Writer, this);

    /// <summary>Pushes what the endpoint left in the pipe writer to the real body (the server would have flushed its own).</summary>
    public async Task FlushWriterAsync()
    {
        if (_writer is not null)
        {
            await _writer.CompleteAsync().ConfigureAwait(false);
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> data)
    {
        Starting();
        Observe(data);
        inner.Stream.Write(data);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        Starting();
        Observe(data.Span);
        return inner.Stream.WriteAsync(data, cancellationToken);
    }

    public override void Flush()
    {
        Starting();
        inner.Stream.Flush();
    }

    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        Starting();
        return inner.Stream.FlushAsync(cancellationToken);
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>
    /// Notes the content coding when the response first goes through JobLog, before the layers below it run: a
    /// Content-Encoding set by then (by the endpoint, or by compression above JobLog) applies to the bytes JobLog sees;
    /// one that compression below JobLog sets when the response starts applies only after JobLog. "identity" is none.
    /// </summary>
    private void Starting()
    {
        if (_started)
        {
            return;
        }

        _started = true;
        var codings = response.Headers.ContentEncoding.ToString();
        _encoding = codings.Length == 0 || codings.Trim().Equals("identity", StringComparison.OrdinalIgnoreCase)
            ? null
            : HttpLogFields.Name(codings, 50);
    }

    private void Observe(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }

        Written += data.Length;

        // Decided at the first write, when the headers are final: text only.
        _capturing ??= redactor.IsTextContentType(response.ContentType);
        if (_capturing != true)
        {
            return;
        }

        if (_encoding is null)
        {
            buffer.Append(data);
        }
        else
        {
            _encodedBytes += data.Length;
        }
    }

    /// <summary>The real pipe writer, with each span written observed when it is advanced past; nothing is held back.</summary>
    private sealed class PassThroughWriter(PipeWriter inner, ResponseBodyCapture capture) : PipeWriter
    {
        private Memory<byte> _memory;

        public override void Advance(int bytes)
        {
            capture.Starting();
            capture.Observe(_memory.Span[..bytes]);
            _memory = default;
            inner.Advance(bytes);
        }

        public override Memory<byte> GetMemory(int sizeHint = 0) => _memory = inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => (_memory = inner.GetMemory(sizeHint)).Span;

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            capture.Starting();
            return inner.FlushAsync(cancellationToken);
        }
    }
}
