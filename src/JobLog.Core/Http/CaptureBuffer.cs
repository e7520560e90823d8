namespace JobLog.Http;

/// <summary>
/// Keeps the first <c>capacity</c> bytes of a body that passes through and counts the rest; never holds more.
/// Shared by the inbound middleware and the outbound handler.
/// </summary>
internal sealed class CaptureBuffer(int capacity)
{
    private readonly Lock _lock = new();
    private byte[] _bytes = new byte[Math.Min(capacity, 4096)];
    private int _count;
    private long _total;

    /// <summary>Bytes seen so far, captured or not.</summary>
    public long Total
    {
        get
        {
            lock (_lock)
            {
                return _total;
            }
        }
    }

    /// <summary>True once the capture holds <c>capacity</c> bytes.</summary>
    public bool IsFull
    {
        get
        {
            lock (_lock)
            {
                return _count >= capacity;
            }
        }
    }

    public void Append(ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            _total += data.Length;
            var take = Math.Min(capacity - _count, data.Length);
            if (take <= 0)
            {
                return;
            }

            if (_count + take > _bytes.Length)
            {
                Array.Resize(ref _bytes, Math.Min(capacity, Math.Max(_bytes.Length * 2, _count + take)));
            }

            data[..take].CopyTo(_bytes.AsSpan(_count));
            _count += take;
        }
    }

    /// <summary>A copy of the captured bytes and whether more passed than was kept.</summary>
    public (byte[] Bytes, bool Truncated, long Total) Snapshot()
    {
        lock (_lock)
        {
            return (_bytes.AsSpan(0, _count).ToArray(), _total > _count, _total);
        }
    }
}
