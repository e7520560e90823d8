using JobLog.Testing;
using Microsoft.Data.Sqlite;
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
}
