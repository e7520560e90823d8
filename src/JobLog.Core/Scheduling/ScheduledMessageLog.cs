namespace JobLog;

/// <summary>
/// A message held by the JobLog scheduler until its <see cref="ScheduledTime"/> (<c>x.AddJobLogScheduler()</c>): the
/// serialized message with its envelope, where it goes, and how far its dispatch got. One row per scheduling token.
/// </summary>
public sealed class ScheduledMessageLog
{
    /// <summary>
    /// The scheduling token: <c>ScheduleMessage.CorrelationId</c> (what <c>CancelScheduledSend</c> takes), or the
    /// message's MessageId for a message deferred by <c>SetTaskOptions(Eta/Countdown)</c>.
    /// </summary>
    public Guid Id { get; set; }

    /// <summary>The MessageId the message is sent with: the id of its task.</summary>
    public Guid? MessageId { get; set; }

    /// <summary>The first message type of the envelope (<c>urn:message:...</c>).</summary>
    public string? MessageType { get; set; }

    /// <summary>Where the message is sent when due (a queue or a publish exchange address).</summary>
    public string Destination { get; set; } = "";

    /// <summary>When the message is due (UTC).</summary>
    public DateTime ScheduledTime { get; set; }

    /// <summary>The content type of <see cref="Body"/>.</summary>
    public string ContentType { get; set; } = "";

    /// <summary>The serialized message with its envelope (ids, headers); cleared once sent or cancelled.</summary>
    public byte[]? Body { get; set; }

    /// <summary>How far the dispatch got.</summary>
    public ScheduledMessageState State { get; set; } = ScheduledMessageState.Pending;

    /// <summary>When the scheduler stored the message (UTC).</summary>
    public DateTime CreatedAt { get; set; }

    /// <summary>When the broker confirmed the send (UTC).</summary>
    public DateTime? SentAt { get; set; }

    /// <summary>When the message was cancelled (UTC).</summary>
    public DateTime? CancelledAt { get; set; }

    /// <summary>Send attempts so far.</summary>
    public int Attempts { get; set; }

    /// <summary>Why the last send attempt failed, if it did.</summary>
    public string? LastError { get; set; }

    /// <summary>The claim of the dispatcher sending it (while <see cref="ScheduledMessageState.Dispatching"/>).</summary>
    public Guid? ClaimToken { get; set; }

    /// <summary>
    /// While <see cref="ScheduledMessageState.Dispatching"/>: the end of the claim's lease, after which any dispatcher
    /// may take the message (the claimer died, or its send failed and this is the retry time).
    /// </summary>
    public DateTime? ClaimedUntil { get; set; }

    /// <summary>Machine that stored the message.</summary>
    public string? Host { get; set; }

    /// <summary>The dispatcher (machine/process) that sent it.</summary>
    public string? SentBy { get; set; }
}

/// <summary>State of a <see cref="ScheduledMessageLog"/>. Persisted as an integer.</summary>
public enum ScheduledMessageState
{
    /// <summary>Stored, waiting for its time.</summary>
    Pending = 1,

    /// <summary>Claimed by a dispatcher (or waiting for a retry after a failed send).</summary>
    Dispatching = 2,

    /// <summary>Sent to its destination (the broker confirmed it).</summary>
    Sent = 3,

    /// <summary>Cancelled before it was sent; it will never be sent.</summary>
    Cancelled = 4,
}
