using Microsoft.Extensions.Logging;

namespace JobLog.Internal;

/// <summary>Partition maintenance's log messages (event ids 4000–4019).</summary>
internal static partial class Log
{
    [LoggerMessage(4000, LogLevel.Warning, "JobLog could not create the ledger's partitions ahead; it tries again in {Interval}. Rows of a day without its partition go to the default partition.")]
    public static partial void PartitionMaintenanceFailed(ILogger logger, Exception exception, TimeSpan interval);

    [LoggerMessage(4300, LogLevel.Warning, "JobLog could not lock the ledger's tables to add its day rollups ({SqlState}: a lock wait timed out or a deadlock); attempt {Attempt} of {Attempts}, the next in {Pause}.")]
    public static partial void DayRollupsLockRetry(ILogger logger, string sqlState, int attempt, int attempts, TimeSpan pause);
}
