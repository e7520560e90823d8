using System.Globalization;
using JobLog.Internal;
using JobLog.Recording;
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
/// The lock file is removed by its holder when the migration ends (session 41: it stayed beside every ledger, and beside
/// whatever a mistyped path named: <c>/dev/null.joblog-migrate.lock</c>); a migrator checks that the file it locked is
/// still the one at the path, and opens it again when not, so that one removed under it is never held beside a new one.
/// A path that is a directory, a device or anything but a regular file is refused before a lock file is made.
/// </summary>
internal static class SqliteMigrationLock
{
    public const string LockTable = "__JobLogMigrationsLock";

    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Waits until no other JobLog process migrates the ledger, then clears a lock row a killed one left. Returns the
    /// file lock (disposed after the migrations, which removes the file); null for an in-memory ledger, or when no file
    /// can be created next to it (EF Core's lock alone then, as before).
    /// </summary>
    /// <exception cref="IOException">The ledger's path is a directory, a device, a pipe or a socket.</exception>
    public static async Task<IDisposable?> TakeAsync(string connectionString, TimeProvider time, ILogger logger, CancellationToken cancellationToken)
    {
        if (SqliteSetup.FilePath(connectionString) is not { } file)
        {
            return null;
        }

        if (Directory.Exists(file))
        {
            throw new IOException($"The SQLite ledger's path {file} is a directory, not a database file: JobLog neither migrates nor locks it.");
        }

        if (SpoolFiles.IsRegularFile(file) is false)
        {
            throw new IOException($"The SQLite ledger's path {file} is not a regular file (a device, a pipe or a socket): JobLog neither migrates nor locks it.");
        }

        var path = file + ".joblog-migrate.lock";
        FileStream? held = null;
        var again = 0;
        while (held is null)
        {
            FileStream opened;
            try
            {
                opened = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (UnauthorizedAccessException)
            {
                return null;
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another live process holds it: it is migrating now.
                await Task.Delay(Poll, time, cancellationToken).ConfigureAwait(false);
                continue;
            }
            catch (IOException) when (++again < MaxAgain)
            {
                // Opened, then its holder removed it before the lock was taken: open (create) it again.
                continue;
            }
            catch (IOException)
            {
                return null;
            }

            if (!SpoolFiles.StillAt(opened, path) && ++again < MaxAgain)
            {
                // Locked after its holder removed it: a lock no other migrator sees. The lock is the file at the path.
                await opened.DisposeAsync().ConfigureAwait(false);
                continue;
            }

            held = opened;
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
            // A file that is not a database (SQLite Error 26), a disk that refuses: the lock file goes with the lock.
            new Held(held, path).Dispose();
            throw;
        }

        return new Held(held, path);
    }

    // A migrator that keeps finding its lock file removed under it (hundreds of times in a row) keeps the last one it
    // locked, as before removal: the bound is against a loop, not a wait.
    private const int MaxAgain = 1000;

    /// <summary>The lock: removed from its path while still held (on Windows, where a held file cannot be removed, just after).</summary>
    private sealed class Held(FileStream stream, string path) : IDisposable
    {
        public void Dispose()
        {
            if (!OperatingSystem.IsWindows() && SpoolFiles.StillAt(stream, path))
            {
                TryDelete(path);
            }

            stream.Dispose();
            if (OperatingSystem.IsWindows())
            {
                TryDelete(path);
            }
        }

        private static void TryDelete(string path)
        {
            try
            {
                File.Delete(path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Another migrator holds it now (Windows), or the directory refuses: a lock file left is harmless.
            }
        }
    }
}
