using Microsoft.EntityFrameworkCore.Design;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// Design-time factory for <c>dotnet ef migrations add &lt;Name&gt; --context SqliteJobLogDbContext
/// --output-dir Storage/Sqlite/Migrations</c> (see docs/storage.md).
/// </summary>
internal sealed class SqliteDesignTimeFactory : IDesignTimeDbContextFactory<SqliteJobLogDbContext>
{
    public SqliteJobLogDbContext CreateDbContext(string[] args) => new(SqliteJobLogDbContext.Options("Data Source=design.db"));
}
