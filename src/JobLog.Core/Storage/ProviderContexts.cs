using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace JobLog.Storage;

/// <summary>Carries the SQLite migrations. Registered as <see cref="JobLogDbContext"/>.</summary>
internal sealed class SqliteJobLogDbContext(DbContextOptions<SqliteJobLogDbContext> options) : JobLogDbContext(options);

/// <summary>Carries the PostgreSQL migrations. Registered as <see cref="JobLogDbContext"/>.</summary>
internal sealed class NpgsqlJobLogDbContext(DbContextOptions<NpgsqlJobLogDbContext> options) : JobLogDbContext(options)
{
    /// <summary>The column type of every timestamp, whatever the application's Npgsql settings.</summary>
    internal const string TimestampColumnType = "timestamp with time zone";

    /// <inheritdoc />
    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        base.ConfigureConventions(configurationBuilder);
        // Npgsql maps DateTime to timestamptz by default, but to timestamp (without time zone) when the application sets
        // Npgsql.EnableLegacyTimestampBehavior (a process-wide switch): the model would then differ from the migrations
        // and the ledger would never be created. Stated explicitly, the model is the same under either setting.
        configurationBuilder.Properties<DateTime>().HaveColumnType(TimestampColumnType);
        configurationBuilder.Properties<DateTime?>().HaveColumnType(TimestampColumnType);
    }
}

/// <summary>Design-time factory for <c>dotnet ef migrations add ... --context SqliteJobLogDbContext</c>.</summary>
internal sealed class SqliteDesignTimeFactory : IDesignTimeDbContextFactory<SqliteJobLogDbContext>
{
    public SqliteJobLogDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<SqliteJobLogDbContext>()
            .UseSqlite("Data Source=design.db", o => o.MigrationsHistoryTable(JobLogDbContext.MigrationsHistoryTable))
            .Options);
}

/// <summary>Design-time factory for <c>dotnet ef migrations add ... --context NpgsqlJobLogDbContext</c>.</summary>
internal sealed class NpgsqlDesignTimeFactory : IDesignTimeDbContextFactory<NpgsqlJobLogDbContext>
{
    public NpgsqlJobLogDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<NpgsqlJobLogDbContext>()
            .UseNpgsql("Host=localhost;Database=joblog_design", o => o.MigrationsHistoryTable(JobLogDbContext.MigrationsHistoryTable))
            .Options);
}
