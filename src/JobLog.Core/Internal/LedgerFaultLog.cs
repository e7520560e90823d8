using Microsoft.Extensions.Logging;

namespace JobLog.Internal;

/// <summary>Events of a ledger moved from under the writer (1023–1024) and of a start-up migration the database does not answer (1026); session 22.</summary>
internal static partial class Log
{
    [LoggerMessage(1023, LogLevel.Error, "JobLog's ledger {Ledger} was deleted or replaced while the writer had it open: its last commit went into a file no one will read, so its {Count} records are kept and written again. JobLog makes the ledger again at its path (MigrateOnStartup); what was committed into the deleted file before is gone with it.")]
    public static partial void LedgerMovedMigrating(ILogger logger, string ledger, int count);

    [LoggerMessage(1024, LogLevel.Error, "JobLog's ledger {Ledger} was deleted or replaced while the writer had it open: its last commit went into a file no one will read. MigrateOnStartup is off, so JobLog does not make a ledger there: it keeps {Count} records and what comes next (journaled) and retries until a migrated ledger is at its path again. What was committed into the deleted file before is gone with it.")]
    public static partial void LedgerMovedWaiting(ILogger logger, string ledger, int count);

    [LoggerMessage(1026, LogLevel.Error, "JobLog's {Provider} ledger did not answer within {Bound} while the start-up migrated it: the start goes on, and the migration in the background (retried until it succeeds); until it is done the writer keeps its records (journaled).")]
    public static partial void StartupMigrationUnanswered(ILogger logger, Exception exception, LedgerProvider provider, TimeSpan bound);
}
