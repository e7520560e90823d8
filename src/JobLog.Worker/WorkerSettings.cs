using System.Reflection;
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
        // Read once here, so that a setting the options cannot take is an error before anything starts.
        BindJobLog(configuration, new JobLogOptions());
        return new WorkerSettings(
            database,
            connectionString,
            configuration["RabbitMq:Host"] ?? Environment.GetEnvironmentVariable("RABBITMQ_HOST"),
            configuration["RabbitMq:VirtualHost"] ?? "/",
            configuration["RabbitMq:Username"] ?? "guest",
            configuration["RabbitMq:Password"] ?? "guest",
            Positive(configuration, "RabbitMq:PrefetchCount", ushort.MaxValue) is { } prefetch ? (ushort)prefetch : null,
            Positive(configuration, "RabbitMq:ConcurrentMessageLimit", int.MaxValue));
    }

    /// <summary>
    /// The configuration's <c>JobLog</c> section onto <paramref name="options"/>: every <see cref="JobLogOptions"/>
    /// property is a setting (<c>--JobLog:Durability=Committed</c>, <c>JobLog:Sweeper:Interval=00:00:10</c>, ...), and
    /// <c>JobLog:Database</c> is the Worker's own. A key that names no option, or a value its option cannot take, is an
    /// error, never the default in its place.
    /// </summary>
    public static void BindJobLog(IConfiguration configuration, JobLogOptions options)
    {
        var section = new ConfigurationBuilder()
            .AddInMemoryCollection(configuration.GetSection("JobLog").AsEnumerable()
                .Where(s => !string.Equals(s.Key, "JobLog:Database", StringComparison.OrdinalIgnoreCase)))
            .Build()
            .GetSection("JobLog");
        if (Unknown(section, typeof(JobLogOptions)) is { } unknown)
        {
            throw new InvalidOperationException($"{unknown.Path} is not a JobLog setting: {unknown.Type.Name} has no option '{unknown.Key}'.");
        }

        try
        {
            section.Bind(options, b => b.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidOperationException($"A JobLog setting cannot be used: {ex.Message}", ex);
        }
    }

    /// <summary>The first key of <paramref name="section"/> that names no property of <paramref name="type"/> (nested options too).</summary>
    private static (string Path, Type Type, string Key)? Unknown(IConfigurationSection section, Type type)
    {
        foreach (var child in section.GetChildren())
        {
            if (type.GetProperty(child.Key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase) is not { } property)
            {
                return (child.Path, type, child.Key);
            }

            var nested = property.PropertyType;
            if (nested.IsClass && nested != typeof(string) && !typeof(System.Collections.IEnumerable).IsAssignableFrom(nested)
                && Unknown(child, nested) is { } inner)
            {
                return inner;
            }
        }

        return null;
    }

    private static int? Positive(IConfiguration configuration, string key, int max) => configuration[key] switch
    {
        null or "" => null,
        var value when int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n >= 1 && n <= max => n,
        var value => throw new InvalidOperationException($"{key} must be a number from 1 to {max}, not '{value}'."),
    };

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
