using System.ComponentModel.DataAnnotations;
using JobLog.Internal;
using JobLog.Querying;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace JobLog.AspNetCore.Dashboard;

/// <summary>Options of <c>app.MapJobLogDashboard(...)</c>; validated when the dashboard is mapped.</summary>
public sealed class JobLogDashboardOptions
{
    /// <summary>Shown in the header and the window title. Default <c>JobLog</c>.</summary>
    [Required(ErrorMessage = "{0} is required.")]
    public string Title { get; set; } = "JobLog";

    /// <summary>Rows per page when the request does not say (<c>limit</c>, at most 500). Default 50; 1 to 500.</summary>
    [Between(1, ListFilter.MaxLimit)]
    public int PageSize { get; set; } = ListFilter.DefaultLimit;

    /// <summary>How often live pages poll the server. Default 5 s; <see cref="TimeSpan.Zero"/> turns live refresh off; not negative.</summary>
    [NotNegative]
    [AtMostDays(30)]
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Allows actions that change the ledger or the bus from the dashboard (POST, same-origin only). Default false: the
    /// dashboard is read-only. This maps the application's own <see cref="TaskActions"/>; JobLog's failure actions
    /// (retry from the kept message, resolve, archive) are enabled separately, by <see cref="Actions"/>.
    /// </summary>
    public bool EnableActions { get; set; }

    /// <summary>
    /// Acting on failures (retry, resolve, archive from the Failures pages and a failed task's page): off until
    /// <c>o.Actions.RequireAuthorization("joblog-operator")</c> names the operators' policy. Independent of
    /// <see cref="EnableActions"/>.
    /// </summary>
    [ValidateObjectMembers]
    public JobLogDashboardActionsOptions Actions { get; } = new();

    /// <summary>Task actions offered when <see cref="EnableActions"/> is on.</summary>
    internal List<DashboardTaskAction> TaskActions { get; } = [];

    /// <summary>
    /// Free-text searches (<c>q</c>, a LIKE over every row in range) that may run at once on this dashboard; one more
    /// is answered 429 with <c>Retry-After</c> instead of queueing. Default 4; at least 1.
    /// </summary>
    [AtLeast(1)]
    public int MaxConcurrentSearches { get; set; } = 4;

    /// <summary>
    /// Requests of this dashboard that may read the ledger at once: every page and API answer but the static assets, lists,
    /// details and the overview alike (a search takes one of these and one of <see cref="MaxConcurrentSearches"/>). One
    /// more is answered 429 with <c>Retry-After</c> instead of queueing. On PostgreSQL the dashboard reads through a
    /// connection pool of its own of this size (<c>Application Name</c> "JobLog dashboard"), never through the ledger's:
    /// slow list queries on a large ledger cannot take the connections the writer, the heartbeat and the scheduler use, and
    /// add at most this many sessions to the server. Several dashboards of one application share one bound and one pool, of
    /// the largest of their values (each still reads at most its own number at once). Default 8; at least 1.
    /// </summary>
    [AtLeast(1)]
    public int MaxConcurrentQueries { get; set; } = 8;

    /// <summary>The slots of <see cref="MaxConcurrentQueries"/> and the dashboard's contexts, made when the dashboard is mapped.</summary>
    internal DashboardReads Reads { get; set; } = null!;

    /// <summary>The slots of <see cref="MaxConcurrentSearches"/>, made at the first search.</summary>
    internal SearchLimiter Searches => LazyInitializer.EnsureInitialized(ref _searches, () => new SearchLimiter(MaxConcurrentSearches));

    private SearchLimiter? _searches;
}

/// <summary>Rejects dashboard options out of range (generated from the attributes on <see cref="JobLogDashboardOptions"/>).</summary>
[OptionsValidator]
internal sealed partial class JobLogDashboardOptionsValidator : IValidateOptions<JobLogDashboardOptions>;

/// <summary>A fixed number of slots for searches; a caller that finds none is refused at once, never queued.</summary>
internal sealed class SearchLimiter(int slots)
{
    private readonly SemaphoreSlim _slots = new(slots, slots);

    /// <summary>How many slots there are.</summary>
    public int Size => slots;

    /// <summary>A slot, released on dispose; null when every slot is taken.</summary>
    public IDisposable? TryEnter() => _slots.Wait(0) ? new Slot(_slots) : null;

    private sealed class Slot(SemaphoreSlim slots) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                slots.Release();
            }
        }
    }
}

/// <summary>An action on one task (a button on its page, a POST endpoint).</summary>
/// <param name="Name">URL segment, e.g. <c>republish</c>.</param>
/// <param name="Label">Button text.</param>
/// <param name="IsAvailable">Whether the task's page offers it.</param>
/// <param name="ExecuteAsync">Runs it; returns a message for the user. Throws <see cref="InvalidOperationException"/> to refuse.</param>
internal sealed record DashboardTaskAction(
    string Name,
    string Label,
    Func<TaskDetail, bool> IsAvailable,
    Func<HttpContext, TaskDetail, CancellationToken, Task<string>> ExecuteAsync);
