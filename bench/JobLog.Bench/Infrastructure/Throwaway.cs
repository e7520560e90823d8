using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace JobLog.Bench.Infrastructure;

/// <summary>A RabbitMQ virtual host created for one run and deleted after it.</summary>
internal sealed class ThrowawayVhost : IAsyncDisposable
{
    private ThrowawayVhost(string name) => Name = name;

    public string Name { get; }

    public static string Host => Environment.GetEnvironmentVariable("JOBLOG_BENCH_RABBITMQ_HOST") ?? "127.0.0.1";

    public static async Task<ThrowawayVhost> CreateAsync()
    {
        var name = "joblog-bench-" + Guid.NewGuid().ToString("N")[..10];
        await RabbitMqCtlAsync("add_vhost", name);
        await RabbitMqCtlAsync("set_permissions", "-p", name, "guest", ".*", ".*", ".*");
        return new ThrowawayVhost(name);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await RabbitMqCtlAsync("delete_vhost", Name);
        }
        catch (InvalidOperationException ex)
        {
            Console.Error.WriteLine($"warning: could not delete vhost {Name}: {ex.Message}");
        }
    }

    public static async Task<string> RabbitMqCtlAsync(params string[] args)
    {
        var info = new ProcessStartInfo("rabbitmqctl")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException("rabbitmqctl did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"rabbitmqctl {string.Join(' ', args)} failed ({process.ExitCode}): {await stderr}");
        }

        return await stdout;
    }
}

/// <summary>A ledger database for one run: a temp SQLite file or a fresh PostgreSQL database, removed after.</summary>
internal sealed class ThrowawayLedger : IAsyncDisposable
{
    private ThrowawayLedger(LedgerProvider provider, string connectionString, string? database, string? file)
    {
        Provider = provider;
        ConnectionString = connectionString;
        Database = database;
        File = file;
    }

    public LedgerProvider Provider { get; }

    public string ConnectionString { get; }

    public string? Database { get; }

    public string? File { get; }

    /// <summary>
    /// SQLite: a trigger that never fires (a delete of a run with a WHEN that is false), unknown to the writer, so that
    /// its batches fire every trigger per row (the writer before session 6; <c>SqliteWriterTriggers</c>).
    /// </summary>
    public async Task AddRowTriggersAsync()
    {
        if (Provider != LedgerProvider.Sqlite)
        {
            return;
        }

        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "CREATE TRIGGER IF NOT EXISTS \"Bench_RowTriggers\" AFTER DELETE ON \"JobLogTaskRuns\" WHEN 0 BEGIN SELECT 1; END";
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// Drops the named indexes (--drop-index), to measure what each costs the writer. Not what the library does:
    /// pages and the sweeper may need them (docs/scale.md).
    /// </summary>
    public async Task DropIndexesAsync(IReadOnlyList<string> names)
    {
        foreach (var name in names)
        {
            await ExecuteAsync("DROP INDEX \"" + name.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"");
        }
    }

    /// <summary>
    /// Runs the SQL of <paramref name="file"/> (--ledger-sql) on the migrated ledger: an experiment's schema change (a
    /// trigger dropped, an index made partial) measured by the writer and throughput runs. Not what the library does.
    /// </summary>
    public async Task RunSqlFileAsync(string? file)
    {
        if (file is not null)
        {
            await ExecuteAsync(await System.IO.File.ReadAllTextAsync(file));
        }
    }

    /// <summary>
    /// Fills the migrated ledger with <paramref name="tasks"/> tasks and their runs (--ledger-tasks), through the scale
    /// bench's bulk path, then refreshes the planner's statistics as a running ledger's are: the writer measured on a ledger
    /// that is not new (session 26: statements whose cost grew with the ledger were invisible on a fresh one).
    /// </summary>
    /// <summary>What <see cref="FillAsync"/> left in the ledger (the runs' checks subtract it), or null.</summary>
    public LedgerContents? Filled { get; private set; }

    public async Task FillAsync(int tasks, int days)
    {
        if (tasks <= 0)
        {
            return;
        }

        var sqlite = Provider == LedgerProvider.Sqlite;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var rows = await Scale.ScaleFill.BulkFillAsync(sqlite, ConnectionString, new Scale.ScaleData(tasks, days, DateTime.UtcNow), _ => { });
        await ExecuteAsync(sqlite ? "ANALYZE" : "VACUUM ANALYZE");
        Filled = await LedgerInspector.InspectAsync(this);
        Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"  ledger filled with {rows:N0} rows ({tasks:N0} tasks) in {clock.Elapsed.TotalSeconds:0} s"));
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var connection = JobLog.Storage.LedgerDatabase.For(Provider).CreateConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Leave the database behind (for inspection).</summary>
    public bool Keep { get; set; }

    public static string PostgresAdmin => Environment.GetEnvironmentVariable("JOBLOG_BENCH_POSTGRES")
        ?? "Host=127.0.0.1;Port=5432;Username=joblog;Password=joblog;Database=postgres;Timeout=5";

    public static async Task<ThrowawayLedger> CreateAsync(LedgerProvider provider)
    {
        if (provider == LedgerProvider.Sqlite)
        {
            var directory = Path.Combine(Path.GetTempPath(), "joblog-bench");
            Directory.CreateDirectory(directory);
            var file = Path.Combine(directory, $"{Guid.NewGuid():N}.db");
            // What a user writes: a file, pooled connections.
            return new ThrowawayLedger(provider, $"Data Source={file}", null, file);
        }

        var name = "joblog_bench_" + Guid.NewGuid().ToString("N")[..12];
        await using (var connection = new NpgsqlConnection(PostgresAdmin))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await command.ExecuteNonQueryAsync();
        }

        var cs = new NpgsqlConnectionStringBuilder(PostgresAdmin) { Database = name, Timeout = 15 }.ConnectionString;
        return new ThrowawayLedger(provider, cs, name, null);
    }

    /// <summary>A ledger kept by an earlier run (<c>--keep</c>): a SQLite file, or the name of a PostgreSQL database.</summary>
    public static ThrowawayLedger Open(LedgerProvider provider, string location)
    {
        if (provider == LedgerProvider.Sqlite)
        {
            return System.IO.File.Exists(location)
                ? new ThrowawayLedger(provider, $"Data Source={location}", null, location) { Keep = true }
                : throw new ArgumentException($"No SQLite ledger at {location}.");
        }

        var cs = new NpgsqlConnectionStringBuilder(PostgresAdmin) { Database = location, Timeout = 15 }.ConnectionString;
        return new ThrowawayLedger(provider, cs, location, null) { Keep = true };
    }

    public void Apply(JobLogOptions options)
    {
        if (Provider == LedgerProvider.Sqlite)
        {
            options.UseSqlite(ConnectionString);
        }
        else
        {
            options.UseNpgsql(ConnectionString);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Keep)
        {
            Console.WriteLine($"  kept ledger: {ConnectionString}");
            return;
        }

        if (File is not null)
        {
            SqliteConnection.ClearAllPools();
            foreach (var f in new[] { File, File + "-wal", File + "-shm" })
            {
                try
                {
                    System.IO.File.Delete(f);
                }
                catch (IOException)
                {
                    // A temp file: best effort.
                }
            }
        }

        if (Database is not null)
        {
            NpgsqlConnection.ClearAllPools();
            try
            {
                await using var connection = new NpgsqlConnection(PostgresAdmin);
                await connection.OpenAsync();
                await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Database} WITH (FORCE)", connection);
                await command.ExecuteNonQueryAsync();
            }
            catch (NpgsqlException ex)
            {
                Console.Error.WriteLine($"warning: could not drop database {Database}: {ex.Message}");
            }
        }
    }
}
