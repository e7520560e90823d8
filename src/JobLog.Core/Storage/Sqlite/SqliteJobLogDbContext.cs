using Microsoft.EntityFrameworkCore;

namespace JobLog.Storage.Sqlite;

/// <summary>Carries the SQLite migrations (<c>Storage/Sqlite/Migrations</c>). Registered as <see cref="JobLogDbContext"/>.</summary>
internal sealed class SqliteJobLogDbContext(DbContextOptions<SqliteJobLogDbContext> options) : JobLogDbContext(options)
{
    /// <summary>The context's options for <paramref name="connectionString"/>, with JobLog's own migrations history table.</summary>
    public static DbContextOptions<SqliteJobLogDbContext> Options(string connectionString) =>
        new DbContextOptionsBuilder<SqliteJobLogDbContext>()
            .UseSqlite(connectionString, b => b.MigrationsHistoryTable(MigrationsHistoryTable))
            .Options;
}
