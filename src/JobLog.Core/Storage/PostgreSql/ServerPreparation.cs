using System.Collections.Concurrent;
using System.Data.Common;
using Npgsql;

namespace JobLog.Storage.PostgreSql;

/// <summary>
/// Whether JobLog keeps statements prepared on a PostgreSQL server: the writer's and the sweeper's automatic preparation
/// (<see cref="PostgreSqlLedgerDatabase.OpenAsync"/>) and the failures list's <see cref="PreparedReads"/>. A pooler that
/// gives each transaction whichever server connection is free and does not carry prepared statements across them
/// (PgBouncer in transaction mode before 1.21, or without <c>max_prepared_statements</c>) answers such a statement with
/// 26000 "prepared statement … does not exist" or 42P05 "… already exists": the writer retried its batch for ever.
/// </summary>
/// <remarks>
/// Off for a database when its connection string sets <c>Max Auto Prepare</c> itself (0: the way to say "no prepared
/// statements" to Npgsql too), and from the first such error on, for the rest of the process (per host, port, database
/// and user: the writer's, the sweeper's and the dashboard's connection strings differ in their other settings).
/// </remarks>
internal static class ServerPreparation
{
    private static readonly ConcurrentDictionary<string, bool> s_lost = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, Settings> s_settings = new(StringComparer.Ordinal);

    /// <summary>What the writer logs with the first such error (its batch is then written without prepared statements).</summary>
    public const string LostMessage =
        "A statement JobLog keeps prepared on the server was gone in the next transaction: the connection goes through a pooler " +
        "that does not keep prepared statements (PgBouncer in transaction mode before 1.21, or without max_prepared_statements). " +
        "JobLog prepares no statement on this database from now on; add 'Max Auto Prepare=0' to the connection string to start that way.";

    /// <summary>Whether the connection string sets Npgsql's <c>Max Auto Prepare</c> itself (JobLog then leaves it as it is).</summary>
    public static bool SetsAutoPrepare(string connectionString) => Of(connectionString).SetsAutoPrepare;

    /// <summary>Whether JobLog may keep statements prepared on the database of <paramref name="connectionString"/>.</summary>
    public static bool IsOn(string connectionString)
    {
        var settings = Of(connectionString);
        return !settings.NoAutoPrepare && !s_lost.ContainsKey(settings.Key);
    }

    /// <summary>Whether <paramref name="exception"/> says a prepared statement was not there (or already was).</summary>
    public static bool IsLost(Exception exception) =>
        exception is PostgresException { SqlState: PostgresErrorCodes.InvalidSqlStatementName or PostgresErrorCodes.DuplicatePreparedStatement };

    /// <summary>After <see cref="IsLost"/>: no statement prepared on the database of <paramref name="connectionString"/> from now on.</summary>
    /// <returns>True the first time for the database.</returns>
    public static bool TurnOff(string connectionString) => s_lost.TryAdd(Of(connectionString).Key, true);

    /// <summary>A connection string's settings that matter here, parsed once (the failures reads ask on every statement).</summary>
    private static Settings Of(string connectionString) => s_settings.GetOrAdd(connectionString, static c =>
    {
        var keys = new DbConnectionStringBuilder { ConnectionString = c };
        var sets = keys.ContainsKey("Max Auto Prepare") || keys.ContainsKey("MaxAutoPrepare");
        var builder = new NpgsqlConnectionStringBuilder(c);
        return new Settings(sets, sets && builder.MaxAutoPrepare == 0, Key(builder));
    });

    private sealed record Settings(bool SetsAutoPrepare, bool NoAutoPrepare, string Key);

    private static string Key(NpgsqlConnectionStringBuilder b) => $"{b.Host}\n{b.Port}\n{b.Database}\n{b.Username}";
}
