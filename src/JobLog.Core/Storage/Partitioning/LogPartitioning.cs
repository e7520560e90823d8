using System.Data.Common;
using System.Globalization;
using System.Text.RegularExpressions;
using JobLog.Retention;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace JobLog.Storage.Partitioning;

/// <summary>
/// Daily partitions of the request and command logs (docs/scale.md#partitioning), next to the tasks' and runs': inbound
/// requests, outbound requests with their related objects, and commands, each range-partitioned on
/// <see cref="PartitionDay.Column"/> derived from the row's id (a UUID version 7 made at the request's or command's
/// start), a related object's from its outbound request's id, so it lives in its request's day. Their primary keys
/// become <c>("Id", key)</c> and the writer's upserts name the key (<see cref="PartitionedLogStatements"/>); the related
/// objects' foreign key to the outbound requests is not recreated (as the runs' to the tasks). Converted, kept ahead,
/// dropped and restored by kind, in the same passes as the tasks (<see cref="ConvertLogsAsync"/>,
/// <see cref="EnsureLogsAheadAsync"/>, <see cref="DropExpiredLogsAsync"/>, <see cref="RestoreLogsAsync"/>).
/// </summary>
internal static partial class LedgerPartitioning
{
    /// <summary>The partitioned log tables, the column their key is derived from and the kind they belong to (a kind's parent table first).</summary>
    public static readonly (string Table, string KeyOf, LedgerKind Kind)[] LogTables =
    [
        (LedgerModel.InputRequests, "Id", LedgerKind.InputRequests),
        (LedgerModel.OutputRequests, "Id", LedgerKind.OutputRequests),
        (LedgerModel.RelatedObjects, "OutputRequestId", LedgerKind.OutputRequests),
        (LedgerModel.Commands, "Id", LedgerKind.Commands),
    ];

    /// <summary>Succeeded: the batched purge's success statuses of a request (<c>LedgerPurger.Candidates</c>).</summary>
    private static readonly string s_requestSucceeded = $"({(int)RequestLogStatus.Debug}, {(int)RequestLogStatus.Info})";

    /// <summary>Failed: the batched purge's failure statuses of a request.</summary>
    private static readonly string s_requestFailed = $"({(int)RequestLogStatus.Warning}, {(int)RequestLogStatus.Error}, {(int)RequestLogStatus.Critical})";

    /// <summary>Whether the log table of <paramref name="kind"/> (the tasks' for <see cref="LedgerKind.Tasks"/>) is partitioned.</summary>
    public static async Task<bool> IsPartitionedAsync(DbConnection connection, LedgerKind kind, CancellationToken cancellationToken) =>
        kind == LedgerKind.Tasks
            ? await IsPartitionedAsync(connection, cancellationToken).ConfigureAwait(false)
            : await IsTablePartitionedAsync(connection, LogTables.First(t => t.Kind == kind).Table, cancellationToken).ConfigureAwait(false);

    /// <summary>Whether the log tables are partitioned (they are converted together: the inbound requests' answer for all).</summary>
    public static Task<bool> AreLogsPartitionedAsync(DbConnection connection, CancellationToken cancellationToken) =>
        IsTablePartitionedAsync(connection, LedgerModel.InputRequests, cancellationToken);

    /// <summary>
    /// Converts the unpartitioned log tables in place, as <see cref="ConvertAsync"/> the tasks: one transaction holding
    /// the four tables locked, each copied into a partitioned table with its key, the old ones dropped, and their
    /// indexes and triggers recreated from the catalog. Day partitions are made for today, <paramref name="daysAhead"/>
    /// days after it and every day (at most <see cref="ConvertedDaysBack"/> old) a row's id carries.
    /// </summary>
    /// <returns>The rows copied per table, or null when the logs were already partitioned.</returns>
    public static async Task<IReadOnlyDictionary<string, long>?> ConvertLogsAsync(DbConnection connection, DateTime now, int daysAhead, CancellationToken cancellationToken)
    {
        if (await AreLogsPartitionedAsync(connection, cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await ExecAsync(connection, $"LOCK TABLE {string.Join(", ", LogTables.Select(t => Q(t.Table)))} IN ACCESS EXCLUSIVE MODE", cancellationToken).ConfigureAwait(false);
        if (await AreLogsPartitionedAsync(connection, cancellationToken).ConfigureAwait(false))
        {
            return null;
        }

        await ExecAsync(connection, PartitionDay.SqlFunction, cancellationToken).ConfigureAwait(false);
        var catalog = new List<(string Table, string PrimaryKey, List<string> Recreate)>();
        foreach (var (table, _, _) in LogTables)
        {
            catalog.Add(await ReadCatalogAsync(connection, table, cancellationToken).ConfigureAwait(false));
        }

        // One set of days for every log table, as the maintenance makes them: a related object's day is its request's.
        var today = PartitionDay.Of(now);
        var days = new SortedSet<int>(Enumerable.Range(today, daysAhead + 1));
        foreach (var (table, keyOf, _) in LogTables.Where(t => t.KeyOf == "Id"))
        {
            foreach (var day in await ListAsync<int>(connection, $"SELECT DISTINCT {PartitionDay.Function}(\"{keyOf}\") FROM {Q(table)}", cancellationToken).ConfigureAwait(false))
            {
                if (day != PartitionDay.Undated && day >= today - ConvertedDaysBack && day <= today + daysAhead)
                {
                    days.Add(day);
                }
            }
        }

        var copied = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (table, keyOf, _) in LogTables)
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

            copied[table] = await ExecAsync(connection,
                $"INSERT INTO {Q(staged)} SELECT o.*, {PartitionDay.Function}(o.\"{keyOf}\") FROM {Q(table)} o", cancellationToken).ConfigureAwait(false);
        }

        // The related objects first: their foreign key references the outbound requests.
        await SwapInPartitionedAsync(connection, catalog, cancellationToken).ConfigureAwait(false);

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return copied;
    }

    /// <summary>
    /// Creates the missing day partitions of the log tables, today (UTC) and <paramref name="daysAhead"/> days after it, as
    /// <see cref="EnsureAheadAsync"/> those of the tasks (rows of the day already in the default partition move in).
    /// Nothing when the logs are not partitioned.
    /// </summary>
    /// <returns>How many partitions were created.</returns>
    public static async Task<int> EnsureLogsAheadAsync(DbConnection connection, DateTime now, int daysAhead, CancellationToken cancellationToken)
    {
        if (!await AreLogsPartitionedAsync(connection, cancellationToken).ConfigureAwait(false))
        {
            return 0;
        }

        var created = 0;
        var today = PartitionDay.Of(now);
        var existing = await LogDaysAsync(connection, kept: false, cancellationToken).ConfigureAwait(false);
        foreach (var (table, days) in await LogDaysAsync(connection, kept: true, cancellationToken).ConfigureAwait(false))
        {
            existing[table] = existing.TryGetValue(table, out var made) ? [.. made, .. days] : days;
        }

        for (var day = today; day <= today + daysAhead; day++)
        {
            foreach (var (table, _, _) in LogTables)
            {
                if (existing.TryGetValue(table, out var days) && days.Contains(day))
                {
                    continue;
                }

                if (await CreateDayPartitionAsync(connection, table, day, cancellationToken).ConfigureAwait(false))
                {
                    created++;
                }
            }
        }

        return created;
    }

    /// <summary>
    /// Drops each day partition of <paramref name="kind"/>'s log tables whose whole day is older than
    /// <paramref name="succeededBefore"/>, oldest first, one transaction a day. What the batched purge would not delete
    /// (<see cref="LogDeletable"/>: unfinished, not yet past its cutoff, or of a status it never deletes) is kept, with an
    /// outbound request's related objects, in the day's <c>_k</c> partitions, as the tasks' (<see cref="KeptPartitions"/>).
    /// The rows left in the default, undated and <c>_k</c> partitions are the batched purge's. The day's partitions are
    /// detached in its transaction and dropped after its commit, as the tasks' (LedgerPartitioning.Detached.cs). The day's
    /// counts and kept rows are read before its lock when its partition is <paramref name="buildFrom"/> bytes or more
    /// (LogPartitioning.Built.cs); <paramref name="built"/> (tests) is called with the day between that read and the lock.
    /// </summary>
    public static async Task<PartitionDrop> DropExpiredLogsAsync(
        DbConnection connection, LedgerKind kind, DateTime succeededBefore, DateTime? failedBefore, CancellationToken cancellationToken,
        Func<int, Task>? built = null, long buildFrom = BuildLogsFrom)
    {
        var dropped = new PartitionDrop(0, 0, 0, 0);
        var tables = LogTables.Where(t => t.Kind == kind).Select(t => t.Table).ToArray();
        if (tables.Length == 0 || !await IsTablePartitionedAsync(connection, tables[0], cancellationToken).ConfigureAwait(false))
        {
            return dropped;
        }

        await DropEmptyKeptLogsAsync(connection, tables, cancellationToken).ConfigureAwait(false);
        await DropDetachedAsync(connection, cancellationToken, tables).ConfigureAwait(false);
        await DropAbandonedBuildsAsync(connection, cancellationToken).ConfigureAwait(false);
        var existing = await LogDaysAsync(connection, kept: false, cancellationToken).ConfigureAwait(false);
        var (succeeded, failed) = Outcomes(kind);
        var deletable = LogDeletable(kind, "t", succeededBefore, failedBefore);
        foreach (var day in existing.GetValueOrDefault(tables[0], []).Where(d => PartitionDay.Start(d + 1) <= succeededBefore).Order())
        {
            var partitions = tables.Select(t => t + "_" + PartitionDay.Suffix(day)).ToArray();
            var present = (await PresentAsync(connection, partitions, cancellationToken).ConfigureAwait(false)).ToArray();
            // The day's counts and kept rows read before its lock (LogPartitioning.Built.cs); under it, only the check that
            // nothing was written since, and the swap.
            var build = present[0] && await ScalarAsync<long>(connection, $"SELECT pg_relation_size('{Q(partitions[0])}')", cancellationToken).ConfigureAwait(false) >= buildFrom
                ? await BuildKeptLogsAsync(connection, day, tables, partitions, present, deletable, succeeded, failed, cancellationToken).ConfigureAwait(false)
                : null;
            try
            {
                if (build is not null && built is not null)
                {
                    await built(day).ConfigureAwait(false);
                }

                var counts = await DropLogDayAsync(connection, tables, partitions, day, deletable, succeeded, failed, build, cancellationToken).ConfigureAwait(false);
                if (build is not null)
                {
                    await ExecAsync(connection, DropLogBuild(build), cancellationToken).ConfigureAwait(false);
                }

                if (counts is null)
                {
                    continue;
                }

                await DropDetachedAsync(connection, tables.Select(t => DetachedName(t, day)), cancellationToken).ConfigureAwait(false);
                dropped = dropped with
                {
                    Days = dropped.Days + 1, Succeeded = dropped.Succeeded + (int)counts.Value.Counts[0], Failed = dropped.Failed + (int)counts.Value.Counts[1],
                    Kept = dropped.Kept + (int)counts.Value.Counts[2], Rebuilt = dropped.Rebuilt + (counts.Value.Read && counts.Value.Counts[2] > 0 ? 1 : 0),
                };
            }
            catch (Exception) when (build is not null)
            {
                // The lock timed out, the process is stopping, an attach failed: the build's tables go now.
                await DropLogBuildQuietlyAsync(connection, build).ConfigureAwait(false);
                throw;
            }
        }

        return dropped;
    }

    /// <summary>
    /// The size of a day's partition of the requests or commands from which its drop reads it before the lock
    /// (<see cref="BuildKeptLogsAsync"/>): 1 MB. A smaller one is read under the lock in a few milliseconds, less than the
    /// build's round trips (its tables, its triggers and their drop) cost: at 1 M, five empty days' drops took 50-200 ms
    /// each with a build (docs/benchmarks.md "Session 43 (retention)").
    /// </summary>
    internal const long BuildLogsFrom = 1 << 20;

    /// <summary>Whether each of <paramref name="partitions"/> exists, in their order, in one round trip.</summary>
    private static Task<List<bool>> PresentAsync(DbConnection connection, string[] partitions, CancellationToken cancellationToken) =>
        ListAsync<bool>(connection, $"SELECT unnest(ARRAY[{string.Join(", ", partitions.Select(p => $"to_regclass('{Q(p)}') IS NOT NULL"))}])", cancellationToken);

    /// <summary>
    /// <paramref name="day"/>'s locked transaction: the counts (deleted successes, deleted failures, kept) and whether the day
    /// was read under the lock (<c>Read</c>: no build, or something was noted since it began), or null when the day is gone.
    /// </summary>
    private static async Task<(long[] Counts, bool Read)?> DropLogDayAsync(
        DbConnection connection, string[] tables, string[] partitions, int day, string deletable, string succeeded, string failed, LogBuild? build,
        CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        // The parents ONLY, as the tasks' drop (LedgerPartitioning.DropExpiredAsync): every write and read of a log partition
        // goes through its parent, which this holds, and the detach takes the day's own; another day's partition held by
        // an autovacuum (SHARE UPDATE EXCLUSIVE) is not the drop's to wait for (up to deadlock_timeout, writers queued behind).
        await ExecAsync(connection, "SET LOCAL lock_timeout = '10s'; " + LockParentsOnly(tables), cancellationToken).ConfigureAwait(false);
        var present = (await PresentAsync(connection, partitions, cancellationToken).ConfigureAwait(false)).ToArray();
        if (!present[0])
        {
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return null;
        }

        var sql = new System.Text.StringBuilder();
        long[] counts;
        var read = build is null || !await LogBuildHoldsAsync(connection, build, cancellationToken).ConfigureAwait(false);
        if (!read)
        {
            counts = build!.Counts;
        }
        else
        {
            // No build, or the day changed since: read here, as before session 43. The day's partition once for the counts, and
            // once more for the kept rows only when there are some (three reads until session 42).
            counts = [.. await ListAsync<long>(connection,
                $"SELECT unnest(ARRAY[COUNT(*) FILTER (WHERE ({deletable}) AND {succeeded}), COUNT(*) FILTER (WHERE ({deletable}) AND {failed}), " +
                $"COUNT(*) FILTER (WHERE NOT ({deletable}))]) FROM {Q(partitions[0])} t", cancellationToken).ConfigureAwait(false)];
            await ExecAsync(connection,
                $"CREATE TEMP TABLE joblog_keep_0 ON COMMIT DROP AS SELECT * FROM {Q(partitions[0])} t WHERE {(counts[2] > 0 ? $"NOT ({deletable})" : "FALSE")}",
                cancellationToken).ConfigureAwait(false);
            for (var i = 1; i < tables.Length; i++)
            {
                // A related object stays with its kept request (keyed by the request's id: the same day).
                var keep = present[i] ? $"{Q(partitions[i])} x WHERE x.\"OutputRequestId\" IN (SELECT \"Id\" FROM joblog_keep_0)" : $"{Q(tables[i])} x WHERE FALSE";
                sql.AppendLine(CultureInfo.InvariantCulture, $"CREATE TEMP TABLE joblog_keep_{i} ON COMMIT DROP AS SELECT x.* FROM {keep};");
            }
        }

        for (var i = tables.Length - 1; i >= 0; i--)
        {
            if (present[i])
            {
                sql.Append(Detach(tables[i], partitions[i], day));
            }
        }

        if (!read && build!.Tables is not null)
        {
            sql.Append(AttachLogBuild(build, tables, day));
        }
        else if (read && counts[2] > 0)
        {
            for (var i = 0; i < tables.Length; i++)
            {
                sql.AppendLine(CultureInfo.InvariantCulture, $"""
                    CREATE TABLE {Q(KeptName(tables[i], day))} (LIKE {Q(tables[i])} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE);
                    INSERT INTO {Q(KeptName(tables[i], day))} SELECT * FROM joblog_keep_{i};
                    ALTER TABLE {Q(tables[i])} ATTACH PARTITION {Q(KeptName(tables[i], day))} FOR VALUES FROM ({day}) TO ({day + 1});
                    """);
            }
        }

        await ExecAsync(connection, sql.ToString(), cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return (counts, read);
    }

    /// <summary>
    /// The batched purge's rule (<c>LedgerPurger.Candidates</c>) for a row <paramref name="alias"/> of <paramref name="kind"/>'s
    /// parent table: a request finished with a success status before the success cutoff or with a failure status before
    /// the failure cutoff; a command stopped, successful before the success cutoff, otherwise before the failure cutoff.
    /// </summary>
    internal static string LogDeletable(LedgerKind kind, string alias, DateTime succeededBefore, DateTime? failedBefore)
    {
        var (succeeded, failed) = Outcomes(kind, alias);
        var end = kind == LedgerKind.Commands ? $"{alias}.\"Stop\"" : $"{alias}.\"ResponseTimestamp\"";
        var failures = failedBefore is { } f ? $"({failed} AND {end} < {Literal(f)})" : "FALSE";
        return $"{end} IS NOT NULL AND (({succeeded} AND {end} < {Literal(succeededBefore)}) OR {failures})";
    }

    /// <summary>
    /// Inserts the rows of a JSON array (the backup's entities) of <paramref name="kind"/> with their partition key, an
    /// outbound request's <c>RelatedObjects</c> too: a restore on a partitioned ledger, where EF Core's insert would lack
    /// the key. The tasks go through <see cref="RestoreTasksAsync"/>. Rows whose id already exists are left out by the caller.
    /// </summary>
    public static Task RestoreLogsAsync(JobLogDbContext db, LedgerKind kind, string json, CancellationToken cancellationToken) => kind switch
    {
        LedgerKind.Tasks => RestoreTasksAsync(db, json, cancellationToken),
        LedgerKind.InputRequests => db.Database.ExecuteSqlRawAsync(s_restoreInputRequests, [Rows(json)], cancellationToken),
        LedgerKind.OutputRequests => db.Database.ExecuteSqlRawAsync(s_restoreOutputRequests, [Rows(json)], cancellationToken),
        LedgerKind.Commands => db.Database.ExecuteSqlRawAsync(s_restoreCommands, [Rows(json)], cancellationToken),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown ledger kind."),
    };

    private static readonly string s_restoreInputRequests = RestoreRows(LedgerModel.InputRequests);
    private static readonly string s_restoreCommands = RestoreRows(LedgerModel.Commands);
    private static readonly string s_restoreOutputRequests = $"""
        WITH j AS (SELECT e FROM jsonb_array_elements(@rows) e),
        parents AS ({RestoreRows(LedgerModel.OutputRequests, "j")})
        INSERT INTO {Q(LedgerModel.RelatedObjects)}
        SELECT (jsonb_populate_record(NULL::{Q(LedgerModel.RelatedObjects)}, r || jsonb_build_object('{PartitionDay.Column}', {PartitionDay.Function}((r->>'OutputRequestId')::uuid)))).*
        FROM j, jsonb_array_elements(COALESCE(j.e->'RelatedObjects', '[]'::jsonb)) r
        """;

    private static string RestoreRows(string table, string? from = null) => $"""
        INSERT INTO {Q(table)}
        SELECT (jsonb_populate_record(NULL::{Q(table)}, e || jsonb_build_object('{PartitionDay.Column}', {PartitionDay.Function}((e->>'Id')::uuid)))).*
        FROM {from ?? "jsonb_array_elements(@rows) e"}
        """;

    private static NpgsqlParameter Rows(string json) => new("rows", NpgsqlTypes.NpgsqlDbType.Jsonb) { Value = json };

    /// <summary>The day partitions of each log table, by their names (<paramref name="kept"/>: the <c>_k</c> partitions of dropped days' kept rows).</summary>
    internal static Task<Dictionary<string, HashSet<int>>> LogDaysAsync(DbConnection connection, bool kept, CancellationToken cancellationToken) =>
        PartitionDaysAsync(connection, LogTables.Select(t => t.Table), LogDayPartition(), kept, cancellationToken);

    private static (string Succeeded, string Failed) Outcomes(LedgerKind kind, string alias = "t") => kind == LedgerKind.Commands
        ? ($"{alias}.\"IsSuccessful\" IS TRUE", $"{alias}.\"IsSuccessful\" IS NOT TRUE")
        : ($"{alias}.\"Status\" IN {s_requestSucceeded}", $"{alias}.\"Status\" IN {s_requestFailed}");

    private static async Task<bool> IsTablePartitionedAsync(DbConnection connection, string table, CancellationToken cancellationToken) =>
        await ScalarAsync<bool>(connection,
            $"SELECT COALESCE((SELECT c.relkind = 'p' FROM pg_class c WHERE c.oid = to_regclass('{Q(table)}')), FALSE)", cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// <c>LOCK TABLE ONLY a, ONLY b … IN <paramref name="mode"/> MODE</c>: the partitioned parents without their partitions
    /// (a lock on a partitioned table takes every partition too, so another day's autovacuum would hold it up), each name its
    /// own <c>ONLY</c> (one <c>ONLY</c> before the list still recurses into the partitions of the names after the first).
    /// </summary>
    private static string LockParentsOnly(IEnumerable<string> tables, string mode = "ACCESS EXCLUSIVE") =>
        $"LOCK TABLE {string.Join(", ", tables.Select(t => "ONLY " + Q(t)))} IN {mode} MODE";

    /// <summary>
    /// Creates <paramref name="table"/>'s partition of <paramref name="day"/> unless another process made it meanwhile,
    /// moving the day's rows out of the default partition if it holds some.
    /// </summary>
    private static async Task<bool> CreateDayPartitionAsync(DbConnection connection, string table, int day, CancellationToken cancellationToken)
    {
        await using var transaction = (NpgsqlTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await ExecAsync(connection, "SET LOCAL lock_timeout = '10s'", cancellationToken).ConfigureAwait(false);
        await ExecAsync(connection, "SELECT pg_advisory_xact_lock(hashtext('joblog_partitions'))", cancellationToken).ConfigureAwait(false);
        if (await ScalarAsync<bool>(connection, $"SELECT to_regclass('{Q(table + "_" + PartitionDay.Suffix(day))}') IS NOT NULL", cancellationToken).ConfigureAwait(false))
        {
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return false;
        }

        await transaction.SaveAsync("joblog_partition", cancellationToken).ConfigureAwait(false);
        try
        {
            await ExecAsync(connection, CreateDay(table, table, day), cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (ex.SqlState == CheckViolation)
        {
            await transaction.RollbackAsync("joblog_partition", cancellationToken).ConfigureAwait(false);
            await ExecAsync(connection, MoveFromDefault(table, day), cancellationToken).ConfigureAwait(false);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>Drops the kept partitions of <paramref name="tables"/> (one kind's) of the days whose rows are all gone.</summary>
    private static async Task DropEmptyKeptLogsAsync(DbConnection connection, string[] tables, CancellationToken cancellationToken)
    {
        var kept = await LogDaysAsync(connection, kept: true, cancellationToken).ConfigureAwait(false);
        foreach (var day in kept.GetValueOrDefault(tables[0], []).Order())
        {
            var present = tables.Where(t => kept.GetValueOrDefault(t, []).Contains(day)).ToList();
            var empty = $"SELECT NOT EXISTS (SELECT 1 FROM {string.Join(" UNION ALL SELECT 1 FROM ", present.Select(t => Q(KeptName(t, day))))})";
            if (!await ScalarAsync<bool>(connection, empty, cancellationToken).ConfigureAwait(false))
            {
                continue;
            }

            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await ExecAsync(connection, "SET LOCAL lock_timeout = '10s'", cancellationToken).ConfigureAwait(false);
            await ExecAsync(connection, LockParentsOnly(tables), cancellationToken).ConfigureAwait(false);
            if (await ScalarAsync<bool>(connection, empty, cancellationToken).ConfigureAwait(false))
            {
                foreach (var table in present.AsEnumerable().Reverse())
                {
                    await ExecAsync(connection, $"ALTER TABLE {Q(table)} DETACH PARTITION {Q(KeptName(table, day))}; DROP TABLE {Q(KeptName(table, day))}", cancellationToken).ConfigureAwait(false);
                }
            }

            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    [GeneratedRegex("^(JobLogInputRequests|JobLogOutputRequests|JobLogOutputRequestRelatedObjects|JobLogCommands)_([pk])([0-9]{8})$", RegexOptions.CultureInvariant)]
    private static partial Regex LogDayPartition();
}
