using Microsoft.Extensions.Logging;

namespace JobLog.MassTransit.Internal;

/// <summary>The MassTransit hooks' log messages (event ids 3100–3199; the scheduler has 3000–3099).</summary>
internal static partial class Log
{
    [LoggerMessage(3100, LogLevel.Warning, "JobLog could not record {Where}; the message goes on unaffected.")]
    public static partial void RecordingFailed(ILogger logger, Exception exception, string where);
}
