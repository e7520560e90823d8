using Microsoft.Extensions.Logging;

namespace JobLog.Internal;

/// <summary>The journal's log events (1100–1109).</summary>
internal static partial class Log
{
    [LoggerMessage(1100, LogLevel.Error, "JobLog's journal refused {Records} records since the last report ({Total} in all): until the disk takes them again, their acknowledgements wait for the database (or are given at once while it is down too).")]
    public static partial void JournalRefused(ILogger logger, Exception exception, long records, long total);

    [LoggerMessage(1101, LogLevel.Error, "JobLog cannot use its journal at {Path}: {Reason}. Acknowledgements wait for the database's commit instead (and not at all while it is down).")]
    public static partial void JournalUnavailable(ILogger logger, string path, string reason);

    [LoggerMessage(1102, LogLevel.Error, "JobLog's journal files in {Directory} were deleted while the process ran (an operator, a temporary-file cleaner): JobLog made the directory again and wrote the {Segments} segments not yet committed there again. Records acknowledged between the deletion and now were in no file meanwhile: a crash in that time would have lost them. Put SpoolDirectory where nothing cleans.")]
    public static partial void JournalFilesLost(ILogger logger, string directory, int segments);

    [LoggerMessage(1104, LogLevel.Error, "JobLog's journal files in {Directory} were deleted while the process ran, with {Segments} segments not yet committed that it kept by their path only (it keeps the {Open} oldest open, so as not to run out of file descriptors in a long outage): their records, acknowledged, are lost. Put SpoolDirectory where nothing cleans.")]
    public static partial void JournalSegmentsGone(ILogger logger, string directory, int segments, int open);

    [LoggerMessage(1103, LogLevel.Error, "JobLog could not read back {Count} journal segments stopped processes left, since the last report ({Total} in all; the last {Path}: {Reason}): their records are lost. Reported at most every 10 s.")]
    public static partial void JournalLeftOversLost(ILogger logger, long count, long total, string path, string reason);

    [LoggerMessage(1105, LogLevel.Error, "JobLog's journal directory {Directory} is read-only ({Reason}): the {Segments} journal segments of this ledger that stopped processes left there are replayed, but cannot be deleted; {Replayed} more that an earlier start on this machine replayed are not replayed again (noted in the temporary directory). Repair it: once it is writable, the next start replays them all and deletes them.")]
    public static partial void JournalReadOnlyReplayed(ILogger logger, string directory, string reason, int segments, int replayed);
}
