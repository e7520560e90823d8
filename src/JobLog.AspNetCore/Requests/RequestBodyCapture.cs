using JobLog.Http;

namespace JobLog.AspNetCore.Requests;

/// <summary>
/// Replaces the request body: replays the bytes read ahead (at most the capture size), then reads through to the real
/// body, copying into the bounded capture. The endpoint reads the same bytes it would have read; memory stays bounded
/// whatever the upload's size.
/// </summary>
internal sealed class RequestBodyCapture(Stream inner, CaptureBuffer buffer) : Stream
{
    private byte[] _replay = [];
    private int _replayOffset;

    /// <summary>True once the real body reported its end.</summary>
    public bool Ended { get; private set; }

    public CaptureBuffer Buffer => buffer;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <summary>Reads up to <paramref name="count"/> bytes ahead, for the record made before the endpoint runs.</summary>
    public async Task ReadAheadAsync(int count, CancellationToken cancellationToken)
    {
        var bytes = new byte[count];
        var read = 0;
        try
        {
            while (read < count)
            {
                var n = await inner.ReadAsync(bytes.AsMemory(read), cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    Ended = true;
                    break;
                }

                read += n;
            }
        }
        finally
        {
            // Whatever was read is replayed, even when reading failed: the endpoint then meets the same failure.
            _replay = read == count ? bytes : bytes[..read];
            buffer.Append(_replay);
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> destination)
    {
        if (TryReplay(destination, out var replayed))
        {
            return replayed;
        }

        var n = inner.Read(destination);
        return Seen(destination[..n], destination.Length);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        if (TryReplay(destination.Span, out var replayed))
        {
            return replayed;
        }

        var n = await inner.ReadAsync(destination, cancellationToken).ConfigureAwait(false);
        return Seen(destination.Span[..n], destination.Length);
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private bool TryReplay(Span<byte> destination, out int count)
    {
        count = 0;
        if (_replayOffset >= _replay.Length || destination.IsEmpty)
        {
            return false;
        }

        count = Math.Min(destination.Length, _replay.Length - _replayOffset);
        _replay.AsSpan(_replayOffset, count).CopyTo(destination);
        _replayOffset += count;
        return true;
    }

    private int Seen(ReadOnlySpan<byte> data, int requested)
    {
        if (data.Length == 0 && requested > 0)
        {
            Ended = true;
        }

        buffer.Append(data);
        return data.Length;
    }
}
