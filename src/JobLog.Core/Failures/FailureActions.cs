namespace JobLog.Failures;

/// <summary>
/// Acts on failed tasks: sends their kept message back to be consumed again, or marks them resolved or archived.
/// Every action is itself recorded in the ledger (who, what, how many, when).
/// </summary>
public interface IFailureActions
{
    /// <summary>
    /// Queues a retry of the given failed tasks from their kept messages. A task is retried at most once per request;
    /// tasks that are not failed, are already being retried, or have no kept message are skipped.
    /// </summary>
    /// <param name="request">The tasks and who asked.</param>
    /// <param name="cancellationToken">Cancels the call (a queued retry goes on).</param>
    /// <returns>The request's id (to follow its progress) and how many tasks it took and skipped.</returns>
    Task<FailureActionReceipt> RetryAsync(FailureActionRequest request, CancellationToken cancellationToken = default);

    /// <summary>Marks the given failed tasks resolved or archived, with the request's note.</summary>
    /// <param name="request">The tasks, who asked, and an optional note.</param>
    /// <param name="resolution">Resolved or archived.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The request's id and how many tasks it marked and skipped.</returns>
    Task<FailureActionReceipt> ResolveAsync(
        FailureActionRequest request, FailureResolution resolution, CancellationToken cancellationToken = default);

    /// <summary>The progress of a retry request, or <see langword="null"/> when there is no such request.</summary>
    /// <param name="requestId">The id <see cref="RetryAsync"/> returned.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The counts so far.</returns>
    Task<RetryProgress?> GetRetryProgressAsync(Guid requestId, CancellationToken cancellationToken = default);
}

/// <summary>What an operator asked to act on.</summary>
/// <param name="TaskIds">The failed tasks (their message ids); at most 10,000 (<see cref="MaxTasks"/>) per action.</param>
/// <param name="RequestedBy">Who asked (the user's name; "cli" or the like when no user).</param>
public sealed record FailureActionRequest(IReadOnlyList<Guid> TaskIds, string RequestedBy)
{
    /// <summary>The longest note kept (the dashboard's default limit); a longer one is cut.</summary>
    internal const int MaxNoteLength = 2000;

    /// <summary>
    /// The most tasks one action takes: 10,000, as many as the dashboard's largest action. A longer list is refused
    /// (<see cref="ArgumentException"/>): split it.
    /// </summary>
    public const int MaxTasks = Querying.LedgerQueries.MaxFailuresScanned;

    /// <summary>An optional note kept with the action (e.g. why a failure was resolved); at most 2,000 characters are kept.</summary>
    public string? Note { get; init; }

    /// <summary>How the tasks were chosen (e.g. "group 3f2a…" or a filter), kept with the action for the audit.</summary>
    public string? Selection { get; init; }
}

/// <summary>The answer to an action request.</summary>
/// <param name="RequestId">The action's id in the ledger.</param>
/// <param name="Accepted">Tasks the action took.</param>
/// <param name="Skipped">Tasks it left (not failed, already in a retry, no kept message).</param>
public sealed record FailureActionReceipt(Guid RequestId, int Accepted, int Skipped);

/// <summary>The progress of a (bulk) retry.</summary>
/// <param name="RequestId">The retry request.</param>
/// <param name="Total">Tasks the request took.</param>
/// <param name="Sent">Kept messages sent back so far.</param>
/// <param name="Skipped">Tasks skipped when their turn came (e.g. resolved in the meantime).</param>
/// <param name="Failed">Sends that failed for good.</param>
/// <param name="Completed">Whether every task has been handled.</param>
public sealed record RetryProgress(Guid RequestId, int Total, int Sent, int Skipped, int Failed, bool Completed);

/// <summary>How an operator closed a failure.</summary>
public enum FailureResolution
{
    /// <summary>Dealt with (fixed elsewhere, or not to be retried).</summary>
    Resolved = 1,

    /// <summary>Put away: hidden from the open failures, kept for the record.</summary>
    Archived = 2,
}
