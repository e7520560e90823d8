namespace JobLog.Recording;

// The rows a record carries, immutable once built: the writer reads them without copying, masking makes a copy only
// when a text changes (`with`), and the spool serialises them as they are. The EF entities (JobLog.TaskLog, ...) stay
// for the schema and the read side; the property names are the columns' (see docs/architecture.md#write-path).

/// <summary>A task row as a producer (or a consumer's seed) knows it.</summary>
internal sealed record TaskPayload
{
    public Guid Id { get; init; }

    public string Name { get; init; } = "";

    public string? QueueName { get; init; }

    public string? Input { get; init; }

    public string? TaskArgs { get; init; }

    public string? TaskKwargs { get; init; }

    public DateTime DispatchedAt { get; init; }

    public DateTime? EstimatedTimeOfFirstArrival { get; init; }

    public DateTime? Expires { get; init; }

    public DateTime? Stale { get; init; }

    public Guid? ParentRunId { get; init; }

    public Guid? InputRequestId { get; init; }

    public Guid? CorrelationId { get; init; }

    public Guid? ConversationId { get; init; }

    public string? TraceId { get; init; }

    public string? SourceAddress { get; init; }

    public string? Host { get; init; }

    public string? Release { get; init; }

    public string? Slug { get; init; }

    public string? ExtraData { get; init; }

    public bool IsInternal { get; init; }
}

/// <summary>A run (one consume attempt) as it started, possibly already finished.</summary>
internal sealed record RunPayload
{
    public Guid Id { get; init; }

    public Guid TaskId { get; init; }

    public string Name { get; init; } = "";

    public string? QueueName { get; init; }

    public string ConsumerType { get; init; } = "";

    public string? Input { get; init; }

    public string? TaskArgs { get; init; }

    public string? TaskKwargs { get; init; }

    public DateTime Start { get; init; }

    public DateTime? Stop { get; init; }

    public TaskRunState State { get; init; } = TaskRunState.Active;

    public string? ErrorMessage { get; init; }

    public string? Output { get; init; }

    public DateTime? EstimatedTimeOfNextRetry { get; init; }

    public double? WaitingTime { get; init; }

    public bool Redelivered { get; init; }

    public string? Host { get; init; }

    public Guid? HostInstanceId { get; init; }

    /// <inheritdoc cref="TaskRunLog.JobRetryAttempt"/>
    public int? JobRetryAttempt { get; init; }
}

/// <summary>A command, started or finished.</summary>
internal sealed record CommandPayload
{
    public Guid Id { get; init; }

    public string Name { get; init; } = "";

    public string? Input { get; init; }

    public bool ExecutedFromCommandLine { get; init; }

    public DateTime Start { get; init; }

    public DateTime? Stop { get; init; }

    public string? Output { get; init; }

    public bool? IsSuccessful { get; init; }

    public string? ErrorMessage { get; init; }

    public int? ExitCode { get; init; }

    public string? Host { get; init; }
}

/// <summary>The fields inbound and outbound requests share.</summary>
internal abstract record RequestPayload
{
    public Guid Id { get; init; }

    public string Host { get; init; } = "";

    public string Method { get; init; } = "";

    public string Path { get; init; } = "";

    public string? Queries { get; init; }

    public bool IsSecure { get; init; }

    public string? Slug { get; init; }

    public DateTime RequestTimestamp { get; init; }

    public string? RequestHeaders { get; init; }

    public string? RequestBody { get; init; }

    public DateTime? ResponseTimestamp { get; init; }

    public int? ResponseCode { get; init; }

    public string? ResponseHeaders { get; init; }

    public string? ResponseBody { get; init; }

    public RequestLogStatus Status { get; init; } = RequestLogStatus.Incomplete;

    public string? ErrorDescription { get; init; }

    public string? ExceptionName { get; init; }
}

/// <summary>An inbound request.</summary>
internal sealed record InputRequestPayload : RequestPayload
{
    public string? UserId { get; init; }

    public string? Ip { get; init; }

    public InputRequestType Type { get; init; } = InputRequestType.Common;
}

/// <summary>An outbound request, with the objects it concerns.</summary>
internal sealed record OutputRequestPayload : RequestPayload
{
    public Guid? InputRequestId { get; init; }

    public IReadOnlyList<RelatedObjectPayload> RelatedObjects { get; init; } = [];
}

/// <summary>An object an outbound request concerns (a command or a run, by id).</summary>
internal sealed record RelatedObjectPayload
{
    public Guid Id { get; init; }

    public Guid? CommandLogId { get; init; }

    public Guid? TaskRunLogId { get; init; }

    public string? ContentType { get; init; }

    public string? ObjectId { get; init; }
}
