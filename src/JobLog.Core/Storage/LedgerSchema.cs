using JobLog.Internal;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.Storage;

/// <summary>Builds the provider's EF Core options once and creates contexts from them.</summary>
internal sealed class JobLogContextFactory
{
    private readonly Func<JobLogDbContext> _create;

    public JobLogContextFactory(IOptions<JobLogOptions> options)
    {
        var o = options.Value;
        var connectionString = o.ConnectionString
            ?? throw new InvalidOperationException("JobLog has no database: call AddJobLog(o => o.UseSqlite(...)) or o.UseNpgsql(...).");
        Provider = o.Provider;
        ConnectionString = connectionString;
        switch (o.Provider)
        {
            case LedgerProvider.Sqlite:
                var sqlite = new DbContextOptionsBuilder<SqliteJobLogDbContext>()
                    .UseSqlite(connectionString, b => b.MigrationsHistoryTable(JobLogDbContext.MigrationsHistoryTable))
                    .Options;
                _create = () => new SqliteJobLogDbContext(sqlite);
                break;
            case LedgerProvider.PostgreSql:
                var npgsql = new DbContextOptionsBuilder<NpgsqlJobLogDbContext>()
                    .UseNpgsql(connectionString, b => b.MigrationsHistoryTable(JobLogDbContext.MigrationsHistoryTable))
                    .Options;
                _create = () => new NpgsqlJobLogDbContext(npgsql);
                break;
            default:
                throw new InvalidOperationException("JobLog has no database: call AddJobLog(o => o.UseSqlite(...)) or o.UseNpgsql(...).");
        }
    }

    public LedgerProvider Provider { get; }

    public string ConnectionString { get; }

    public JobLogDbContext Create() => _create();
}

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
                if (contexts.Provider == LedgerProvider.Sqlite)
                {
                    EnsureSqliteDirectory(contexts.ConnectionString);
                }

                await context.Database.MigrateAsync(cancellationToken).ConfigureAwait(false);
                if (contexts.Provider == LedgerProvider.Sqlite)
                {
                    // WAL lets the dashboard read while the writer commits; the mode is stored in the file.
                    await context.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken).ConfigureAwait(false);
                }

                Log.Migrated(logger, contexts.Provider);
            }

            _ready = true;
        }
        finally
        {
            _gate.Release();
        }
    }

    private static void EnsureSqliteDirectory(string connectionString)
    {
        var dataSource = new SqliteConnectionStringBuilder(connectionString).DataSource;
        var directory = Path.GetDirectoryName(Path.GetFullPath(dataSource));
        if (!string.IsNullOrEmpty(directory) && !dataSource.StartsWith(':') && !dataSource.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
        {
            Directory.CreateDirectory(directory);
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
