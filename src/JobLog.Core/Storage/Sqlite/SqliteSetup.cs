using System.Globalization;
using Microsoft.Data.Sqlite;

namespace JobLog.Storage.Sqlite;

/// <summary>SQLite connection settings JobLog relies on.</summary>
internal static class SqliteSetup
{
    public static async Task ConfigureAsync(SqliteConnection connection, TimeSpan busyTimeout, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        // The busy timeout first: any other statement may already wait for a lock. NORMAL sync is durable in WAL mode
        // against process crashes (the schema switches the file to WAL once); the writer's connection asks for FULL
        // (WaitForTheDiskAsync) unless its durability is Buffered.
        // The write path touches index pages all over a large file (keys are GUIDs): a page cache of up to 64 MiB
        // instead of SQLite's 2 MiB saves most re-reads, and checkpointing every 10,000 pages instead of 1,000 writes a
        // hot page back (and syncs the file) ten times less often. The WAL file is cut back to 64 MiB after a checkpoint.
        // The planner's statistics are kept by Optimize, at start-up and before each sweep, not here (see there).
        command.CommandText = "PRAGMA busy_timeout=" +
            ((int)busyTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) +
            "; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA wal_autocheckpoint=10000; PRAGMA journal_size_limit=67108864;" +
            "";
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Keeps the planner's statistics: without them the sweeper's set-based statements pick the State index over the
    /// primary key and scan the table per batch (a 1,000,000-task ledger: 93 s per sweep instead of 7). analysis_limit
    /// bounds its cost. Run at start-up and before each sweep, never on every connection JobLog opens: when it analyzes
    /// a table it changes the schema (<c>sqlite_stat1</c>), and a statement another connection prepares at that moment
    /// through the search index's triggers can fail with "no such table" (the application's own connections included;
    /// <c>SqliteStatisticsTests</c>).
    /// </summary>
    public const string Optimize = "PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002;";

    /// <summary>
    /// After <see cref="Optimize"/>: the statistics of the task indexes led by <c>State</c> and <c>Name</c>, written from the
    /// counts rollup (exact rows per state and per name) when the table has statistics. With <c>analysis_limit</c>
    /// SQLite reads about a thousand entries of each index, and where they all share the first column's value (every
    /// index led by a state or a name, past a few thousand tasks) it records about a thousand rows per value: at 10
    /// million tasks a state then looks as selective as one failure group, and a group's summary walked the 100,000
    /// failed tasks through the State index and read each row (330 ms warm instead of 7; docs/scale.md "Session 16
    /// (lead)"). Connections opened afterwards plan with them (<c>ANALYZE sqlite_schema</c> reloads this one's).
    /// </summary>
    public static readonly string StatisticsFromCounts =
        IndexStatistics("IX_JobLogTasks_State_DispatchedAt", "c.n || ' ' || max(1, c.n / c.states) || ' 1'") +
        IndexStatistics("IX_JobLogTasks_Name_DispatchedAt", "c.n || ' ' || max(1, c.n / c.names) || ' 1'") +
        IndexStatistics("IX_JobLogTasks_Name_State_DispatchedAt", "c.n || ' ' || max(1, c.n / c.names) || ' ' || max(1, c.n / c.pairs) || ' 1'") +
        "ANALYZE sqlite_schema;";

    /// <summary>
    /// One index's <c>sqlite_stat1</c> row, <paramref name="stat"/> computed over <c>c</c>: the tasks (<c>n</c>), distinct
    /// states, names and (name, state) pairs with tasks, from the counts rollup; left as it is while the rollup is empty.
    /// </summary>
    private static string IndexStatistics(string index, string stat) =>
        $"""
        UPDATE sqlite_stat1 SET stat = (
            SELECT {stat} FROM (SELECT sum("Count") AS n, count(DISTINCT "State") AS states, count(DISTINCT "Name") AS names,
                (SELECT count(*) FROM (SELECT DISTINCT "Name", "State" FROM "{LedgerRollups.Counts}" WHERE "Count" > 0)) AS pairs
                FROM "{LedgerRollups.Counts}" WHERE "Count" > 0) AS c)
        WHERE tbl = '{LedgerModel.Tasks}' AND idx = '{index}' AND EXISTS (SELECT 1 FROM "{LedgerRollups.Counts}" WHERE "Count" > 0);

        """;

    /// <summary>Whether the file has planner statistics at all (<c>sqlite_stat1</c> exists once a table was analyzed).</summary>
    public const string HasStatistics = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'";

    /// <summary>
    /// Commits wait until the WAL is synced to the disk (<c>synchronous = FULL</c>): what PostgreSQL does by default, so
    /// that a committed record means the same on both databases (it survives the machine's crash).
    /// </summary>
    public static async Task WaitForTheDiskAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA synchronous=FULL;";
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The full path of a file database, as Microsoft.Data.Sqlite opens it: a relative path from the current directory,
    /// <c>|DataDirectory|</c> from the application domain's <c>DataDirectory</c> (else the application's base directory),
    /// a <c>file:</c> URI's path (percent-decoded). Null for an in-memory database (<c>:memory:</c>, <c>Mode=Memory</c>,
    /// <c>file::memory:</c>, <c>?mode=memory</c>).
    /// </summary>
    public static string? FilePath(string connectionString)
    {
        var builder = new SqliteConnectionStringBuilder(connectionString);
        var dataSource = builder.DataSource;
        if (string.IsNullOrEmpty(dataSource) || builder.Mode == SqliteOpenMode.Memory || dataSource.StartsWith(':'))
        {
            return null;
        }

        if (dataSource.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
        {
            // https://sqlite.org/uri.html: file:path?query, file:///path, file://localhost/path.
            var rest = dataSource[5..];
            var query = rest.IndexOf('?', StringComparison.Ordinal);
            var path = query < 0 ? rest : rest[..query];
            if (query >= 0 && rest[(query + 1)..].Split('&').Any(p => p.Equals("mode=memory", StringComparison.OrdinalIgnoreCase)))
            {
                return null;
            }

            if (path.StartsWith("//", StringComparison.Ordinal))
            {
                var slash = path.IndexOf('/', 2);
                path = slash < 0 ? "" : path[slash..];
            }

            dataSource = Uri.UnescapeDataString(path);
            if (dataSource.Length == 0 || dataSource.StartsWith(':'))
            {
                return null;
            }
        }
        else if (dataSource.StartsWith(DataDirectory, StringComparison.OrdinalIgnoreCase))
        {
            var directory = AppDomain.CurrentDomain.GetData("DataDirectory") as string;
            dataSource = Path.Combine(string.IsNullOrEmpty(directory) ? AppContext.BaseDirectory : directory, dataSource[DataDirectory.Length..]);
        }

        return Path.GetFullPath(dataSource);
    }

    private const string DataDirectory = "|DataDirectory|";

    /// <summary>
    /// Whether the connection opens its file read-only: <c>Mode=ReadOnly</c>, or a <c>file:</c> URI whose query says
    /// <c>mode=ro</c> or <c>immutable=1</c> (https://sqlite.org/uri.html; SQLite reads a boolean as 1, yes, true or on).
    /// Opened so, every statement that writes fails with SQLite Error 8 ("attempt to write a readonly database").
    /// </summary>
    public static bool IsReadOnly(string connectionString)
    {
        var builder = new SqliteConnectionStringBuilder(connectionString);
        if (builder.Mode == SqliteOpenMode.ReadOnly)
        {
            return true;
        }

        var dataSource = builder.DataSource;
        var query = dataSource.IndexOf('?', StringComparison.Ordinal);
        if (!dataSource.StartsWith("file:", StringComparison.OrdinalIgnoreCase) || query < 0)
        {
            return false;
        }

        foreach (var parameter in dataSource[(query + 1)..].Split('#')[0].Split('&'))
        {
            var equals = parameter.IndexOf('=', StringComparison.Ordinal);
            var (name, value) = equals < 0 ? (parameter, "") : (parameter[..equals], Uri.UnescapeDataString(parameter[(equals + 1)..]));
            if (name.Equals("mode", StringComparison.OrdinalIgnoreCase) && value.Equals("ro", StringComparison.OrdinalIgnoreCase)
                || name.Equals("immutable", StringComparison.OrdinalIgnoreCase) && value.ToUpperInvariant() is "1" or "YES" or "TRUE" or "ON")
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Creates the directory of a file database (<see cref="FilePath"/>; none for an in-memory one).</summary>
    public static void EnsureDirectory(string connectionString)
    {
        if (FilePath(connectionString) is { } file && Path.GetDirectoryName(file) is { Length: > 0 } directory)
        {
            Directory.CreateDirectory(directory);
        }
    }
}
