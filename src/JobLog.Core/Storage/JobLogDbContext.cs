using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace JobLog;

/// <summary>
/// The ledger's EF Core context. Query it with LINQ; JobLog writes through its own recorder.
/// Resolve it from DI after <c>AddJobLog</c>.
/// </summary>
public class JobLogDbContext : DbContext
{
    /// <summary>Name of JobLog's own migrations history table, kept apart from the application's.</summary>
    public const string MigrationsHistoryTable = "__JobLogMigrationsHistory";

    /// <summary>Creates the context.</summary>
    public JobLogDbContext(DbContextOptions<JobLogDbContext> options)
        : base(options)
    {
    }

    /// <summary>For the provider-specific subclasses that carry the migrations.</summary>
    protected JobLogDbContext(DbContextOptions options)
        : base(options)
    {
    }

    /// <summary>Dispatched messages.</summary>
    public DbSet<TaskLog> TaskLogs => Set<TaskLog>();

    /// <summary>Consume attempts.</summary>
    public DbSet<TaskRunLog> TaskRunLogs => Set<TaskRunLog>();

    /// <summary>Console commands.</summary>
    public DbSet<CommandLog> CommandLogs => Set<CommandLog>();

    /// <summary>Inbound HTTP requests.</summary>
    public DbSet<InputRequestLog> InputRequestLogs => Set<InputRequestLog>();

    /// <summary>Outbound HTTP requests.</summary>
    public DbSet<OutputRequestLog> OutputRequestLogs => Set<OutputRequestLog>();

    /// <summary>Objects related to outbound requests.</summary>
    public DbSet<OutputRequestRelatedObject> OutputRequestRelatedObjects => Set<OutputRequestRelatedObject>();

    /// <summary>Messages held by the JobLog scheduler (<c>x.AddJobLogScheduler()</c>) until they are due.</summary>
    public DbSet<ScheduledMessageLog> ScheduledMessages => Set<ScheduledMessageLog>();

    /// <summary>The processes that record to the ledger, with their heartbeats.</summary>
    public DbSet<HostLog> Hosts => Set<HostLog>();

    /// <summary>Original messages of deliveries that failed for good, kept (encrypted) to be retried.</summary>
    public DbSet<KeptMessageLog> KeptMessages => Set<KeptMessageLog>();

    /// <summary>What operators did to failures (retries, resolutions, deletions).</summary>
    public DbSet<FailureActionLog> FailureActions => Set<FailureActionLog>();

    /// <summary>The tasks of each failure action.</summary>
    public DbSet<FailureActionItemLog> FailureActionItems => Set<FailureActionItemLog>();

    /// <inheritdoc />
    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        ArgumentNullException.ThrowIfNull(configurationBuilder);
        // Every timestamp is UTC; SQLite forgets the kind, so restore it on read.
        configurationBuilder.Properties<DateTime>().HaveConversion<UtcDateTimeConverter>();
        configurationBuilder.Properties<DateTime?>().HaveConversion<UtcDateTimeConverter>();
    }

    /// <inheritdoc />
    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        ArgumentNullException.ThrowIfNull(modelBuilder);
        LedgerModel.Configure(modelBuilder);
    }

    // Npgsql's legacy timestamp behaviour (a process-wide switch an application may set) reads timestamptz as local time.
    private sealed class UtcDateTimeConverter() : ValueConverter<DateTime, DateTime>(
        v => v.Kind == DateTimeKind.Utc ? v : v.ToUniversalTime(),
        v => v.Kind == DateTimeKind.Local ? v.ToUniversalTime() : DateTime.SpecifyKind(v, DateTimeKind.Utc));
}
