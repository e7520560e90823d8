using Microsoft.Extensions.Logging;

namespace JobLog.Internal;

/// <summary>The journal's log events (1100–1109).</summary>
internal static partial class Log
{
    [LoggerMessage(1100, LogLevel.Error, "JobLog's journal refused {Records} records since the last report ({Total} in all): until the disk takes them again, their acknowledgements wait for the database (or are given at once while it is down too).")]
    public static partial void JournalRefused(ILogger logger, Exception exception, long records, long total);

    [LoggerMessage(1101, LogLevel.Error, "JobLog cannot use its journal at {Path}: {Reason}. Acknowledgements wait for the database's commit instead (and not at all while it is down).")]
    public static partial void JournalUnavailable(ILogger logger, string path, string reason);
}
