using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace JobLog.Storage.Partitioning;

/// <summary>What a conversion to a partitioned ledger copied.</summary>
internal sealed record PartitionConversion(long Tasks, long Runs, int Days);

/// <summary>
/// What dropping expired days removed: the tasks deleted (by outcome) and the rows kept (the day's <c>_k</c> partitions);
/// <c>Rebuilt</c>: the days whose kept rows were read and built under the day's lock (changed between their build and the
/// lock, or not built before it: none then, or the build failed as another process dropped the day); <c>Ahead</c>: the days
/// whose kept rows were built ahead by the partition pass (<see cref="LedgerPartitioning.BuildAheadAsync"/>) and adopted.
/// </summary>
internal sealed record PartitionDrop(int Days, int Succeeded, int Failed, int Kept, int Rebuilt = 0, int Ahead = 0);

/// <summary>
/// Daily partitions of the PostgreSQL ledger's tasks and runs (docs/scale.md#partitioning). Both tables are
/// range-partitioned on <see cref="PartitionDay.Column"/>, which every writer derives from the task's id
/// (<see cref="PartitionDay"/>), so a task and its runs share a day and the upserts stay <c>ON CONFLICT ("Id", day)</c>.
/// Each table has one partition per day (<c>JobLogTasks_p20261203</c>), one for ids without a time
/// (<c>_undated</c>, key 0) and a default partition (<c>_default</c>) for days without their own: a day created late or
/// already dropped, and the rows retention keeps past their day's drop. The search's side table is partitioned the
/// same way (LedgerPartitioning.SearchText.cs); the logs by their own ids (LogPartitioning.cs).
/// </summary>
internal static partial class LedgerPartitioning
{
    /// <summary>The partitioned tables and the column their key is derived from.</summary>
    public static readonly (string Table, string KeyOf)[] Tables = [(LedgerModel.Tasks, "Id"), (LedgerModel.Runs, "TaskId")];

    /// <summary>Daily partitions are made for days at most this old when a ledger is converted; older rows go to the default partition.</summary>
    public const int ConvertedDaysBack = 400;

    private const string Key = "\"" + PartitionDay.Column + "\"";
    private const string IsPartitionedSql =
        "SELECT COALESCE((SELECT c.relkind = 'p' FROM pg_class c WHERE c.oid = to_regclass('\"" + LedgerModel.Tasks + "\"')), FALSE)";

    private const string CheckViolation = "23514";

    /// <summary>
    /// Inserts the tasks of a JSON array (the backup's entities, property names as columns) with their <c>Runs</c>, each
    /// row with its partition key: a restore on a partitioned ledger, where EF Core's insert would lack the key. Rows
    /// whose id already exists are left out by the caller.
    /// </summary>
    private static readonly string s_restoreTasks = $"""
        WITH j AS (SELECT e FROM jsonb_array_elements(@rows) e),
        tasks AS (
            INSERT INTO {Q(LedgerModel.Tasks)}
            SELECT (jsonb_populate_record(NULL::{Q(LedgerModel.Tasks)}, e || jsonb_build_object('{PartitionDay.Column}', {PartitionDay.Function}((e->>'Id')::uuid)))).*
            FROM j)
        INSERT INTO {Q(LedgerModel.Runs)}
        SELECT (jsonb_populate_record(NULL::{Q(LedgerModel.Runs)}, r || jsonb_build_object('{PartitionDay.Column}', {PartitionDay.Function}((r->>'TaskId')::uuid)))).*
        FROM j, jsonb_array_elements(COALESCE(j.e->'Runs', '[]'::jsonb)) r
        """;

    /// <summary>Restores tasks with their runs from <paramref name="json"/> (see <see cref="s_restoreTasks"/>).</summary>
    public static Task RestoreTasksAsync(JobLogDbContext db, string json, CancellationToken cancellationToken) =>
        db.Database.ExecuteSqlRawAsync(s_restoreTasks, [new NpgsqlParameter("rows", NpgsqlTypes.NpgsqlDbType.Jsonb) { Value = json }], cancellationToken);

    private static readonly string s_restoreRuns = $"""
        INSERT INTO {Q(LedgerModel.Runs)}
        SELECT (jsonb_populate_record(NULL::{Q(LedgerModel.Runs)}, r || jsonb_build_object('{PartitionDay.Column}', {PartitionDay.Function}((r->>'TaskId')::uuid)))).*
        FROM jsonb_array_elements(@rows) r
        """;

    /// <summary>Restores runs of a JSON array (a split task's, whose task is restored before them) with their partition key.</summary>
    public static Task RestoreRunsAsync(JobLogDbContext db, string json, CancellationToken cancellationToken) =>
        db.Database.ExecuteSqlRawAsync(s_restoreRuns, [new NpgsqlParameter("rows", NpgsqlTypes.NpgsqlDbType.Jsonb) { Value = json }], cancellationToken);

    /// <summary>Whether the ledger's tasks table is partitioned.</summary>
    public static async Task<bool> IsPartitionedAsync(DbConnection connection, CancellationToken cancellationToken) =>
        await ScalarAsync<bool>(connection, IsPartitionedSql, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Converts an unpartitioned ledger in place, in one transaction that holds both tables locked: creates the
    /// partitioned tables, copies every row with its key, drops the old tables, then recreates on the new ones the
    /// indexes and triggers the old ones had (read from the catalog, so indexes added by later migrations come along).
    /// The primary keys become <c>("Id", key)</c>; the runs' foreign key to the tasks is not recreated (see docs).
    /// </summary>
    /// <returns>What was copied, or null when the ledger was already partitioned.</returns>
    /// <exception cref="InvalidOperationException">A table has a unique index other than its primary key (it cannot be kept on a partitioned table).</exception>
    public static async Task<PartitionConversion?> ConvertAsync(DbConnection connection, DateTime now, int daysAhead, CancellationToken cancellationToken)
    {
        if (await IsPartitionedAsync(connection, cancellationToken).ConfigureAwait(false))
        {
            await EnsureDayRollupsAsync(connection, cancellationToken).ConfigureAwait(false);
            return null;
        }

        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await ExecAsync(connection, $"LOCK TABLE {Q(LedgerModel.Tasks)}, {Q(LedgerModel.Runs)} IN ACCESS EXCLUSIVE MODE", cancellationToken).ConfigureAwait(false);
        if (await IsPartitionedAsync(connection, cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        await ExecAsync(connection, PartitionDay.SqlFunction, cancellationToken).ConfigureAwait(false);
        var catalog = new List<(string Table, string PrimaryKey, List<string> Recreate)>();
        foreach (var (table, _) in Tables)
        {
            catalog.Add(await ReadCatalogAsync(connection, table, cancellationToken).ConfigureAwait(false));
        }

        var today = PartitionDay.Of(now);
        var days = new SortedSet<int>(Enumerable.Range(today, daysAhead + 1));
        foreach (var day in await ListAsync<int>(connection,
            $"SELECT DISTINCT {PartitionDay.Function}(\"Id\") FROM {Q(LedgerModel.Tasks)}", cancellationToken).ConfigureAwait(false))
        {
            if (day != PartitionDay.Undated && day >= today - ConvertedDaysBack && day <= today + daysAhead)
            {
                days.Add(day);
            }
        }

        var copied = new List<long>();
        foreach (var (table, keyOf) in Tables)
        {
            var staged = table + "_partitioned";
            await ExecAsync(connection,
                $"CREATE TABLE {Q(staged)} (LIKE {Q(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS, " +
                $"{Key} integer NOT NULL) PARTITION BY RANGE ({Key})", cancellationToken).ConfigureAwait(false);
            await ExecAsync(connection, CreateFixedPartitions(table, staged), cancellationToken).ConfigureAwait(false);
            foreach (var day in days)
            {
                await ExecAsync(connection, CreateDay(table, staged, day), cancellationToken).ConfigureAwait(false);
            }

            copied.Add(await ExecAsync(connection,
                $"INSERT INTO {Q(staged)} SELECT o.*, {PartitionDay.Function}(o.\"{keyOf}\") FROM {Q(table)} o", cancellationToken).ConfigureAwait(false));
        }

        // Runs first: their foreign key references the tasks.
        await SwapInPartitionedAsync(connection, catalog, cancellationToken).ConfigureAwait(false);

        await ExecAsync(connection, DayRollups.Create + DayRollups.Partition, cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new PartitionConversion(copied[0], copied[1], days.Count);
    }

    /// <summary>
    /// Adds the day rollups (<see cref="DayRollups"/>) to a partitioned ledger that lacks them (converted before they
    /// existed): the tables, their triggers and the rollups of the rows present, with the writers held off meanwhile; and
    /// makes the minute rollups views over them where they are still tables (a ledger partitioned before session 9), and
    /// the hour rollup a view over the day hours (<see cref="DayRollups.AddHours"/>, a ledger partitioned before session 13),
    /// and the minute-grained day rollups partitioned by day (<see cref="DayRollups.Partition"/>, a ledger partitioned before session 31).
    /// </summary>
    public static Task EnsureDayRollupsAsync(DbConnection connection, CancellationToken cancellationToken, ILogger? logger = null) =>
        EnsureDayRollupsAsync(connection, logger, DayRollupsLockTimeout, DayRollupsAttempts, cancellationToken);

    /// <summary>How long <see cref="EnsureDayRollupsAsync(DbConnection, CancellationToken, ILogger)"/> waits for its lock before it lets go and tries again.</summary>
    internal static readonly TimeSpan DayRollupsLockTimeout = TimeSpan.FromSeconds(10);

    /// <summary>How many times it tries before the error goes to the caller (start-up, the next partition pass or drop try again).</summary>
    internal const int DayRollupsAttempts = 5;

    /// <summary>
    /// <see cref="EnsureDayRollupsAsync(DbConnection, CancellationToken, ILogger)"/> with its lock's bounds. The lock waits at most
    /// <paramref name="lockTimeout"/> (a writer's batch holds its tables for milliseconds; a lock wait without a bound could
    /// queue every writer behind it for as long as a long transaction lasts, or end in a deadlock with a writer that holds
    /// one table and wants the other); a timeout or a deadlock rolls back, is logged and is tried again after a pause, up to
    /// <paramref name="attempts"/> times.
    /// </summary>
    internal static async Task EnsureDayRollupsAsync(
        DbConnection connection, ILogger? logger, TimeSpan lockTimeout, int attempts, CancellationToken cancellationToken)
    {
        // The three checks in one round trip (each retention pass and partition pass starts here).
        if (await ScalarAsync<bool>(connection,
                $"SELECT ({DayRollups.ServeMinutesSql}) AND ({DayRollups.ServeHoursSql}) AND ({DayRollups.PartitionedSql})", cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await ExecAsync(connection, string.Create(CultureInfo.InvariantCulture, $"SET LOCAL lock_timeout = '{(long)lockTimeout.TotalMilliseconds}ms'"), cancellationToken).ConfigureAwait(false);
                // The parents ONLY (each name its own ONLY): the writers it holds off write through them, and nothing below takes a
                // partition but to read it; another day's partition held by an autovacuum is not this lock's to wait for.
                await ExecAsync(connection, LockParentsOnly([LedgerModel.Tasks, LedgerModel.Runs], "SHARE ROW EXCLUSIVE"), cancellationToken).ConfigureAwait(false);
                if (!await ScalarAsync<bool>(connection, DayRollups.ServeMinutesSql, cancellationToken).ConfigureAwait(false))
                {
                    await ExecAsync(connection, DayRollups.Create, cancellationToken).ConfigureAwait(false);
                }
                else if (!await ScalarAsync<bool>(connection, DayRollups.ServeHoursSql, cancellationToken).ConfigureAwait(false))
                {
                    // Partitioned before the hours (session 13): only they are added, from the day rollups.
                    await ExecAsync(connection, DayRollups.AddHours, cancellationToken).ConfigureAwait(false);
                }

                if (!await ScalarAsync<bool>(connection, DayRollups.PartitionedSql, cancellationToken).ConfigureAwait(false))
                {
                    // Partitioned before session 31: the minute rollups' tables become partitioned, their rows the default partition.
                    await ExecAsync(connection, DayRollups.Partition, cancellationToken).ConfigureAwait(false);
                }

                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                return;
            }
            catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.DeadlockDetected && attempt < attempts)
            {
                var pause = TimeSpan.FromMilliseconds(Math.Min(lockTimeout.TotalMilliseconds, 250.0 * attempt));
                if (logger is not null)
                {
                    Internal.Log.DayRollupsLockRetry(logger, e.SqlState, attempt, attempts, pause);
                }

                await Task.Delay(pause, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Creates the partitions of today (UTC) and of <paramref name="daysAhead"/> days after it that are missing. Rows of
    /// such a day already in the default partition (an id whose time is ahead of the clock) move into the new partition.
    /// </summary>
    /// <returns>How many partitions were created.</returns>
    public static async Task<int> EnsureAheadAsync(DbConnection connection, DateTime now, int daysAhead, CancellationToken cancellationToken)
    {
        var created = 0;
        var today = PartitionDay.Of(now);
        var existing = await DaysAsync(connection, cancellationToken).ConfigureAwait(false);
        foreach (var (table, days) in await DaysAsync(connection, cancellationToken, kept: true).ConfigureAwait(false))
        {
            existing[table] = existing.TryGetValue(table, out var made) ? [.. made, .. days] : days;
        }

        // The search's side table, where it is partitioned, has the tasks' days (its _k ones included).
        var searchDays = await SearchTextDaysAsync(connection, kept: false, cancellationToken).ConfigureAwait(false);
        if (searchDays is not null)
        {
            existing[SearchText] = [.. searchDays, .. (await SearchTextDaysAsync(connection, kept: true, cancellationToken).ConfigureAwait(false))!];
        }

        // The day rollups, where they are partitioned by day (DayRollups.Partition), have the tasks' days too.
        var rollupDays = await ScalarAsync<bool>(connection, DayRollups.PartitionedSql, cancellationToken).ConfigureAwait(false)
            ? await PartitionDaysAsync(connection, DayRollups.DayTables, RollupDayPartition(), kept: false, cancellationToken).ConfigureAwait(false)
            : null;
        foreach (var (table, days) in rollupDays ?? [])
        {
            existing[table] = days;
        }

        for (var day = today; day <= today + daysAhead; day++)
        {
            foreach (var table in Tables.Select(t => t.Table).Concat(searchDays is null ? [] : [SearchText]).Concat(rollupDays is null ? [] : DayRollups.DayTables))
            {
                if (existing.TryGetValue(table, out var days) && days.Contains(day))
                {
                    continue;
                }

                // Processes of one ledger create partitions one at a time; a partition another one made meanwhile is left.
                // Rows of the day in the default partition move straight into the new one (the rollup triggers, which
                // fire for statements on the partitioned table, do not count them twice).
                if (!await CreateDayPartitionAsync(connection, table, day, cancellationToken).ConfigureAwait(false))
                {
                    continue;
                }

                created++;
            }
        }

        return created + await EnsureLogsAheadAsync(connection, now, daysAhead, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Drops each day partition of the tasks (and the runs' partition of the same day) whose whole day is older than
    /// <paramref name="succeededBefore"/>, oldest first, one transaction a day. What the batched purge would not
    /// delete (<see cref="Deletable"/>: an unfinished task, a failure inside its longer period, a task that ended after the
    /// cutoff, a cancelled one) is kept with its runs in the day's <c>_k</c> partitions (<see cref="KeptPartitions"/>); the rollups lose the
    /// dropped rows. The rows left behind in the default, undated and <c>_k</c> partitions are the batched purge's. The day's
    /// partitions are detached in its transaction and dropped after its commit (LedgerPartitioning.Detached.cs); the kept
    /// rows are built into their tables before the lock and only checked under it (LedgerPartitioning.Built.cs).
    /// <paramref name="locked"/> is told how long each day held the tables locked; <paramref name="built"/> (tests) is
    /// called with the day between its kept rows' build and its lock. With <paramref name="detachedLater"/> (the retention's
    /// pass) the last day's detached partitions are left for the partition pass (<see cref="BuildAheadAsync"/>) or the next
    /// drop to drop: their files' drop took 0.26-0.51 s of a 2 M day's retention on a disk that discards freed blocks
    /// (docs/scale.md "Session 37 (scale)"), and nothing waits for it; each earlier day's go before the next day's drop.
    /// </summary>
    public static async Task<PartitionDrop> DropExpiredAsync(
        DbConnection connection, DateTime succeededBefore, DateTime? failedBefore, CancellationToken cancellationToken, ILogger? logger = null,
        Action<TimeSpan>? locked = null, Func<int, Task>? built = null, bool detachedLater = false)
    {
        var dropped = new PartitionDrop(0, 0, 0, 0);
        var existing = await DaysAsync(connection, cancellationToken).ConfigureAwait(false);
        if (!existing.TryGetValue(LedgerModel.Tasks, out var taskDays))
        {
            return dropped;
        }

        await EnsureDayRollupsAsync(connection, cancellationToken, logger).ConfigureAwait(false);
        await DropEmptyKeptAsync(connection, cancellationToken).ConfigureAwait(false);
        await DropDetachedAsync(connection, cancellationToken).ConfigureAwait(false);
        await DropAbandonedBuildsAsync(connection, cancellationToken).ConfigureAwait(false);

        // The rows to keep (few) are found through the state and Stop indexes: every row to keep is unfinished or not a
        // success (a state index range) or ended at or after the success cutoff (a Stop index range), and the exact rule
        // then filters those. What the counts lose is the day's rollups (DayRollups) less the kept rows: the day's
        // partition is not read (it was, once, at 2.1-2.6 s for a day of 90,000 tasks). The minute rollups are views over
        // the day rollups (session 9), so the day's share goes with its day rollup rows (DayRollups.Reset).
        var keep = Keep(succeededBefore, failedBefore);
        var detached = new List<string>();
        foreach (var day in taskDays.Where(d => PartitionDay.Start(d + 1) <= succeededBefore).Order())
        {
            await DropDetachedAsync(connection, detached, cancellationToken).ConfigureAwait(false);
            detached.Clear();
            var tasks = Q(LedgerModel.Tasks + "_" + PartitionDay.Suffix(day));
            var runs = LedgerModel.Runs + "_" + PartitionDay.Suffix(day);
            // A build made ahead by the partition pass (BuildAheadAsync) whose rows cover this drop's is adopted; others go.
            KeptBuild? build = null;
            foreach (var ready in await ReadyBuildsAsync(connection, day, cancellationToken).ConfigureAwait(false))
            {
                if (build is null && ready.Covers(succeededBefore, failedBefore))
                {
                    build = ready;
                }
                else
                {
                    await DropQuietlyAsync(connection, ready).ConfigureAwait(false);
                }
            }

            // A drop with the build's cutoffs (the bench's, a retention pass on the build's hour) keeps the rows the build
            // chose: its trim would scan the built tasks to remove nothing (92-113 ms of the retention at load 27, docs/scale.md
            // "Session 38 (retention)"). The rows changed since were noted and are the lock's (FinishBuilt); the aggregates are
            // the mark's, made by the build ahead, or, where the mark has none, the lock's from the finished rows.
            if (build is not null && (build.Ahead is not { } cut || Keep(cut.Succeeded, cut.Failed) != keep))
            {
                try
                {
                    await using var trim = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                    await ExecAsync(connection, TrimBuilt(build, keep) + AggregateBuilt(build, tasks, trimmed: true) + MarkTrimmed(build, succeededBefore, failedBefore),
                        cancellationToken).ConfigureAwait(false);
                    await trim.CommitAsync(cancellationToken).ConfigureAwait(false);
                    build.Ahead = (succeededBefore, failedBefore);
                }
                catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
                {
                    // Another process's drop attached it meanwhile: the day is gone, or built again below.
                    build = null;
                }
            }

            var ahead = build is not null;
            build ??= await BuildKeptAsync(connection, day, tasks, Q(runs), keep, cancellationToken).ConfigureAwait(false);
            var versions = build;
            try
            {
                if (build is not null && built is not null)
                {
                    await built(day).ConfigureAwait(false);
                }

                // Under the lock, round trips are what the tables wait for (at load 40 on two cores each costs 5-30 ms): the
                // lock and its timeout in one, what is there in one, the kept rows' check in one, the counts with the rollups'
                // statements, and, when the kept rows were built (so some are kept), the detach and attach with them
                // (docs/scale.md "Session 35 (scale)").
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                // The parents ONLY (each name its own ONLY): every write and read of a partition goes through its parent, which this holds, and the detach
                // takes the day's own; the other days' partitions are not the drop's to wait for (a vacuum of today's holds it for up
                // to deadlock_timeout: 1,005 ms of a 10 M day's drop, docs/scale.md "Session 41 (scale)").
                await ExecAsync(connection, "SET LOCAL lock_timeout = '10s'; " + LockParentsOnly([LedgerModel.Tasks, LedgerModel.Runs]), cancellationToken).ConfigureAwait(false);
                var lockedAt = Stopwatch.GetTimestamp();
                var state = await DropStateAsync(connection, day, tasks, runs, build, cancellationToken).ConfigureAwait(false);
                if (!state.Tasks)
                {
                    // Another process dropped it meanwhile.
                    if (build is not null)
                    {
                        await ExecAsync(connection, DropBuilt(build) + DropVersions(build), cancellationToken).ConfigureAwait(false);
                        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                    }

                    continue;
                }

                if (build is not null && !state.BuiltPresent)
                {
                    // The built tables are gone or no longer match the parents (a migration): built again, under the lock.
                    await ExecAsync(connection, DropBuilt(build), cancellationToken).ConfigureAwait(false);
                    build = null;
                }

                // With a build, the built rows are not copied under the lock: first the rows noted since the build are brought up
                // to date (FinishBuilt; those past this drop's cutoffs went before the lock), then the counts, the failure groups
                // and the day rollups take the built rows' aggregates (a few hundred rows), made before the lock when nothing was
                // noted since: the six scans of the built rows they replace took 0.18-0.91 s of a 2 M day's lock at load 11-18
                // (docs/scale.md "Session 37 (scale)", "Session 38 (retention)").
                var sql = build is not null
                    ? FinishBuilt(build, tasks, Q(runs), keep) + $"""

                        {string.Format(CultureInfo.InvariantCulture, DayRollups.GoneOfAggregates, day)}
                        SELECT coalesce(SUM(n) FILTER (WHERE "State" = {(int)TaskState.Succeeded}), 0)::bigint FROM joblog_gone
                        UNION ALL SELECT coalesce(SUM(n) FILTER (WHERE "State" <> {(int)TaskState.Succeeded}), 0)::bigint FROM joblog_gone
                        UNION ALL SELECT coalesce(SUM("Count"), 0)::bigint FROM joblog_keep_agg WHERE "Kind" = 't';
                        """
                    : $"""
                        CREATE TEMP TABLE joblog_keep_tasks ON COMMIT DROP AS SELECT * FROM {tasks} t WHERE {keep};
                        CREATE TEMP TABLE joblog_keep_runs ON COMMIT DROP AS SELECT * FROM {Q(LedgerModel.Runs)} r WHERE FALSE;
                        {(state.Runs ? $"INSERT INTO joblog_keep_runs SELECT r.* FROM joblog_keep_tasks k CROSS JOIN LATERAL (SELECT * FROM {Q(runs)} x WHERE x.\"TaskId\" = k.\"Id\") r;" : "")}
                        {string.Format(CultureInfo.InvariantCulture, DayRollups.Gone, day)}
                        {string.Format(CultureInfo.InvariantCulture, FailureGroupRollup.PostgresDropDay, tasks)}
                        SELECT coalesce(SUM(n) FILTER (WHERE "State" = {(int)TaskState.Succeeded}), 0)::bigint FROM joblog_gone
                        UNION ALL SELECT coalesce(SUM(n) FILTER (WHERE "State" <> {(int)TaskState.Succeeded}), 0)::bigint FROM joblog_gone
                        UNION ALL SELECT COUNT(*) FROM joblog_keep_tasks;
                        """;
                string Drop(bool keeps)
                {
                    // The search's side table (PostgreSqlSearch): its day partition dropped with the tasks' (the kept tasks' text
                    // moved into its _k partition), or, where it has none, the day's text deleted (a DROP fires no trigger).
                    var text = SearchTextDrop(tasks, day, keeps, state.SearchText, state.SearchTextDay);
                    var kept = build is null ? (keeps ? KeptPartitions(day) + text.Kept : "")
                        // The side table's kept text: the built one where the drop makes a _k partition of it (text.Kept), else
                        // made as before (the side table was partitioned after the build) or the built one dropped.
                        : AttachBuilt(build, day, text: build.Text is not null && text.Kept != "")
                            + (build.Text is null ? text.Kept : text.Kept == "" ? DropBuilt(build, tasksAndRuns: false) : "");
                    return text.Drop + (state.Runs ? Detach(LedgerModel.Runs, runs, day) : "") + $"""
                        {Detach(LedgerModel.Tasks, LedgerModel.Tasks + "_" + PartitionDay.Suffix(day), day)}
                        {kept}
                        {DayRollups.Empty(day, state.RollupPartitions, drop: !keeps)}
                        {string.Format(CultureInfo.InvariantCulture, build is not null ? DayRollups.ResetOfAggregates : DayRollups.Reset, day)}
                        """;
                }

                List<long> counts;
                if (build is not null)
                {
                    // Built and unchanged: its tasks are kept, so the rest is known before the counts, and goes with them.
                    counts = await LastListAsync<long>(connection, sql, cancellationToken, after: Drop(keeps: true)).ConfigureAwait(false);
                }
                else
                {
                    counts = await LastListAsync<long>(connection, sql, cancellationToken).ConfigureAwait(false);
                    await ExecAsync(connection, Drop(keeps: counts[2] > 0), cancellationToken).ConfigureAwait(false);
                }

                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                locked?.Invoke(Stopwatch.GetElapsedTime(lockedAt));
                // After the commit, in one round trip: the detached partitions' files (with detachedLater, left: see above); the
                // day's rows of the open runs' side table whose run went with the day (not under the lock: its scan took 110-323
                // ms with 100,000 open runs, docs/scale.md "Session 34 (scale)"); the build's table of noted ids.
                var files = new[] { LedgerModel.Tasks, LedgerModel.Runs, SearchText }.Select(t => DetachedName(t, day)).ToList();
                if (detachedLater)
                {
                    detached.AddRange(files);
                }

                var after = (detachedLater ? "" : $"DROP TABLE IF EXISTS {string.Join(", ", files.Select(Q))};\n")
                    + (state.OpenRuns ? string.Format(CultureInfo.InvariantCulture, PostgreSql.OpenRuns.ForgetDay, day) + ";\n" : "")
                    + (versions is not null ? DropVersions(versions) : "");
                if (after != "")
                {
                    await ExecAsync(connection, after, cancellationToken).ConfigureAwait(false);
                }

                dropped = dropped with
                {
                    Days = dropped.Days + 1, Succeeded = dropped.Succeeded + (int)counts[0], Failed = dropped.Failed + (int)counts[1], Kept = dropped.Kept + (int)counts[2],
                    Rebuilt = dropped.Rebuilt + (build is null && counts[2] > 0 ? 1 : 0), Ahead = dropped.Ahead + (ahead && build is not null ? 1 : 0),
                };
            }
            catch (Exception) when (versions is not null)
            {
                // The lock timed out, the process is stopping, an attach failed: the build's tables go now, not in an hour.
                await DropQuietlyAsync(connection, versions).ConfigureAwait(false);
                throw;
            }
        }

        return dropped;
    }

    /// <summary>
    /// The kept rows of a dropped day become that day's partitions again, named <c>_k</c> (<c>JobLogTasks_k20261203</c>):
    /// tables filled without indexes and then attached, so PostgreSQL builds their indexes in bulk. Inserting them into the
    /// default partition instead, row by row through its 15 indexes (two of them trigram GIN), took 3.0 s for the 10,000
    /// tasks and 1.0 s for their runs of a day of 100,000 (the bench's swept tasks, ended after the cutoff), most of the
    /// drop. The drop passes over <c>_k</c> partitions; the batched purge deletes their rows when they expire, and an
    /// emptied one goes at the next drop (<see cref="DropEmptyKeptAsync"/>).
    /// </summary>
    private static string KeptPartitions(int day) => string.Concat(Tables.Select(t => $"""
        CREATE TABLE {Q(KeptName(t.Table, day))} (LIKE {Q(t.Table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE);
        INSERT INTO {Q(KeptName(t.Table, day))} SELECT * FROM {(t.Table == LedgerModel.Tasks ? "joblog_keep_tasks" : "joblog_keep_runs")};
        ALTER TABLE {Q(t.Table)} ATTACH PARTITION {Q(KeptName(t.Table, day))} FOR VALUES FROM ({day}) TO ({day + 1});

        """));

    private static string KeptName(string table, int day) => table + "_k" + PartitionDay.Suffix(day)[1..];

    /// <summary>Drops the kept partitions (<see cref="KeptPartitions"/>) of the days whose tasks and runs are all gone.</summary>
    private static async Task DropEmptyKeptAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        var kept = await DaysAsync(connection, cancellationToken, kept: true).ConfigureAwait(false);
        foreach (var day in kept.GetValueOrDefault(LedgerModel.Tasks, []).Order())
        {
            var tables = Tables.Select(t => t.Table).Where(t => kept.GetValueOrDefault(t, []).Contains(day)).ToList();
            var empty = $"SELECT NOT EXISTS (SELECT 1 FROM {string.Join(" UNION ALL SELECT 1 FROM ", tables.Select(t => Q(KeptName(t, day))))})";
            if (!await ScalarAsync<bool>(connection, empty, cancellationToken).ConfigureAwait(false))
            {
                continue;
            }

            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await ExecAsync(connection, "SET LOCAL lock_timeout = '10s'", cancellationToken).ConfigureAwait(false);
            // The parents only, as the day's drop (DropDaysAsync): the kept partitions' detach takes their own.
            await ExecAsync(connection, LockParentsOnly([LedgerModel.Tasks, LedgerModel.Runs]), cancellationToken).ConfigureAwait(false);
            if (await ScalarAsync<bool>(connection, empty, cancellationToken).ConfigureAwait(false))
            {
                foreach (var table in tables)
                {
                    await ExecAsync(connection, $"ALTER TABLE {Q(table)} DETACH PARTITION {Q(KeptName(table, day))}; DROP TABLE {Q(KeptName(table, day))}", cancellationToken).ConfigureAwait(false);
                }

                await DropKeptSearchTextAsync(connection, day, cancellationToken).ConfigureAwait(false);

                await ExecAsync(connection, DayRollups.Empty(day, await RollupPartitionsAsync(connection, day, cancellationToken).ConfigureAwait(false), drop: true), cancellationToken).ConfigureAwait(false);
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// What a day's locked transaction needs to know of the catalog (<see cref="DropStateAsync"/>): whether the day's tasks
    /// and runs partitions and the open runs' side table exist, the day rollups with a partition of the day, the search's
    /// side table's kind and whether it has the day's partition, and whether the kept rows' build is still there, as made.
    /// </summary>
    private sealed record DropState(bool Tasks, bool Runs, bool OpenRuns, List<string> RollupPartitions, string SearchText, bool SearchTextDay, bool BuiltPresent);

    /// <summary>Reads <see cref="DropState"/> in one round trip (under the day's lock: each costs the waiting writers).</summary>
    private static async Task<DropState> DropStateAsync(DbConnection connection, int day, string tasks, string runs, KeptBuild? build, CancellationToken cancellationToken)
    {
        static string Exists(string name) => $"SELECT (to_regclass('{name}') IS NOT NULL)::text\n";
        var sql = Exists(tasks) + "UNION ALL " + Exists(Q(runs)) + "UNION ALL " + Exists(Q(PostgreSql.OpenRuns.Table))
            + string.Concat(DayRollups.DayTables.Select(t => "UNION ALL " + Exists(Q(t + "_" + PartitionDay.Suffix(day)))))
            + $"UNION ALL SELECT ({SearchTextKindSql})\n"
            + "UNION ALL " + Exists(Q(SearchText + "_" + PartitionDay.Suffix(day)))
            + (build is not null ? BuiltChecks(build) : "");
        var values = await ListAsync<string>(connection, sql, cancellationToken, build is not null ? ("shape", build.Shape) : null).ConfigureAwait(false);
        var rollups = DayRollups.DayTables.Length;
        return new DropState(
            Tasks: values[0] == "true", Runs: values[1] == "true", OpenRuns: values[2] == "true",
            RollupPartitions: [.. DayRollups.DayTables.Where((_, i) => values[3 + i] == "true")],
            SearchText: values[3 + rollups], SearchTextDay: values[4 + rollups] == "true",
            BuiltPresent: build is not null && values[5 + rollups] == "true" && values[6 + rollups] == "true");
    }

    /// <summary>The day rollups (<see cref="DayRollups.DayTables"/>) that have a partition of <paramref name="day"/>.</summary>
    private static async Task<List<string>> RollupPartitionsAsync(DbConnection connection, int day, CancellationToken cancellationToken)
    {
        var present = new List<string>();
        foreach (var table in DayRollups.DayTables)
        {
            if (await ScalarAsync<bool>(connection, $"SELECT to_regclass('{Q(table + "_" + PartitionDay.Suffix(day))}') IS NOT NULL", cancellationToken).ConfigureAwait(false))
            {
                present.Add(table);
            }
        }

        return present;
    }

    /// <summary>
    /// The tasks (row <c>t</c>) a drop with these cutoffs keeps: every row to keep is unfinished or not a success (a state
    /// index range) or ended at or after the success cutoff (a Stop index range), and the exact rule then filters those.
    /// </summary>
    private static string Keep(DateTime succeededBefore, DateTime? failedBefore)
    {
        var notSucceeded = string.Join(", ", Enum.GetValues<TaskState>().Where(v => v != TaskState.Succeeded).Select(v => ((int)v).ToString(CultureInfo.InvariantCulture)));
        return $"""(t."State" IN ({notSucceeded}) OR t."Stop" >= {Literal(succeededBefore)} OR t."Stop" IS NULL) AND NOT ({Deletable("t", succeededBefore, failedBefore)})""";
    }

    /// <summary>
    /// The batched purge's rule (<c>LedgerPurger.Candidates</c>) for a task row <paramref name="alias"/>: SUCCEEDED and
    /// ended before the success cutoff, or FAILED or EXPIRED and ended before the failure cutoff.
    /// </summary>
    internal static string Deletable(string alias, DateTime succeededBefore, DateTime? failedBefore)
    {
        var failures = failedBefore is { } f
            ? $"({alias}.\"State\" IN ({(int)TaskState.Failed}, {(int)TaskState.Expired}) AND {alias}.\"Stop\" < {Literal(f)})"
            : "FALSE";
        return $"{alias}.\"Stop\" IS NOT NULL AND (({alias}.\"State\" = {(int)TaskState.Succeeded} AND {alias}.\"Stop\" < {Literal(succeededBefore)}) OR {failures})";
    }

    /// <summary>
    /// Drops the tables of <paramref name="catalog"/> (in reverse: a table's foreign keys reference the ones before it)
    /// and puts their <c>_partitioned</c> copies in their place, with the primary key, indexes and triggers read from the
    /// catalog, and their statistics.
    /// </summary>
    private static async Task SwapInPartitionedAsync(
        DbConnection connection, IReadOnlyList<(string Table, string PrimaryKey, List<string> Recreate)> catalog, CancellationToken cancellationToken)
    {
        foreach (var (table, _, _) in catalog.Reverse())
        {
            await ExecAsync(connection, $"DROP TABLE {Q(table)}", cancellationToken).ConfigureAwait(false);
        }

        foreach (var (table, primaryKey, recreate) in catalog)
        {
            await ExecAsync(connection, $"ALTER TABLE {Q(table + "_partitioned")} RENAME TO {Q(table)}", cancellationToken).ConfigureAwait(false);
            await ExecAsync(connection, primaryKey, cancellationToken).ConfigureAwait(false);
            foreach (var sql in recreate)
            {
                await ExecAsync(connection, sql, cancellationToken).ConfigureAwait(false);
            }

            await ExecAsync(connection, $"ANALYZE {Q(table)}", cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The day partitions of each partitioned table, by their names (<paramref name="kept"/>: the <c>_k</c> partitions of dropped days' kept rows).</summary>
    internal static Task<Dictionary<string, HashSet<int>>> DaysAsync(DbConnection connection, CancellationToken cancellationToken, bool kept = false) =>
        PartitionDaysAsync(connection, [LedgerModel.Tasks, LedgerModel.Runs], DayPartition(), kept, cancellationToken);

    /// <summary>
    /// The day partitions of <paramref name="tables"/>, by their names matched by <paramref name="pattern"/> (groups: the
    /// table, <c>p</c> or <c>k</c>, the day as <c>yyyyMMdd</c>); <paramref name="kept"/>: the <c>_k</c> partitions.
    /// </summary>
    private static async Task<Dictionary<string, HashSet<int>>> PartitionDaysAsync(
        DbConnection connection, IEnumerable<string> tables, Regex pattern, bool kept, CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, HashSet<int>>(StringComparer.Ordinal);
        var names = await ListAsync<string>(connection,
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent " +
            $"WHERE p.oid IN ({string.Join(", ", tables.Select(t => $"to_regclass('{Q(t)}')"))})", cancellationToken).ConfigureAwait(false);
        foreach (var name in names)
        {
            var match = pattern.Match(name);
            if (match.Success && match.Groups[2].Value == (kept ? "k" : "p") && DateTime.TryParseExact(match.Groups[3].Value, "yyyyMMdd", CultureInfo.InvariantCulture,
                    DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var date))
            {
                var table = match.Groups[1].Value;
                if (!result.TryGetValue(table, out var days))
                {
                    result[table] = days = [];
                }

                days.Add(PartitionDay.Of(date));
            }
        }

        return result;
    }

    private static string CreateFixedPartitions(string table, string parent) => $"""
        CREATE TABLE {Q(table + "_undated")} PARTITION OF {Q(parent)} FOR VALUES FROM (MINVALUE) TO ({PartitionDay.Undated + 1}){Storage(table)};
        CREATE TABLE {Q(table + "_default")} PARTITION OF {Q(parent)} DEFAULT{Storage(table)};
        """;

    private static string CreateDay(string table, string parent, int day) =>
        $"CREATE TABLE {Q(table + "_" + PartitionDay.Suffix(day))} PARTITION OF {Q(parent)} FOR VALUES FROM ({day}) TO ({day + 1}){Storage(table)}";

    // A partition has its own storage parameters (its partitioned table has none): the runs' fill factor on each
    // (OpenRuns.FillFactor: room for a finished run's new version on its page, a HOT update).
    private static string Storage(string table) => table == LedgerModel.Runs ? PostgreSql.OpenRuns.RunsStorage : "";

    private static string MoveFromDefault(string table, int day) => $"""
        CREATE TEMP TABLE joblog_move ON COMMIT DROP AS SELECT * FROM {Q(table + "_default")} WHERE {Key} = {day};
        DELETE FROM {Q(table + "_default")} WHERE {Key} = {day};
        {CreateDay(table, table, day)};
        INSERT INTO {Q(table + "_" + PartitionDay.Suffix(day))} SELECT * FROM joblog_move;
        """;

    private static async Task<(string Table, string PrimaryKey, List<string> Recreate)> ReadCatalogAsync(
        DbConnection connection, string table, CancellationToken ct)
    {
        var oid = $"'{Q(table)}'::regclass";
        var unique = await ListAsync<string>(connection,
            $"SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = {oid} AND i.indisunique " +
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype = 'p')", ct).ConfigureAwait(false);
        if (unique.Count > 0)
        {
            throw new InvalidOperationException(
                $"{table} has the unique index {unique[0]}: a partitioned table can only keep unique indexes that include {PartitionDay.Column}. Drop it, or leave the ledger unpartitioned.");
        }

        var primaryKey = (await ListAsync<string>(connection,
            $"SELECT format('ALTER TABLE %I ADD CONSTRAINT %I %s', '{table}', conname, pg_get_constraintdef(oid)) FROM pg_constraint WHERE conrelid = {oid} AND contype = 'p'",
            ct).ConfigureAwait(false)).Single();
        primaryKey = primaryKey[..primaryKey.LastIndexOf(')')] + ", " + Key + ")";
        var recreate = await ListAsync<string>(connection,
            $"SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = {oid} " +
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) ORDER BY i.indexrelid", ct).ConfigureAwait(false);
        recreate.AddRange(await ListAsync<string>(connection,
            $"SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE t.tgrelid = {oid} AND NOT t.tgisinternal ORDER BY t.tgname", ct).ConfigureAwait(false));
        return (table, primaryKey, recreate);
    }

    private static string Q(string name) => "\"" + name + "\"";

    private static string Literal(DateTime time) =>
        "'" + DateTime.SpecifyKind(time, DateTimeKind.Utc).ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture) + "'::timestamptz";

    private static async Task<int> ExecAsync(DbConnection connection, string sql, CancellationToken ct)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.CommandTimeout = 0;
        return await command.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    private static async Task<T> ScalarAsync<T>(DbConnection connection, string sql, CancellationToken ct) =>
        (await ListAsync<T>(connection, sql, ct).ConfigureAwait(false)).Single();

    private static async Task<List<T>> ListAsync<T>(DbConnection connection, string sql, CancellationToken ct, (string Name, object Value)? parameter = null)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.CommandTimeout = 0;
        if (parameter is { } p)
        {
            var dbParameter = command.CreateParameter();
            dbParameter.ParameterName = p.Name;
            dbParameter.Value = p.Value;
            command.Parameters.Add(dbParameter);
        }

        await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var list = new List<T>();
        while (await reader.ReadAsync(ct).ConfigureAwait(false))
        {
            list.Add(reader.GetFieldValue<T>(0));
        }

        return list;
    }

    /// <summary>
    /// Runs the statements of <paramref name="sql"/>, then those of <paramref name="after"/>, in one round trip, and returns
    /// the first column of the last result set (statements without one pass by; <paramref name="after"/> returns none).
    /// </summary>
    private static async Task<List<T>> LastListAsync<T>(DbConnection connection, string sql, CancellationToken ct, string after = "")
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql + (after == "" ? "" : "\n" + after);
        command.CommandTimeout = 0;
        await using var reader = await command.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var last = new List<object>();
        do
        {
            if (reader.FieldCount == 0)
            {
                continue;
            }

            // Every set read as values (an earlier one may be of another type, or void: pg_advisory_xact_lock), the last one kept.
            last = [];
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                last.Add(reader.GetValue(0));
            }
        }
        while (await reader.NextResultAsync(ct).ConfigureAwait(false));

        return [.. last.Cast<T>()];
    }

    [GeneratedRegex("^(JobLogTasks|JobLogTaskRuns)_([pk])([0-9]{8})$", RegexOptions.CultureInvariant)]
    private static partial Regex DayPartition();

    [GeneratedRegex("^(JobLogTaskDays|JobLogRunDays)_([pk])([0-9]{8})$", RegexOptions.CultureInvariant)]
    private static partial Regex RollupDayPartition();
}
