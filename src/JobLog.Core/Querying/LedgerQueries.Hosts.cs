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
}

/// <summary>The host instances and their heartbeats.</summary>
public sealed partial class LedgerQueries
{
    /// <summary>
    /// Every listed host instance, latest heartbeat first, with its state at <paramref name="now"/>: late after two
    /// <paramref name="heartbeatInterval"/>s without a heartbeat, dead after <paramref name="hostTimeout"/>.
    /// </summary>
    /// <param name="heartbeatInterval">The hosts' <see cref="JobLogOptions.HeartbeatInterval"/>.</param>
    /// <param name="hostTimeout">The hosts' <see cref="JobLogOptions.HostTimeout"/>.</param>
    /// <param name="now">
    /// The time the states and ages are for (UTC). On PostgreSQL the database's clock is taken instead: the clock the
    /// heartbeats are stamped with, so a host whose own clock is off is not shown dead.
    /// </param>
    /// <param name="ct">Cancels the query.</param>
    public async Task<IReadOnlyList<HostRow>> HostsAsync(TimeSpan heartbeatInterval, TimeSpan hostTimeout, DateTime now, CancellationToken ct = default)
    {
        if (_database.Clock is not null)
        {
            await _db.Database.OpenConnectionAsync(ct).ConfigureAwait(false);
            try
            {
                now = await _database.NowAsync(_db.Database.GetDbConnection(), now, ct).ConfigureAwait(false);
            }
            finally
            {
                await _db.Database.CloseConnectionAsync().ConfigureAwait(false);
            }
        }

        var hosts = await _db.Hosts.AsNoTracking().OrderByDescending(h => h.LastHeartbeat).ToListAsync(ct).ConfigureAwait(false);
        var active = _database.ActiveRunsByHost is { } byHost
            ? await _db.Database.SqlQueryRaw<ActiveRuns>(byHost).ToDictionaryAsync(g => g.Id, g => g.Count, ct).ConfigureAwait(false)
            : await _db.TaskRunLogs.AsNoTracking()
                .Where(r => r.State == TaskRunState.Active && r.HostInstanceId != null)
                .GroupBy(r => r.HostInstanceId)
                .Select(g => new ActiveRuns(g.Key!.Value, g.Count()))
                .ToDictionaryAsync(g => g.Id, g => g.Count, ct).ConfigureAwait(false);
        return [.. hosts.Select(h => new HostRow(
            h.InstanceId, h.Name, h.ProcessId, h.Release, h.StartedAt, h.LastHeartbeat, h.StoppedAt,
            StateOf(h, heartbeatInterval, hostTimeout, now), active.GetValueOrDefault(h.InstanceId),
            Math.Max(0, (now - h.LastHeartbeat).TotalSeconds))
        {
            Stranded = h.Stranded,
        })];
    }

    /// <summary>A host instance's number of ACTIVE runs.</summary>
    private sealed record ActiveRuns(Guid Id, int Count);

    private static HostState StateOf(HostLog host, TimeSpan heartbeatInterval, TimeSpan hostTimeout, DateTime now)
    {
        var silent = now - host.LastHeartbeat;
        return host.StoppedAt is not null ? HostState.Stopped
            : silent > hostTimeout ? HostState.Dead
            : silent > heartbeatInterval * 2 ? HostState.Late
            : HostState.Alive;
    }
}
