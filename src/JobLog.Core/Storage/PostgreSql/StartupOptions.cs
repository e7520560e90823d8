using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Npgsql;

namespace JobLog.Storage.PostgreSql;

/// <summary>
/// Whether a PostgreSQL server takes the startup settings JobLog adds to its sessions' <c>Options</c>
/// (<c>-c jit=off</c>, <see cref="PostgreSqlLedgerDatabase.WithoutJit"/>; <c>-c idle_in_transaction_session_timeout=…</c>,
/// <see cref="PostgreSqlLedgerDatabase.ForSessions"/>). A pooler that does not know the <c>options</c> startup parameter
/// refuses the connection (PgBouncer: FATAL 08P01 "unsupported startup parameter: options", unless it is listed in its
/// <c>ignore_startup_parameters</c>, which is empty by default): before session 24 nothing of JobLog's could connect
/// through such a PgBouncer. From the first refusal on, for the rest of the process, JobLog connects to that server (host,
/// port, database, user) without them; what the connection string's own <c>Options</c> say stays.
/// Also (session 24): a startup option overrides what the operator set with <c>ALTER DATABASE</c> or <c>ALTER ROLE</c>;
/// JobLog's first session to a server looks whether the operator set <c>idle_in_transaction_session_timeout</c> so, and
/// JobLog's own is left out for that server from then on (<see cref="NoteOperatorTimeout"/>).
/// </summary>
internal static partial class StartupOptions
{
    private static readonly ConcurrentDictionary<string, bool> s_refused = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, string> s_keys = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, bool> s_operatorTimeout = new(StringComparer.Ordinal);
    private static volatile bool s_anyRefused;
    private static volatile bool s_anyOperatorTimeout;

    /// <summary>The statement that tells whether the operator set the timeout for this database or login role (or both).</summary>
    public const string OperatorTimeoutQuery =
        "SELECT EXISTS (SELECT 1 FROM pg_db_role_setting s, unnest(s.setconfig) c " +
        "WHERE c LIKE 'idle\\_in\\_transaction\\_session\\_timeout=%' " +
        "AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())) " +
        "AND s.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = session_user)) " +
        "AND NOT (s.setdatabase = 0 AND s.setrole = 0))";

    /// <summary>Which connection strings JobLog builds for the server of <paramref name="connectionString"/>: 0 with its settings, 1 without its timeout, 2 without any.</summary>
    public static int StateOf(string connectionString) =>
        IsRefused(connectionString) ? 2 : OperatorSetsTimeout(connectionString) == true ? 1 : 0;

    /// <summary>Whether the operator set the timeout on the server's database or role; null until looked (<see cref="NoteOperatorTimeout"/>).</summary>
    public static bool? OperatorSetsTimeout(string connectionString) =>
        s_operatorTimeout.TryGetValue(Key(connectionString), out var sets) ? sets : null;

    /// <summary>What JobLog's first session to the server found (<see cref="OperatorTimeoutQuery"/>).</summary>
    public static void NoteOperatorTimeout(string connectionString, bool sets)
    {
        s_operatorTimeout[Key(connectionString)] = sets;
        if (sets)
        {
            s_anyOperatorTimeout = true;
        }
    }

    /// <summary>Whether <paramref name="connectionString"/>'s <c>Options</c> carry the timeout JobLog added (<see cref="PostgreSqlLedgerDatabase.ForSessions"/>).</summary>
    public static bool AddsTimeout(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString).Options is { } options && JobLogTimeout().IsMatch(options);

    /// <summary><paramref name="connectionString"/> without the timeout JobLog added, when the operator set one (else unchanged).</summary>
    public static string ForOperatorTimeout(string connectionString)
    {
        if (!s_anyOperatorTimeout || OperatorSetsTimeout(connectionString) != true)
        {
            return connectionString;
        }

        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (string.IsNullOrWhiteSpace(builder.Options))
        {
            return connectionString;
        }

        var rest = JobLogTimeout().Replace(builder.Options, "").Trim();
        builder.Options = rest.Length == 0 ? null : rest;
        return builder.ConnectionString;
    }

    /// <summary>Whether <paramref name="exception"/> (or an inner one) is a server's refusal of a startup parameter.</summary>
    public static bool IsRefusal(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is PostgresException { SqlState: PostgresErrorCodes.ProtocolViolation } p
                && p.MessageText.Contains("unsupported startup parameter", StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>After <see cref="IsRefusal"/>: JobLog's startup settings are left out for the server of <paramref name="connectionString"/>.</summary>
    /// <returns>True the first time for the server.</returns>
    public static bool Refuse(string connectionString)
    {
        var added = s_refused.TryAdd(Key(connectionString), false);
        s_anyRefused = true;
        return added;
    }

    /// <summary>Whether the server of <paramref name="connectionString"/> refused JobLog's startup settings.</summary>
    public static bool IsRefused(string connectionString) => s_anyRefused && s_refused.ContainsKey(Key(connectionString));

    /// <summary>True once per server that refused, for the one notice (warning 1054).</summary>
    public static bool TakeNotice(string connectionString) =>
        s_anyRefused && s_refused.TryGetValue(Key(connectionString), out var told) && !told
        && s_refused.TryUpdate(Key(connectionString), true, false);

    /// <summary><paramref name="connectionString"/> without the startup settings JobLog adds (the rest of its <c>Options</c> kept).</summary>
    public static string Without(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (string.IsNullOrWhiteSpace(builder.Options))
        {
            return connectionString;
        }

        var rest = JobLogSetting().Replace(builder.Options, "").Trim();
        builder.Options = rest.Length == 0 ? null : rest;
        return builder.ConnectionString;
    }

    [GeneratedRegex(@"-c\s*(jit\s*=\s*off|idle_in_transaction_session_timeout\s*=\s*\d+ms)\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex JobLogSetting();

    // JobLog writes its timeout in milliseconds with the unit, which tells it from one the connection string sets itself.
    [GeneratedRegex(@"-c\s*idle_in_transaction_session_timeout\s*=\s*\d+ms\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex JobLogTimeout();

    private static string Key(string connectionString) => s_keys.GetOrAdd(connectionString, static c =>
    {
        var b = new NpgsqlConnectionStringBuilder(c);
        return $"{b.Host}\n{b.Port}\n{b.Database}\n{b.Username}";
    });
}
