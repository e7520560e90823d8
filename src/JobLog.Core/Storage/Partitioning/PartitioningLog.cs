using Microsoft.Extensions.Logging;

namespace JobLog.Internal;

/// <summary>Partition maintenance's log messages (event ids 4000–4019).</summary>
internal static partial class Log
{
    [LoggerMessage(4000, LogLevel.Warning, "JobLog could not create the ledger's partitions ahead; it tries again in {Interval}. Rows of a day without its partition go to the default partition.")]
    public static partial void PartitionMaintenanceFailed(ILogger logger, Exception exception, TimeSpan interval);
}
