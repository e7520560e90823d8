using JobLog.Storage;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Retention;

/// <summary>
/// Retention of kept failed messages (docs/architecture.md#failures), run first in each pass: those whose task is gone,
/// then those of resolved failures (resolved, archived, or no longer failed) older than
/// <see cref="JobLogRetentionOptions.KeptMessages"/>; an unresolved failure's kept message only when
/// <see cref="JobLogRetentionOptions.PurgeUnresolvedKeptMessages"/> says so.
/// </summary>
internal static class KeptMessageRetention
{
    public static async Task<int> PurgeAsync(JobLogContextFactory contexts, JobLogRetentionOptions options, DateTime now, CancellationToken ct)
    {
        var db = contexts.Create();
        await using (db.ConfigureAwait(false))
        {
            var deleted = await db.KeptMessages.Where(k => !db.TaskLogs.Any(t => t.Id == k.TaskId)).ExecuteDeleteAsync(ct).ConfigureAwait(false);
            if (options.KeptMessages is not { } period)
            {
                return deleted;
            }

            var cutoff = now - period;
            deleted += await db.KeptMessages
                .Where(k => k.KeptAt < cutoff && db.TaskLogs.Any(t => t.Id == k.TaskId && (t.Resolution != null || t.State != TaskState.Failed)))
                .ExecuteDeleteAsync(ct).ConfigureAwait(false);
            if (options.PurgeUnresolvedKeptMessages)
            {
                // Not one a pending retry still needs.
                deleted += await db.KeptMessages
                    .Where(k => k.KeptAt < cutoff && !db.FailureActionItems.Any(
                        i => i.KeptMessageId == k.Id && (i.State == FailureActionItemState.Pending || i.State == FailureActionItemState.Sending)))
                    .ExecuteDeleteAsync(ct).ConfigureAwait(false);
            }

            return deleted;
        }
    }
}
