using System.Globalization;
using JobLog.Redaction;
using JobLog.Storage;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Failures;

/// <summary>Deletes kept messages (the bodies of failed deliveries) on an operator's request.</summary>
public interface IKeptMessageActions
{
    /// <summary>Deletes the kept messages of the given tasks (they can no longer be retried); records the action.</summary>
    /// <param name="request">The tasks, who asked, and an optional note.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The action's id, the tasks whose kept messages were deleted and the tasks that had none.</returns>
    Task<FailureActionReceipt> DeleteKeptMessagesAsync(FailureActionRequest request, CancellationToken cancellationToken = default);
}

/// <summary>
/// <see cref="IFailureActions"/> on the ledger: a request is recorded (the action and one item per task) and returns at
/// once; the MassTransit integration's sender sends pending retries (docs/architecture.md#failures).
/// </summary>
internal sealed class LedgerFailureActions(JobLogContextFactory contexts, RetrySignal signal, TimeProvider time)
    : IFailureActions, IKeptMessageActions
{
    public async Task<FailureActionReceipt> RetryAsync(FailureActionRequest request, CancellationToken cancellationToken = default)
    {
        var ids = Validate(request);
        var receipt = await ConflictsTakenAgainAsync(() => TryRetryChoosingAgainAsync(request, ids, cancellationToken)).ConfigureAwait(false);
        if (receipt.Accepted > 0)
        {
            signal.Notify();
        }

        return receipt;
    }

    private async Task<FailureActionReceipt> TryRetryChoosingAgainAsync(FailureActionRequest request, List<Guid> ids, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await TryRetryAsync(request, ids, ct).ConfigureAwait(false);
            }
            catch (DbUpdateException ex) when (attempt < 2 && !contexts.Database.IsConflict(ex))
            {
                // A concurrent request took some of these tasks first (one retry in progress per task): choose again.
            }
        }
    }

    /// <summary>
    /// How many times an action is taken when PostgreSQL aborts it in a deadlock (or a serialization failure) with another
    /// transaction: its update of the tasks holds their rows while the failure groups' counts its trigger updates are held
    /// by a writer's or the sweeper's batch that then wants one of those rows (<c>FailureLockTests</c>). Taken again at
    /// once: the other transaction goes on when this one is aborted, so the next attempt waits for it as usual.
    /// </summary>
    private const int ConflictAttempts = 5;

    private async Task<T> ConflictsTakenAgainAsync<T>(Func<Task<T>> action)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await action().ConfigureAwait(false);
            }
            catch (Exception ex) when (attempt < ConflictAttempts && contexts.Database.IsConflict(ex))
            {
                // See ConflictAttempts.
            }
        }
    }

    public async Task<FailureActionReceipt> ResolveAsync(
        FailureActionRequest request, FailureResolution resolution, CancellationToken cancellationToken = default)
    {
        var ids = Validate(request);
        if (!Enum.IsDefined(resolution))
        {
            throw new ArgumentOutOfRangeException(nameof(resolution), resolution, "Unknown resolution.");
        }

        return await ConflictsTakenAgainAsync(() => TryResolveAsync(request, ids, resolution, cancellationToken)).ConfigureAwait(false);
    }

    private async Task<FailureActionReceipt> TryResolveAsync(FailureActionRequest request, List<Guid> ids, FailureResolution resolution, CancellationToken cancellationToken)
    {
        var db = contexts.Create();
        await using (db.ConfigureAwait(false))
        {
            var now = time.GetUtcNow().UtcDateTime;
            var (failed, known) = await FailedAsync(db, ids, cancellationToken).ConfigureAwait(false);
            var kind = resolution == FailureResolution.Archived ? FailureActionKind.Archive : FailureActionKind.Resolve;
            var action = NewAction(request, kind, now, failed.Count, ids.Count - failed.Count);
            var transaction = await db.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                db.FailureActions.Add(action);
                db.FailureActionItems.AddRange(ids.Select(id => failed.Contains(id)
                    ? new FailureActionItemLog { ActionId = action.Id, TaskId = id, State = FailureActionItemState.Done, DoneAt = now }
                    : new FailureActionItemLog { ActionId = action.Id, TaskId = id, State = FailureActionItemState.Refused, Reason = NotFailed(known, id) }));
                await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
                await db.TaskLogs.Where(t => failed.Contains(t.Id) && t.State == TaskState.Failed).ExecuteUpdateAsync(
                    s => s.SetProperty(t => t.Resolution, resolution).SetProperty(t => t.ResolvedAt, now), cancellationToken).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            return new FailureActionReceipt(action.Id, action.Count, action.Skipped);
        }
    }

    public async Task<FailureActionReceipt> DeleteKeptMessagesAsync(FailureActionRequest request, CancellationToken cancellationToken = default)
    {
        var ids = Validate(request);
        return await ConflictsTakenAgainAsync(() => TryDeleteKeptMessagesAsync(request, ids, cancellationToken)).ConfigureAwait(false);
    }

    private async Task<FailureActionReceipt> TryDeleteKeptMessagesAsync(FailureActionRequest request, List<Guid> ids, CancellationToken cancellationToken)
    {
        var db = contexts.Create();
        await using (db.ConfigureAwait(false))
        {
            var now = time.GetUtcNow().UtcDateTime;
            var kept = (await db.KeptMessages.AsNoTracking().Where(k => ids.Contains(k.TaskId)).Select(k => k.TaskId).Distinct()
                .ToListAsync(cancellationToken).ConfigureAwait(false)).ToHashSet();
            var action = NewAction(request, FailureActionKind.DeleteKeptMessages, now, kept.Count, ids.Count - kept.Count);
            var transaction = await db.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                db.FailureActions.Add(action);
                db.FailureActionItems.AddRange(ids.Select(id => kept.Contains(id)
                    ? new FailureActionItemLog { ActionId = action.Id, TaskId = id, State = FailureActionItemState.Done, DoneAt = now }
                    : new FailureActionItemLog { ActionId = action.Id, TaskId = id, State = FailureActionItemState.Refused, Reason = "no kept message" }));
                await db.SaveChangesAsync(cancellationToken).ConfigureAwait(false);
                await db.KeptMessages.Where(k => kept.Contains(k.TaskId)).ExecuteDeleteAsync(cancellationToken).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            return new FailureActionReceipt(action.Id, action.Count, action.Skipped);
        }
    }

    public async Task<RetryProgress?> GetRetryProgressAsync(Guid requestId, CancellationToken cancellationToken = default)
    {
        var db = contexts.Create();
        await using (db.ConfigureAwait(false))
        {
            var action = await db.FailureActions.AsNoTracking().FirstOrDefaultAsync(a => a.Id == requestId && a.Kind == FailureActionKind.Retry, cancellationToken)
                .ConfigureAwait(false);
            if (action is null)
            {
                return null;
            }

            var counts = await db.FailureActionItems.AsNoTracking().Where(i => i.ActionId == requestId).GroupBy(i => i.State)
                .Select(g => new { g.Key, Count = g.Count() }).ToDictionaryAsync(g => g.Key, g => g.Count, cancellationToken).ConfigureAwait(false);
            int Count(FailureActionItemState state) => counts.GetValueOrDefault(state);
            return new RetryProgress(
                requestId, action.Count, Count(FailureActionItemState.Done), Count(FailureActionItemState.Skipped), Count(FailureActionItemState.Failed),
                Count(FailureActionItemState.Pending) + Count(FailureActionItemState.Sending) == 0);
        }
    }

    private async Task<FailureActionReceipt> TryRetryAsync(FailureActionRequest request, List<Guid> ids, CancellationToken ct)
    {
        var db = contexts.Create();
        await using (db.ConfigureAwait(false))
        {
            var now = time.GetUtcNow().UtcDateTime;
            var (failed, known) = await FailedAsync(db, ids, ct).ConfigureAwait(false);
            var kept = (await db.KeptMessages.AsNoTracking().Where(k => ids.Contains(k.TaskId))
                    .Select(k => new { k.Id, k.TaskId, k.KeptAt, k.TooLarge, k.BodyLength }).ToListAsync(ct).ConfigureAwait(false))
                .GroupBy(k => k.TaskId).ToDictionary(g => g.Key, g => g.MaxBy(k => k.KeptAt)!);
            // In a retry: pending or being sent, or sent and not yet consumed (no run of the task started since the claim).
            var inRetry = (await db.FailureActionItems.AsNoTracking()
                .Where(i => ids.Contains(i.TaskId) && (i.State == FailureActionItemState.Pending || i.State == FailureActionItemState.Sending
                    || (i.State == FailureActionItemState.Done && i.KeptMessageId != null
                        && !db.TaskRunLogs.Any(r => r.TaskId == i.TaskId && r.Start >= i.ClaimedAt))))
                .Select(i => i.TaskId).ToListAsync(ct).ConfigureAwait(false)).ToHashSet();
            var unkept = await UnkeptKindsAsync(db, [.. failed.Where(id => !kept.ContainsKey(id))], ct).ConfigureAwait(false);

            var items = new List<FailureActionItemLog>(ids.Count);
            var action = NewAction(request, FailureActionKind.Retry, now, 0, 0);
            foreach (var id in ids)
            {
                var item = new FailureActionItemLog { ActionId = action.Id, TaskId = id, State = FailureActionItemState.Refused };
                if (!failed.Contains(id))
                {
                    item.Reason = NotFailed(known, id);
                }
                else if (inRetry.Contains(id))
                {
                    item.Reason = "already being retried";
                }
                else if (!kept.TryGetValue(id, out var message))
                {
                    item.Reason = unkept.GetValueOrDefault(id, NoKeptMessage);
                }
                else if (message.TooLarge)
                {
                    item.Reason = $"too large to retry: the message had {message.BodyLength} bytes, more than the kept limit";
                }
                else
                {
                    item.State = FailureActionItemState.Pending;
                    item.KeptMessageId = message.Id;
                }

                items.Add(item);
            }

            var accepted = items.Where(i => i.State == FailureActionItemState.Pending).Select(i => i.TaskId).ToList();
            action.Count = accepted.Count;
            action.Skipped = ids.Count - accepted.Count;
            var transaction = await db.Database.BeginTransactionAsync(ct).ConfigureAwait(false);
            await using (transaction.ConfigureAwait(false))
            {
                db.FailureActions.Add(action);
                db.FailureActionItems.AddRange(items);
                await db.SaveChangesAsync(ct).ConfigureAwait(false);
                // A retried failure is open again until its new run says otherwise.
                await db.TaskLogs.Where(t => accepted.Contains(t.Id) && t.Resolution != null).ExecuteUpdateAsync(
                    s => s.SetProperty(t => t.Resolution, (FailureResolution?)null).SetProperty(t => t.ResolvedAt, (DateTime?)null), ct).ConfigureAwait(false);
                await transaction.CommitAsync(ct).ConfigureAwait(false);
            }

            return new FailureActionReceipt(action.Id, action.Count, action.Skipped);
        }
    }

    private const string NoKeptMessage = "no kept message";

    /// <summary>The consumer type of a Courier routing slip's own run (JobLog.MassTransit's <c>RoutingSlipTasks.Name</c>).</summary>
    internal const string RoutingSlipConsumer = "RoutingSlip";

    /// <summary>Why a routing slip has no kept message: Courier ended it, no delivery failed.</summary>
    internal const string RoutingSlipNotRetried =
        NoKeptMessage + ": a Courier routing slip, which Courier faulted itself (and compensated the activities that had completed), so no delivery failed and no message was kept; "
        + "its activity's message sent again would run on a routing slip already compensated: execute a new routing slip";

    /// <summary>Why a job has no kept message: the job service ended it, no delivery failed.</summary>
    internal const string JobNotRetried =
        NoKeptMessage + ": a job of MassTransit's job service, which faulted the job itself (its attempts are the job service's, not a queue's), so no message was kept; "
        + "retry it through the job service (bus.RetryJob(jobId), the JobId is the task's id)";

    /// <summary>
    /// For the FAILED tasks without a kept message (<paramref name="ids"/>), the refusal of those whose failure no delivery
    /// carried, so that no message could be kept: a routing slip (its own run) and a job (a run with a job attempt). Others
    /// are not in the result ("no kept message": keeping was off, or the copy could not be committed).
    /// </summary>
    private static async Task<Dictionary<Guid, string>> UnkeptKindsAsync(JobLogDbContext db, List<Guid> ids, CancellationToken ct)
    {
        if (ids.Count == 0)
        {
            return [];
        }

        var runs = await db.TaskRunLogs.AsNoTracking()
            .Where(r => ids.Contains(r.TaskId) && (r.ConsumerType == RoutingSlipConsumer || r.JobRetryAttempt != null))
            .Select(r => new { r.TaskId, Job = r.JobRetryAttempt != null }).Distinct().ToListAsync(ct).ConfigureAwait(false);
        return runs.GroupBy(r => r.TaskId).ToDictionary(g => g.Key, g => g.Any(r => r.Job) ? JobNotRetried : RoutingSlipNotRetried);
    }

    /// <summary>Which of <paramref name="ids"/> are FAILED tasks, and which are tasks at all.</summary>
    private static async Task<(HashSet<Guid> Failed, HashSet<Guid> Known)> FailedAsync(JobLogDbContext db, List<Guid> ids, CancellationToken ct)
    {
        var states = await db.TaskLogs.AsNoTracking().Where(t => ids.Contains(t.Id)).Select(t => new { t.Id, t.State })
            .ToListAsync(ct).ConfigureAwait(false);
        return ([.. states.Where(t => t.State == TaskState.Failed).Select(t => t.Id)], [.. states.Select(t => t.Id)]);
    }

    // An id the ledger does not hold (mistyped, or purged) is said as such: "not failed" sent operators to look at its state.
    private static string NotFailed(HashSet<Guid> known, Guid id) => known.Contains(id) ? "not failed" : "not in the ledger";

    private static List<Guid> Validate(FailureActionRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.TaskIds);
        ArgumentException.ThrowIfNullOrWhiteSpace(request.RequestedBy);
        var ids = request.TaskIds.Distinct().ToList();
        // Each id is a parameter of the action's statements (SQLite takes at most 32,766).
        return ids.Count <= FailureActionRequest.MaxTasks
            ? ids
            : throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"One action takes at most {FailureActionRequest.MaxTasks:N0} tasks, not {ids.Count:N0}: split the request."), nameof(request));
    }

    private static FailureActionLog NewAction(FailureActionRequest request, FailureActionKind kind, DateTime now, int count, int skipped) => new()
    {
        Id = Guid.CreateVersion7(now),
        Kind = kind,
        RequestedBy = Bound(request.RequestedBy, LedgerModel.NameLength)!,
        RequestedAt = now,
        Count = count,
        Skipped = skipped,
        Note = Bound(request.Note, FailureActionRequest.MaxNoteLength),
        Selection = Bound(request.Selection, 2000),
    };

    /// <summary>
    /// At most <paramref name="length"/> characters of a caller's text that every database accepts: a NUL (PostgreSQL
    /// refuses it, SQLite ends the text there) removed, a lone surrogate (also one left by the cut) replaced.
    /// </summary>
    private static string? Bound(string? text, int length) =>
        text is null ? null : TextBounds.Sanitize(text.Length <= length ? text : text[..length]);
}
