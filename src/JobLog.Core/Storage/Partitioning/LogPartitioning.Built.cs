using System.Data.Common;
using System.Globalization;
using Npgsql;

namespace JobLog.Storage.Partitioning;

/// <summary>
/// A log day's kept rows (<see cref="DropExpiredLogsAsync"/>) and its counts read before the day's locked transaction, which
/// then only checks that nothing was written into the day since and swaps the partitions. Read under the lock, the day's
/// partition took 0.34–0.49 s cold of a 250,000-request day's drop at 10 M, twice that with kept rows (docs/scale.md
/// "Session 42 (scale)"). As the tasks' build (LedgerPartitioning.Built.cs): a row trigger on each of the day's partitions
/// notes every request id written into them (a related object's, its request's) in an unlogged table of the build's
/// (<c>JobLogInputRequests_v…</c>, its comment naming the build's server session and tables), committed before the read's
/// snapshot; the kept rows go into tables of their own (<c>JobLogInputRequests_b…</c>) with the parents' indexes and a check
/// of their day, so their attach builds and scans nothing. Unlike the tasks' day, a log day has no rollups to count it by:
/// when anything was noted (a late response, a restore into a past day) the lock reads the day as before and the build goes.
/// A build left by a process stopped before its lock goes with the next drop or partition pass
/// (<see cref="DropAbandonedBuildsAsync"/>).
/// </summary>
internal static partial class LedgerPartitioning
{
    /// <summary>
    /// A log day's build: its table of notes, the tables its kept rows are in (one per log table of the kind, null when nothing
    /// is kept: they went before the lock), the counts read with them (deleted successes, deleted failures, kept) and the
    /// indexes to rename under the lock.
    /// </summary>
    private sealed record LogBuild(string Versions, string[]? Tables, long[] Counts, List<(string Built, string Kept)> Indexes);

    /// <summary>
    /// Builds the kept rows and the counts of <paramref name="day"/>'s drop of <paramref name="tables"/> (one kind's, its
    /// parent first; <paramref name="present"/>: which have the day's partition <paramref name="partitions"/>). Null when
    /// nothing was built (the day's partitions stayed locked past the triggers' timeout, or went meanwhile): the locked
    /// transaction reads the day itself.
    /// </summary>
    private static async Task<LogBuild?> BuildKeptLogsAsync(
        DbConnection connection, int day, string[] tables, string[] partitions, bool[] present, string deletable, string succeeded, string failed,
        CancellationToken cancellationToken)
    {
        var head = await ListAsync<string>(connection,
            "SELECT floor(extract(epoch FROM clock_timestamp()))::bigint::text UNION ALL SELECT current_schema()::text", cancellationToken).ConfigureAwait(false);
        var stamp = long.Parse(head[0], CultureInfo.InvariantCulture);
        string Name(string table, char kind) =>
            string.Create(CultureInfo.InvariantCulture, $"{table}_{kind}{PartitionDay.Suffix(day)[1..]}_{stamp}_{Random.Shared.Next(0x10000):x4}");
        var versions = Name(tables[0], 'v');
        var built = tables.Select(t => Name(t, 'b')).ToArray();
        var build = new LogBuild(versions, built, new long[3], []);

        // The tables and the triggers in a transaction of their own, committed before the read's snapshot (a write after it is
        // noted; one between the two is both read and noted: a change all the same). LIKE holds the parents (ACCESS SHARE)
        // until this commit only, not through the read (another drop's lock and the writers behind it would wait).
        var notes = Enumerable.Range(0, tables.Length).Where(i => present[i])
            .Select(i => (Q(partitions[i]), i == 0 ? "Id" : "OutputRequestId"));
        var create = $"CREATE UNLOGGED TABLE {Q(versions)} (\"Id\" uuid NOT NULL);\n"
            + $"DO $joblog_owner$ BEGIN EXECUTE format('COMMENT ON TABLE %I IS %L', '{versions}', json_build_object('{BuildOwner}', pg_backend_pid(), 'Tables', "
            + $"json_build_array({string.Join(", ", built.Select(t => "'" + t + "'"))}))::text); END $joblog_owner$;\n"
            + string.Concat(tables.Select((t, i) => $"CREATE TABLE {Q(built[i])} (LIKE {Q(t)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE);\n"))
            + NoteChangesOn(versions, head[1], notes);
        try
        {
            await using (var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false))
            {
                await ExecAsync(connection, create, cancellationToken).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            // One read of the day for the counts and the kept rows' places (the rows' narrow columns, not their bodies), the
            // kept rows then fetched by place; their related objects in the same snapshot.
            await using (var read = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false))
            {
                var sql = $"""
                    WITH s AS MATERIALIZED (SELECT t.ctid AS c, ({deletable}) AND {succeeded} AS ds, ({deletable}) AND {failed} AS df, NOT ({deletable}) AS k FROM {Q(partitions[0])} t),
                    kept AS (INSERT INTO {Q(built[0])} SELECT t.* FROM {Q(partitions[0])} t WHERE t.ctid = ANY (ARRAY(SELECT c FROM s WHERE k)) RETURNING 1)
                    SELECT unnest(ARRAY[(SELECT count(*) FROM s WHERE ds), (SELECT count(*) FROM s WHERE df), (SELECT count(*) FROM kept)]);
                    """;
                var counts = await ListAsync<long>(connection, sql, cancellationToken).ConfigureAwait(false);
                counts.CopyTo(build.Counts);
                var related = string.Concat(Enumerable.Range(1, tables.Length - 1).Where(i => present[i] && counts[2] > 0).Select(i =>
                    $"INSERT INTO {Q(built[i])} SELECT x.* FROM {Q(partitions[i])} x WHERE x.\"OutputRequestId\" IN (SELECT \"Id\" FROM {Q(built[0])});\n"));
                if (related != "")
                {
                    await ExecAsync(connection, related, cancellationToken).ConfigureAwait(false);
                }

                await read.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            if (build.Counts[2] == 0)
            {
                await ExecAsync(connection, $"DROP TABLE {string.Join(", ", built.Select(Q))}", cancellationToken).ConfigureAwait(false);
                return build with { Tables = null };
            }

            // The parents' indexes and the day's check, on the built tables alone: the attach under the lock adopts them.
            var indexesOf = await IndexesOfAsync(connection, day, [.. tables.Select((t, i) => (t, built[i]))], cancellationToken).ConfigureAwait(false);
            var indexes = "";
            foreach (var table in built)
            {
                indexes += $"ALTER TABLE {Q(table)} ADD CONSTRAINT {BuiltCheck} CHECK ({Key} >= {day} AND {Key} < {day + 1});\n";
                foreach (var (statement, builtName, keptName) in indexesOf[table])
                {
                    indexes += statement + ";\n";
                    build.Indexes.Add((builtName, keptName));
                }
            }

            await using (var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false))
            {
                await ExecAsync(connection, indexes, cancellationToken).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            return build;
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.UndefinedTable)
        {
            // The day's partitions stayed locked past the triggers' timeout, a writer waited the other way, or another process
            // dropped the day: nothing built; the locked transaction reads the day itself, or finds it gone.
            await DropLogBuildQuietlyAsync(connection, build).ConfigureAwait(false);
            return null;
        }
        catch (Exception)
        {
            await DropLogBuildQuietlyAsync(connection, build).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Under the day's lock: whether the build's tables are all there and nothing was noted since it began (then its counts
    /// and rows are the day's as the lock sees it).
    /// </summary>
    private static async Task<bool> LogBuildHoldsAsync(DbConnection connection, LogBuild build, CancellationToken cancellationToken)
    {
        var names = new[] { build.Versions }.Concat(build.Tables ?? []).ToList();
        return await ScalarAsync<bool>(connection,
                $"SELECT count(*) = {names.Count} FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND NOT relispartition " +
                $"AND relname IN ({string.Join(", ", names.Select(n => $"'{n}'"))})", cancellationToken).ConfigureAwait(false)
            && await ScalarAsync<bool>(connection, $"SELECT NOT EXISTS (SELECT 1 FROM {Q(build.Versions)})", cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Under the day's lock, after its partitions' detach: the built tables become its <c>_k</c> partitions.</summary>
    private static string AttachLogBuild(LogBuild build, string[] tables, int day) => string.Concat(tables.Select((t, i) => $"""
        ALTER TABLE {Q(build.Tables![i])} RENAME TO {Q(KeptName(t, day))};
        ALTER TABLE {Q(t)} ATTACH PARTITION {Q(KeptName(t, day))} FOR VALUES FROM ({day}) TO ({day + 1});
        ALTER TABLE {Q(KeptName(t, day))} DROP CONSTRAINT {BuiltCheck};
        {string.Concat(build.Indexes.Where(x => x.Built.StartsWith(build.Tables![i] + "_", StringComparison.Ordinal)).Select(x => $"ALTER INDEX {Q(x.Built)} RENAME TO {Q(x.Kept)};\n"))}
        """));

    /// <summary>The statement that drops what is left of <paramref name="build"/>'s tables (its kept rows' and its notes).</summary>
    private static string DropLogBuild(LogBuild build) =>
        $"DROP TABLE IF EXISTS {string.Join(", ", new[] { build.Versions }.Concat(build.Tables ?? []).Select(Q))};\n";

    /// <summary>Drops <paramref name="build"/>'s tables after a failure; what a broken connection leaves goes with <see cref="DropAbandonedBuildsAsync"/>.</summary>
    private static async Task DropLogBuildQuietlyAsync(DbConnection connection, LogBuild build)
    {
        try
        {
            await ExecAsync(connection, DropLogBuild(build), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is DbException or InvalidOperationException or TimeoutException)
        {
            // The connection may be broken (or in a failed transaction): the abandoned builds' pass drops them later.
        }
    }
}
