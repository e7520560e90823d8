using JobLog.Storage.Sqlite;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>JobLog's migration lock on a SQLite ledger that is the application's own database.</summary>
public class SqliteMigrationLockTests
{
    [Test]
    public async Task TheApplicationsOwnMigrationLock_IsNeitherWaitedForNorTakenAway()
    {
        // The application's Migrate() holds EF Core's lock row (__EFMigrationsLock, one table for every context of the
        // file) in the same file: JobLog migrates under a lock table of its own, and leaves the application's row alone
        // (review of session 21: JobLog deleted it, and the application's concurrent migration then ran twice).
        await using var ledger = TestLedger.Sqlite();
        await using (var connection = new SqliteConnection(ledger.ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = """CREATE TABLE "__EFMigrationsLock" ("Id" INTEGER NOT NULL PRIMARY KEY, "Timestamp" TEXT NOT NULL); INSERT INTO "__EFMigrationsLock" VALUES (1, '2026-12-04 23:59:00');""";
            await command.ExecuteNonQueryAsync();
        }

        await using var host = await LedgerHost.StartAsync(ledger);
        await host.FlushAsync();

        await using var check = new SqliteConnection(ledger.ConnectionString);
        await check.OpenAsync();
        await using var count = check.CreateCommand();
        count.CommandText = """SELECT (SELECT COUNT(*) FROM "__EFMigrationsLock") || ',' || (SELECT COUNT(*) FROM "__JobLogMigrationsHistory" ) """;
        var result = (string)(await count.ExecuteScalarAsync())!;
        Assert.That(result.Split(',')[0], Is.EqualTo("1"), "the application's lock row stays");
        Assert.That(int.Parse(result.Split(',')[1], System.Globalization.CultureInfo.InvariantCulture), Is.GreaterThan(0), "JobLog migrated");
    }

    [Test]
    public async Task TheLockFile_IsRemovedAfterTheMigrationThatTookIt()
    {
        // Session 40: X.joblog-migrate.lock stayed beside every ledger a process had migrated.
        await using var ledger = TestLedger.Sqlite();
        var file = new SqliteConnectionStringBuilder(ledger.ConnectionString).DataSource;

        // The host's start waits for its migration (on a ledger that answers), and the lock is released when it ends.
        await using var host = await LedgerHost.StartAsync(ledger);
        await host.FlushAsync();

        Assert.That(File.Exists(file), Is.True, "migrated");
        Assert.That(File.Exists(file + ".joblog-migrate.lock"), Is.False, "the lock file is gone with its holder");
    }

    [Test]
    public async Task MigratorsTakingAndReleasingTheLockAtOnce_NeverHoldItTwo_AtATime()
    {
        // Removing the lock file is safe only if a migrator that opened it before its holder removed it does not then
        // hold a lock on a file no one else can see (another would create a new one and hold that too): each checks that
        // the file it locked is the one at the path, and opens again when not.
        await using var ledger = TestLedger.Sqlite();
        await using (var connection = new SqliteConnection(ledger.ConnectionString))
        {
            await connection.OpenAsync();
        }

        var lockFile = new SqliteConnectionStringBuilder(ledger.ConnectionString).DataSource + ".joblog-migrate.lock";
        var holders = 0;
        var most = 0;
        var taken = 0;
        using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            for (var round = 0; round < 8; round++)
            {
                var held = await SqliteMigrationLock.TakeAsync(ledger.ConnectionString, TimeProvider.System, NullLogger.Instance, bound.Token);
                Assert.That(held, Is.Not.Null);
                var now = Interlocked.Increment(ref holders);
                InterlockedMax(ref most, now);
                Interlocked.Increment(ref taken);
                await Task.Yield();
                Interlocked.Decrement(ref holders);
                held!.Dispose();
            }
        })));

        Assert.That(taken, Is.EqualTo(32));
        Assert.That(most, Is.EqualTo(1), "one holder at a time");
        Assert.That(File.Exists(lockFile), Is.False);
    }

    [TestCase("a directory")]
    [TestCase("a device")]
    public void APathThatIsNotADatabaseFile_IsRefusedClearly_WithoutALockFileBesideIt(string what)
    {
        var directory = Directory.CreateTempSubdirectory("joblog-lock-");
        var path = what == "a directory" ? directory.FullName : "/dev/null";
        if (what == "a device" && !File.Exists(path))
        {
            Assert.Ignore("no /dev/null here");
        }

        var existed = File.Exists(path + ".joblog-migrate.lock");
        try
        {
            var refused = Assert.ThrowsAsync<IOException>(() => SqliteMigrationLock.TakeAsync($"Data Source={path}", TimeProvider.System, NullLogger.Instance, CancellationToken.None));

            Assert.That(refused!.Message, Does.Contain(path).And.Contain(what == "a directory" ? "a directory" : "not a regular file"));
            Assert.That(File.Exists(path + ".joblog-migrate.lock"), Is.EqualTo(existed), "no lock file made beside it");
        }
        finally
        {
            directory.Delete(recursive: true);
            if (!existed)
            {
                File.Delete(path + ".joblog-migrate.lock");
            }
        }
    }

    [Test]
    public async Task ATextFileAsTheLedger_FailsAsSqliteSays_AndLeavesNoLockFileBesideIt()
    {
        var directory = Directory.CreateTempSubdirectory("joblog-lock-");
        try
        {
            var path = Path.Combine(directory.FullName, "passwd");
            await File.WriteAllTextAsync(path, string.Concat(Enumerable.Repeat("root:x:0:0:root:/root:/bin/bash\n", 200)));

            Assert.ThrowsAsync<SqliteException>(() => SqliteMigrationLock.TakeAsync($"Data Source={path}", TimeProvider.System, NullLogger.Instance, CancellationToken.None));

            Assert.That(File.Exists(path + ".joblog-migrate.lock"), Is.False, "the lock file goes with the failed lock");
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var seen = Volatile.Read(ref target);
        while (value > seen && Interlocked.CompareExchange(ref target, value, seen) is var was && was != seen)
        {
            seen = was;
        }
    }
}
