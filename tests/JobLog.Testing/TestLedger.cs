using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Testing;

/// <summary>A throwaway ledger database for one test: a SQLite file, or a PostgreSQL database.</summary>
public sealed class TestLedger : IAsyncDisposable
{
    private TestLedger(LedgerProvider provider, string connectionString, string? databaseName, string? file)
    {
        Provider = provider;
        ConnectionString = connectionString;
        DatabaseName = databaseName;
        File = file;
    }

    public LedgerProvider Provider { get; }

    public string ConnectionString { get; }

    public string? DatabaseName { get; }

    public string? File { get; }

    public static TestLedger Sqlite()
    {
        var directory = Path.Combine(Path.GetTempPath(), "joblog-tests");
        Directory.CreateDirectory(directory);
        var file = Path.Combine(directory, $"{Guid.NewGuid():N}.db");
        return new TestLedger(LedgerProvider.Sqlite, $"Data Source={file};Pooling=False", null, file);
    }

    /// <summary>
    /// A fresh PostgreSQL database. Under CI a missing server fails the test; elsewhere it is ignored with the reason. The
    /// connect timeout is 30 s, not 5: on a loaded machine (a CI run beside other work) a 5-s connect timed out against a
    /// server that was up.
    /// </summary>
    public static async Task<TestLedger> PostgresAsync()
    {
        var admin = Environment.GetEnvironmentVariable("JOBLOG_TEST_POSTGRES")
            ?? "Host=127.0.0.1;Port=5432;Username=joblog;Password=joblog;Database=postgres;Timeout=30";
        var name = "joblog_test_" + Guid.NewGuid().ToString("N")[..12];
        try
        {
            await using var connection = new NpgsqlConnection(admin);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await command.ExecuteNonQueryAsync();
        }
        catch (Exception ex) when (ex is NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
        {
            Services.Missing("PostgreSQL", ex);
        }

        var builder = new NpgsqlConnectionStringBuilder(admin) { Database = name };
        return new TestLedger(LedgerProvider.PostgreSql, builder.ConnectionString, name, null);
    }

    /// <summary>An existing PostgreSQL database (a fault test's own cluster): nothing is created, nor dropped at the end.</summary>
    public static TestLedger ExistingPostgres(string connectionString) => new(LedgerProvider.PostgreSql, connectionString, null, null);

    public JobLogOptions Apply(JobLogOptions options) =>
        Provider == LedgerProvider.Sqlite ? options.UseSqlite(ConnectionString) : options.UseNpgsql(ConnectionString);

    public async ValueTask DisposeAsync()
    {
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
                    // Best effort: a temp file.
                }
            }
        }

        if (DatabaseName is not null)
        {
            NpgsqlConnection.ClearAllPools();
            var admin = new NpgsqlConnectionStringBuilder(ConnectionString) { Database = "postgres" }.ConnectionString;
            try
            {
                await using var connection = new NpgsqlConnection(admin);
                await connection.OpenAsync();
                await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS {DatabaseName} WITH (FORCE)", connection);
                await command.ExecuteNonQueryAsync();
            }
            catch (NpgsqlException ex)
            {
                Debug.WriteLine(ex);
            }
        }
    }
}

/// <summary>External servers the integration tests use.</summary>
public static class Services
{
    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Under CI a missing server is a failure, never a silent skip.</summary>
    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    public static void Missing(string server, Exception exception)
    {
        var message = $"{server} is not reachable: {exception.Message}. Start it with scripts/start-services.sh.";
        if (InCi)
        {
            Assert.Fail(message);
        }

        Assert.Ignore(message);
        throw new InvalidOperationException(message);
    }
}
