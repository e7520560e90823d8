using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace JobLog.Storage;

/// <summary>Builds the chosen database's EF Core options once and creates contexts from them.</summary>
internal sealed class JobLogContextFactory
{
    private readonly Func<JobLogDbContext> _create;
    private readonly Func<JobLogDbContext> _createUnpooled;

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
        _createUnpooled = Database.ContextFactory(ConnectionString, pooled: false);
    }

    /// <summary>The ledger's database.</summary>
    public LedgerDatabase Database { get; }

    public LedgerProvider Provider => Database.Provider;

    /// <summary>What JobLog's sessions connect with: the options' connection string with JobLog's session settings (<see cref="LedgerDatabase.ForSessions"/>).</summary>
    public string ConnectionString { get; }

    /// <summary>
    /// Whether the connection string opens the ledger read-only (<see cref="LedgerDatabase.IsReadOnly"/>): then nothing can
    /// be written there, and JobLog's background services that write (<see cref="LedgerWritingHost{TService}"/>) do not start.
    /// </summary>
    public bool ReadOnly => Database.IsReadOnly(ConnectionString);

    public JobLogDbContext Create() => _create();

    /// <summary>
    /// A context for a periodic poll, its connection open: its statements share one session, which on PostgreSQL is
    /// closed with the context, not kept idle in a pool between polls where no other process can use it
    /// (<see cref="LedgerDatabase.ContextFactory"/>'s <c>pooled</c>; session 32).
    /// </summary>
    public async Task<JobLogDbContext> OpenUnpooledAsync(CancellationToken cancellationToken)
    {
        var context = _createUnpooled();
        try
        {
            await context.Database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            return context;
        }
        catch
        {
            await context.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}
