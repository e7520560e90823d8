using System.Runtime.CompilerServices;
using JobLog.Querying;
using JobLog.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace JobLog.AspNetCore.Dashboard;

/// <summary>
/// The ledger reads of one dashboard: at most <see cref="JobLogDashboardOptions.MaxConcurrentQueries"/> requests read at
/// once (one more is refused with a 429, never queued), and with every other dashboard of the application on the same
/// ledger at most the largest of their sizes (<see cref="LedgerReaders"/>), each through a context of the dashboards' own.
/// </summary>
internal sealed class DashboardReads
{
    private readonly SearchLimiter _own;
    private readonly LedgerReaders _ledger;

    /// <param name="slots">This dashboard's <see cref="JobLogDashboardOptions.MaxConcurrentQueries"/>.</param>
    /// <param name="ledger">The application's dashboards' reads of its ledger.</param>
    public DashboardReads(int slots, LedgerReaders ledger)
    {
        _own = new SearchLimiter(slots);
        _ledger = ledger;
        ledger.Add(slots);
    }

    /// <summary>A slot of this dashboard and one of the ledger's readers, released on dispose; null when either has none free.</summary>
    public IDisposable? TryEnter()
    {
        if (_own.TryEnter() is not { } own)
        {
            return null;
        }

        if (_ledger.TryEnter() is { } shared)
        {
            return new Slots(own, shared);
        }

        own.Dispose();
        return null;
    }

    /// <summary>A context on the dashboards' own connections.</summary>
    public JobLogDbContext CreateContext(JobLogContextFactory contexts) => _ledger.CreateContext(contexts);

    private sealed class Slots(IDisposable own, IDisposable shared) : IDisposable
    {
        public void Dispose()
        {
            shared.Dispose();
            own.Dispose();
        }
    }
}

/// <summary>
/// Every dashboard's reads of one ledger (one per <see cref="JobLogContextFactory"/>, the ledger of one application): at
/// most as many at once as the largest <see cref="JobLogDashboardOptions.MaxConcurrentQueries"/> of the dashboards mapped
/// before the first read, and on PostgreSQL through one pool of that size of their own (<see cref="LedgerDatabase.ForReaders"/>):
/// slow list queries on a large ledger, however many are asked for of however many dashboards, hold none of the connections
/// of the ledger's pool, which the writer (when the connection string sets <c>Max Auto Prepare</c>), its reachability
/// probe, the heartbeat and the scheduler use, and never more of the server's sessions than that. Each dashboard with its own
/// slots and its own pool let two dashboards of equal size queue for one pool's connections (Npgsql keeps a pool per
/// connection string) and two of different sizes hold both pools' sessions.
/// </summary>
internal sealed class LedgerReaders
{
    /// <summary>The dashboard's sessions' <c>Application Name</c> on PostgreSQL (after the application's own, when it sets one).</summary>
    public const string ApplicationName = "JobLog dashboard";

    private static readonly ConditionalWeakTable<JobLogContextFactory, LedgerReaders> s_ledgers = new();

    private readonly Lock _sync = new();
    private int _size;
    private SearchLimiter? _slots;
    private Func<JobLogDbContext>? _contexts;

    /// <summary>The readers of the ledger <paramref name="contexts"/> writes to.</summary>
    public static LedgerReaders Of(JobLogContextFactory contexts) => s_ledgers.GetValue(contexts, _ => new LedgerReaders());

    /// <summary>A dashboard's <see cref="JobLogDashboardOptions.MaxConcurrentQueries"/>; the largest counts (the first read fixes it).</summary>
    public void Add(int slots)
    {
        lock (_sync)
        {
            _size = Math.Max(_size, slots);
        }
    }

    /// <summary>A slot, released on dispose; null when every slot is taken.</summary>
    public IDisposable? TryEnter() => Slots().TryEnter();

    /// <summary>A context on the dashboards' own connections.</summary>
    public JobLogDbContext CreateContext(JobLogContextFactory contexts)
    {
        var size = Slots().Size;
        return LazyInitializer.EnsureInitialized(ref _contexts, () =>
        {
            var readers = contexts.Database.ForReaders(contexts.ConnectionString, ApplicationName, size);
            return readers == contexts.ConnectionString ? contexts.Create : contexts.Database.ContextFactory(readers);
        })();
    }

    private SearchLimiter Slots()
    {
        if (Volatile.Read(ref _slots) is { } slots)
        {
            return slots;
        }

        lock (_sync)
        {
            return _slots ??= new SearchLimiter(Math.Max(_size, 1));
        }
    }
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
                Enter();
                var services = http.RequestServices;
                var contexts = services.GetRequiredService<JobLogContextFactory>();
                _db = reads.CreateContext(contexts);
                var options = services.GetRequiredService<IOptions<JobLogOptions>>().Value;
                _queries = new LedgerQueries(_db, contexts.Database, options.SearchIndex) { SearchBudget = options.SearchBudget };
            }

            return _queries;
        }
    }

    /// <summary>Takes the request's slot, once.</summary>
    /// <exception cref="DashboardBusyException">Every slot is taken.</exception>
    public void Enter() => _slot ??= reads.TryEnter() ?? throw new DashboardBusyException();

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
