using System.Linq.Expressions;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Querying;

/// <summary>How a host instance looks from its heartbeats (docs/architecture.md#sweeper).</summary>
public enum HostState
{
    /// <summary>Its last heartbeat is recent.</summary>
    Alive = 1,

    /// <summary>It missed a heartbeat, but is not yet past <see cref="JobLogOptions.HostTimeout"/>.</summary>
    Late = 2,

    /// <summary>It stopped gracefully.</summary>
    Stopped = 3,

    /// <summary>Its last heartbeat is older than <see cref="JobLogOptions.HostTimeout"/>: the sweeper closes its ACTIVE runs.</summary>
    Dead = 4,
}

/// <summary>A host instance (a process recording to the ledger) in the hosts list.</summary>
/// <param name="InstanceId">The instance, created when the process started.</param>
/// <param name="Name">The host name.</param>
/// <param name="ProcessId">The process id.</param>
/// <param name="Release">The application release.</param>
/// <param name="StartedAt">When it started (UTC).</param>
/// <param name="LastHeartbeat">Its last heartbeat (UTC).</param>
/// <param name="StoppedAt">When it stopped gracefully (UTC), or null.</param>
/// <param name="State">Alive, late, stopped or dead, at the time of the query.</param>
/// <param name="ActiveRuns">How many of its runs are ACTIVE.</param>
/// <param name="SecondsSinceHeartbeat">
/// Seconds since its last heartbeat (at least 0), by the clock <paramref name="State"/> is judged by: on PostgreSQL the
/// database's, the clock the heartbeats are stamped with, so a dashboard or CLI whose own clock is off shows the right age.
/// </param>
public sealed record HostRow(
    Guid InstanceId,
    string Name,
    int ProcessId,
    string? Release,
    DateTime StartedAt,
    DateTime LastHeartbeat,
    DateTime? StoppedAt,
    HostState State,
    int ActiveRuns,
    double SecondsSinceHeartbeat)
{
    /// <summary>
    /// What the instance found waiting for a broker none of its buses reaches, as of its last heartbeat
    /// (<see cref="HostLog.Stranded"/>); null when nothing.
    /// </summary>
    public string? Stranded { get; init; }

    /// <summary>
    /// While the instance's writer cannot write to the ledger, why, as of its last heartbeat (<see cref="HostLog.WriterError"/>);
    /// null while it writes.
    /// </summary>
    public string? WriterError { get; init; }

    /// <summary>Since when the instance's writer has been failing (UTC; <see cref="HostLog.WriterFailingSince"/>); null while it writes.</summary>
    public DateTime? WriterFailingSince { get; init; }
}

/// <summary>How many listed host instances are in each state, whatever the filter (<see cref="LedgerQueries.HostsAsync"/>).</summary>
/// <param name="Alive">Heartbeat recent.</param>
/// <param name="Late">A heartbeat missed, not yet dead.</param>
/// <param name="Dead">Silent for longer than <see cref="JobLogOptions.HostTimeout"/>, not stopped.</param>
/// <param name="Stopped">Stopped gracefully.</param>
public sealed record HostCounts(int Alive, int Late, int Dead, int Stopped)
{
    /// <summary>Alive and late: the instances still running, as far as the ledger knows.</summary>
    public int Live => Alive + Late;

    /// <summary>Dead and stopped: the instances gone (listed for seven days).</summary>
    public int Gone => Dead + Stopped;
}

/// <summary>One page of host instances, latest heartbeat first, and the count of each state.</summary>
/// <param name="Items">The instances of this page.</param>
/// <param name="NextCursor">The <c>cursor</c> value of the next page; null on the last page.</param>
/// <param name="Counts">How many instances are in each state, whatever the filter.</param>
public sealed record HostPage(IReadOnlyList<HostRow> Items, string? NextCursor, HostCounts Counts);

/// <summary>
/// The hosts as the Hosts page and the CLI's <c>hosts</c> show them first: every live instance, the latest gone ones, and
/// the count of each state (the rest of the gone ones are listed a page at a time by <c>state=stopped,dead</c>).
/// </summary>
/// <param name="Live">The alive and late instances, latest heartbeat first: all of them, up to <see cref="ListFilter.MaxLimit"/>.</param>
/// <param name="Gone">The latest dead or stopped instances, latest heartbeat first.</param>
/// <param name="Counts">How many instances are in each state.</param>
public sealed record HostOverview(IReadOnlyList<HostRow> Live, IReadOnlyList<HostRow> Gone, HostCounts Counts);

/// <summary>Filters of the hosts list: <c>state</c>, <c>name</c>, and the common ones (the time range is of the last heartbeat; <c>q</c> is text in the name or release).</summary>
public sealed record HostFilter : ListFilter
{
    /// <summary>Instances in any of these states (<c>state=stopped,dead</c>); null for every state.</summary>
    public IReadOnlyList<HostState>? States { get; init; }

    /// <summary>Instances of exactly this host name (<c>name</c>); null for every name.</summary>
    public string? Name { get; init; }

    /// <summary>Reads the host filters by name.</summary>
    /// <param name="get">The values by name.</param>
    /// <param name="now">The current time (UTC), for <c>since</c>.</param>
    /// <returns>The filter.</returns>
    /// <exception cref="FilterException">When a value cannot be understood.</exception>
    public static HostFilter Parse(FilterSource get, DateTime now) =>
        ParseCommon(new HostFilter
        {
            States = EnumList<HostState>(get("state"), "state"),
            Name = Text(get("name")),
        }, get, now);
}

/// <summary>The host instances and their heartbeats.</summary>
/// <remarks>
/// A deployment that restarts often (rolling deploys, autoscaling, crash loops) leaves a row per process for seven days
/// (<c>HostRetention</c>): thousands. So no read returns them all: the overview has every live instance and the latest
/// gone ones, the list is keyset-paginated on <c>(LastHeartbeat, InstanceId)</c> as the other lists are on their time.
/// </remarks>
public sealed partial class LedgerQueries
{
    /// <summary>
    /// One page of host instances, latest heartbeat first, with each one's state at <paramref name="now"/> (late after two
    /// <paramref name="heartbeatInterval"/>s without a heartbeat, dead after <paramref name="hostTimeout"/>) and the count
    /// of each state.
    /// </summary>
    /// <param name="f">The filter (see <see cref="HostFilter.Parse"/>).</param>
    /// <param name="heartbeatInterval">The hosts' <see cref="JobLogOptions.HeartbeatInterval"/>.</param>
    /// <param name="hostTimeout">The hosts' <see cref="JobLogOptions.HostTimeout"/>.</param>
    /// <param name="now">
    /// The time the states and ages are for (UTC). On PostgreSQL the database's clock is taken instead: the clock the
    /// heartbeats are stamped with, so a host whose own clock is off is not shown dead.
    /// </param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The page.</returns>
    public async Task<HostPage> HostsAsync(HostFilter f, TimeSpan heartbeatInterval, TimeSpan hostTimeout, DateTime now, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(f);
        var clock = new HostClock(heartbeatInterval, hostTimeout, await LedgerNowAsync(now, ct).ConfigureAwait(false));
        var q = _db.Hosts.AsNoTracking();
        if (f.States is { Count: > 0 } states)
        {
            q = q.Where(clock.InAny(states));
        }

        if (f.Name is { } name)
        {
            q = q.Where(h => h.Name == name);
        }

        if (f.From is { } from)
        {
            q = q.Where(h => h.LastHeartbeat >= from);
        }

        if (f.To is { } to)
        {
            q = q.Where(h => h.LastHeartbeat < to);
        }

        if (f.Search is { } search)
        {
            var inName = Contains<HostLog>(h => h.Name, search);
            var inRelease = Contains<HostLog>(h => h.Release, search);
            q = q.Where(Expression.Lambda<Func<HostLog, bool>>(
                Expression.OrElse(inName.Body, new ReplaceParameter(inRelease.Parameters[0], inName.Parameters[0]).Visit(inRelease.Body)),
                inName.Parameters));
        }

        if (f.After is { } k)
        {
            q = q.Where(h => h.LastHeartbeat <= k.At && (h.LastHeartbeat < k.At || h.InstanceId.CompareTo(k.Id) < 0));
        }

        var hosts = await NewestFirst(q).Take(f.Limit + 1).ToListAsync(ct).ConfigureAwait(false);
        var page = ToPage(hosts, f.Limit, h => new Cursor(h.LastHeartbeat, h.InstanceId));
        var counts = await HostCountsAsync(clock, ct).ConfigureAwait(false);
        return new HostPage(await HostRowsAsync(page.Items, clock, ct).ConfigureAwait(false), page.NextCursor, counts);
    }

    /// <summary>
    /// Every live (alive or late) instance, up to <see cref="ListFilter.MaxLimit"/>, and the <paramref name="gone"/> latest
    /// dead or stopped ones, latest heartbeat first, with the count of each state; states as <see cref="HostsAsync"/> judges them.
    /// </summary>
    /// <param name="heartbeatInterval">The hosts' <see cref="JobLogOptions.HeartbeatInterval"/>.</param>
    /// <param name="hostTimeout">The hosts' <see cref="JobLogOptions.HostTimeout"/>.</param>
    /// <param name="now">The time the states are for (UTC); on PostgreSQL the database's clock is taken instead.</param>
    /// <param name="gone">How many of the latest dead or stopped instances to include, 0 to <see cref="ListFilter.MaxLimit"/>.</param>
    /// <param name="ct">Cancels the query.</param>
    /// <returns>The live instances, the latest gone ones, and the counts.</returns>
    public async Task<HostOverview> HostOverviewAsync(TimeSpan heartbeatInterval, TimeSpan hostTimeout, DateTime now, int gone, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(gone);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(gone, ListFilter.MaxLimit);
        var clock = new HostClock(heartbeatInterval, hostTimeout, await LedgerNowAsync(now, ct).ConfigureAwait(false));
        var hosts = _db.Hosts.AsNoTracking();
        var live = await NewestFirst(hosts.Where(clock.InAny([HostState.Alive, HostState.Late]))).Take(ListFilter.MaxLimit).ToListAsync(ct).ConfigureAwait(false);
        var latestGone = gone == 0 ? []
            : await NewestFirst(hosts.Where(clock.InAny([HostState.Dead, HostState.Stopped]))).Take(gone).ToListAsync(ct).ConfigureAwait(false);
        var counts = await HostCountsAsync(clock, ct).ConfigureAwait(false);
        var rows = await HostRowsAsync([.. live, .. latestGone], clock, ct).ConfigureAwait(false);
        return new HostOverview(rows.Take(live.Count).ToList(), rows.Skip(live.Count).ToList(), counts);
    }

    private async Task<DateTime> LedgerNowAsync(DateTime now, CancellationToken ct)
    {
        if (_database.Clock is null)
        {
            return now;
        }

        await _db.Database.OpenConnectionAsync(ct).ConfigureAwait(false);
        try
        {
            return await _database.NowAsync(_db.Database.GetDbConnection(), now, ct).ConfigureAwait(false);
        }
        finally
        {
            await _db.Database.CloseConnectionAsync().ConfigureAwait(false);
        }
    }

    private static IOrderedQueryable<HostLog> NewestFirst(IQueryable<HostLog> q) =>
        q.OrderByDescending(h => h.LastHeartbeat).ThenByDescending(h => h.InstanceId);

    /// <summary>The count of each state, in one pass over the hosts table (a week of instances).</summary>
    private async Task<HostCounts> HostCountsAsync(HostClock clock, CancellationToken ct)
    {
        var (deadBefore, lateBefore) = (clock.DeadBefore, clock.LateBefore);
        var byState = await _db.Hosts.AsNoTracking()
            .GroupBy(h => h.StoppedAt != null ? HostState.Stopped
                : h.LastHeartbeat < deadBefore ? HostState.Dead
                : h.LastHeartbeat < lateBefore ? HostState.Late
                : HostState.Alive)
            .Select(g => new { State = g.Key, Count = g.Count() })
            .ToDictionaryAsync(g => g.State, g => g.Count, ct).ConfigureAwait(false);
        return new HostCounts(byState.GetValueOrDefault(HostState.Alive), byState.GetValueOrDefault(HostState.Late),
            byState.GetValueOrDefault(HostState.Dead), byState.GetValueOrDefault(HostState.Stopped));
    }

    /// <summary>The rows of <paramref name="hosts"/>, in their order, with their states and ACTIVE runs.</summary>
    private async Task<IReadOnlyList<HostRow>> HostRowsAsync(IReadOnlyList<HostLog> hosts, HostClock clock, CancellationToken ct)
    {
        if (hosts.Count == 0)
        {
            return [];
        }

        var ids = hosts.Select(h => h.InstanceId).ToList();
        var active = _database.ActiveRunsByHost is { } byHost
            ? await _db.Database.SqlQueryRaw<ActiveRuns>(byHost).ToDictionaryAsync(g => g.Id, g => g.Count, ct).ConfigureAwait(false)
            : await _db.TaskRunLogs.AsNoTracking()
                .Where(r => r.State == TaskRunState.Active && r.HostInstanceId != null && ids.Contains(r.HostInstanceId.Value))
                .GroupBy(r => r.HostInstanceId)
                .Select(g => new ActiveRuns(g.Key!.Value, g.Count()))
                .ToDictionaryAsync(g => g.Id, g => g.Count, ct).ConfigureAwait(false);
        return [.. hosts.Select(h => new HostRow(
            h.InstanceId, h.Name, h.ProcessId, h.Release, h.StartedAt, h.LastHeartbeat, h.StoppedAt,
            clock.StateOf(h), active.GetValueOrDefault(h.InstanceId), Math.Max(0, (clock.Now - h.LastHeartbeat).TotalSeconds))
        {
            Stranded = h.Stranded,
            WriterError = h.WriterError,
            WriterFailingSince = h.WriterFailingSince,
        })];
    }

    /// <summary>A host instance's number of ACTIVE runs.</summary>
    private sealed record ActiveRuns(Guid Id, int Count);

    /// <summary>
    /// How states are judged at <see cref="Now"/>: stopped when it stopped, dead when its heartbeat is older than the
    /// timeout, late when older than two intervals, else alive; in memory and as the same comparisons in SQL.
    /// </summary>
    private sealed record HostClock(TimeSpan HeartbeatInterval, TimeSpan HostTimeout, DateTime Now)
    {
        public DateTime DeadBefore => Now - HostTimeout;

        public DateTime LateBefore => Now - HeartbeatInterval * 2;

        public HostState StateOf(HostLog host) =>
            host.StoppedAt is not null ? HostState.Stopped
            : host.LastHeartbeat < DeadBefore ? HostState.Dead
            : host.LastHeartbeat < LateBefore ? HostState.Late
            : HostState.Alive;

        /// <summary>The instances in any of <paramref name="states"/>, as a predicate the database runs.</summary>
        public Expression<Func<HostLog, bool>> InAny(IReadOnlyCollection<HostState> states)
        {
            var (deadBefore, lateBefore) = (DeadBefore, LateBefore);
            var (alive, late, dead, stopped) = (states.Contains(HostState.Alive), states.Contains(HostState.Late), states.Contains(HostState.Dead), states.Contains(HostState.Stopped));
            return h => (stopped && h.StoppedAt != null)
                || (h.StoppedAt == null && ((dead && h.LastHeartbeat < deadBefore)
                    || (late && h.LastHeartbeat >= deadBefore && h.LastHeartbeat < lateBefore)
                    || (alive && h.LastHeartbeat >= lateBefore)));
        }
    }
}
