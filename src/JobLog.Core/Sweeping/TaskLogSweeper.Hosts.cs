using System.Data.Common;
using System.Globalization;
using JobLog.Internal;
using JobLog.Storage;

namespace JobLog.Sweeping;

/// <summary>
/// The host pass (docs/architecture.md#sweeper): the ACTIVE runs of a host instance whose heartbeat stopped (older than
/// <see cref="JobLogOptions.HostTimeout"/>), or that stopped gracefully and left runs ACTIVE, are closed as EXPIRED with
/// the reason, and their tasks derived again, whether or not the task has a stale limit. Runs without an instance (rows
/// older than heartbeats) are left to the stale rule. Instances gone for <see cref="HostRetention"/> are deleted.
/// </summary>
/// <remarks>
/// On PostgreSQL, heartbeats are stamped and judged by the database's clock (<see cref="LedgerDatabase.Clock"/>), so the
/// hosts' skews do not count. On SQLite, a heartbeat carries its host's wall clock, which need not agree with this one's
/// (an NTP step).
/// So a host this sweeper has read before is judged by what it saw: gone once its heartbeat has not changed for
/// <see cref="JobLogOptions.HostTimeout"/> of this process's monotonic time, alive while it changes, whatever either clock
/// says. A host read for the first time (this process's first sweep, a one-shot <c>sweep</c>, a new instance) is judged
/// by comparing the clocks; but a sweeper that sweeps again (the hosted one) first watches a host that looks gone so for
/// <see cref="Watch"/>: a live host whose clock is behind beats meanwhile, a dead one is closed then (session 26).
/// </remarks>
internal sealed partial class TaskLogSweeper
{
    /// <summary>How long a stopped or dead host stays listed.</summary>
    internal static readonly TimeSpan HostRetention = TimeSpan.FromDays(7);

    private const string H = "\"" + LedgerModel.Hosts + "\"";
    private const string Runs = "\"" + LedgerModel.Runs + "\"";

    /// <summary>Each host's heartbeat as this sweeper last read it, and the monotonic time it first read that value.</summary>
    private readonly Dictionary<Guid, (DateTime Beat, long Since)> _beats = [];

    private readonly Lock _beatsLock = new();

    /// <summary>How often the host instances gone for <see cref="HostRetention"/> are deleted: at the first sweep, then hourly.</summary>
    internal static readonly TimeSpan HostPurgeInterval = TimeSpan.FromHours(1);

    /// <summary>When (<see cref="TimeProvider.GetTimestamp"/>) this sweeper last deleted the instances gone for <see cref="HostRetention"/>.</summary>
    private long? _purgedHostsAt;

    /// <summary>The host rows the last host pass read: the instances with ACTIVE runs (<see cref="LedgerDatabase.HostsToJudge"/>).</summary>
    internal int HostsRead { get; private set; }

    /// <summary>Set by the hosted loop: this sweeper sweeps again, so a host that looks gone at its first read can be watched first.</summary>
    internal bool SweepsAgain { get; set; }

    /// <summary>
    /// How long a sweeper that sweeps again watches a host that looks gone by the clocks at its first read: two of its
    /// heartbeat intervals (a live host beats within one), at most <see cref="JobLogOptions.HostTimeout"/>.
    /// </summary>
    private TimeSpan Watch => options.Value.HeartbeatInterval * 2 < options.Value.HostTimeout ? options.Value.HeartbeatInterval * 2 : options.Value.HostTimeout;

    /// <summary>
    /// Closes the ACTIVE runs of every gone host instance, in batches of <see cref="SweeperOptions.BatchSize"/>. Only the
    /// instances that have ACTIVE runs are read and judged: a stopped or dead one without any has nothing to close.
    /// </summary>
    /// <returns>The number of runs closed.</returns>
    private async Task<int> SweepHostsAsync(DbConnection connection, CancellationToken ct)
    {
        // The clock the heartbeats are stamped with (LedgerDatabase.Clock): the database's on PostgreSQL.
        var now = await _database.NowAsync(connection, time.GetUtcNow().UtcDateTime, ct).ConfigureAwait(false);
        var hosts = new List<(Guid Id, string Name, int Pid, DateTime LastHeartbeat, DateTime? StoppedAt)>();
        await using (var select = Command(connection, null, _database.HostsToJudge))
        {
            await using var reader = await select.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                hosts.Add((_database.ReadGuid(reader, 0), reader.GetString(1), reader.GetInt32(2), _database.ReadUtc(reader, 3),
                    reader.IsDBNull(4) ? null : _database.ReadUtc(reader, 4)));
            }
        }

        HostsRead = hosts.Count;
        var gone = hosts.Where(h => IsGone(h.Id, h.LastHeartbeat, h.StoppedAt, now, time.GetTimestamp())).ToList();
        lock (_beatsLock)
        {
            // Instances without ACTIVE runs now are forgotten: read again once they have some, they are judged as a first
            // read (by the clocks, watched first by a sweeper that sweeps again), which their next beat corrects.
            var listed = hosts.Select(h => h.Id).ToHashSet();
            foreach (var id in _beats.Keys.Where(id => !listed.Contains(id)).ToList())
            {
                _beats.Remove(id);
            }
        }

        var closed = 0;
        foreach (var host in gone)
        {
            var reason = HostReason(host.Name, host.Pid, host.Id, host.LastHeartbeat, host.StoppedAt);
            var ofHost = 0;
            int batch;
            do
            {
                batch = await ExpireHostBatchAsync(connection, host.Id, reason, now, ct).ConfigureAwait(false);
                ofHost += batch;
            }
            while (batch == options.Value.Sweeper.BatchSize);

            if (_database.HostRunsForget is { } forget)
            {
                await using var forgotten = Command(connection, null, forget, host.Id);
                await forgotten.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            if (ofHost > 0)
            {
                Log.HostRunsExpired(logger, ofHost, LogValue.Visible(reason));
                metrics.RunsExpired.Add(ofHost, new KeyValuePair<string, object?>("reason", "host"));
            }

            closed += ofHost;
        }

        // The table has no index on the heartbeat: scanning it every sweep for what turns a week old within the hour
        // would read every row again (a week of stopped instances, thousands with rolling deploys).
        if (_purgedHostsAt is not { } purged || time.GetElapsedTime(purged) >= HostPurgeInterval)
        {
            await using var delete = Command(connection, null, $"DELETE FROM {H} WHERE \"LastHeartbeat\" < @p0", now - HostRetention);
            await delete.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            _purgedHostsAt = time.GetTimestamp();
        }

        return closed;
    }

    /// <summary>
    /// Whether a host is gone: stopped; or its heartbeat unchanged for <see cref="JobLogOptions.HostTimeout"/> of this
    /// process's monotonic time since this sweeper first read it (<paramref name="at"/>: now, from
    /// <see cref="TimeProvider.GetTimestamp"/>); or, read for the first time, older than the timeout by this wall clock.
    /// </summary>
    internal bool IsGone(Guid instance, DateTime lastHeartbeat, DateTime? stoppedAt, DateTime now, long at)
    {
        var timeout = options.Value.HostTimeout;
        lock (_beatsLock)
        {
            if (_beats.TryGetValue(instance, out var seen) && seen.Beat == lastHeartbeat)
            {
                return stoppedAt is not null || time.GetElapsedTime(seen.Since, at) >= timeout;
            }

            var stale = stoppedAt is null && !_beats.ContainsKey(instance) && lastHeartbeat < now - timeout;

            // Stale by the clocks at the first read: a sweeper that sweeps again watches it for Watch first (counted as
            // silent for the rest of the timeout already); a one-shot sweep cannot wait, and judges by the clocks.
            var watched = stale && SweepsAgain;
            var gone = stoppedAt is not null || (stale && !watched);

            // A host found gone at its first read stays gone at the next sweeps (a run of it replayed from its journal
            // later is closed by the next sweep), as if this sweeper had watched it silent for the timeout already.
            var silent = gone ? timeout : watched ? timeout - Watch : TimeSpan.Zero;
            _beats[instance] = (lastHeartbeat, at - (long)(silent.TotalSeconds * time.TimestampFrequency));
            return gone;
        }
    }

    /// <summary>The error message of a run closed because its host is gone.</summary>
    internal static string HostReason(string name, int pid, Guid instance, DateTime lastHeartbeat, DateTime? stoppedAt) =>
        stoppedAt is { } stopped
            ? string.Create(CultureInfo.InvariantCulture, $"Expired: host {name} (pid {pid}, instance {instance}) stopped at {stopped:yyyy-MM-dd HH:mm:ss} UTC before this run finished.")
            : string.Create(CultureInfo.InvariantCulture, $"Expired: host {name} (pid {pid}, instance {instance}) stopped sending heartbeats at {lastHeartbeat:yyyy-MM-dd HH:mm:ss} UTC.");

    private async Task<int> ExpireHostBatchAsync(DbConnection connection, Guid instance, string reason, DateTime now, CancellationToken ct)
    {
        await using var transaction = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
        var runs = new List<Guid>();
        var tasks = new HashSet<Guid>();
        await using (var claim = Command(connection, transaction,
            _database.HostRunsClaim, instance, options.Value.Sweeper.BatchSize))
        {
            await using var reader = await claim.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                runs.Add(_database.ReadGuid(reader, 0));
                tasks.Add(_database.ReadGuid(reader, 1));
            }
        }

        if (runs.Count > 0)
        {
            await using (var expire = Command(connection, transaction,
                $"UPDATE {Runs} SET \"State\" = 5, \"Stop\" = @p1, \"ErrorMessage\" = @p2 WHERE {_database.InIdList("\"Id\"", "@p0")} AND \"State\" = 1",
                _database.IdList(runs), now, reason))
            {
                await expire.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            if (_database.LockTasks is { } lockTasks)
            {
                // A writer ending another run of one of these tasks may not have committed: wait for it, then derive.
                await using var locked = Command(connection, transaction, lockTasks, _database.IdList(tasks));
                await locked.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            await using var derive = Command(connection, transaction, _database.DeriveTasks, _database.IdList(tasks));
            await derive.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        await transaction.CommitAsync(ct).ConfigureAwait(false);
        return runs.Count;
    }
}
