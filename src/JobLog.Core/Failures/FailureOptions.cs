using JobLog.Internal;

namespace JobLog.Failures;

/// <summary>
/// Keeping failed messages and retrying them from the ledger (<c>AddJobLog(o =&gt; o.Failures...)</c>,
/// docs/architecture.md#failures).
/// </summary>
public sealed class FailureOptions
{
    /// <summary>
    /// Keep the original transport message (body, headers, content type, input address) of a delivery that fails for
    /// good, encrypted with ASP.NET Core Data Protection, so it can be retried. Default true.
    /// </summary>
    public bool KeepMessages { get; set; } = true;

    /// <summary>
    /// The largest body kept, in bytes. A larger message is kept as metadata only and marked too large to retry.
    /// Default 256 KiB; 1 to 64 MiB.
    /// </summary>
    [Between(1, 64 << 20)]
    public int MaxKeptMessageSize { get; set; } = 256 << 10;

    /// <summary>
    /// The ledger is the error store: a message that fails for good is acknowledged once JobLog has committed its copy,
    /// and not moved to <c>&lt;queue&gt;_error</c> (a message too large to keep, or not a task, still goes there). If
    /// the copy cannot be committed the delivery is not acknowledged: the broker delivers it again. Needs
    /// <see cref="KeepMessages"/>. Default false (MassTransit moves the message to <c>_error</c> as well).
    /// </summary>
    public bool LedgerIsErrorStore { get; set; }

    /// <summary>Retries sent per second by the background sender (over all requests). Default 100; at least 1.</summary>
    [AtLeast(1)]
    public int RetriesPerSecond { get; set; } = 100;

    /// <summary>Retries claimed by the sender at a time (one staged batch). Default 100; at least 1.</summary>
    [AtLeast(1)]
    public int RetryBatchSize { get; set; } = 100;

    /// <summary>
    /// How often the sender looks for pending retries when idle. Default 5 s (1 s before session 33); must be positive.
    /// A retry asked in this process (its dashboard, <see cref="IFailureActions"/>) wakes the sender at once; the poll is
    /// for those asked by another process (another dashboard, the CLI), which wait up to this long. Each poll opens a
    /// database session of its own (on PostgreSQL a new server process and its authentication) and closes it.
    /// </summary>
    [Positive]
    [AtMostDays(30)]
    public TimeSpan RetryPollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a claimed retry may stay "sending" before another sender takes it over (after a crash between send and
    /// mark): it is then counted sent when the ledger has a run of its task that started after the claim, else sent
    /// again. Default 1 minute; must be positive.
    /// </summary>
    [Positive]
    [AtMostDays(30)]
    public TimeSpan RetryClaimLease { get; set; } = TimeSpan.FromMinutes(1);
}
