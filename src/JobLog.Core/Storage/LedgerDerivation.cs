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
        if (plan.Runs.Count == 0)
        {
            return;
        }

        var byTask = new Dictionary<Guid, List<RunRow>>();
        foreach (var row in plan.Runs)
        {
            if (!byTask.TryGetValue(row.Run.TaskId, out var list))
            {
                list = [];
                byTask[row.Run.TaskId] = list;
            }

            list.Add(row);
        }

        Apply(plan.Dispatched);
        Apply(plan.Ensured);

        void Apply(List<TaskWrite> rows)
        {
            for (var i = 0; i < rows.Count; i++)
            {
                if (byTask.TryGetValue(rows[i].Task.Id, out var taskRuns))
                {
                    rows[i] = Derive(rows[i].Task, taskRuns) with { Rendering = rows[i].Rendering };
                }
            }
        }
    }

    /// <summary>The C# twin of <see cref="LedgerSql.DeriveTask"/> for a task whose only runs are <paramref name="runs"/>.</summary>
    internal static TaskWrite Derive(TaskPayload task, List<RunRow> runs)
    {
        // The latest run of each consumer is its highest ordinal (with no stored runs, Retries = ordinal).
        var latest = new Dictionary<string, TaskRunLog>(StringComparer.Ordinal);
        var ordinals = new Dictionary<string, int>(StringComparer.Ordinal);
        DateTime? start = null;
        foreach (var row in runs)
        {
            if (!ordinals.TryGetValue(row.Run.ConsumerType, out var best) || row.Ordinal > best)
            {
                ordinals[row.Run.ConsumerType] = row.Ordinal;
                latest[row.Run.ConsumerType] = row.Run;
            }

            if (start is null || row.Run.Start < start)
            {
                start = row.Run.Start;
            }
        }

        var rank = 6;
        DateTime? stop = null;
        var allStopped = true;
        foreach (var run in latest.Values)
        {
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
}
