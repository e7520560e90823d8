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
        ConnectionString = o.ConnectionString
            ?? throw new InvalidOperationException("JobLog has no database: call AddJobLog(o => o.UseSqlite(...)) or o.UseNpgsql(...).");
        Database = LedgerDatabase.For(o.Provider);
        _create = Database.ContextFactory(ConnectionString);
    }

    /// <summary>The ledger's database.</summary>
    public LedgerDatabase Database { get; }

    public LedgerProvider Provider => Database.Provider;

    public string ConnectionString { get; }

    public JobLogDbContext Create() => _create();
}
