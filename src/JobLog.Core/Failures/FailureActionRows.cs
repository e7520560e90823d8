using Microsoft.EntityFrameworkCore;

namespace JobLog.Failures;

/// <summary>An operator's action on one failure, as the task detail shows it ("actions on this failure").</summary>
/// <param name="ActionId">The action.</param>
/// <param name="Kind">What was done.</param>
/// <param name="RequestedBy">Who asked.</param>
/// <param name="RequestedAt">When (UTC).</param>
/// <param name="State">Where this task stands in the action.</param>
/// <param name="DoneAt">When the retry was sent or the action applied (UTC).</param>
/// <param name="Reason">Why this task was skipped or its retry failed.</param>
/// <param name="Note">The operator's note.</param>
/// <param name="Selection">How the tasks were chosen.</param>
public sealed record FailureActionRow(
    Guid ActionId,
    FailureActionKind Kind,
    string RequestedBy,
    DateTime RequestedAt,
    FailureActionItemState State,
    DateTime? DoneAt,
    string? Reason,
    string? Note,
    string? Selection)
{
    /// <summary>The actions on one task, newest first.</summary>
    internal static async Task<IReadOnlyList<FailureActionRow>> OfTaskAsync(JobLogDbContext db, Guid taskId, CancellationToken ct) =>
        await (from i in db.FailureActionItems.AsNoTracking()
               join a in db.FailureActions.AsNoTracking() on i.ActionId equals a.Id
               where i.TaskId == taskId
               orderby a.RequestedAt descending
               select new FailureActionRow(a.Id, a.Kind, a.RequestedBy, a.RequestedAt, i.State, i.DoneAt, i.Reason, a.Note, a.Selection))
            .Take(200).ToListAsync(ct).ConfigureAwait(false);
}
