using JobLog.Querying;
using JobLog.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace JobLog.AspNetCore.Dashboard;

/// <summary>
/// The ledger reads of one dashboard: at most <see cref="JobLogDashboardOptions.MaxConcurrentQueries"/> requests read at
/// once (one more is refused with a 429, never queued), each through a context of the dashboard's own. On PostgreSQL those
/// contexts connect through a pool of their own of that size (<see cref="LedgerDatabase.ForReaders"/>): slow list queries
/// on a large ledger, however many are asked for, hold none of the connections of the ledger's pool, which the writer (when
/// the connection string sets <c>Max Auto Prepare</c>), its reachability probe, the heartbeat and the scheduler use.
/// </summary>
internal sealed class DashboardReads(int slots)
{
    /// <summary>The dashboard's sessions' <c>Application Name</c> on PostgreSQL (after the application's own, when it sets one).</summary>
    public const string ApplicationName = "JobLog dashboard";

    private readonly SearchLimiter _slots = new(slots);
    private Func<JobLogDbContext>? _contexts;

    /// <summary>A slot, released on dispose; null when every slot is taken.</summary>
    public IDisposable? TryEnter() => _slots.TryEnter();

    /// <summary>A context on the dashboard's own connections.</summary>
    public JobLogDbContext CreateContext(JobLogContextFactory contexts) =>
        LazyInitializer.EnsureInitialized(ref _contexts, () =>
        {
            var readers = contexts.Database.ForReaders(contexts.ConnectionString, ApplicationName, slots);
            return readers == contexts.ConnectionString ? contexts.Create : contexts.Database.ContextFactory(readers);
        })();
}

/// <summary>
/// One request's reads (<see cref="DashboardGuard"/> begins and ends it): its slot and its context are taken at its first
/// query, and given back when the endpoint returns.
/// </summary>
internal sealed class DashboardRead(DashboardReads reads, HttpContext http) : IAsyncDisposable
{
    private IDisposable? _slot;
    private JobLogDbContext? _db;
    private LedgerQueries? _queries;

    /// <summary>The request's queries.</summary>
    /// <exception cref="DashboardBusyException">Every slot is taken.</exception>
    public LedgerQueries Queries
    {
        get
        {
            if (_queries is null)
            {
                _slot ??= reads.TryEnter() ?? throw new DashboardBusyException();
                var services = http.RequestServices;
                var contexts = services.GetRequiredService<JobLogContextFactory>();
                _db = reads.CreateContext(contexts);
                _queries = new LedgerQueries(_db, contexts.Database, services.GetRequiredService<IOptions<JobLogOptions>>().Value.SearchIndex);
            }

            return _queries;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_db is not null)
        {
            await _db.DisposeAsync().ConfigureAwait(false);
        }

        _slot?.Dispose();
    }
}

/// <summary>Every slot of <see cref="JobLogDashboardOptions.MaxConcurrentQueries"/> is taken (a 429).</summary>
internal sealed class DashboardBusyException : Exception
{
    public DashboardBusyException()
        : base(Message429)
    {
    }

    public DashboardBusyException(string message)
        : base(message)
    {
    }

    public DashboardBusyException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>What the 429 says.</summary>
    public const string Message429 = "Too many dashboard requests are reading the ledger; try again in a moment.";
}
