using JobLog.Internal;

namespace JobLog;

/// <summary>
/// Daily partitions of the PostgreSQL ledger's tasks and runs, requests and commands (docs/scale.md#partitioning), so
/// that retention drops a day instead of deleting its rows. PostgreSQL only; SQLite ignores it.
/// </summary>
public sealed class PartitioningOptions
{
    /// <summary>
    /// Partition the tasks and runs, the inbound and outbound requests and the commands by day. Default false. On,
    /// start-up converts an unpartitioned ledger in place (one transaction for the tasks and runs, one for the requests
    /// and commands, each copying every row and holding its tables locked meanwhile: writers wait and retry, their
    /// journal keeps the records; run it at a quiet time on a big ledger), then keeps partitions
    /// <see cref="DaysAhead"/> days ahead, and retention drops whole days. Once converted, the ledger stays partitioned
    /// (turning this off only stops creating partitions ahead: new rows then go to the default partition).
    /// </summary>
    public bool Enabled { get; set; }

    /// <summary>Days of partitions kept ready ahead of today (UTC), checked at start-up and every hour. Default 3; 1 to 60.</summary>
    [Between(1, 60)]
    public int DaysAhead { get; set; } = 3;
}
