using Microsoft.Extensions.Logging;

namespace JobLog.Internal;

/// <summary>JobLog's log messages (event ids 1000–1999 for Core).</summary>
internal static partial class Log
{
    [LoggerMessage(1001, LogLevel.Warning, "JobLog could not write {Count} records to the ledger (attempt {Attempt}); retrying in {Delay}. The business path goes on.")]
    public static partial void WriteFailed(ILogger logger, Exception exception, int count, int attempt, TimeSpan delay);

    [LoggerMessage(1002, LogLevel.Information, "JobLog's ledger is reachable again; {Count} records written.")]
    public static partial void WriteRecovered(ILogger logger, int count);

    [LoggerMessage(1003, LogLevel.Error, "JobLog dropped a record it could not store: {Record}.")]
    public static partial void RecordRejected(ILogger logger, Exception exception, string record);

    [LoggerMessage(1090, LogLevel.Warning, "The database rejected a {Record} record for its texts: it was stored with markers in their place.")]
    public static partial void RecordDegraded(ILogger logger, Exception exception, string record);

    [LoggerMessage(1091, LogLevel.Debug, "The database refused the {Record} record with markers in place of its texts too.")]
    public static partial void DegradedRecordRefused(ILogger logger, Exception exception, string record);

    [LoggerMessage(1092, LogLevel.Debug, "JobLog could not close its database connection after a failed commit; it opens a new one.")]
    public static partial void ExecutorResetFailed(ILogger logger, Exception exception);

    [LoggerMessage(1004, LogLevel.Warning, "JobLog's queue is full ({Capacity} records) and its spool cannot take more: {Count} records dropped since the last report (the last a {Record} record), {Dropped} in all. Reported at most every 10 s.")]
    public static partial void QueueFull(ILogger logger, int capacity, long count, string record, long dropped);

    [LoggerMessage(1009, LogLevel.Warning, "JobLog dropped {Count} records after its last report of a full queue, {Dropped} in all, before it stopped.")]
    public static partial void DroppedSinceLastReport(ILogger logger, long count, long dropped);

    [LoggerMessage(1006, LogLevel.Warning, "JobLog could not commit a batch of {Count} records.")]
    public static partial void BatchFailed(ILogger logger, Exception exception, int count);

    [LoggerMessage(1055, LogLevel.Information, "JobLog's database rolled back {Count} batches since the last report to break a deadlock with another writer or a sweep (the last: {Error}); each was written again. Reported at most every 5 min.")]
    public static partial void BatchConflicts(ILogger logger, long count, string error);

    [LoggerMessage(1005, LogLevel.Error, "JobLog stopped with {Count} records it could not write.")]
    public static partial void LostOnShutdown(ILogger logger, int count);

    [LoggerMessage(1007, LogLevel.Warning, "JobLog stopped without waiting for its database, which it could not write to: the {Count} records it had not written are kept in its journal in {Directory}, and the next process started on that directory writes them.")]
    public static partial void KeptOnShutdown(ILogger logger, int count, string? directory);

    [LoggerMessage(1008, LogLevel.Warning, "JobLog let {Count} acknowledgements or publishes go on after waiting {Timeout} (AcknowledgeTimeout) for their records to be durable, since the last report: those records are in memory only until the writer commits them, and a crash before that loses them (the journal refused them, or it is not used, and the database is slow). Reported at most every 10 s.")]
    public static partial void AcknowledgedBeforeDurable(ILogger logger, long count, TimeSpan timeout);

    [LoggerMessage(1010, LogLevel.Debug, "Task {TaskName} ({TaskId}) went stale without finishing and was set to EXPIRED.")]
    public static partial void TaskExpired(ILogger logger, string taskName, Guid taskId);

    [LoggerMessage(1013, LogLevel.Warning, "JobLog's sweeper set tasks that went stale without finishing to EXPIRED: {Names} ({Count} in all).")]
    public static partial void TasksExpired(ILogger logger, int count, string names);

    [LoggerMessage(1011, LogLevel.Information, "JobLog sweep: {Expired} tasks expired, {Healed} healed from their last run.")]
    public static partial void SweepDone(ILogger logger, int expired, int healed);

    [LoggerMessage(1012, LogLevel.Warning, "JobLog sweep failed; it runs again in {Interval}.")]
    public static partial void SweepFailed(ILogger logger, Exception exception, TimeSpan interval);

    [LoggerMessage(1014, LogLevel.Warning, "{Message}")]
    private static partial void PreparationLost(ILogger logger, Exception exception, string message);

    /// <summary>A pooler lost a statement kept prepared (<see cref="Storage.PostgreSql.ServerPreparation"/>); logged once a process.</summary>
    public static void PreparationLost(ILogger logger, Exception exception) =>
        PreparationLost(logger, exception, Storage.PostgreSql.ServerPreparation.LostMessage);

    [LoggerMessage(1020, LogLevel.Information, "JobLog migrated the {Provider} ledger schema.")]
    public static partial void Migrated(ILogger logger, LedgerProvider provider);

    [LoggerMessage(1021, LogLevel.Warning, "JobLog removed the migration lock a process killed while it migrated the SQLite ledger {Path} had left (EF Core's lock row); it migrates now.")]
    public static partial void MigrationLockCleared(ILogger logger, string path);

    [LoggerMessage(1022, LogLevel.Error, "JobLog's tables are missing from the {Provider} ledger (its database was dropped and made again, or its file replaced): JobLog migrates it again and keeps its records meanwhile.")]
    public static partial void SchemaMissing(ILogger logger, LedgerProvider provider);

    [LoggerMessage(1025, LogLevel.Error, "JobLog could not create or migrate the {Provider} ledger schema (attempt {Attempt}); nothing is written until it succeeds; retrying in {Delay}.")]
    public static partial void MigrationFailed(ILogger logger, Exception exception, LedgerProvider provider, int attempt, TimeSpan delay);

    [LoggerMessage(1038, LogLevel.Warning, "JobLog could not enqueue the records it held open as the writer stopped; the writer stops anyway.")]
    public static partial void BeforeStopFailed(ILogger logger, Exception exception);

    [LoggerMessage(1039, LogLevel.Warning, "A response from {Host} was collected without being read to its end or disposed (its connection was held until then); JobLog recorded it with what had been read. Dispose every HttpResponseMessage, e.g. with a using. Logged once.")]
    public static partial void OutputResponseAbandoned(ILogger logger, string host);

    [LoggerMessage(1040, LogLevel.Warning, "JobLog could not record an outbound request to {Host}; the request goes on.")]
    public static partial void OutputRequestNotRecorded(ILogger logger, Exception exception, string host);

    [LoggerMessage(1042, LogLevel.Warning, "JobLog could not capture the body of an outbound request; the request goes on and its body is marked as not recorded.")]
    public static partial void OutputRequestBodyNotCaptured(ILogger logger, Exception exception);

    [LoggerMessage(1041, LogLevel.Warning, "JobLog could not record command {Name}; the command goes on.")]
    public static partial void CommandNotRecorded(ILogger logger, Exception exception, string name);

    [LoggerMessage(1043, LogLevel.Warning, "JobLog's queue is full ({Capacity} records): records go to the spool file {Path} until the ledger has caught up.")]
    public static partial void Spooling(ILogger logger, int capacity, string path);

    [LoggerMessage(1044, LogLevel.Information, "JobLog replayed its spool file into the ledger ({Count} records spooled since start); records queue in memory again.")]
    public static partial void SpoolReplayed(ILogger logger, long count);

    [LoggerMessage(1045, LogLevel.Error, "JobLog skipped {Count} unreadable lines of its spool file {Path}.")]
    public static partial void SpoolUnreadable(ILogger logger, int count, string path);

    [LoggerMessage(1046, LogLevel.Error, "JobLog refuses its spool directory {Directory}: {Reason}. Nothing is spooled or replayed from it; records that do not fit in the queue are dropped and counted. Remove it, or set JobLogOptions.SpoolDirectory to a directory this user owns with mode 0700.")]
    public static partial void SpoolDirectoryRefused(ILogger logger, string directory, string reason);

    [LoggerMessage(1047, LogLevel.Error, "JobLog refuses the spool file {Path}: {Reason}. It is neither replayed nor written.")]
    public static partial void SpoolFileRefused(ILogger logger, string path, string reason);

    [LoggerMessage(1048, LogLevel.Error, "JobLog's spool file {Path} failed; it is given up for this process ({Pending} bytes not replayed) and records queue in memory again. The host goes on.")]
    public static partial void SpoolFailed(ILogger logger, Exception exception, string path, long pending);

    [LoggerMessage(1049, LogLevel.Error, "JobLog could not append to its spool file {Path}; records that do not fit in the queue are dropped and counted.")]
    public static partial void SpoolAppendFailed(ILogger logger, Exception exception, string path);

    [LoggerMessage(1052, LogLevel.Warning, "JobLog took the spool file {Path} a stopped process left ({Bytes} bytes) into its own spool file {Into}: it is replayed with it.")]
    public static partial void SpoolAdopted(ILogger logger, string path, long bytes, string into);

    [LoggerMessage(1053, LogLevel.Error, "JobLog's spool file was deleted while records waited in it (an operator, a temporary-file cleaner): JobLog made its directory again and wrote its {Bytes} bytes to {Path} again. Records spooled between the deletion and now were in no file meanwhile: a crash in that time would have lost them. Put SpoolDirectory where nothing cleans.")]
    public static partial void SpoolWrittenAgain(ILogger logger, string path, long bytes);

    [LoggerMessage(1054, LogLevel.Warning, "The PostgreSQL server of JobLog's ledger ({Ledger}) refused the startup parameter 'options' (a pooler: PgBouncer refuses it unless it is in ignore_startup_parameters): JobLog connects to it without its session settings from now on: no idle_in_transaction_session_timeout (a frozen JobLog process keeps its locks) and the server's jit setting. Set them on the role (ALTER ROLE ... SET idle_in_transaction_session_timeout = '1min'; SET jit = off) if the pooler's other clients may have them.")]
    public static partial void SessionSettingsRefused(ILogger logger, string ledger);

    [LoggerMessage(1056, LogLevel.Warning, "JobLog's ledger ({Ledger}) is opened read-only: this process reads it, and does not run JobLog's heartbeat, sweeper, retention, partition maintenance, scheduler dispatcher or failure retries. What it records (its messages' tasks and runs, requests, commands) cannot be written there: it is kept in its journal until a process that can write the ledger starts on that journal directory.")]
    public static partial void LedgerReadOnly(ILogger logger, string ledger);

    [LoggerMessage(1057, LogLevel.Warning, "JobLog's ledger ({Ledger}) refused a write as read-only (a hot standby, default_transaction_read_only): this process's sweeper, retention, partition maintenance, scheduler dispatcher and failure retries pause, and try again every {Every}. The writer keeps what this process records in its journal and writes it when the ledger takes writes again.")]
    public static partial void LedgerRefusedWrites(ILogger logger, string ledger, TimeSpan every);

    [LoggerMessage(1058, LogLevel.Information, "JobLog's ledger ({Ledger}) takes writes again: the sweeper, retention, partition maintenance, scheduler dispatcher and failure retries resume.")]
    public static partial void LedgerTakesWritesAgain(ILogger logger, string ledger);

    [LoggerMessage(1050, LogLevel.Debug, "JobLog could not write its host heartbeat; it tries again in {Interval}.")]
    public static partial void HeartbeatFailed(ILogger logger, Exception exception, TimeSpan interval);

    [LoggerMessage(1051, LogLevel.Warning, "JobLog closed {Count} ACTIVE runs of a host that is gone: {Reason}")]
    public static partial void HostRunsExpired(ILogger logger, int count, string reason);
}
