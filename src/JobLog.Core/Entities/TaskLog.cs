namespace JobLog;

/// <summary>One dispatched message (seed <c>CeleryTaskLog</c>). <see cref="Id"/> is the MassTransit MessageId.</summary>
public sealed class TaskLog
{
    /// <summary>The MassTransit MessageId: stable across retries and redeliveries.</summary>
    public Guid Id { get; set; }

    /// <summary>Same value as <see cref="Id"/>; kept for the seed's <c>celery_task_id</c>.</summary>
    public Guid TaskId { get => Id; set => Id = value; }

    /// <summary>Task name: the message type's short name, <c>[TaskName]</c> or the per-type option.</summary>
    public string Name { get; set; } = "";

    /// <summary>The destination queue or exchange.</summary>
    public string? QueueName { get; set; }

    /// <summary>One-line rendering of the message, masked and truncated.</summary>
    public string? Input { get; set; }

    /// <summary>JSON array of a positional record's constructor values, else <c>[]</c>.</summary>
    public string? TaskArgs { get; set; }

    /// <summary>JSON object of the message, masked and truncated.</summary>
    public string? TaskKwargs { get; set; }

    /// <summary>When the task was dispatched (UTC).</summary>
    public DateTime DispatchedAt { get; set; }

    /// <summary>Dispatch time + countdown, the scheduled ETA, else the dispatch time.</summary>
    public DateTime? EstimatedTimeOfFirstArrival { get; set; }

    /// <summary>Dispatch + TimeToLive, else stale − time limit when both are known.</summary>
    public DateTime? Expires { get; set; }

    /// <summary>Dispatch + stale time limit; past it the sweeper expires the task.</summary>
    public DateTime? Stale { get; set; }

    /// <summary>Set by the sweeper when the task went stale.</summary>
    public bool IsSetAsStale { get; set; }

    /// <summary>Derived from the runs (see the README); persisted for indexing.</summary>
    public TaskState State { get; set; } = TaskState.Waiting;

    /// <summary>The earliest run's start.</summary>
    public DateTime? Start { get; set; }

    /// <summary>The latest run's stop once every consumer's latest run has stopped.</summary>
    public DateTime? Stop { get; set; }

    /// <summary>The run during which this task was dispatched, if any.</summary>
    public Guid? ParentRunId { get; set; }

    /// <summary>
    /// The inbound HTTP request during which this task was dispatched (or written to the bus outbox), if any.
    /// </summary>
    public Guid? InputRequestId { get; set; }

    /// <summary>MassTransit CorrelationId.</summary>
    public Guid? CorrelationId { get; set; }

    /// <summary>MassTransit ConversationId.</summary>
    public Guid? ConversationId { get; set; }

    /// <summary>W3C trace id of the dispatching activity.</summary>
    public string? TraceId { get; set; }

    /// <summary>The sending endpoint's address.</summary>
    public string? SourceAddress { get; set; }

    /// <summary>Machine that dispatched the task.</summary>
    public string? Host { get; set; }

    /// <summary>Application release (option).</summary>
    public string? Release { get; set; }

    /// <summary>Free tag.</summary>
    public string? Slug { get; set; }

    /// <summary>Free JSON.</summary>
    public string? ExtraData { get; set; }

    /// <summary>
    /// A MassTransit infrastructure message (job service, Courier events, ...): recorded when
    /// <see cref="JobLogOptions.RecordInternalMessages"/> is on, left out of the failure rate and of default lists.
    /// </summary>
    public bool IsInternal { get; set; }

    /// <summary>
    /// How an operator closed this failure: <see langword="null"/> while it is unresolved (only a
    /// <see cref="TaskState.Failed"/> task with no resolution counts as an open failure).
    /// </summary>
    public JobLog.Failures.FailureResolution? Resolution { get; set; }

    /// <summary>When <see cref="Resolution"/> was set (UTC).</summary>
    public DateTime? ResolvedAt { get; set; }

    /// <summary>Why the dispatch failed, when the broker rejected it.</summary>
    public string? ErrorMessage { get; set; }

    /// <summary>The runs of this task.</summary>
    public List<TaskRunLog> Runs { get; set; } = [];
}
