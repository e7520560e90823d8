using Microsoft.Extensions.Logging;

namespace JobLog.Internal;

/// <summary>Retention's log messages (event ids 1100–1109).</summary>
internal static partial class Log
{
    [LoggerMessage(1110, LogLevel.Information, "JobLog retention deleted {Count} {Kind} rows ({Succeeded} successes, {Failed} failures).")]
    public static partial void RetentionPurged(ILogger logger, int count, string kind, int succeeded, int failed);

    [LoggerMessage(1111, LogLevel.Warning, "JobLog retention failed; it runs again in {Interval}.")]
    public static partial void RetentionFailed(ILogger logger, Exception exception, TimeSpan interval);
}
