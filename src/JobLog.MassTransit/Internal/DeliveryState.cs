namespace JobLog.MassTransit.Internal;

/// <summary>
/// Per delivery, shared by the delivery filter (outside retry) and the run filters (one call per attempt, inside retry).
/// Added as a payload on the outer ConsumeContext; retry scopes see it through their parent.
/// </summary>
internal sealed class DeliveryState
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, ConsumerLane> _lanes = new(StringComparer.Ordinal);
    private long _lastSequence;

    /// <summary>The message rendered once per delivery (every attempt and consumer shares it).</summary>
    public Redaction.RenderedMessage? Rendered { get; set; }

    /// <summary>Set by the dispatch observer when this delivery's message was handed to delayed or scheduled redelivery.</summary>
    public DateTime? RedeliveryAt { get; set; }

    public long LastSequence => Interlocked.Read(ref _lastSequence);

    public void Track(long sequence)
    {
        if (sequence <= 0)
        {
            return;
        }

        long current;
        do
        {
            current = Interlocked.Read(ref _lastSequence);
            if (sequence <= current)
            {
                return;
            }
        }
        while (Interlocked.CompareExchange(ref _lastSequence, sequence, current) != current);
    }

    public ConsumerLane Lane(string consumer)
    {
        lock (_lock)
        {
            if (!_lanes.TryGetValue(consumer, out var lane))
            {
                lane = new ConsumerLane();
                _lanes[consumer] = lane;
            }

            return lane;
        }
    }

    public IReadOnlyList<ConsumerLane> Lanes()
    {
        lock (_lock)
        {
            return [.. _lanes.Values];
        }
    }
}

/// <summary>One consumer's attempts within a delivery.</summary>
internal sealed class ConsumerLane
{
    /// <summary>The last attempt failed and was recorded RETRIED; the delivery's outcome decides whether it was the last.</summary>
    public (Guid RunId, Guid TaskId)? PendingFailure { get; set; }
}
