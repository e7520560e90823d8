namespace JobLog.Querying;

/// <summary>A task's detail as the JSON API (<c>api/tasks/{id}</c>) and the CLI (<c>task ID --json</c>) write it.</summary>
/// <param name="Task">The task.</param>
/// <param name="Runs">Its runs, by start: the latest <see cref="LedgerQueries.MaxDetailRuns"/> of <see cref="RunCount"/>.</param>
/// <param name="Parent">The run it was dispatched in, if any.</param>
/// <param name="Children">The tasks dispatched during its runs.</param>
/// <param name="OutboundRequests">The outbound requests made during its runs.</param>
public sealed record TaskDetailDocument(
    TaskDocument Task,
    IReadOnlyList<TaskRunDocument> Runs,
    ParentRun? Parent,
    IReadOnlyList<TaskRow> Children,
    IReadOnlyList<RelatedRequest> OutboundRequests)
{
    /// <summary>The document of a detail read by <see cref="LedgerQueries.TaskAsync"/>.</summary>
    /// <param name="detail">The detail.</param>
    /// <returns>The document.</returns>
    public static TaskDetailDocument From(TaskDetail detail)
    {
        ArgumentNullException.ThrowIfNull(detail);
        return new(TaskDocument.From(detail.Task), detail.Runs.Select(r => TaskRunDocument.From(r, detail.Occurrences.TryGetValue(r.Id, out var o) ? o : null)).ToList(), detail.Parent, detail.Children,
            detail.OutboundRequests)
        {
            Actions = detail.Actions,
            RunCount = detail.RunCount,
        };
    }

    /// <summary>What operators did to this failure (retries, resolutions, deletions), newest first.</summary>
    public IReadOnlyList<JobLog.Failures.FailureActionRow> Actions { get; init; } = [];

    /// <summary>How many runs the task has (<see cref="TaskDetail.RunCount"/>).</summary>
    public int RunCount { get; init; }
}

/// <summary>An inbound request's detail as the JSON API (<c>api/requests/in/{id}</c>) writes it.</summary>
/// <param name="Request">The request.</param>
/// <param name="OutboundRequests">The outbound requests made while serving it.</param>
public sealed record InputRequestDetailDocument(InputRequestDocument Request, IReadOnlyList<RelatedRequest> OutboundRequests)
{
    /// <summary>The document of a detail read by <see cref="LedgerQueries.InputRequestAsync"/>.</summary>
    /// <param name="detail">The detail.</param>
    /// <returns>The document.</returns>
    public static InputRequestDetailDocument From(InputRequestDetail detail)
    {
        ArgumentNullException.ThrowIfNull(detail);
        return new(InputRequestDocument.From(detail.Request), detail.OutboundRequests);
    }
}

/// <summary>An outbound request's detail as the JSON API (<c>api/requests/out/{id}</c>) writes it.</summary>
/// <param name="Request">The request with what it relates to.</param>
/// <param name="InputRequest">The inbound request it was made in, if any.</param>
/// <param name="TaskRuns">The task runs it was made in.</param>
public sealed record OutputRequestDetailDocument(OutputRequestDocument Request, RequestRow? InputRequest, IReadOnlyList<RelatedRun> TaskRuns)
{
    /// <summary>The document of a detail read by <see cref="LedgerQueries.OutputRequestAsync"/>.</summary>
    /// <param name="detail">The detail.</param>
    /// <returns>The document.</returns>
    public static OutputRequestDetailDocument From(OutputRequestDetail detail)
    {
        ArgumentNullException.ThrowIfNull(detail);
        return new(OutputRequestDocument.From(detail.Request), detail.InputRequest, detail.TaskRuns);
    }
}

/// <summary>A command's detail as the JSON API (<c>api/commands/{id}</c>) writes it.</summary>
/// <param name="Command">The command.</param>
/// <param name="OutboundRequests">The outbound requests it made.</param>
public sealed record CommandDetailDocument(CommandDocument Command, IReadOnlyList<RelatedRequest> OutboundRequests)
{
    /// <summary>The document of a detail read by <see cref="LedgerQueries.CommandAsync"/>.</summary>
    /// <param name="detail">The detail.</param>
    /// <returns>The document.</returns>
    public static CommandDetailDocument From(CommandDetail detail)
    {
        ArgumentNullException.ThrowIfNull(detail);
        return new(CommandDocument.From(detail.Command), detail.OutboundRequests);
    }
}
