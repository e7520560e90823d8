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
    /// Commits wait until the WAL is synced to the disk (<c>synchronous = FULL</c>): what PostgreSQL does by default, so
    /// that a committed record means the same on both databases (it survives the machine's crash).
    /// </summary>
    public static async Task WaitForTheDiskAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA synchronous=FULL;";
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Creates the directory of a file database (not of <c>:memory:</c> or a <c>file:</c> URI).</summary>
    public static void EnsureDirectory(string connectionString)
    {
        var dataSource = new SqliteConnectionStringBuilder(connectionString).DataSource;
        var directory = Path.GetDirectoryName(Path.GetFullPath(dataSource));
        if (!string.IsNullOrEmpty(directory) && !dataSource.StartsWith(':') && !dataSource.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
        {
            Directory.CreateDirectory(directory);
        }
    }
}
