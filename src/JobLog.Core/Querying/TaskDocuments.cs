namespace JobLog.Querying;

/// <summary>A task as the JSON API and the CLI write it: every column, without its runs (they come beside it).</summary>
public sealed record TaskDocument
{
    /// <inheritdoc cref="TaskLog.Id"/>
    public required Guid Id { get; init; }

    /// <inheritdoc cref="TaskLog.Name"/>
    public required string Name { get; init; }

    /// <inheritdoc cref="TaskLog.QueueName"/>
    public string? QueueName { get; init; }

    /// <inheritdoc cref="TaskLog.Input"/>
    public string? Input { get; init; }

    /// <inheritdoc cref="TaskLog.TaskArgs"/>
    public string? TaskArgs { get; init; }

    /// <inheritdoc cref="TaskLog.TaskKwargs"/>
    public string? TaskKwargs { get; init; }

    /// <inheritdoc cref="TaskLog.DispatchedAt"/>
    public required DateTime DispatchedAt { get; init; }

    /// <inheritdoc cref="TaskLog.EstimatedTimeOfFirstArrival"/>
    public DateTime? EstimatedTimeOfFirstArrival { get; init; }

    /// <inheritdoc cref="TaskLog.Expires"/>
    public DateTime? Expires { get; init; }

    /// <inheritdoc cref="TaskLog.Stale"/>
    public DateTime? Stale { get; init; }

    /// <inheritdoc cref="TaskLog.IsSetAsStale"/>
    public required bool IsSetAsStale { get; init; }

    /// <inheritdoc cref="TaskLog.State"/>
    public required TaskState State { get; init; }

    /// <inheritdoc cref="TaskLog.Start"/>
    public DateTime? Start { get; init; }

    /// <inheritdoc cref="TaskLog.Stop"/>
    public DateTime? Stop { get; init; }

    /// <inheritdoc cref="TaskLog.ParentRunId"/>
    public Guid? ParentRunId { get; init; }

    /// <inheritdoc cref="TaskLog.InputRequestId"/>
    public Guid? InputRequestId { get; init; }

    /// <inheritdoc cref="TaskLog.CorrelationId"/>
    public Guid? CorrelationId { get; init; }

    /// <inheritdoc cref="TaskLog.ConversationId"/>
    public Guid? ConversationId { get; init; }

    /// <inheritdoc cref="TaskLog.TraceId"/>
    public string? TraceId { get; init; }

    /// <inheritdoc cref="TaskLog.SourceAddress"/>
    public string? SourceAddress { get; init; }

    /// <inheritdoc cref="TaskLog.Host"/>
    public string? Host { get; init; }

    /// <inheritdoc cref="TaskLog.Release"/>
    public string? Release { get; init; }

    /// <inheritdoc cref="TaskLog.Slug"/>
    public string? Slug { get; init; }

    /// <inheritdoc cref="TaskLog.ExtraData"/>
    public string? ExtraData { get; init; }

    /// <inheritdoc cref="TaskLog.IsInternal"/>
    public required bool IsInternal { get; init; }

    /// <inheritdoc cref="TaskLog.ErrorMessage"/>
    public string? ErrorMessage { get; init; }

    /// <inheritdoc cref="TaskLog.Resolution"/>
    public JobLog.Failures.FailureResolution? Resolution { get; init; }

    /// <inheritdoc cref="TaskLog.ResolvedAt"/>
    public DateTime? ResolvedAt { get; init; }

    internal static TaskDocument From(TaskLog e) => new()
    {
        Id = e.Id,
        Name = e.Name,
        QueueName = e.QueueName,
        Input = e.Input,
        TaskArgs = e.TaskArgs,
        TaskKwargs = e.TaskKwargs,
        DispatchedAt = e.DispatchedAt,
        EstimatedTimeOfFirstArrival = e.EstimatedTimeOfFirstArrival,
        Expires = e.Expires,
        Stale = e.Stale,
        IsSetAsStale = e.IsSetAsStale,
        State = e.State,
        Start = e.Start,
        Stop = e.Stop,
        ParentRunId = e.ParentRunId,
        InputRequestId = e.InputRequestId,
        CorrelationId = e.CorrelationId,
        ConversationId = e.ConversationId,
        TraceId = e.TraceId,
        SourceAddress = e.SourceAddress,
        Host = e.Host,
        Release = e.Release,
        Slug = e.Slug,
        ExtraData = e.ExtraData,
        IsInternal = e.IsInternal,
        ErrorMessage = e.ErrorMessage,
        Resolution = e.Resolution,
        ResolvedAt = e.ResolvedAt,
    };
}

/// <summary>A task run as the JSON API and the CLI write it.</summary>
public sealed record TaskRunDocument
{
    /// <inheritdoc cref="TaskRunLog.Id"/>
    public required Guid Id { get; init; }

    /// <inheritdoc cref="TaskRunLog.TaskId"/>
    public required Guid TaskId { get; init; }

    /// <inheritdoc cref="TaskRunLog.Name"/>
    public required string Name { get; init; }

    /// <inheritdoc cref="TaskRunLog.QueueName"/>
    public string? QueueName { get; init; }

    /// <inheritdoc cref="TaskRunLog.ConsumerType"/>
    public required string ConsumerType { get; init; }

    /// <inheritdoc cref="TaskRunLog.Input"/>
    public string? Input { get; init; }

    /// <inheritdoc cref="TaskRunLog.TaskArgs"/>
    public string? TaskArgs { get; init; }

    /// <inheritdoc cref="TaskRunLog.TaskKwargs"/>
    public string? TaskKwargs { get; init; }

    /// <inheritdoc cref="TaskRunLog.Start"/>
    public required DateTime Start { get; init; }

    /// <inheritdoc cref="TaskRunLog.Stop"/>
    public DateTime? Stop { get; init; }

    /// <inheritdoc cref="TaskRunLog.State"/>
    public required TaskRunState State { get; init; }

    /// <inheritdoc cref="TaskRunLog.ErrorMessage"/>
    public string? ErrorMessage { get; init; }

    /// <inheritdoc cref="TaskRunLog.Output"/>
    public string? Output { get; init; }

    /// <inheritdoc cref="TaskRunLog.Retries"/>
    public required int Retries { get; init; }

    /// <inheritdoc cref="TaskRunLog.EstimatedTimeOfNextRetry"/>
    public DateTime? EstimatedTimeOfNextRetry { get; init; }

    /// <inheritdoc cref="TaskRunLog.WaitingTime"/>
    public double? WaitingTime { get; init; }

    /// <inheritdoc cref="TaskRunLog.Redelivered"/>
    public required bool Redelivered { get; init; }

    /// <inheritdoc cref="TaskRunLog.Host"/>
    public string? Host { get; init; }

    /// <inheritdoc cref="TaskRunLog.HostInstanceId"/>
    public Guid? HostInstanceId { get; init; }

    /// <inheritdoc cref="TaskRunLog.JobRetryAttempt"/>
    public int? JobRetryAttempt { get; init; }

    /// <summary>A job run's occurrence, 1 for the job's first (<see cref="TaskDetail.Occurrences"/>); null for other runs.</summary>
    public int? Occurrence { get; init; }

    /// <summary>A job run's attempt within its occurrence, 1 for the first (<see cref="JobRetryAttempt"/> + 1); null for other runs.</summary>
    public int? Attempt { get; init; }

    internal static TaskRunDocument From(TaskRunLog e, int? occurrence) => From(e) with { Occurrence = occurrence };

    internal static TaskRunDocument From(TaskRunLog e) => new()
    {
        Id = e.Id,
        TaskId = e.TaskId,
        Name = e.Name,
        QueueName = e.QueueName,
        ConsumerType = e.ConsumerType,
        Input = e.Input,
        TaskArgs = e.TaskArgs,
        TaskKwargs = e.TaskKwargs,
        Start = e.Start,
        Stop = e.Stop,
        State = e.State,
        ErrorMessage = e.ErrorMessage,
        Output = e.Output,
        Retries = e.Retries,
        EstimatedTimeOfNextRetry = e.EstimatedTimeOfNextRetry,
        WaitingTime = e.WaitingTime,
        Redelivered = e.Redelivered,
        Host = e.Host,
        HostInstanceId = e.HostInstanceId,
        JobRetryAttempt = e.JobRetryAttempt,
        Attempt = e.JobRetryAttempt + 1,
    };
}

/// <summary>A command as the JSON API writes it.</summary>
public sealed record CommandDocument
{
    /// <inheritdoc cref="CommandLog.Id"/>
    public required Guid Id { get; init; }

    /// <inheritdoc cref="CommandLog.Name"/>
    public required string Name { get; init; }

    /// <inheritdoc cref="CommandLog.Input"/>
    public string? Input { get; init; }

    /// <inheritdoc cref="CommandLog.ExecutedFromCommandLine"/>
    public required bool ExecutedFromCommandLine { get; init; }

    /// <inheritdoc cref="CommandLog.Start"/>
    public required DateTime Start { get; init; }

    /// <inheritdoc cref="CommandLog.Stop"/>
    public DateTime? Stop { get; init; }

    /// <inheritdoc cref="CommandLog.Output"/>
    public string? Output { get; init; }

    /// <inheritdoc cref="CommandLog.IsSuccessful"/>
    public bool? IsSuccessful { get; init; }

    /// <inheritdoc cref="CommandLog.ErrorMessage"/>
    public string? ErrorMessage { get; init; }

    /// <inheritdoc cref="CommandLog.ExitCode"/>
    public int? ExitCode { get; init; }

    /// <inheritdoc cref="CommandLog.Host"/>
    public string? Host { get; init; }

    internal static CommandDocument From(CommandLog e) => new()
    {
        Id = e.Id,
        Name = e.Name,
        Input = e.Input,
        ExecutedFromCommandLine = e.ExecutedFromCommandLine,
        Start = e.Start,
        Stop = e.Stop,
        Output = e.Output,
        IsSuccessful = e.IsSuccessful,
        ErrorMessage = e.ErrorMessage,
        ExitCode = e.ExitCode,
        Host = e.Host,
    };
}
