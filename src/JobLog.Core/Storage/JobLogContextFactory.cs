using Microsoft.Extensions.Options;

namespace JobLog.Storage;

/// <summary>Builds the chosen database's EF Core options once and creates contexts from them.</summary>
internal sealed class JobLogContextFactory
{
    private readonly Func<JobLogDbContext> _create;

    /// <exception cref="InvalidOperationException">No database was chosen.</exception>
    public JobLogContextFactory(IOptions<JobLogOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var o = options.Value;
        var connectionString = o.ConnectionString
            ?? throw new InvalidOperationException("JobLog has no database: call AddJobLog(o => o.UseSqlite(...)) or o.UseNpgsql(...).");
        Database = LedgerDatabase.For(o.Provider);
        ConnectionString = Database.ForSessions(connectionString, o.IdleInTransactionTimeout);
        _create = Database.ContextFactory(ConnectionString);
    }

    /// <summary>The ledger's database.</summary>
    public LedgerDatabase Database { get; }

    public LedgerProvider Provider => Database.Provider;

    /// <summary>What JobLog's sessions connect with: the options' connection string with JobLog's session settings (<see cref="LedgerDatabase.ForSessions"/>).</summary>
    public string ConnectionString { get; }

    public JobLogDbContext Create() => _create();
}
