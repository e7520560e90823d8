using JobLog.Failures;

namespace JobLog;

/// <summary>
/// The original transport message of a delivery that failed for good, kept so it can be retried from the ledger
/// (docs/architecture.md#failures). Headers and body are encrypted together with ASP.NET Core Data Protection.
/// </summary>
public sealed class KeptMessageLog
{
    /// <summary>The failed run (one row per failed consumer of a delivery).</summary>
    public Guid Id { get; set; }

    /// <summary>The task (MessageId).</summary>
    public Guid TaskId { get; set; }

    /// <summary>The consumer whose run failed.</summary>
    public string ConsumerType { get; set; } = "";

    /// <summary>The receive endpoint the message came from (where a retry sends it back).</summary>
    public string InputAddress { get; set; } = "";

    /// <summary>The transport message's content type.</summary>
    public string? ContentType { get; set; }

    /// <summary>The fault's exception type.</summary>
    public string? ExceptionType { get; set; }

    /// <summary>The fault's exception message, masked like a run's error (it may quote the body) and bounded.</summary>
    public string? ExceptionMessage { get; set; }

    /// <summary>When the message was kept (UTC).</summary>
    public DateTime KeptAt { get; set; }

    /// <summary>The body's size in bytes.</summary>
    public int BodyLength { get; set; }

    /// <summary>
    /// Headers and body, protected; <see langword="null"/> when the message was larger than
    /// <see cref="FailureOptions.MaxKeptMessageSize"/> (kept as metadata only: too large to retry).
    /// </summary>
    public byte[]? Protected { get; set; }

    /// <summary>True when the message was too large to keep: it cannot be retried from the ledger.</summary>
    public bool TooLarge { get; set; }
}

/// <summary>What an operator did to failures (the audit): a retry, a resolution, or the deletion of kept messages.</summary>
public sealed class FailureActionLog
{
    /// <summary>The action's id (the request id of <see cref="FailureActionReceipt"/>).</summary>
    public Guid Id { get; set; }

    /// <summary>What was done.</summary>
    public FailureActionKind Kind { get; set; }

    /// <summary>Who asked.</summary>
    public string RequestedBy { get; set; } = "";

    /// <summary>When (UTC).</summary>
    public DateTime RequestedAt { get; set; }

    /// <summary>Tasks the action took.</summary>
    public int Count { get; set; }

    /// <summary>Tasks it left.</summary>
    public int Skipped { get; set; }

    /// <summary>The operator's note.</summary>
    public string? Note { get; set; }

    /// <summary>How the tasks were chosen.</summary>
    public string? Selection { get; set; }
}

/// <summary>One task of a <see cref="FailureActionLog"/>: at most one per task and action.</summary>
public sealed class FailureActionItemLog
{
    /// <summary>The action.</summary>
    public Guid ActionId { get; set; }

    /// <summary>The task.</summary>
    public Guid TaskId { get; set; }

    /// <summary>Where this task stands in the action.</summary>
    public FailureActionItemState State { get; set; }

    /// <summary>The kept message a retry sends.</summary>
    public Guid? KeptMessageId { get; set; }

    /// <summary>When a sender claimed the retry (UTC), just before sending it.</summary>
    public DateTime? ClaimedAt { get; set; }

    /// <summary>When the retry was sent, or the action applied (UTC).</summary>
    public DateTime? DoneAt { get; set; }

    /// <summary>Why the task was skipped or its retry failed.</summary>
    public string? Reason { get; set; }
}

/// <summary>The kind of a <see cref="FailureActionLog"/>.</summary>
public enum FailureActionKind
{
    /// <summary>Kept messages sent back to be consumed again.</summary>
    Retry = 1,

    /// <summary>Failures marked resolved.</summary>
    Resolve = 2,

    /// <summary>Failures archived.</summary>
    Archive = 3,

    /// <summary>Kept messages deleted.</summary>
    DeleteKeptMessages = 4,
}

/// <summary>The state of a <see cref="FailureActionItemLog"/>.</summary>
public enum FailureActionItemState
{
    /// <summary>A retry waiting for its turn.</summary>
    Pending = 0,

    /// <summary>A retry claimed by a sender, being sent.</summary>
    Sending = 1,

    /// <summary>Sent (a retry) or applied (a resolution, a deletion).</summary>
    Done = 2,

    /// <summary>Left out when the request was made (not failed, already in a retry, no kept message, too large).</summary>
    Refused = 3,

    /// <summary>Skipped when its turn came (e.g. resolved or no longer failed in the meantime).</summary>
    Skipped = 4,

    /// <summary>The send failed for good.</summary>
    Failed = 5,
}
