using JobLog.Recording;
using JobLog.Redaction;
using JobLog.Retention;
using JobLog.Storage;
using JobLog.Sweeping;
using Microsoft.Extensions.DependencyInjection;

namespace JobLog.Maintenance;

/// <summary>
/// The ledger's maintenance, for an application's own tooling (the Worker's CLI is one): create or migrate the schema,
/// expire stale tasks once, purge finished rows by age with an optional backup, restore a backup, and wait until what
/// was recorded is written. Registered (singleton) by <c>AddJobLog</c>; long steps report through
/// <see cref="IProgress{T}"/>. See <c>docs/architecture.md#layers</c>.
/// </summary>
public sealed class LedgerMaintenance
{
    private readonly LedgerSchema _schema;
    private readonly TaskLogSweeper _sweeper;
    private readonly LedgerPurger _purger;
    private readonly JobLogContextFactory _contexts;
    private readonly LedgerRecorder _recorder;
    private readonly RecordMasking _masking;

    internal LedgerMaintenance(
        LedgerSchema schema, TaskLogSweeper sweeper, LedgerPurger purger, JobLogContextFactory contexts, LedgerRecorder recorder, Redactor redactor)
    {
        _masking = new RecordMasking(redactor);
        _schema = schema;
        _sweeper = sweeper;
        _purger = purger;
        _contexts = contexts;
        _recorder = recorder;
    }

    /// <summary>
    /// Whether the ledger is opened read-only (SQLite: <c>Mode=ReadOnly</c>, or a <c>file:</c> URI's <c>mode=ro</c> or
    /// <c>immutable=1</c>; PostgreSQL: once the server refused <see cref="MigrateAsync"/>'s first write so, as a standby does). Then
    /// <see cref="MigrateAsync"/> only checks that the schema is this version's, the queries write nothing, and a tool
    /// should not record its own commands or start JobLog's writer: nothing can be written there.
    /// </summary>
    public bool ReadOnly => _contexts.ReadOnly;

    /// <summary>
    /// Creates or migrates the schema (once per process; nothing when <see cref="JobLogOptions.MigrateOnStartup"/> is off);
    /// over a ledger opened read-only (<see cref="ReadOnly"/>), checks that no migration is pending instead.
    /// </summary>
    /// <param name="cancellationToken">Cancels the migration.</param>
    /// <returns>A task that completes when the schema is ready; it fails with the database's error when the database
    /// cannot be reached or migrated.</returns>
    /// <exception cref="InvalidOperationException">A ledger opened read-only has migrations to apply.</exception>
    public Task MigrateAsync(CancellationToken cancellationToken = default) => _schema.TryMigrateAsync(cancellationToken);

    /// <summary>One sweep over every stale task (the sweeper's iteration, whether or not the sweeper runs).</summary>
    /// <param name="cancellationToken">Cancels the sweep.</param>
    /// <returns>How many tasks were expired and healed.</returns>
    public Task<SweepResult> SweepAsync(CancellationToken cancellationToken = default) => _sweeper.SweepOnceAsync(cancellationToken);

    /// <summary>
    /// Deletes the finished rows of one kind older than the request's cutoffs, in batches, backing them up first when
    /// asked. Unfinished rows are never deleted. With <paramref name="progress"/>, the rows to delete are counted first
    /// and reported as the step's total (<see cref="MaintenanceProgress.Step"/> is the kind's name).
    /// </summary>
    /// <param name="request">What to delete.</param>
    /// <param name="progress">Receives the step's start and end; null for none.</param>
    /// <param name="cancellationToken">Cancels between batches (committed batches stay deleted).</param>
    /// <returns>What was deleted.</returns>
    /// <exception cref="ArgumentOutOfRangeException">When the batch size is below 1.</exception>
    public async Task<LedgerPurgeResult> PurgeAsync(
        LedgerPurgeRequest request, IProgress<MaintenanceProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var internalRequest = new PurgeRequest(request.Kind, request.SucceededBefore, request.FailedBefore, request.BatchSize, request.BackupDirectory, request.DryRun);
        var step = KindName(request.Kind);
        if (progress is not null && !request.DryRun)
        {
            var count = await _purger.PurgeAsync(internalRequest with { BackupDirectory = null, DryRun = true }, cancellationToken).ConfigureAwait(false);
            progress.Report(new MaintenanceProgress(step, 0, count.Deleted, IsFinished: false));
        }

        var result = await _purger.PurgeAsync(internalRequest, cancellationToken).ConfigureAwait(false);
        progress?.Report(new MaintenanceProgress(step, result.Deleted, result.Deleted, IsFinished: true));
        return new LedgerPurgeResult(result.Kind, result.Succeeded, result.Failed, result.BackupFile);
    }

    /// <summary>
    /// Puts the rows of a purge backup back into the ledger; rows already there are skipped. The rows are masked as
    /// recorded rows are (<see cref="JobLogOptions.Redaction"/>), so an edited or foreign backup stores no secret in clear.
    /// The whole file is checked before anything is written; a file that ends early (a purge killed while writing it, a
    /// cut copy) is restored up to its last whole row and <see cref="LedgerRestoreResult.EndedEarly"/> says where and why.
    /// </summary>
    /// <param name="path">The backup file (<c>.jsonl.gz</c>).</param>
    /// <param name="batchSize">Rows per transaction; default 500.</param>
    /// <param name="progress">Receives the step's start and end (<see cref="MaintenanceProgress.Step"/> is the file name); null for none.</param>
    /// <param name="cancellationToken">Cancels between batches.</param>
    /// <returns>What was restored and skipped.</returns>
    /// <exception cref="InvalidDataException">When the file is not a JobLog backup, or a line of it cannot be read (the
    /// message names the line and why; nothing was written).</exception>
    public async Task<LedgerRestoreResult> RestoreAsync(
        string path, int batchSize = 500, IProgress<MaintenanceProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var step = Path.GetFileName(path);
        progress?.Report(new MaintenanceProgress(step, 0, null, IsFinished: false));
        var (kind, restored, skipped, endedEarly) = await LedgerBackup.RestoreAsync(_contexts, _masking, path, batchSize, cancellationToken).ConfigureAwait(false);
        progress?.Report(new MaintenanceProgress(step, restored + skipped, restored + skipped, IsFinished: true));
        return new LedgerRestoreResult(kind, restored, skipped) { EndedEarly = endedEarly };
    }

    /// <summary>Waits until everything recorded so far in this process is committed to the ledger.</summary>
    /// <param name="timeout">How long to wait at most.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>True when everything was committed in time.</returns>
    public Task<bool> FlushAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        _recorder.FlushAsync(timeout, cancellationToken);

    /// <summary>
    /// The full path of the file a SQLite ledger's connection string opens, as Microsoft.Data.Sqlite opens it: a relative
    /// path from the current directory, <c>|DataDirectory|</c>, or a <c>file:</c> URI's path (<c>file:/srv/joblog.db</c>,
    /// <c>file:///srv/joblog.db</c>, <c>file:data/joblog.db?cache=shared</c>; percent-decoded). Null for a database with no
    /// file of its own: in memory (<c>:memory:</c>, <c>Mode=Memory</c>, <c>file::memory:</c>, <c>?mode=memory</c>) or an empty
    /// data source (a temporary one). A tool uses it to say which file it means, or that there is none yet.
    /// </summary>
    /// <param name="connectionString">A SQLite connection string.</param>
    /// <returns>The file's full path, or null.</returns>
    /// <exception cref="ArgumentException">The connection string cannot be read.</exception>
    public static string? SqliteFile(string connectionString)
    {
        ArgumentNullException.ThrowIfNull(connectionString);
        return Storage.Sqlite.SqliteSetup.FilePath(connectionString);
    }

    /// <summary>
    /// How many journal segments of the ledger <paramref name="options"/> names lie in its
    /// <see cref="JobLogOptions.SpoolDirectory"/> in slots no live process holds: records that stopped processes journaled and
    /// that are not written to the ledger yet (a process started on that directory writes them; the Worker's <c>replay</c>
    /// does, and ends). Segments of other ledgers in the same directory are not counted, nor those a live process holds.
    /// </summary>
    /// <param name="options">The ledger and its directory.</param>
    /// <returns>0 when no directory is set or nothing is left.</returns>
    public static int CountJournalLeftOvers(JobLogOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options is { SpoolDirectory: { Length: > 0 } directory, ConnectionString: { } connectionString }
            ? Recording.Journal.JournalSegments.CountLeftOvers(directory, LedgerDatabase.For(options.Provider).Identity(connectionString), connectionString)
            : 0;
    }

    /// <summary>The name of a kind on the command line and in options: <c>tasks</c>, <c>input-requests</c>, <c>output-requests</c>, <c>commands</c>.</summary>
    /// <param name="kind">The kind.</param>
    /// <returns>Its name.</returns>
    /// <exception cref="ArgumentOutOfRangeException">When <paramref name="kind"/> is not a defined kind.</exception>
    public static string KindName(LedgerKind kind) => LedgerPurger.KindName(kind);

    /// <summary>Reads a kind by its name (<see cref="KindName"/>) or its enum name, ignoring case.</summary>
    /// <param name="text">The name.</param>
    /// <param name="kind">The kind, when the name is known.</param>
    /// <returns>True when the name is known.</returns>
    public static bool TryParseKind(string text, out LedgerKind kind) => LedgerPurger.TryParseKind(text, out kind);

    /// <summary>
    /// Reads a duration as people type it: a positive number and a unit, <c>90s</c>, <c>15m</c>, <c>12h</c>, <c>30d</c>,
    /// <c>2w</c>, at most 100 years.
    /// </summary>
    /// <param name="text">The text.</param>
    /// <param name="duration">The duration, when it parses.</param>
    /// <returns>True when it parses.</returns>
    public static bool TryParseDuration(string? text, out TimeSpan duration) => DurationText.TryParse(text, out duration);

    internal static LedgerMaintenance Create(IServiceProvider services) => new(
        services.GetRequiredService<LedgerSchema>(),
        services.GetRequiredService<TaskLogSweeper>(),
        services.GetRequiredService<LedgerPurger>(),
        services.GetRequiredService<JobLogContextFactory>(),
        services.GetRequiredService<LedgerRecorder>(),
        services.GetRequiredService<Redactor>());
}
