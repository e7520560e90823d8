using Microsoft.EntityFrameworkCore.Design;

namespace JobLog.Storage.PostgreSql;

/// <summary>
/// Design-time factory for <c>dotnet ef migrations add &lt;Name&gt; --context NpgsqlJobLogDbContext
/// --output-dir Storage/PostgreSql/Migrations</c> (see docs/storage.md).
/// </summary>
internal sealed class NpgsqlDesignTimeFactory : IDesignTimeDbContextFactory<NpgsqlJobLogDbContext>
{
    public NpgsqlJobLogDbContext CreateDbContext(string[] args) => new(NpgsqlJobLogDbContext.Options("Host=localhost;Database=joblog_design"));
}
