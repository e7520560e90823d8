using JobLog.Retention;

namespace JobLog.Maintenance;

/// <summary>What <see cref="LedgerMaintenance.PurgeAsync"/> deletes of one kind. A null cutoff keeps that outcome.</summary>
/// <param name="Kind">The log kind.</param>
/// <param name="SucceededBefore">Successes that ended before this (UTC) are deleted; null keeps them.</param>
/// <param name="FailedBefore">
/// Failures (FAILED/EXPIRED tasks, 4xx/5xx requests, failed commands) that ended before this (UTC) are deleted; null keeps them.
/// </param>
/// <param name="BatchSize">Rows per statement and transaction; default 1000.</param>
/// <param name="BackupDirectory">Where the deleted rows are written first (gzip JSON Lines), or null for no backup.</param>
/// <param name="DryRun">Count only, delete nothing; default false.</param>
public sealed record LedgerPurgeRequest(
    LedgerKind Kind,
    DateTime? SucceededBefore,
    DateTime? FailedBefore,
    int BatchSize = 1000,
    string? BackupDirectory = null,
    bool DryRun = false);

/// <summary>What a purge deleted (or, for a dry run, would delete).</summary>
/// <param name="Kind">The log kind.</param>
/// <param name="Succeeded">Successes deleted.</param>
/// <param name="Failed">Failures deleted.</param>
/// <param name="BackupFile">The backup written, or null.</param>
public sealed record LedgerPurgeResult(LedgerKind Kind, int Succeeded, int Failed, string? BackupFile)
{
    /// <summary>Successes and failures.</summary>
    public int Deleted => Succeeded + Failed;
}

/// <summary>What a restore put back.</summary>
/// <param name="Kind">The log kind of the backup.</param>
/// <param name="Restored">Rows inserted.</param>
/// <param name="Skipped">Rows already in the ledger, left alone.</param>
public sealed record LedgerRestoreResult(LedgerKind Kind, int Restored, int Skipped)
{
    /// <summary>
    /// Null when the file was read to its end. Otherwise where and why it ended early (cut inside a line or inside a task's
    /// runs, gzip data that stops being readable, or no end line: a purge killed while writing it, which had not deleted
    /// what it had not written, or a cut copy); what came before was restored, nothing after.
    /// </summary>
    public string? EndedEarly { get; init; }
}

/// <summary>How far a long maintenance step is, for a progress bar or a log line.</summary>
/// <param name="Step">What is being done, for example <c>tasks</c> or the backup file's name.</param>
/// <param name="Done">Rows done so far.</param>
/// <param name="Total">Rows to do, when known; null while unknown.</param>
/// <param name="IsFinished">True on the step's last report.</param>
public readonly record struct MaintenanceProgress(string Step, long Done, long? Total, bool IsFinished);
