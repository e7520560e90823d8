using Microsoft.Extensions.Logging;

namespace JobLog.MassTransit.Internal.Failures;

/// <summary>Keeping and retrying failed messages: log messages (event ids 3200–3299).</summary>
internal static partial class Log
{
    [LoggerMessage(3200, LogLevel.Warning, "JobLog could not keep the failed message {TaskId}; it cannot be retried from the ledger.")]
    public static partial void KeepFailed(ILogger logger, Exception exception, Guid taskId);

    [LoggerMessage(3201, LogLevel.Information, "JobLog retry sender {Sender} started.")]
    public static partial void SenderStarted(ILogger logger, string sender);

    [LoggerMessage(3202, LogLevel.Warning, "JobLog retry sender failed; it tries again in {Delay}.")]
    public static partial void SenderFailed(ILogger logger, Exception exception, TimeSpan delay);

    [LoggerMessage(3203, LogLevel.Warning, "JobLog could not send the retry of {TaskId} to {Destination}.")]
    public static partial void RetrySendFailed(ILogger logger, Exception exception, Guid taskId, string destination);

    [LoggerMessage(3204, LogLevel.Information, "JobLog took over {Sent} retries sent before a restart (a run followed) and {Pending} to send again.")]
    public static partial void Recovered(ILogger logger, int sent, int pending);

    [LoggerMessage(3205, LogLevel.Warning,
        "JobLog retry sender: {Count} retries asked for more than {Waited} ago are for a broker none of this process's buses reaches (e.g. {Destination}); they wait for a process that runs that bus.")]
    public static partial void RetriesStranded(ILogger logger, int count, TimeSpan waited, string destination);

    [LoggerMessage(4360, LogLevel.Warning, "JobLog sent {Count} retries whose claim another sender had taken over meanwhile: they may be sent twice.")]
    public static partial void RetryClaimLost(ILogger logger, int count);

    [LoggerMessage(4361, LogLevel.Warning, "JobLog cancelled the retry of {TaskId} to {Destination}: its send did not finish within three quarters of the claim's lease ({Lease}). It may have reached the broker; the retry is marked failed.")]
    public static partial void RetrySendTimedOut(ILogger logger, Guid taskId, string destination, TimeSpan lease);
}
