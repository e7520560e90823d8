using Microsoft.Extensions.Logging;

namespace JobLog.MassTransit.Scheduling;

/// <summary>The JobLog scheduler's log messages (event ids 3000–3099).</summary>
internal static partial class Log
{
    [LoggerMessage(3000, LogLevel.Information, "JobLog scheduler dispatcher {Dispatcher} started (queue {Queue}).")]
    public static partial void DispatcherStarted(ILogger logger, string dispatcher, string queue);

    [LoggerMessage(3001, LogLevel.Information, "JobLog scheduler dispatcher {Dispatcher} stopped.")]
    public static partial void DispatcherStopped(ILogger logger, string dispatcher);

    [LoggerMessage(3002, LogLevel.Warning, "JobLog scheduler could not reach its table; it tries again in {Delay}.")]
    public static partial void DispatcherFailed(ILogger logger, Exception exception, TimeSpan delay);

    [LoggerMessage(3003, LogLevel.Debug, "JobLog scheduler sent {TokenId} (message {MessageId}) to {Destination}, due {ScheduledTime:O}.")]
    public static partial void Sent(ILogger logger, Guid tokenId, Guid? messageId, string destination, DateTime scheduledTime);

    [LoggerMessage(3004, LogLevel.Warning, "JobLog scheduler could not send {TokenId} to {Destination} (attempt {Attempt}); it tries again in {Delay}.")]
    public static partial void SendFailed(ILogger logger, Exception exception, Guid tokenId, string destination, int attempt, TimeSpan delay);

    [LoggerMessage(3005, LogLevel.Error, "JobLog scheduler sent {Count} messages but could not mark them sent before their claim ran out: they may be sent again.")]
    public static partial void MarkFailed(ILogger logger, Exception exception, int count);

    [LoggerMessage(3006, LogLevel.Error, "JobLog scheduler lost the claim of {Count} messages it sent (its lease ran out): they may be sent again.")]
    public static partial void ClaimLost(ILogger logger, int count);

    [LoggerMessage(3007, LogLevel.Warning, "JobLog scheduler could not give back {Count} claimed messages; they are taken again when the claim runs out.")]
    public static partial void ReleaseFailed(ILogger logger, Exception exception, int count);

    [LoggerMessage(3010, LogLevel.Debug, "JobLog scheduler stored {TokenId} (message {MessageId}) for {Destination}, due {ScheduledTime:O}.")]
    public static partial void Stored(ILogger logger, Guid tokenId, Guid? messageId, string destination, DateTime scheduledTime);

    [LoggerMessage(3011, LogLevel.Information, "JobLog scheduler cancelled {TokenId}: {Outcome}.")]
    public static partial void Cancelled(ILogger logger, Guid tokenId, string outcome);

    [LoggerMessage(3012, LogLevel.Warning,
        "JobLog scheduler: {Count} stored messages fell due more than {Overdue} ago for a broker none of this process's buses reaches (the earliest for {Destination}, due {ScheduledTime:O}); they wait for a process that runs that bus.")]
    public static partial void Stranded(ILogger logger, int count, TimeSpan overdue, string? destination, DateTime? scheduledTime);

    [LoggerMessage(3013, LogLevel.Warning,
        "JobLog scheduler already holds {TokenId} (message {MessageId}, {HeldState}, due {HeldTime:O}): this copy for {Destination}, due {ScheduledTime:O}, is not stored again; a message is scheduled once per id.")]
    public static partial void AlreadyStored(ILogger logger, Guid tokenId, Guid? messageId, string destination, DateTime scheduledTime, string heldState, DateTime? heldTime);
}
