using Microsoft.Extensions.Logging;

namespace JobLog.MassTransit.Internal;

/// <summary>The MassTransit hooks' log messages (event ids 3100–3199; the scheduler has 3000–3099).</summary>
internal static partial class Log
{
    [LoggerMessage(3100, LogLevel.Warning, "JobLog could not record {Where}; the message goes on unaffected.")]
    public static partial void RecordingFailed(ILogger logger, Exception exception, string where);

    [LoggerMessage(3101, LogLevel.Warning,
        "JobLog: {Consumer} on {Queue} has its own {What} on the handler configurator, which MassTransit places after JobLog's run filter: {Effect}. Configure it on the receive endpoint instead (e.UseMessageRetry, e.ConcurrentMessageLimit) for JobLog to see it.")]
    public static partial void HandlerPipeAhead(ILogger logger, string consumer, string? queue, string what, string effect);

    [LoggerMessage(3102, LogLevel.Warning,
        "JobLog could not sign the parent stamp of {Count} outbox message(s) since the last report (Data Protection could not seal the stamp key; reported at most once per 10 s): they go out unsigned, and their delivered tasks are linked to the delivering run instead of the run that wrote them.")]
    public static partial void StampFailed(ILogger logger, Exception exception, long count);
}
