using System.Globalization;
using JobLog.Internal;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// Who migrates a SQLite ledger now. EF Core's migration lock on SQLite is a row of a lock table, inserted before the
/// migrations and deleted after them: a process killed in between leaves the row, and every later <c>Migrate</c> waits
/// for it for ever, so the application never starts again
/// (<c>FaultTests.KilledDuringStartupMigrationOfASqliteLedger_TheNextProcessStartsAndRecords</c>). JobLog's context has a
/// lock table of its own (<see cref="LockTable"/>; EF Core's <c>__EFMigrationsLock</c> stays the application's), and its
/// migrators first take an exclusive lock on a file next to the ledger, which the operating system releases when the
/// process dies: the holder is the only JobLog migrator alive, so a row in JobLog's lock table was left by a killed one
/// and is deleted. JobLog's migrations run with <c>dotnet ef database update</c> at the same moment are not seen.
/// </summary>
internal static class SqliteMigrationLock
{
    public const string LockTable = "__JobLogMigrationsLock";

    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Waits until no other JobLog process migrates the ledger, then clears a lock row a killed one left. Returns the
    /// file lock (disposed after the migrations); null for an in-memory ledger, or when no file can be created next to
    /// it (EF Core's lock alone then, as before).
    /// </summary>
    public static async Task<IDisposable?> TakeAsync(string connectionString, TimeProvider time, ILogger logger, CancellationToken cancellationToken)
    {
        if (SqliteSetup.FilePath(connectionString) is not { } file)
        {
            return null;
        }

        var path = file + ".joblog-migrate.lock";
        FileStream? held = null;
        while (held is null)
        {
            try
            {
                held = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (UnauthorizedAccessException)
            {
                return null;
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another live process holds it: it is migrating now.
                await Task.Delay(Poll, time, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException)
            {
                return null;
            }
        }

        try
        {
            await using var connection = new SqliteConnection(connectionString);
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            await using var command = connection.CreateCommand();
            command.CommandText = $"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{LockTable}'";
            if (Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture) > 0)
            {
                command.CommandText = $"DELETE FROM \"{LockTable}\"";
                if (await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0)
                {
                    Log.MigrationLockCleared(logger, file);
                }
            }
        }
        catch
        {
            held.Dispose();
            throw;
        }

        return held;
    }
}
