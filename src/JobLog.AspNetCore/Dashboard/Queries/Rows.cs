namespace JobLog.AspNetCore.Dashboard.Queries;

/// <summary>A task in a list (the page's row and the API's item).</summary>
internal sealed record TaskRow(
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
    public double? DurationSeconds => Start is { } s && Stop is { } e ? (e - s).TotalSeconds : null;
}

/// <summary>A task's detail: the task, its runs in order, where it came from and what it caused.</summary>
internal sealed record TaskDetail(
    TaskLog Task,
    IReadOnlyList<TaskRunLog> Runs,
    ParentRun? Parent,
    IReadOnlyList<TaskRow> Children,
    IReadOnlyList<RelatedRequest> OutboundRequests);

/// <summary>The run during which a task was dispatched.</summary>
internal sealed record ParentRun(Guid RunId, Guid TaskId, string Name);

/// <summary>An inbound or outbound request in a list.</summary>
internal sealed record RequestRow(
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
    public double? DurationSeconds => ResponseTimestamp is { } e ? (e - RequestTimestamp).TotalSeconds : null;
}

/// <summary>An outbound request made during a task run, a command or an inbound request.</summary>
internal sealed record RelatedRequest(Guid? RunId, RequestRow Request);

/// <summary>An inbound request's detail with the outbound requests it caused.</summary>
internal sealed record InputRequestDetail(InputRequestLog Request, IReadOnlyList<RelatedRequest> OutboundRequests);

/// <summary>An outbound request's detail: what it relates to.</summary>
internal sealed record OutputRequestDetail(OutputRequestLog Request, RequestRow? InputRequest, IReadOnlyList<RelatedRun> TaskRuns);

/// <summary>A task run an outbound request was made in.</summary>
internal sealed record RelatedRun(Guid RunId, Guid TaskId, string Name, TaskRunState State, DateTime Start);

/// <summary>A command in a list.</summary>
internal sealed record CommandRow(
    Guid Id,
    string Name,
    string? Input,
    DateTime Start,
    DateTime? Stop,
    bool? IsSuccessful,
    int? ExitCode,
    string? Host)
{
    public double? DurationSeconds => Stop is { } e ? (e - Start).TotalSeconds : null;
}

/// <summary>A command's detail with the outbound requests it made.</summary>
internal sealed record CommandDetail(CommandLog Command, IReadOnlyList<RelatedRequest> OutboundRequests);

/// <summary>The overview page and <c>api/overview</c>.</summary>
internal sealed record Overview(
    IReadOnlyList<StateCount> Counts,
    long Total,
    Chart Chart,
    IReadOnlyList<SlowTask> Slowest,
    SweepInfo Sweeper,
    WriterInfo Writer,
    DateTime GeneratedAt);

/// <summary>Tasks in one state.</summary>
internal sealed record StateCount(TaskState State, long Count);

/// <summary>Finished tasks over time, in equal buckets.</summary>
internal sealed record Chart(string Window, DateTime From, DateTime To, int BucketSeconds, IReadOnlyList<ChartBucket> Buckets);

/// <summary>Tasks that finished in one bucket, by outcome.</summary>
internal sealed record ChartBucket(DateTime Start, int Succeeded, int Failed, int Expired)
{
    public int Finished => Succeeded + Failed + Expired;

    /// <summary>(Failed + Expired) / Finished, or null when nothing finished.</summary>
    public double? FailureRate => Finished == 0 ? null : (double)(Failed + Expired) / Finished;
}

/// <summary>Run durations of one task name over the chart's window.</summary>
internal sealed class SlowTask
{
    public string Name { get; set; } = "";

    public long Runs { get; set; }

    public double AverageSeconds { get; set; }

    public double MaxSeconds { get; set; }
}

/// <summary>This process's sweeper.</summary>
internal sealed record SweepInfo(bool Enabled, DateTimeOffset? LastRunAt, int? Expired, int? Healed);

/// <summary>This process's ledger writer.</summary>
internal sealed record WriterInfo(int Backlog, bool Failing, long Dropped);
