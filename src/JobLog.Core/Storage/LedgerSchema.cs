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
    public async Task EnsureReadyAsync(CancellationToken cancellationToken)
    {
        if (!_ready)
        {
            var retry = Backoff.Retry(
                time, TimeSpan.FromMilliseconds(400), TimeSpan.FromSeconds(10), static (ex, _) => ex is not OperationCanceledException,
                (ex, attempt, delay) => Log.MigrationFailed(logger, ex, contexts.Provider, attempt, delay));
            await retry.ExecuteAsync(static (schema, ct) => new ValueTask(schema.TryMigrateAsync(ct)), this, cancellationToken).ConfigureAwait(false);
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

    public async Task TryMigrateAsync(CancellationToken cancellationToken)
    {
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

            if (options.Value.MigrateOnStartup)
            {
                await using var context = contexts.Create();
                // No time limit: a migration that builds an index on the tasks takes minutes at ten million tasks, longer
                // than a command's default 30 s, and a start-up that timed out would roll back and time out again at every
                // retry. The writer waits meanwhile (its records are journaled).
                context.Database.SetCommandTimeout(0);
                contexts.Database.BeforeMigrate(contexts.ConnectionString);
                using var migrating = await contexts.Database.LockMigrationsAsync(contexts.ConnectionString, time, logger, cancellationToken).ConfigureAwait(false);
                await context.Database.MigrateAsync(cancellationToken).ConfigureAwait(false);
                await contexts.Database.AfterMigrateAsync(context, cancellationToken).ConfigureAwait(false);
                await contexts.Database.ApplySearchIndexAsync(context, options.Value.SearchIndex, cancellationToken).ConfigureAwait(false);
                await contexts.Database.ApplyPartitioningAsync(context, options.Value.Partitioning, time.GetUtcNow().UtcDateTime, cancellationToken).ConfigureAwait(false);
                // A ledger written before the failures' group columns, or by a version that did not fill them: the pages
                // would otherwise compute them at their first read (Querying.FailureGroupColumns).
                await new Querying.LedgerQueries(context, contexts.Database).FillFailureGroupsAsync(cancellationToken).ConfigureAwait(false);
                Log.Migrated(logger, contexts.Provider);
            }

            _ready = true;
        }
        finally
        {
            _gate.Release();
        }
    }
}

/// <summary>Migrates at start-up, before the bus starts; a database that is down does not stop the application.</summary>
internal sealed class LedgerStartupService(LedgerSchema schema, JobLogContextFactory contexts, ILogger<LedgerStartupService> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await schema.TryMigrateAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The writer retries with backoff (LedgerSchema.EnsureReadyAsync).
            Log.MigrationFailed(logger, ex, contexts.Provider, 1, TimeSpan.Zero);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
