using JobLog.Internal;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.Storage;

/// <summary>Creates or migrates the schema (once per process) and tells the writer when the ledger is ready.</summary>
internal sealed class LedgerSchema(
    JobLogContextFactory contexts,
    IOptions<JobLogOptions> options,
    TimeProvider time,
    ILogger<LedgerSchema> logger)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _ready;

    public string ConnectionString => contexts.ConnectionString;

    /// <summary>Migrates (when <see cref="JobLogOptions.MigrateOnStartup"/>), retrying with backoff while the database is down.</summary>
    /// <param name="cancellationToken">Stops the retries.</param>
    /// <param name="failing">Told each failed attempt's error, and null once the schema is ready after one.</param>
    public async Task EnsureReadyAsync(CancellationToken cancellationToken, Action<Exception?>? failing = null)
    {
        if (!_ready)
        {
            var failed = false;
            var retry = Backoff.Retry(
                time, TimeSpan.FromMilliseconds(400), TimeSpan.FromSeconds(10), static (ex, _) => ex is not OperationCanceledException,
                (ex, attempt, delay) =>
                {
                    failed = true;
                    failing?.Invoke(ex);
                    Log.MigrationFailed(logger, ex, contexts.Provider, attempt, delay);
                });
            await retry.ExecuteAsync(static (schema, ct) => new ValueTask(schema.TryMigrateAsync(ct)), this, cancellationToken).ConfigureAwait(false);
            if (failed)
            {
                failing?.Invoke(null);
            }
        }
    }

    /// <summary>
    /// A statement found a ledger table missing (<see cref="LedgerDatabase.IsSchemaMissing"/>): true, and the next
    /// <see cref="TryMigrateAsync"/> migrates again, when the whole schema went (JobLog's migrations history is gone too: the
    /// database dropped and made again empty) and JobLog migrates (<see cref="JobLogOptions.MigrateOnStartup"/>). Else false:
    /// one table dropped, or the history seen, or the database not reachable to tell: a migration would not (or must not)
    /// bring it back, and the failure is handled as any other (review of session 21).
    /// </summary>
    public async Task<bool> SchemaMissingAsync(CancellationToken cancellationToken)
    {
        if (!options.Value.MigrateOnStartup)
        {
            return false;
        }

        try
        {
            await using var context = contexts.Create();
            if ((await context.Database.GetAppliedMigrationsAsync(cancellationToken).ConfigureAwait(false)).Any())
            {
                return false;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return false;
        }

        if (_ready)
        {
            _ready = false;
            Log.SchemaMissing(logger, contexts.Provider);
        }

        return true;
    }

    /// <summary>
    /// The writer found the ledger it had open deleted or replaced at its path: true, and the next
    /// <see cref="TryMigrateAsync"/> makes it again, when JobLog migrates (<see cref="JobLogOptions.MigrateOnStartup"/>);
    /// false otherwise (the writer then waits for a migrated ledger at the path).
    /// </summary>
    public bool LedgerMoved()
    {
        if (!options.Value.MigrateOnStartup)
        {
            return false;
        }

        _ready = false;
        return true;
    }

    /// <summary>
    /// Whether the database answers now: a <c>SELECT 1</c> on a new connection, the whole probe bounded by the connection
    /// string's connect timeout (its own <c>Timeout</c> when it sets one; Npgsql's default 15 s). Null when it answered.
    /// </summary>
    public async Task<(Exception Error, TimeSpan Bound)?> ProbeAsync(CancellationToken cancellationToken)
    {
        var failed = await ProbeOnceAsync(cancellationToken).ConfigureAwait(false);
        // A pooler that refused JobLog's session settings answered: again without them.
        return failed is { } f && contexts.Database.RefusedSessionSettings(contexts.ConnectionString, f.Error)
            ? await ProbeOnceAsync(cancellationToken).ConfigureAwait(false)
            : failed;
    }

    private async Task<(Exception Error, TimeSpan Bound)?> ProbeOnceAsync(CancellationToken cancellationToken)
    {
        await using var connection = contexts.Database.CreateConnection(contexts.ConnectionString);
        var bound = TimeSpan.FromSeconds(Math.Max(1, connection.ConnectionTimeout));
        using var deadline = new CancellationTokenSource(bound, time);
        using var probe = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            await connection.OpenAsync(probe.Token).ConfigureAwait(false);
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT 1";
            command.CommandTimeout = (int)bound.TotalSeconds;
            await command.ExecuteScalarAsync(probe.Token).ConfigureAwait(false);
            return null;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            return (ex, bound);
        }
    }

    public async Task TryMigrateAsync(CancellationToken cancellationToken)
    {
        // The writer comes here before each batch: the first one after a pooler refused JobLog's session settings says so, once.
        if (contexts.Database.TakeRefusedSessionSettingsNotice(contexts.ConnectionString))
        {
            Log.SessionSettingsRefused(logger, contexts.Database.Identity(contexts.ConnectionString));
        }

        if (_ready)
        {
            return;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_ready)
            {
                return;
            }

            if (options.Value.MigrateOnStartup && contexts.ReadOnly)
            {
                await CheckReadOnlySchemaAsync(cancellationToken).ConfigureAwait(false);
            }
            else if (options.Value.MigrateOnStartup)
            {
                try
                {
                    await MigrateAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (contexts.Database.RefusedAsReadOnly(contexts.ConnectionString, ex))
                {
                    // A PostgreSQL standby, or a database or role with default_transaction_read_only: the server answered the
                    // migration's first write with its refusal (asking it first would cost a silent server a second wait).
                    // From now on the ledger is read-only (IsReadOnly), and its schema is checked instead.
                    await CheckReadOnlySchemaAsync(cancellationToken).ConfigureAwait(false);
                }
            }

            _ready = true;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Opened read-only (a copy, a read-only mount, a reader's tool, a standby): nothing can be migrated, and every step of
    /// <see cref="MigrateAsync"/> writes (the lock file, EF Core's lock row, the journal mode, the planner's statistics).
    /// The schema must already be this version's, or the reads would fail on a missing column.
    /// </summary>
    private async Task CheckReadOnlySchemaAsync(CancellationToken cancellationToken)
    {
        await using var context = contexts.Create();
        var pending = (await context.Database.GetPendingMigrationsAsync(cancellationToken).ConfigureAwait(false)).ToList();
        if (pending.Count > 0)
        {
            throw new InvalidOperationException(
                $"The ledger is opened read-only and its schema is not this version's ({pending.Count} migrations to apply, "
                + $"the first {pending[0]}): migrate it once through a connection that can write (the migrate command), then read it read-only.");
        }
    }

    private async Task MigrateAsync(CancellationToken cancellationToken)
    {
        await using var context = contexts.Create();
        // No time limit: a migration that builds an index on the tasks takes minutes at ten million tasks, longer than a
        // command's default 30 s, and a start-up that timed out would roll back and time out again at every retry. The
        // writer waits meanwhile (its records are journaled).
        context.Database.SetCommandTimeout(0);
        contexts.Database.BeforeMigrate(contexts.ConnectionString);
        using var migrating = await contexts.Database.LockMigrationsAsync(contexts.ConnectionString, time, logger, cancellationToken).ConfigureAwait(false);
        await context.Database.MigrateAsync(cancellationToken).ConfigureAwait(false);
        await contexts.Database.AfterMigrateAsync(context, cancellationToken).ConfigureAwait(false);
        await contexts.Database.ApplySearchIndexAsync(context, options.Value.SearchIndex, cancellationToken).ConfigureAwait(false);
        await contexts.Database.ApplyPartitioningAsync(context, options.Value.Partitioning, time.GetUtcNow().UtcDateTime, cancellationToken).ConfigureAwait(false);
        // A ledger written before the failures' group columns, or by a version that did not fill them: the pages would
        // otherwise compute them at their first read (Querying.FailureGroupColumns).
        await new Querying.LedgerQueries(context, contexts.Database).FillFailureGroupsAsync(cancellationToken).ConfigureAwait(false);
        await context.Database.CloseConnectionAsync().ConfigureAwait(false);
        contexts.Database.ReleaseIdleSessions(context.Database.GetDbConnection());
        Log.Migrated(logger, contexts.Provider);
    }
}

/// <summary>
/// Migrates at start-up, before the bus starts; a database that is down does not stop the application. The start waits for
/// the migration while the database answers (an index build on a big ledger takes minutes, a process migrating elsewhere
/// holds the history); when a probe gets no answer (a silent server, a blackholed network: the migration's own statements
/// would wait for TCP keepalive, minutes) the start goes on and the migration in the background, the writer keeping
/// (journaling) its records until it is done (session 22; docs/storage.md, "Migrations").
/// </summary>
internal sealed class LedgerStartupService(LedgerSchema schema, JobLogContextFactory contexts, TimeProvider time, ILogger<LedgerStartupService> logger)
    : IHostedService, IDisposable
{
    /// <summary>How long the start waits for the migration between two probes of the database.</summary>
    internal static readonly TimeSpan ProbeEvery = TimeSpan.FromSeconds(5);

    private readonly CancellationTokenSource _stopping = new();
    private Task? _migration;
    private bool _disposed;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Not the start's token: the migration may outlive the start; StopAsync cancels it.
        var migration = _migration = MigrateAsync(_stopping.Token);
        using (cancellationToken.Register(static s => ((CancellationTokenSource)s!).Cancel(), _stopping))
        {
            while (!migration.IsCompleted)
            {
                await Task.WhenAny(migration, Task.Delay(ProbeEvery, time, cancellationToken)).ConfigureAwait(false);
                cancellationToken.ThrowIfCancellationRequested();
                if (!migration.IsCompleted && await schema.ProbeAsync(cancellationToken).ConfigureAwait(false) is { } silence)
                {
                    Log.StartupMigrationUnanswered(logger, silence.Error, contexts.Provider, silence.Bound);
                    return;
                }
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
        await migration.ConfigureAwait(false);
        if (contexts.ReadOnly)
        {
            // A reader (a dashboard over a copy or a standby, a read-only mount), or a mistake: said once, here, after the
            // migration asked the database (LedgerWritingHost).
            Log.LedgerReadOnly(logger, contexts.Database.Identity(contexts.ConnectionString));
        }
    }

    private async Task MigrateAsync(CancellationToken cancellationToken)
    {
        await Task.Yield();
        try
        {
            await schema.TryMigrateAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The host stops.
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The writer retries with backoff (LedgerSchema.EnsureReadyAsync).
            Log.MigrationFailed(logger, ex, contexts.Provider, 1, TimeSpan.Zero);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_disposed)
        {
            // A host stopped again after its disposal (a test's second dispose): nothing of this start is left to stop.
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_migration is { } migration)
        {
            try
            {
                await migration.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // A statement the silent server never answers: the host's shutdown does not wait for it.
            }
        }
    }

    public void Dispose()
    {
        _disposed = true;
        _stopping.Dispose();
    }
}
