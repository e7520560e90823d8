using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.EntityFrameworkCore.Sqlite.Migrations.Internal;

namespace JobLog.Storage.Sqlite;

/// <summary>Carries the SQLite migrations (<c>Storage/Sqlite/Migrations</c>). Registered as <see cref="JobLogDbContext"/>.</summary>
internal sealed class SqliteJobLogDbContext(DbContextOptions<SqliteJobLogDbContext> options) : JobLogDbContext(options)
{
    /// <summary>
    /// The context's options for <paramref name="connectionString"/>, with JobLog's own migrations history table and its
    /// own migration lock table (<see cref="SqliteMigrationLock"/>).
    /// </summary>
    public static DbContextOptions<SqliteJobLogDbContext> Options(string connectionString) =>
        new DbContextOptionsBuilder<SqliteJobLogDbContext>()
            .UseSqlite(connectionString, b => b.MigrationsHistoryTable(MigrationsHistoryTable))
            .ReplaceService<IHistoryRepository, LockedHistoryRepository>()
            .Options;

    /// <summary>
    /// EF Core's SQLite history with JobLog's lock table: EF Core's own (<c>__EFMigrationsLock</c>) is one for every context
    /// of the file, so the application's migrations and JobLog's would share it, and JobLog could not tell a row a killed
    /// JobLog left from one the application's <c>Migrate()</c> holds (review of session 21).
    /// </summary>
#pragma warning disable EF1001 // EF Core's internal SQLite history repository: the lock table's name is its only extension point.
    private sealed class LockedHistoryRepository(HistoryRepositoryDependencies dependencies) : SqliteHistoryRepository(dependencies)
    {
        protected override string LockTableName => SqliteMigrationLock.LockTable;
    }
#pragma warning restore EF1001
}
