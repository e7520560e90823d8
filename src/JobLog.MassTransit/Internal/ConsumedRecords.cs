using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// The run and the task seed a consumed message gives, the same for consumers, sagas, handlers, batches, activities
/// and response receipts: times from the message's headers, the broker's redelivery flag, this host.
/// </summary>
internal static class ConsumedRecords
{
    /// <summary>A run of <paramref name="taskId"/> starting at <paramref name="start"/>; state ACTIVE.</summary>
    public static TaskRunLog Run(
        TaskLoggingServices services, ConsumeContext context, Guid runId, Guid taskId, string name, string? queue, string consumerType, DateTime start) =>
        new()
        {
            Id = runId,
            TaskId = taskId,
            Name = name,
            QueueName = queue,
            ConsumerType = consumerType,
            Start = start,
            Redelivered = context.ReceiveContext.Redelivered,
            Host = services.Options.Host,
            WaitingTime = context.SentTime is { } sent ? Math.Max(0, (start - Utc(sent)).TotalSeconds) : null,
        };

    /// <summary>The task row the writer creates when the producer's row is missing (a foreign or unrecorded producer).</summary>
    public static TaskLog Seed(ConsumeContext context, Guid taskId, string name, string? queue, DateTime start) =>
        new()
        {
            Id = taskId,
            Name = name,
            QueueName = queue,
            DispatchedAt = context.SentTime is { } sent ? Utc(sent) : start,
            EstimatedTimeOfFirstArrival = context.SentTime is { } eta ? Utc(eta) : start,
            CorrelationId = context.CorrelationId,
            ConversationId = context.ConversationId,
            SourceAddress = context.SourceAddress?.ToString(),
        };

    private static DateTime Utc(DateTime time) => DateTime.SpecifyKind(time, DateTimeKind.Utc);
}
