namespace JobLog;

/// <summary>One consume attempt of a task (seed <c>CeleryTaskRunLog</c>).</summary>
public sealed class TaskRunLog
{
    /// <summary>A fresh id per attempt.</summary>
    public Guid Id { get; set; }

    /// <summary>The task (MessageId).</summary>
    public Guid TaskId { get; set; }

    /// <summary>Task name.</summary>
    public string Name { get; set; } = "";

    /// <summary>The receive endpoint's queue.</summary>
    public string? QueueName { get; set; }

    /// <summary>The consumer's type name.</summary>
    public string ConsumerType { get; set; } = "";

    /// <summary>One-line rendering of the message, masked and truncated.</summary>
    public string? Input { get; set; }

    /// <summary>JSON array of positional values.</summary>
    public string? TaskArgs { get; set; }

    /// <summary>JSON object of the message.</summary>
    public string? TaskKwargs { get; set; }

    /// <summary>When the attempt started.</summary>
    public DateTime Start { get; set; }

    /// <summary>When the attempt ended.</summary>
    public DateTime? Stop { get; set; }

    /// <summary>Attempt state.</summary>
    public TaskRunState State { get; set; } = TaskRunState.Active;

    /// <summary>Exception type, message and stack trace, bounded.</summary>
    public string? ErrorMessage { get; set; }

    /// <summary>What the consumer logged through ILogger during the attempt, bounded.</summary>
    public string? Output { get; set; }

    /// <summary>Attempt ordinal for this task and consumer, counted by JobLog (0 for the first).</summary>
    public int Retries { get; set; }

    /// <summary>When the next attempt is due, for RETRIED runs.</summary>
    public DateTime? EstimatedTimeOfNextRetry { get; set; }

    /// <summary>Start − ETA, in seconds.</summary>
    public double? WaitingTime { get; set; }

    /// <summary>The broker flagged the delivery as a redelivery.</summary>
    public bool Redelivered { get; set; }

    /// <summary>Machine that ran the attempt.</summary>
    public string? Host { get; set; }

    /// <summary>The process that ran the attempt (<see cref="HostLog.InstanceId"/>); null on rows older than host heartbeats.</summary>
    public Guid? HostInstanceId { get; set; }

    /// <summary>
    /// For an attempt of a MassTransit job (<c>IJobConsumer</c>): the job service's retry attempt within the job's
    /// occurrence (<c>JobContext.RetryAttempt</c>), 0 for the occurrence's first attempt. A recurring job is one task whose
    /// occurrences all are its runs: an occurrence begins with an attempt 0. Null for every other run, and for job runs
    /// recorded before JobLog numbered them (session 32).
    /// </summary>
    public int? JobRetryAttempt { get; set; }

    /// <summary>The task.</summary>
    public TaskLog? Task { get; set; }
}
