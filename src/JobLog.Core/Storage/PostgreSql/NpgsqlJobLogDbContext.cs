using Microsoft.EntityFrameworkCore;

namespace JobLog.Storage.PostgreSql;

/// <summary>Carries the PostgreSQL migrations (<c>Storage/PostgreSql/Migrations</c>). Registered as <see cref="JobLogDbContext"/>.</summary>
internal sealed class NpgsqlJobLogDbContext(DbContextOptions<NpgsqlJobLogDbContext> options) : JobLogDbContext(options)
{
    /// <summary>The column type of every timestamp, whatever the application's Npgsql settings.</summary>
    internal const string TimestampColumnType = "timestamp with time zone";

    /// <summary>The context's options for <paramref name="connectionString"/>, with JobLog's own migrations history table.</summary>
    public static DbContextOptions<NpgsqlJobLogDbContext> Options(string connectionString) =>
        new DbContextOptionsBuilder<NpgsqlJobLogDbContext>()
            .UseNpgsql(connectionString, b => b.MigrationsHistoryTable(MigrationsHistoryTable))
            .AddInterceptors(PreparedReads.Instance, RefusedStartupOptions.Instance)
            .Options;

    /// <summary>Notes a server's refusal of JobLog's startup settings (<see cref="StartupOptions"/>): the next contexts connect without them.</summary>
    private sealed class RefusedStartupOptions : Microsoft.EntityFrameworkCore.Diagnostics.DbConnectionInterceptor
    {
        public static readonly RefusedStartupOptions Instance = new();

        public override void ConnectionFailed(System.Data.Common.DbConnection connection, Microsoft.EntityFrameworkCore.Diagnostics.ConnectionErrorEventData eventData) =>
            Note(connection, eventData);

        public override Task ConnectionFailedAsync(
            System.Data.Common.DbConnection connection, Microsoft.EntityFrameworkCore.Diagnostics.ConnectionErrorEventData eventData, CancellationToken cancellationToken = default)
        {
            Note(connection, eventData);
            return Task.CompletedTask;
        }

        private static void Note(System.Data.Common.DbConnection connection, Microsoft.EntityFrameworkCore.Diagnostics.ConnectionErrorEventData eventData)
        {
            if (StartupOptions.IsRefusal(eventData.Exception))
            {
                StartupOptions.Refuse(connection.ConnectionString);
            }
        }
    }

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

    /// <inheritdoc />
    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        base.OnModelCreating(modelBuilder);
        Partitioning.PartitionPruning.Configure(modelBuilder);
        // The host pass reads the side table of open runs instead (OpenRuns): no run index names a column a finish changes.
        var runs = modelBuilder.Entity<TaskRunLog>().Metadata;
        runs.RemoveIndex(runs.FindIndex(runs.FindProperty(nameof(TaskRunLog.HostInstanceId))!)!);
    }
}
