using Microsoft.Extensions.Configuration;

namespace JobLog.Worker;

/// <summary>The Worker's settings: all optional. With none, SQLite (<c>joblog.db</c>) and the in-memory transport.</summary>
internal sealed record WorkerSettings(
    LedgerProvider Database,
    string ConnectionString,
    string? RabbitHost,
    string RabbitVirtualHost,
    string RabbitUser,
    string RabbitPassword,
    ushort? PrefetchCount,
    int? ConcurrentMessageLimit)
{
    public const string DefaultUrls = "http://127.0.0.1:5080";

    public bool UsesRabbitMq => !string.IsNullOrWhiteSpace(RabbitHost);

    public static WorkerSettings From(IConfiguration configuration)
    {
        var database = (configuration["JobLog:Database"] ?? "sqlite").Trim().ToLowerInvariant() switch
        {
            "sqlite" => LedgerProvider.Sqlite,
            "postgres" or "postgresql" or "npgsql" => LedgerProvider.PostgreSql,
            var other => throw new InvalidOperationException($"JobLog:Database must be 'sqlite' or 'postgres', not '{other}'."),
        };
        var connectionString = configuration.GetConnectionString("JobLog")
            ?? (database == LedgerProvider.Sqlite
                ? "Data Source=joblog.db"
                : throw new InvalidOperationException("JobLog:Database is 'postgres' but ConnectionStrings:JobLog is not set."));
        Validate(database, connectionString);
        return new WorkerSettings(
            database,
            connectionString,
            configuration["RabbitMq:Host"] ?? Environment.GetEnvironmentVariable("RABBITMQ_HOST"),
            configuration["RabbitMq:VirtualHost"] ?? "/",
            configuration["RabbitMq:Username"] ?? "guest",
            configuration["RabbitMq:Password"] ?? "guest",
            ushort.TryParse(configuration["RabbitMq:PrefetchCount"], out var prefetch) ? prefetch : null,
            int.TryParse(configuration["RabbitMq:ConcurrentMessageLimit"], out var limit) ? limit : null);
    }

    /// <summary>
    /// A connection string the provider cannot read is a setting error (exit 2 at once), not a ledger that is down: the
    /// migration would retry it for a minute and the command end in an unhandled exception. The message names the
    /// problem (a keyword at most), never the connection string's values.
    /// </summary>
    private static void Validate(LedgerProvider database, string connectionString)
    {
        try
        {
            _ = database == LedgerProvider.Sqlite
                ? new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(connectionString)
                : (System.Data.Common.DbConnectionStringBuilder)new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidOperationException(
                $"ConnectionStrings:JobLog is not a valid {(database == LedgerProvider.Sqlite ? "SQLite" : "PostgreSQL")} connection string: {ex.Message}");
        }
    }
}
