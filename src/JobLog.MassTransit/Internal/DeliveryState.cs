using JobLog.Recording;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// Per delivery, shared by the delivery filter (outside retry) and the run filters (one call per attempt, inside retry).
/// Added as a payload on the outer ConsumeContext; retry scopes see it through their parent.
/// </summary>
internal sealed class DeliveryState
{
    private readonly Lock _lock = new();
    private string? _firstConsumer;
    private ConsumerLane? _firstLane;
    private Dictionary<string, ConsumerLane>? _moreLanes;
    private long _lastSequence;

    /// <summary>The message, rendered at most once per delivery and only when the writer needs it (every attempt and consumer shares it).</summary>
    public DeferredRendering? Rendering { get; set; }

    /// <summary>The task id of a message that carries no MessageId: one per delivery, shared by its attempts.</summary>
    public Guid? GeneratedTaskId { get; set; }

    /// <summary>Set by the dispatch observer when this delivery's message was handed to delayed or scheduled redelivery.</summary>
    public DateTime? RedeliveryAt { get; set; }

    /// <summary>
    /// The run in whose scope the redelivery was sent (<c>context.Defer</c>, a consumer's own redelivery filter), or null
    /// outside any: only that run is taken for a deferred attempt, not another consumer of the message finishing meanwhile.
    /// </summary>
    public Guid? RedeliveredByRun { get; set; }

    public long LastSequence => Interlocked.Read(ref _lastSequence);

    /// <summary>
    /// On the mediator, the run and the inbound request its caller runs in (the consumer runs in the caller's flow): the
    /// parent and the request of a task whose dispatch JobLog did not see. A mediator request client's send reaches the
    /// consumer without the mediator's send and publish observers, so its task is the one the run creates.
    /// </summary>
    public (Guid? Run, Guid? Request) Caller { get; init; }

    /// <summary>
    /// A routing slip activity's failed attempt whose exception left Courier's host (its fault could not be reported): the
    /// routing slip ends FAILED if the delivery does; a retry around the host that runs the routing slip again clears it.
    /// </summary>
    public Courier.EscapedActivity? EscapedActivity { get; set; }

    /// <summary>The run that started last in this delivery: the parent of what an outbox releases after it.</summary>
    public Guid? LastRunId { get; set; }

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
            // Nearly every delivery has one consumer: no dictionary for it.
            if (_firstLane is null)
            {
                _firstConsumer = consumer;
                _firstLane = new ConsumerLane(consumer);
                return _firstLane;
            }

            if (string.Equals(_firstConsumer, consumer, StringComparison.Ordinal))
            {
                return _firstLane;
            }

            _moreLanes ??= new Dictionary<string, ConsumerLane>(StringComparer.Ordinal);
            if (!_moreLanes.TryGetValue(consumer, out var lane))
            {
                lane = new ConsumerLane(consumer);
                _moreLanes[consumer] = lane;
            }

            return lane;
        }
    }

    public IReadOnlyList<ConsumerLane> Lanes()
    {
        lock (_lock)
        {
            if (_firstLane is null)
            {
                return [];
            }

            return _moreLanes is null ? [_firstLane] : [_firstLane, .. _moreLanes.Values];
        }
    }

    /// <summary>
    /// True when <paramref name="exception"/> is (or holds, or is held by) the exception a run of this delivery recorded
    /// its pending failure with: an endpoint retry's late report of an attempt JobLog already recorded.
    /// </summary>
    public bool RecordedByARun(Exception exception)
    {
        foreach (var lane in Lanes())
        {
            if (lane.PendingException is { } own
                && (TaskLoggingServices.Holds(exception, own) || TaskLoggingServices.Holds(own, exception)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True when an attempt of this delivery failed and was recorded RETRIED, pending the delivery's outcome.</summary>
    public bool HasPendingFailure
    {
        get
        {
            lock (_lock)
            {
                if (_firstLane?.PendingFailure is not null)
                {
                    return true;
                }

                if (_moreLanes is not null)
                {
                    foreach (var lane in _moreLanes.Values)
                    {
                        if (lane.PendingFailure is not null)
                        {
                            return true;
                        }
                    }
                }

                return false;
            }
        }
    }
}

/// <summary>One consumer's attempts within a delivery.</summary>
internal sealed class ConsumerLane(string consumer)
{
    /// <summary>The consumer (its runs' ConsumerType).</summary>
    public string Consumer { get; } = consumer;

    /// <summary>The last attempt failed and was recorded RETRIED; the delivery's outcome decides whether it was the last.</summary>
    public (Guid RunId, Guid TaskId)? PendingFailure { get; set; }

    /// <summary>The exception <see cref="PendingFailure"/> was recorded with (the consumer's own, <see cref="TaskLoggingServices.AttemptException"/>).</summary>
    public Exception? PendingException { get; set; }

    /// <summary>
    /// The exception the consumer itself threw in this attempt, as it left the consumer's pipe
    /// (<see cref="ConsumerSlotFilter{TConsumer, TMessage}"/>): MassTransit's consumer filter may throw another one in its
    /// place (its fault could not be generated), and the run's error must still be the consumer's.
    /// </summary>
    public Exception? ConsumerException { get; set; }
}
