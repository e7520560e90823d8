namespace JobLog.Querying;

/// <summary>A task in a list (the dashboard's row, the API's item, the CLI's line).</summary>
/// <param name="Id">The task's id (the MassTransit MessageId).</param>
/// <param name="Name">The task name.</param>
/// <param name="QueueName">The queue or exchange it was sent to.</param>
/// <param name="State">The task's state.</param>
/// <param name="Input">The message's one-line rendering, cut to 300 characters.</param>
/// <param name="DispatchedAt">When it was dispatched (UTC).</param>
/// <param name="Start">When its first run started (UTC).</param>
/// <param name="Stop">When its last run stopped (UTC).</param>
/// <param name="Runs">How many runs it has.</param>
/// <param name="Host">The machine that dispatched it.</param>
public sealed record TaskRow(
    Guid Id,
    string Name,
    string? QueueName,
    TaskState State,
    string? Input,
    DateTime DispatchedAt,
    DateTime? Start,
    DateTime? Stop,
    int Runs,
    string? Host)
{
    /// <summary>Stop minus start in seconds; null until it has both.</summary>
    public double? DurationSeconds => Start is { } s && Stop is { } e ? (e - s).TotalSeconds : null;
}

/// <summary>A task's detail: the task, its runs in order, where it came from and what it caused.</summary>
/// <remarks>The entities are read without tracking; the JSON API and the CLI write <see cref="TaskDetailDocument"/>.</remarks>
/// <param name="Task">The task.</param>
/// <param name="Runs">Its runs, by start: the latest <see cref="LedgerQueries.MaxDetailRuns"/> of <see cref="RunCount"/>.</param>
/// <param name="Parent">The run it was dispatched in, if any.</param>
/// <param name="Children">The tasks dispatched during its runs (at most 500).</param>
/// <param name="OutboundRequests">The outbound requests made during its runs (at most 500).</param>
public sealed record TaskDetail(
    TaskLog Task,
    IReadOnlyList<TaskRunLog> Runs,
    ParentRun? Parent,
    IReadOnlyList<TaskRow> Children,
    IReadOnlyList<RelatedRequest> OutboundRequests)
{
    private readonly int? _runCount;

    /// <summary>What operators did to this failure (retries, resolutions, deletions), newest first (at most 200).</summary>
    public IReadOnlyList<JobLog.Failures.FailureActionRow> Actions { get; init; } = [];

    /// <summary>How many runs the task has; more than <see cref="Runs"/> holds when they are more than <see cref="LedgerQueries.MaxDetailRuns"/>.</summary>
    public int RunCount { get => _runCount ?? Runs.Count; init => _runCount = value; }

    /// <summary>
    /// The occurrence of each job run in <see cref="Runs"/> (<see cref="TaskRunLog.JobRetryAttempt"/> set), 1 for the job's
    /// first: how many of its consumer's runs up to it (by <see cref="TaskRunLog.Retries"/>) began an occurrence (retry
    /// attempt 0 and no broker redelivery: a redelivered attempt is its occurrence's attempt again, unless it is the
    /// consumer's first run of attempt 0). A run whose occurrence began before JobLog numbered job attempts has none.
    /// </summary>
    public IReadOnlyDictionary<Guid, int> Occurrences { get; init; } = new Dictionary<Guid, int>();

    /// <summary>How a job run is numbered within its job, as the task page and the CLI show it.</summary>
    /// <param name="run">One of <see cref="Runs"/>.</param>
    /// <returns>"occurrence 2 · attempt 1" (the attempt within its occurrence, 1 for the first); "attempt 2" when the
    /// occurrence is not known; null for a run that is no job attempt.</returns>
    public string? JobAttempt(TaskRunLog run)
    {
        ArgumentNullException.ThrowIfNull(run);
        return run.JobRetryAttempt is not { } retry
            ? null
            : Occurrences.TryGetValue(run.Id, out var occurrence)
                ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"occurrence {occurrence} · attempt {retry + 1}")
                : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"attempt {retry + 1}");
    }
}

/// <summary>The run during which a task was dispatched.</summary>
/// <param name="RunId">The run's id.</param>
/// <param name="TaskId">The run's task.</param>
/// <param name="Name">The run's task name.</param>
public sealed record ParentRun(Guid RunId, Guid TaskId, string Name);

/// <summary>An inbound or outbound request in a list.</summary>
/// <param name="Id">The request's id.</param>
/// <param name="Method">The HTTP method.</param>
/// <param name="Host">The host (with port).</param>
/// <param name="Path">The path.</param>
/// <param name="Slug">The endpoint name or the application's slug.</param>
/// <param name="ResponseCode">The status code, once answered.</param>
/// <param name="Status">The request's status.</param>
/// <param name="RequestTimestamp">When it started (UTC).</param>
/// <param name="ResponseTimestamp">When the response completed (UTC).</param>
/// <param name="Ip">Inbound only: the client IP.</param>
/// <param name="UserId">Inbound only: the user id.</param>
/// <param name="ExceptionName">The exception's type name, when it failed.</param>
public sealed record RequestRow(
    Guid Id,
    string Method,
    string Host,
    string Path,
    string? Slug,
    int? ResponseCode,
    RequestLogStatus Status,
    DateTime RequestTimestamp,
    DateTime? ResponseTimestamp,
    string? Ip,
    string? UserId,
    string? ExceptionName)
{
    /// <summary>Response minus request time in seconds; null until answered.</summary>
    public double? DurationSeconds => ResponseTimestamp is { } e ? (e - RequestTimestamp).TotalSeconds : null;
}

/// <summary>An outbound request made during a task run, a command or an inbound request.</summary>
/// <param name="RunId">The task run it was made in, if any.</param>
/// <param name="Request">The request.</param>
public sealed record RelatedRequest(Guid? RunId, RequestRow Request);

/// <summary>An inbound request's detail with the outbound requests it caused.</summary>
/// <remarks>The JSON API writes <see cref="InputRequestDetailDocument"/>.</remarks>
/// <param name="Request">The request (read without tracking).</param>
/// <param name="OutboundRequests">The outbound requests made while serving it (at most 500).</param>
public sealed record InputRequestDetail(InputRequestLog Request, IReadOnlyList<RelatedRequest> OutboundRequests);

/// <summary>An outbound request's detail: what it relates to.</summary>
/// <remarks>The JSON API writes <see cref="OutputRequestDetailDocument"/>.</remarks>
/// <param name="Request">The request with its related objects (read without tracking).</param>
/// <param name="InputRequest">The inbound request it was made in, if any.</param>
/// <param name="TaskRuns">The task runs it was made in.</param>
public sealed record OutputRequestDetail(OutputRequestLog Request, RequestRow? InputRequest, IReadOnlyList<RelatedRun> TaskRuns);

/// <summary>A task run an outbound request was made in.</summary>
/// <param name="RunId">The run's id.</param>
/// <param name="TaskId">The run's task.</param>
/// <param name="Name">The task name.</param>
/// <param name="State">The run's state.</param>
/// <param name="Start">When the run started (UTC).</param>
public sealed record RelatedRun(Guid RunId, Guid TaskId, string Name, TaskRunState State, DateTime Start);

/// <summary>A command in a list.</summary>
/// <param name="Id">The command's id.</param>
/// <param name="Name">The command's name.</param>
/// <param name="Input">Its arguments, masked, cut to 300 characters.</param>
/// <param name="Start">When it started (UTC).</param>
/// <param name="Stop">When it stopped (UTC).</param>
/// <param name="IsSuccessful">Whether it succeeded; null while it runs.</param>
/// <param name="ExitCode">Its exit code.</param>
/// <param name="Host">The machine it ran on.</param>
public sealed record CommandRow(
    Guid Id,
    string Name,
    string? Input,
    DateTime Start,
    DateTime? Stop,
    bool? IsSuccessful,
    int? ExitCode,
    string? Host)
{
    /// <summary>Stop minus start in seconds; null while it runs.</summary>
    public double? DurationSeconds => Stop is { } e ? (e - Start).TotalSeconds : null;
}

/// <summary>A command's detail with the outbound requests it made.</summary>
/// <remarks>The JSON API writes <see cref="CommandDetailDocument"/>.</remarks>
/// <param name="Command">The command (read without tracking).</param>
/// <param name="OutboundRequests">The outbound requests it made (at most 500).</param>
public sealed record CommandDetail(CommandLog Command, IReadOnlyList<RelatedRequest> OutboundRequests);
