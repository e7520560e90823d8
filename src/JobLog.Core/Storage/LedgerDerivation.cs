using System.Runtime.InteropServices;
using JobLog.Recording;

namespace JobLog.Storage;

/// <summary>
/// The C# twin of the task-state derivation (<see cref="LedgerSql.DeriveTask"/>, docs/architecture.md#task-state), for
/// task rows this batch inserts: they carry the state of this batch's runs, so the database need not derive them again.
/// </summary>
internal static class LedgerDerivation
{
    /// <summary>
    /// A task row inserted by this batch has no runs stored yet, so its state is the derivation over this batch's runs
    /// (<see cref="LedgerSql.DeriveTask"/>, computed here). When the row already existed the insert does nothing
    /// to the state and the derivation at the end sets it.
    /// </summary>
    public static void DeriveInserted(LedgerPlan plan)
    {
        var runs = plan.Runs;
        if (runs.Count == 0)
        {
            return;
        }

        // Each task's runs as a chain of positions in plan.Runs (first[task], then next[i] until -1): no list and no
        // dictionary per task, as most tasks have one run.
        var first = new Dictionary<Guid, int>(runs.Count);
        var next = new int[runs.Count];
        for (var i = runs.Count - 1; i >= 0; i--)
        {
            ref var head = ref CollectionsMarshal.GetValueRefOrAddDefault(first, runs[i].Run.TaskId, out var exists);
            next[i] = exists ? head : -1;
            head = i;
        }

        Apply(plan.Dispatched, first, runs, next);
        Apply(plan.Ensured, first, runs, next);

        static void Apply(List<TaskWrite> rows, Dictionary<Guid, int> first, List<RunRow> runs, int[] next)
        {
            for (var i = 0; i < rows.Count; i++)
            {
                if (first.TryGetValue(rows[i].Task.Id, out var at))
                {
                    rows[i] = Derive(rows[i].Task, runs, next, at) with { Rendering = rows[i].Rendering };
                }
            }
        }
    }

    /// <summary>
    /// The C# twin of <see cref="LedgerSql.DeriveTask"/> for a task whose only runs are the chain from <paramref name="at"/>
    /// in <paramref name="runs"/> (see <see cref="DeriveInserted"/>).
    /// </summary>
    private static TaskWrite Derive(TaskPayload task, List<RunRow> runs, int[] next, int at)
    {
        DateTime? start = null;
        var rank = 6;
        DateTime? stop = null;
        var allStopped = true;
        for (var i = at; i >= 0; i = next[i])
        {
            var run = runs[i].Run;
            if (start is null || run.Start < start)
            {
                start = run.Start;
            }

            if (!IsLatest(runs, next, at, i))
            {
                continue;
            }

            rank = Math.Min(rank, run.State switch
            {
                TaskRunState.Active => 1,
                TaskRunState.Retried => 2,
                TaskRunState.Failed => 3,
                TaskRunState.Expired => 4,
                TaskRunState.Cancelled => 5,
                _ => 6,
            });
            if (run.Stop is { } s)
            {
                stop = stop is null || s > stop ? s : stop;
            }
            else
            {
                allStopped = false;
            }
        }

        var state = rank switch
        {
            1 => TaskState.Active,
            2 => TaskState.Retried,
            3 => TaskState.Failed,
            4 => TaskState.Expired,
            5 => TaskState.Cancelled,
            _ => TaskState.Succeeded,
        };
        return new TaskWrite(task, state, start, allStopped ? stop : null);
    }

    /// <summary>
    /// True when the run at <paramref name="i"/> is its consumer's latest in the chain from <paramref name="at"/>: no run of
    /// the same consumer has a higher ordinal (with no stored runs, Retries = ordinal; a batch numbers a consumer's runs
    /// of a task 0, 1, 2, …).
    /// </summary>
    private static bool IsLatest(List<RunRow> runs, int[] next, int at, int i)
    {
        var row = runs[i];
        for (var j = at; j >= 0; j = next[j])
        {
            var other = runs[j];
            if (j != i && other.Ordinal > row.Ordinal && string.Equals(other.Run.ConsumerType, row.Run.ConsumerType, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }
}
