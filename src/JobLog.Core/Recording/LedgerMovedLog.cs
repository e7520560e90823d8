using Microsoft.Extensions.Logging;

namespace JobLog.Internal;

/// <summary>The writer's events about a ledger moved from under it (1023–1024, session 22).</summary>
internal static partial class Log
{
    [LoggerMessage(1023, LogLevel.Error, "JobLog's ledger {Ledger} was deleted or replaced while the writer had it open: its last commit went into a file no one will read, so its {Count} records are kept and written again. JobLog makes the ledger again at its path (MigrateOnStartup); what was committed into the deleted file before is gone with it.")]
    public static partial void LedgerMovedMigrating(ILogger logger, string ledger, int count);

    [LoggerMessage(1024, LogLevel.Error, "JobLog's ledger {Ledger} was deleted or replaced while the writer had it open: its last commit went into a file no one will read. MigrateOnStartup is off, so JobLog does not make a ledger there: it keeps {Count} records and what comes next (journaled) and retries until a migrated ledger is at its path again. What was committed into the deleted file before is gone with it.")]
    public static partial void LedgerMovedWaiting(ILogger logger, string ledger, int count);
}
