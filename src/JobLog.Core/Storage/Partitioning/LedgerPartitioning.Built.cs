using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using JobLog.Storage.PostgreSql;
using Npgsql;

namespace JobLog.Storage.Partitioning;

/// <summary>
/// A day's kept rows (<see cref="DropExpiredAsync"/>) built into their <c>_k</c> tables, with every index and a check of
/// their day, before the day's locked transaction, which then only checks that nothing changed and attaches them. Built
/// under the lock, their indexes took most of it: at 10 M, attaching the kept tasks' table built its 21 indexes in 0.35–0.49 s,
/// the runs' 0.12–0.18 s and the search text's trigram index 0.51–0.65 s, of the 2.0–2.2 s the tables were locked (PostgreSQL's
/// statement log, docs/scale.md "Session 20 (lead)"); an attached table whose indexes match the parent's is adopted
/// without a build, and one whose check implies the day is not scanned (3–7 ms).
/// <para>
/// Before the build reads the day's rows to keep and their runs (in one snapshot), a row trigger on each of the day's two
/// partitions starts noting the task id of every row written into them (<see cref="NoteChanges"/>) in an unlogged table of
/// the build's (<c>JobLogTasks_v…</c>; not a temporary table: the day's writers note into it from their own sessions, and
/// behind a pooler in transaction mode the lock's transaction may run on another server connection); under the lock only
/// the noted ids are looked at (<see cref="FinishBuilt"/>): the built rows of a noted task (a retry, a resolution, a sweep,
/// a purge) go, and the noted tasks to keep now (a success that failed since, a restore) are read again by their ids; only
/// where the built tables are gone or no longer match the parents are the kept rows read and built under the lock as before. The built tables carry a name of their own until then
/// (<c>JobLogTasks_b20261203_1796342400_3fa2</c>: the day, the server's time and a random part), so two processes
/// dropping the same day never take each other's; one left by a process stopped before its lock is dropped by the next drop
/// or partition pass once the server session that made it is gone, else an hour later (<see cref="DropAbandonedBuildsAsync"/>).
/// </para>
/// </summary>
internal static partial class LedgerPartitioning
{
    private const string BuiltCheck = "joblog_built_day";
    private static readonly TimeSpan AbandonedAfter = TimeSpan.FromHours(1);

    /// <summary>
    /// The key of the table of notes' comment (<c>{"Owner" : pid, "Tables" : [the built tables]}</c>, each table's name with a
    /// random part of its own) that names the server session making the build.
    /// </summary>
    private const string BuildOwner = "Owner";

    /// <summary>How that comment begins (<c>json_build_object</c>'s text): a build ahead's mark, which replaces it, does not.</summary>
    private const string OwnerPrefix = "{\"" + BuildOwner + "\" : ";

    /// <summary>
    /// The tables a day's kept rows were built into, and the table (<c>JobLogTasks_v…</c>) where the triggers of the day's
    /// partitions <paramref name="DayTasks"/> and <paramref name="DayRuns"/> note the task ids written after the build began.
    /// </summary>
    private sealed record KeptBuild(string Tasks, string Runs, string? Text, string Versions, string DayTasks, string DayRuns)
    {
        /// <summary>The parents' columns, indexes and constraints when the tables were made (<see cref="ShapeSql"/>).</summary>
        public string Shape { get; set; } = "";

        /// <summary>Each built index's name, and the name it takes under the lock (<see cref="IndexesOfAsync"/>).</summary>
        public List<(string Built, string Kept)> Indexes { get; } = [];

        /// <summary>
        /// A build made ahead of its day's drop (<see cref="BuildAheadAsync"/>): the cutoffs its rows were chosen by, the
        /// lowest a drop of the day can have. Null for a build made by the drop itself.
        /// </summary>
        public (DateTime Succeeded, DateTime? Failed)? Ahead { get; set; }

        /// <summary>
        /// Whether the rows a drop with these cutoffs keeps are among the built ones (or noted since): its cutoffs are
        /// the build's or later (a later cutoff keeps fewer rows; those the build holds beyond them are removed under the lock).
        /// </summary>
        public bool Covers(DateTime succeededBefore, DateTime? failedBefore) =>
            Ahead is not { } a || (succeededBefore >= a.Succeeded && (a.Failed is not { } f || (failedBefore is { } d && d >= f)));

        /// <summary>What a drop in another process needs to adopt the build: its tables, shape, indexes and cutoffs, as JSON.</summary>
        public string ToJson() => JsonSerializer.Serialize(new Stored(Tasks, Runs, Text, Versions, DayTasks, DayRuns, Shape,
            [.. Indexes.Select(i => new[] { i.Built, i.Kept })], Ahead?.Succeeded, Ahead?.Failed));

        public static KeptBuild? FromJson(string json)
        {
            var s = JsonSerializer.Deserialize<Stored>(json);
            if (s is null || s.Succeeded is null)
            {
                return null;
            }

            var build = new KeptBuild(s.Tasks, s.Runs, s.Text, s.Versions, s.DayTasks, s.DayRuns)
            {
                Shape = s.Shape,
                Ahead = (DateTime.SpecifyKind(s.Succeeded.Value, DateTimeKind.Utc), s.Failed is { } f ? DateTime.SpecifyKind(f, DateTimeKind.Utc) : null),
            };
            build.Indexes.AddRange(s.Indexes.Select(i => (i[0], i[1])));
            return build;
        }

        private sealed record Stored(
            string Tasks, string Runs, string? Text, string Versions, string DayTasks, string DayRuns, string Shape, string[][] Indexes, DateTime? Succeeded, DateTime? Failed);
    }

    /// <summary>
    /// How long before its day's drop is due a day's kept rows are built ahead (<see cref="BuildAheadAsync"/>): two hourly
    /// partition passes, so that one of them comes before the retention's pass that drops the day.
    /// </summary>
    internal static readonly TimeSpan AheadMargin = TimeSpan.FromHours(2);

    /// <summary>
    /// The hourly partition pass's part of the retention (docs/scale.md "Session 36 (scale)"): builds the kept rows of each day
    /// whose drop is due within <paramref name="margin"/> (its day over, its end within <paramref name="margin"/> of the success
    /// cutoff <paramref name="now"/> − <paramref name="succeeded"/>) and that has no such build yet, as a drop would
    /// (<see cref="BuildKeptAsync"/>), with the lowest cutoffs its drop can have (the day's end, and as much before or after it
    /// as failures are kept longer or shorter), and leaves it for the drop: the day's triggers note every task written into it
    /// meanwhile, and the drop, under its lock, removes the built rows noted or past its own cutoffs and reads the noted ones
    /// again (<see cref="FinishBuilt"/>). The build is found in the catalog (a comment on its table of notes, written with its
    /// indexes, last), so a drop in another process, or after a restart, adopts it; one stopped before that is abandoned
    /// (<see cref="DropAbandonedBuildsAsync"/>) and built again by the next pass. First it drops the partitions the retention's
    /// drops detached and left (<see cref="DropDetachedAsync(DbConnection, CancellationToken, IReadOnlyCollection{string})"/>). <paramref name="copied"/> (tests) is called
    /// with the day between its rows' copy and its indexes. Returns the days built.
    /// </summary>
    internal static async Task<List<int>> BuildAheadAsync(
        DbConnection connection, DateTime now, TimeSpan succeeded, TimeSpan? failed, TimeSpan margin, CancellationToken cancellationToken, Func<int, Task>? copied = null)
    {
        var made = new List<int>();
        var existing = await DaysAsync(connection, cancellationToken).ConfigureAwait(false);
        if (!existing.TryGetValue(LedgerModel.Tasks, out var taskDays))
        {
            return made;
        }

        // The files of the days the retention's pass dropped (DropExpiredAsync leaves the last day's to this pass), then the
        // builds left behind.
        await DropDetachedAsync(connection, cancellationToken).ConfigureAwait(false);
        await DropAbandonedBuildsAsync(connection, cancellationToken).ConfigureAwait(false);
        foreach (var day in taskDays.Where(d => PartitionDay.Start(d + 1) <= now && PartitionDay.Start(d + 1) <= now - succeeded + margin).Order())
        {
            if ((await ReadyBuildsAsync(connection, day, cancellationToken).ConfigureAwait(false)).Count > 0)
            {
                continue;
            }

            var succeededBefore = PartitionDay.Start(day + 1);
            DateTime? failedBefore = failed is { } f ? succeededBefore + succeeded - f : null;
            var tasks = Q(LedgerModel.Tasks + "_" + PartitionDay.Suffix(day));
            var runs = Q(LedgerModel.Runs + "_" + PartitionDay.Suffix(day));
            if (await BuildKeptAsync(connection, day, tasks, runs, Keep(succeededBefore, failedBefore), cancellationToken, (succeededBefore, failedBefore),
                copied is null ? null : () => copied(day)).ConfigureAwait(false) is not null)
            {
                made.Add(day);
            }
        }

        return made;
    }

    /// <summary>The builds made ahead for <paramref name="day"/> and complete (<see cref="BuildAheadAsync"/>), the newest first.</summary>
    private static async Task<List<KeptBuild>> ReadyBuildsAsync(DbConnection connection, int day, CancellationToken cancellationToken)
    {
        var json = await ListAsync<string>(connection, $$"""
            SELECT obj_description(c.oid, 'pg_class') FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND NOT c.relispartition
                AND c.relname ~ '^{{LedgerModel.Tasks}}_v{{PartitionDay.Suffix(day)[1..]}}_[0-9]{1,19}_[0-9a-f]{4}$' AND obj_description(c.oid, 'pg_class') IS NOT NULL
            ORDER BY c.relname DESC
            """, cancellationToken).ConfigureAwait(false);
        return [.. json.Select(KeptBuild.FromJson).OfType<KeptBuild>()];
    }

    /// <summary>
    /// Before the day's lock, for a build made ahead (<see cref="BuildAheadAsync"/>, lower cutoffs than the drop's): the built
    /// tasks the drop's cutoffs do not keep go, with their runs and search text. Their rows are as the build copied them: a
    /// task changed since was noted, and the lock's <see cref="FinishBuilt"/> reads it again. Under the lock this scan of the
    /// built tasks took 79 ms at load 70 (docs/scale.md "Session 36 (scale)").
    /// </summary>
    private static string TrimBuilt(KeptBuild build, string keep)
    {
        var (b, r) = (Q(build.Tasks), Q(build.Runs));
        return $"""
            CREATE TEMP TABLE joblog_unkept ON COMMIT DROP AS SELECT t."Id" FROM {b} t WHERE NOT coalesce(({keep}), FALSE);
            DELETE FROM {r} x USING joblog_unkept u WHERE x."TaskId" = u."Id";
            {(build.Text is { } text ? $"DELETE FROM {Q(text)} x USING joblog_unkept u WHERE x.\"TaskId\" = u.\"Id\";" : "")}
            DELETE FROM {b} x USING joblog_unkept u WHERE x."Id" = u."Id";
            """;
    }

    /// <summary>
    /// In <see cref="TrimBuilt"/>'s transaction, after <see cref="AggregateBuilt"/> (which holds the table of notes): the
    /// build's mark takes the trim's cutoffs as the build's (<see cref="KeptBuild.Ahead"/>), since its rows are now those
    /// they keep. A drop that dies after the trim leaves the build; a later drop with earlier cutoffs (an earlier date asked,
    /// a longer retention) then builds again instead of adopting rows that miss what it keeps (before session 39 the mark
    /// kept the build's first cutoffs, and such a drop lost the trimmed failures with the day).
    /// </summary>
    private static string MarkTrimmed(KeptBuild build, DateTime succeededBefore, DateTime? failedBefore)
    {
        var versions = "'" + Q(build.Versions) + "'";
        var failed = failedBefore is { } f ? "'" + f.ToString("O", CultureInfo.InvariantCulture) + "'" : "NULL";
        return $"""
            DO $joblog_trimmed$ BEGIN
            EXECUTE format('COMMENT ON TABLE %s IS %L', {versions}, (obj_description(to_regclass({versions}), 'pg_class')::jsonb
                || jsonb_build_object('Succeeded', '{succeededBefore.ToString("O", CultureInfo.InvariantCulture)}'::text, 'Failed', {failed}::text))::text);
            END $joblog_trimmed$;
            """;
    }

    /// <summary>
    /// The built rows' aggregates (<see cref="DayRollups.KeptAggregates"/>, a few hundred rows) stored as <c>"Aggregates"</c>
    /// in the build's mark (the comment on its table of notes), for the lock to read instead of the built rows when nothing was
    /// noted since (<see cref="FinishBuilt"/>): made by the build ahead with its mark (the partition pass's, outside the drop),
    /// and made again before the day's lock, after <see cref="TrimBuilt"/> and in its transaction (<paramref name="trimmed"/>),
    /// where the trim removed rows (the drop's cutoffs later than the build's) or the mark has none. The table of notes is
    /// locked first (<c>SHARE UPDATE EXCLUSIVE</c>: the writers' notes pass; another drop's trim of the same build waits), so
    /// the last mark written is of the built rows as they are. Nothing is made when a note is there already: the lock reads
    /// the rows then.
    /// </summary>
    private static string AggregateBuilt(KeptBuild build, string tasks, bool trimmed)
    {
        var versions = "'" + Q(build.Versions) + "'";
        var again = trimmed ? $" AND (EXISTS (SELECT 1 FROM joblog_unkept) OR obj_description(to_regclass({versions}), 'pg_class')::jsonb -> 'Aggregates' IS NULL)" : "";
        return $"""
            LOCK TABLE {Q(build.Versions)} IN SHARE UPDATE EXCLUSIVE MODE;
            DO $joblog_aggregate$ BEGIN IF NOT EXISTS (SELECT 1 FROM {Q(build.Versions)}){again} THEN
            EXECUTE format('COMMENT ON TABLE %s IS %L', {versions}, (obj_description(to_regclass({versions}), 'pg_class')::jsonb
                || jsonb_build_object('Aggregates', (SELECT coalesce(jsonb_agg(a), '[]'::jsonb) FROM ({DayRollups.KeptAggregates(Q(build.Tasks), Q(build.Runs), tasks)}) a)))::text);
            END IF; END $joblog_aggregate$;
            """;
    }

    /// <summary>
    /// Under the day's lock, before the counts: brings the built tables to what the drop keeps now. Every task noted since
    /// the build began goes, with its runs and search text, and the noted tasks the drop keeps are read again from the day,
    /// by their ids, with theirs (the built tasks past the drop's cutoffs went before the lock, <see cref="TrimBuilt"/>). Its
    /// cost follows what was written into the day since the build, not the day's size or its kept rows.
    /// <para>
    /// Then it makes the built rows' aggregates (<c>joblog_keep_agg</c>, <see cref="DayRollups.KeptAggregates"/>), which the
    /// counts, the failure groups and the day rollups take under the lock: read from the build's mark
    /// (<see cref="AggregateBuilt"/>) when nothing was noted since the build began (the day's rows and so the built ones as
    /// they were when the mark was made), else made from the built rows once they are finished.
    /// </para>
    /// </summary>
    private static string FinishBuilt(KeptBuild build, string tasks, string runs, string keep)
    {
        var (b, r) = (Q(build.Tasks), Q(build.Runs));
        var text = build.Text is { } t ? Q(t) : null;
        var textDelete = text is null ? "" : $"DELETE FROM {text} x USING joblog_noted u WHERE x.\"TaskId\" = u.\"Id\";";
        var textInsert = text is null ? "" : PostgreSql.PostgreSqlSearch.RowsOf(
            $"(SELECT k.* FROM {b} k JOIN joblog_noted n ON n.\"Id\" = k.\"Id\") k", $"(SELECT x.* FROM {r} x JOIN joblog_noted n ON n.\"Id\" = x.\"TaskId\") x",
            keyed: true, into: text) + ";";
        // One statement, and when nothing was noted (most days past their retention) one read of the empty notes: as separate
        // statements the finish cost 8 round trips under the lock at every drop (the lock 603 against 372 ms at the median,
        // load 60-90, docs/scale.md "Session 36 (scale)").
        return $"""
            DO $joblog_finish$ DECLARE aggregates jsonb; BEGIN
            aggregates := obj_description(to_regclass('{Q(build.Versions)}'), 'pg_class')::jsonb -> 'Aggregates';
            IF EXISTS (SELECT 1 FROM {Q(build.Versions)}) THEN
            aggregates := NULL;
            CREATE TEMP TABLE joblog_noted ON COMMIT DROP AS SELECT DISTINCT "Id" FROM {Q(build.Versions)};
            DELETE FROM {r} x USING joblog_noted u WHERE x."TaskId" = u."Id";
            {textDelete}
            DELETE FROM {b} x USING joblog_noted u WHERE x."Id" = u."Id";
            INSERT INTO {b} SELECT t.* FROM {tasks} t WHERE t."Id" IN (SELECT "Id" FROM joblog_noted) AND {keep};
            INSERT INTO {r} SELECT x.* FROM {runs} x WHERE x."TaskId" IN (SELECT n."Id" FROM joblog_noted n JOIN {b} k ON k."Id" = n."Id");
            {textInsert}
            END IF;
            IF aggregates IS NULL THEN
            CREATE TEMP TABLE joblog_keep_agg ON COMMIT DROP AS {DayRollups.KeptAggregates(b, r, tasks)};
            ELSE
            CREATE TEMP TABLE joblog_keep_agg ON COMMIT DROP AS SELECT * FROM jsonb_to_recordset(aggregates) AS a({DayRollups.KeptAggregatesColumns});
            END IF;
            END $joblog_finish$;

            """;
    }

    /// <summary>
    /// Builds the rows a drop of <paramref name="day"/> keeps (<paramref name="keep"/> over the day's partition
    /// <paramref name="tasks"/>, their runs in <paramref name="runs"/>, and their search text where the side table has the
    /// day's partition) into tables of their own with the parents' indexes; null when there is nothing to keep, or the
    /// runs' partition is missing (the drop then builds under the lock, as before).
    /// </summary>
    private static async Task<KeptBuild?> BuildKeptAsync(
        DbConnection connection, int day, string tasks, string runs, string keep, CancellationToken cancellationToken, (DateTime Succeeded, DateTime? Failed)? ahead = null,
        Func<Task>? copied = null)
    {
        // What is there, the side table's kind, the server's time and the schema: one round trip (docs/scale.md "Session 35 (scale)").
        var present = await ListAsync<string>(connection,
            $"SELECT (to_regclass('{tasks}') IS NOT NULL)::text UNION ALL SELECT (to_regclass('{runs}') IS NOT NULL)::text " +
            $"UNION ALL SELECT (to_regclass('{Q(SearchText + "_" + PartitionDay.Suffix(day))}') IS NOT NULL)::text UNION ALL SELECT ({SearchTextKindSql}) " +
            "UNION ALL SELECT floor(extract(epoch FROM clock_timestamp()))::bigint::text UNION ALL SELECT current_schema()::text",
            cancellationToken).ConfigureAwait(false);
        if (present[0] != "true" || present[1] != "true")
        {
            return null;
        }

        var text = present[2] == "true" && present[3] == "p";
        var stamp = long.Parse(present[4], CultureInfo.InvariantCulture);
        var schema = present[5];
        string Name(string table, char kind = 'b') =>
            string.Create(CultureInfo.InvariantCulture, $"{table}_{kind}{PartitionDay.Suffix(day)[1..]}_{stamp}_{Random.Shared.Next(0x10000):x4}");
        // The changes noted in a (unlogged) table of the build's, not a temporary one: the day's writers, in their own
        // sessions, note into it, and the lock's transaction may run on another server connection than the build's behind a
        // pooler in transaction mode (PgBouncer).
        var build = new KeptBuild(Name(LedgerModel.Tasks), Name(LedgerModel.Runs), text ? Name(SearchText) : null, Name(LedgerModel.Tasks, 'v'), tasks, runs)
        {
            Ahead = ahead,
        };
        var versions = Q(build.Versions);

        // The tables first, in a transaction of their own: LIKE locks the parents (ACCESS SHARE) until its commit, and a
        // transaction holding that through the copy and the index builds would keep another process's drop (ACCESS
        // EXCLUSIVE), and every writer queued behind it, waiting (review of session 20).
        // The server session that makes the tables, named in the table of notes until a build ahead's mark replaces it: a build
        // whose session is gone (its process killed) is abandoned at once (DropAbandonedBuildsAsync), not an hour later.
        var tables = $"CREATE UNLOGGED TABLE {versions} (\"Id\" uuid NOT NULL);\n"
            + $"DO $joblog_owner$ BEGIN EXECUTE format('COMMENT ON TABLE %I IS %L', '{build.Versions}', json_build_object('{BuildOwner}', pg_backend_pid(), 'Tables', "
            + $"json_build_array({string.Join(", ", new[] { build.Tasks, build.Runs, build.Text }.OfType<string>().Select(t => "'" + t + "'"))}))::text); END $joblog_owner$;\n";
        foreach (var (parent, table) in new[] { (LedgerModel.Tasks, build.Tasks), (LedgerModel.Runs, build.Runs), (SearchText, build.Text) })
        {
            if (table is not null)
            {
                tables += $"CREATE TABLE {Q(table)} (LIKE {Q(parent)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE);\n";
            }
        }

        try
        {
            await using (var create = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false))
            {
                // From here on, every row of the day's tasks and runs written notes its task's id (NoteChanges); committed before
                // the copy's snapshot, so a change is in the copy, or noted, or both (then it counts as a change). The shape is
                // read in the transaction that made the tables (LIKE holds the parents until its commit): what they were made as.
                build.Shape = (await LastListAsync<string>(connection, tables + NoteChanges(build, schema) + ShapeSql, cancellationToken).ConfigureAwait(false)).Single();
                await create.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            // One snapshot for the tasks and their runs (REPEATABLE READ). The tasks' bitmap heap scan asks for its
            // pages ahead (posix_fadvise) where effective_io_concurrency allows it: raised to 64 for this read where it is
            // 1 (Linux's default) to 63; 0 (a platform without posix_fadvise, or an administrator's choice) is left. Cold,
            // 11,700 pages at 10 M waited 0.26-0.85 s for their reads against 0.30-2.31 s at 1 (docs/scale.md "Session 17 (daydrop)").
            long kept;
            await using (var copy = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false))
            {
                kept = (await LastListAsync<long>(connection, $"""
                    SELECT set_config('effective_io_concurrency', '64', true) FROM (SELECT current_setting('effective_io_concurrency')::int AS n) s WHERE n BETWEEN 1 AND 63;
                    INSERT INTO {Q(build.Tasks)} SELECT * FROM {tasks} t WHERE {keep};
                    INSERT INTO {Q(build.Runs)} SELECT y.* FROM {Q(build.Tasks)} k CROSS JOIN LATERAL (SELECT * FROM {runs} x WHERE x."TaskId" = k."Id") y;
                    SELECT count(*) FROM {Q(build.Tasks)};
                    """, cancellationToken).ConfigureAwait(false)).Single();
                await copy.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            if (copied is not null)
            {
                await copied().ConfigureAwait(false);
            }

            if (kept == 0)
            {
                await ExecAsync(connection, DropBuilt(build) + DropVersions(build), cancellationToken).ConfigureAwait(false);
                return null;
            }

            // The search text and the indexes, on the built tables alone.
            var sql = "";
            if (build.Text is { } textTable)
            {
                sql += PostgreSqlSearch.RowsOf(Q(build.Tasks), Q(build.Runs), keyed: true, into: Q(textTable)) + ";\n";
            }

            var built = new[] { (LedgerModel.Tasks, build.Tasks), (LedgerModel.Runs, build.Runs), (SearchText, build.Text) }
                .Where(p => p.Item2 is not null).Select(p => (Parent: p.Item1, Table: p.Item2!)).ToList();
            var indexesOf = await IndexesOfAsync(connection, day, built, cancellationToken).ConfigureAwait(false);
            foreach (var (_, table) in built)
            {
                sql += $"ALTER TABLE {Q(table)} ADD CONSTRAINT {BuiltCheck} CHECK ({Key} >= {day} AND {Key} < {day + 1});\n";
                foreach (var (statement, builtName, keptName) in indexesOf[table])
                {
                    sql += statement + ";\n";
                    build.Indexes.Add((builtName, keptName));
                }
            }

            if (ahead is not null)
            {
                // Complete with its indexes: a drop may adopt it (ReadyBuildsAsync); one stopped before this is abandoned.
                sql += $"COMMENT ON TABLE {versions} IS '{build.ToJson().Replace("'", "''", StringComparison.Ordinal)}';\n" + AggregateBuilt(build, tasks, trimmed: false);
            }

            await using var indexes = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await ExecAsync(connection, sql, cancellationToken).ConfigureAwait(false);
            await indexes.CommitAsync(cancellationToken).ConfigureAwait(false);
            return build;
        }
        catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.LockNotAvailable or PostgresErrorCodes.DeadlockDetected)
        {
            // The day's partitions stayed locked past the triggers' lock timeout (a long transaction on them), or a writer
            // holding the runs' partition waited for the tasks' one: nothing built; the locked transaction reads the kept
            // rows itself.
            await DropQuietlyAsync(connection, build).ConfigureAwait(false);
            return null;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            // Another process dropped the day (or its runs' partition) after it was seen above: nothing built; the locked
            // transaction sees the day gone and passes over it, or, were it still there, reads its kept rows itself.
            await DropQuietlyAsync(connection, build).ConfigureAwait(false);
            return null;
        }
        catch (Exception)
        {
            await DropQuietlyAsync(connection, build).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Drops the tables of <paramref name="build"/> after a failure (the build's, or the day's locked transaction's, rolled
    /// back): a failure of its own is not reported over the first one; what it leaves goes an hour later
    /// (<see cref="DropAbandonedBuildsAsync"/>).
    /// </summary>
    private static async Task DropQuietlyAsync(DbConnection connection, KeptBuild build)
    {
        try
        {
            await ExecAsync(connection, DropBuilt(build) + DropVersions(build), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is DbException or InvalidOperationException or TimeoutException)
        {
            // The connection may be broken: the abandoned builds' pass drops them later.
        }

        // Its triggers do nothing without its table; they go now if the day's partitions are free within a second, else
        // with the day. DROP TRIGGER locks its table ACCESS EXCLUSIVE (writers queue behind it): only where there is one.
        foreach (var partition in new[] { build.DayTasks, build.DayRuns })
        {
            try
            {
                if (!await ScalarAsync<bool>(connection,
                    $"SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass('{partition}') AND tgname = '{build.Versions}')", CancellationToken.None).ConfigureAwait(false))
                {
                    continue;
                }

                await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None).ConfigureAwait(false);
                await ExecAsync(connection, $"SET LOCAL lock_timeout = '1s'; DROP TRIGGER IF EXISTS {Q(build.Versions)} ON {partition}", CancellationToken.None).ConfigureAwait(false);
                await transaction.CommitAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is DbException or InvalidOperationException or TimeoutException)
            {
                // The partition is gone (another process dropped the day) or busy.
            }
        }
    }

    /// <summary>
    /// The statements, for each of <paramref name="tables"/>, that give the built table the indexes of its partitioned parent (its
    /// primary key and unique constraints as constraints, its other indexes as <c>pg_get_indexdef</c> defines them), each
    /// under a name of the build's own (two builds never meet), and the name it takes under the lock: its day partition's
    /// index's name with <c>_k</c> for <c>_p</c> (<c>JobLogTasks_k20261203_DispatchedAt_idx</c>, the name an attach gives the
    /// index it builds; the same length, so never cut short), or the kept table's name and its number. By built table.
    /// </summary>
    private static async Task<Dictionary<string, List<(string Statement, string Built, string Kept)>>> IndexesOfAsync(
        DbConnection connection, int day, IReadOnlyList<(string Parent, string Table)> tables, CancellationToken cancellationToken)
    {
        // Every table's in one round trip (docs/scale.md "Session 35 (scale)"), each row tagged with its table's place.
        var rows = await ListAsync<string>(connection, string.Join("\nUNION ALL\n", tables.Select((t, n) => $"""
            SELECT concat_ws(E'\x1f', {n}, pg_get_indexdef(i.indexrelid), coalesce(pg_get_constraintdef(k.oid), ''), coalesce(c.relname::text, '')), {n} AS o, i.indexrelid::bigint AS x
            FROM pg_index i
            LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u')
            LEFT JOIN (pg_inherits h JOIN pg_index ci ON ci.indexrelid = h.inhrelid AND ci.indrelid = to_regclass('{Q(t.Parent + "_" + PartitionDay.Suffix(day))}') JOIN pg_class c ON c.oid = ci.indexrelid)
                ON h.inhparent = i.indexrelid
            WHERE i.indrelid = '{Q(t.Parent)}'::regclass
            """)) + "\nORDER BY 2, 3", cancellationToken).ConfigureAwait(false);
        var result = tables.ToDictionary(t => t.Table, _ => new List<(string, string, string)>(), StringComparer.Ordinal);
        foreach (var row in rows)
        {
            var (place, definition, constraint, partitionIndex) = row.Split('\x1f') is [var n, var d, var c, var p]
                ? (int.Parse(n, CultureInfo.InvariantCulture), d, c, p) : throw new InvalidOperationException(row);
            var (parent, table) = tables[place];
            var list = result[table];
            var partition = parent + "_" + PartitionDay.Suffix(day);
            var kept = KeptName(parent, day);
            var builtName = string.Create(CultureInfo.InvariantCulture, $"{table}_{list.Count + 1}");
            var keptName = partitionIndex.StartsWith(partition + "_", StringComparison.Ordinal)
                ? kept + partitionIndex[partition.Length..]
                : string.Create(CultureInfo.InvariantCulture, $"{kept}_{list.Count + 1}");
            if (constraint != "")
            {
                list.Add(($"ALTER TABLE {Q(table)} ADD CONSTRAINT {Q(builtName)} {constraint}", builtName, keptName));
                continue;
            }

            var match = IndexDefinition().Match(definition);
            if (!match.Success)
            {
                throw new InvalidOperationException($"JobLog cannot read the index definition of {parent}: {definition}");
            }

            list.Add(($"CREATE {match.Groups[1].Value}INDEX {Q(builtName)} ON {Q(table)} {match.Groups[2].Value}", builtName, keptName));
        }

        return result;
    }

    /// <summary>
    /// The function the triggers of a day being built call (<see cref="NoteChanges"/>): notes the written row's task id
    /// (column <c>TG_ARGV[1]</c>) into the build's table <c>TG_ARGV[0]</c>, while that table exists (a build dropped, or
    /// abandoned and dropped an hour later, leaves a trigger that does nothing until its day goes).
    /// </summary>
    private const string NoteChangeFunction = "joblog_note_change";

    /// <summary>
    /// The statements that make the day's partitions note every task id written into them (a row inserted, updated or
    /// deleted; for a run, its task's) into the build's table: one row trigger on each of the day's two partitions, named as
    /// that table. The function is made where it is missing, under an advisory lock, so that two processes' builds do not
    /// make it at once (and never replaced: a process of another role could not). The writers insert the notes as
    /// themselves: a role that writes the ledger needs INSERT on the tables the retention's role makes. The triggers lock
    /// the day's partitions (<c>SHARE ROW EXCLUSIVE</c>) until the commit: they wait for the writers' transactions then on
    /// them (milliseconds), and at most 10 s for a longer one (then nothing is built, as on a deadlock with a writer). The
    /// runs' partition first, as the writer's batch takes them: its updates by id lock every runs partition, then every
    /// tasks partition (the derivation); the other order deadlocked the build with a batch in between (review of session 30).
    /// </summary>
    private static string NoteChanges(KeptBuild build, string schema) =>
        NoteChangesOn(build.Versions, schema, [(build.DayRuns, "TaskId"), (build.DayTasks, "Id")]);

    /// <summary>
    /// <see cref="NoteChanges"/>' statements for any build's table of notes <paramref name="versions"/>: a
    /// row trigger on each of <paramref name="on"/>'s partitions (quoted names, in the order the writers lock them) noting the
    /// written row's <c>Column</c> (the logs' day drop, LogPartitioning.Built.cs, notes a request's id, a related object's request's).
    /// </summary>
    private static string NoteChangesOn(string versions, string schema, IEnumerable<(string Partition, string Column)> on)
    {
        var table = "'" + Q(schema.Replace("\"", "\"\"", StringComparison.Ordinal)).Replace("'", "''", StringComparison.Ordinal) + "." + Q(versions) + "'";
        return $$"""
            SET LOCAL lock_timeout = '10s';
            SELECT pg_advisory_xact_lock(hashtext('{{NoteChangeFunction}}'));
            DO $d$ BEGIN
                IF to_regprocedure('{{NoteChangeFunction}}()') IS NULL THEN
                    CREATE FUNCTION {{NoteChangeFunction}}() RETURNS trigger LANGUAGE plpgsql AS $f$
                    DECLARE r record;
                    BEGIN
                        IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
                        IF to_regclass(TG_ARGV[0]) IS NOT NULL THEN
                            EXECUTE format('INSERT INTO %s ("Id") SELECT ($1).%I', TG_ARGV[0], TG_ARGV[1]) USING r;
                        END IF;
                        RETURN NULL;
                    END $f$;
                END IF;
            END $d$;
            {{string.Concat(on.Select(p => $"CREATE TRIGGER {Q(versions)} AFTER INSERT OR UPDATE OR DELETE ON {p.Partition} FOR EACH ROW EXECUTE FUNCTION {NoteChangeFunction}({table}, '{p.Column}');\n"))}}
            """;
    }

    /// <summary>
    /// Under the day's lock, with the rest of its state (<see cref="DropStateAsync"/>): whether every built table is still
    /// there (no partition, in the schema), and whether the parents still have the shape the tables were made from (a
    /// migration between the build and the lock, a column, an index or a constraint added, changed or dropped: the built
    /// tables would no longer match, and attaching them would fail or leave an index of their own). Parameter <c>@shape</c>.
    /// </summary>
    private static string BuiltChecks(KeptBuild build)
    {
        var tables = new[] { build.Tasks, build.Runs, build.Text, build.Versions }.OfType<string>().ToList();
        return $"UNION ALL SELECT (count(*) = {tables.Count})::text FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND NOT relispartition " +
            $"AND relname IN ({string.Join(", ", tables.Select(t => $"'{t}'"))})\n" +
            $"UNION ALL SELECT (({ShapeSql}) = @shape)::text\n";
    }

    /// <summary>
    /// The partitioned tables' columns (name, type, nullability, position), indexes and constraints, as one text: a build
    /// is attached only to the parents it was made from.
    /// </summary>
    private static readonly string ShapeSql = $"""
        WITH p AS (SELECT array_remove(ARRAY[to_regclass('{Q(LedgerModel.Tasks)}'), to_regclass('{Q(LedgerModel.Runs)}'), to_regclass('{Q(SearchText)}')]::oid[], NULL) AS ids)
        SELECT coalesce(string_agg(x, E'\n' ORDER BY x), '') FROM (
            SELECT c.relname::text || ' column ' || a.attnum || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull AS x
                FROM p, pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE c.oid = ANY(p.ids) AND a.attnum > 0 AND NOT a.attisdropped
            UNION ALL
            SELECT c.relname::text || ' index ' || pg_get_indexdef(i.indexrelid) FROM p, pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE i.indrelid = ANY(p.ids)
            UNION ALL
            SELECT c.relname::text || ' constraint ' || k.conname || ' ' || pg_get_constraintdef(k.oid) FROM p, pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE k.conrelid = ANY(p.ids)
        ) s
        """;

    /// <summary>
    /// The statements, after the day's partitions are detached, that make the built tables its <c>_k</c> partitions, their
    /// indexes named as an attach names those it builds (<c>JobLogTasks_k20261203_DispatchedAt_idx</c>).
    /// </summary>
    private static string AttachBuilt(KeptBuild build, int day, bool text) => string.Concat(
        new[] { (LedgerModel.Tasks, build.Tasks), (LedgerModel.Runs, build.Runs), (SearchText, text ? build.Text : null) }
            .Where(p => p.Item2 is not null)
            .Select(p => $"""
                ALTER TABLE {Q(p.Item2!)} RENAME TO {Q(KeptName(p.Item1, day))};
                ALTER TABLE {Q(p.Item1)} ATTACH PARTITION {Q(KeptName(p.Item1, day))} FOR VALUES FROM ({day}) TO ({day + 1});
                ALTER TABLE {Q(KeptName(p.Item1, day))} DROP CONSTRAINT {BuiltCheck};
                {string.Concat(build.Indexes.Where(i => i.Built.StartsWith(p.Item2 + "_", StringComparison.Ordinal)).Select(i => $"ALTER INDEX {Q(i.Built)} RENAME TO {Q(i.Kept)};\n"))}
                """));

    /// <summary>Drops the tables of <paramref name="build"/> (those still there).</summary>
    private static string DropBuilt(KeptBuild build, bool tasksAndRuns = true) =>
        $"DROP TABLE IF EXISTS {string.Join(", ", new[] { tasksAndRuns ? build.Tasks : null, tasksAndRuns ? build.Runs : null, build.Text }.OfType<string>().Select(Q))};\n";

    /// <summary>Drops the table of the ids noted since the build began (after the day's commit, or with the built tables).</summary>
    private static string DropVersions(KeptBuild build) => $"DROP TABLE IF EXISTS {Q(build.Versions)};\n";

    /// <summary>
    /// Drops the built tables (<see cref="BuildKeptAsync"/>) a drop or a build ahead left behind: it stopped between its build
    /// and its lock. Only tables that are no partition and carry the name of one of the ledger's partitioned tables, and of a
    /// build whose server session is gone (the pid its table of notes names is in no <c>pg_stat_activity</c> row: its process
    /// was killed or lost its connection) or that is more than an hour old (the server's clock; a session still there may be
    /// a pooler's, kept after its client went). A younger one whose session is there may be another process's, on its way to its
    /// lock; one whose session went while its process goes on (behind a pooler in transaction mode, a server connection
    /// closed between the build's transactions) is dropped under it: its build or its lock then finds the tables gone and
    /// reads the kept rows under the lock, as when nothing was built. A build made ahead and complete
    /// (<see cref="BuildAheadAsync"/>: its mark replaced the session's name) stays while its day does.
    /// </summary>
    internal static async Task DropAbandonedBuildsAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        var names = await ListAsync<string>(connection, $$"""
            SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' AND NOT c.relispartition
                AND c.relname ~ '_[bv][0-9]{8}_[0-9]{1,19}_[0-9a-f]{4}$'
                AND (substring(c.relname FROM '_[bv][0-9]{8}_([0-9]{1,19})_[0-9a-f]{4}$')::numeric < extract(epoch FROM clock_timestamp()) - {{(long)AbandonedAfter.TotalSeconds}}
                    OR EXISTS (SELECT 1 FROM pg_class o WHERE o.relnamespace = c.relnamespace AND o.relkind = 'r'
                        AND o.relname ~ '^JobLog[A-Za-z]+_v[0-9]{8}_[0-9]{1,19}_[0-9a-f]{4}$'
                        AND left(obj_description(o.oid, 'pg_class'), {{OwnerPrefix.Length}}) = '{{OwnerPrefix}}'
                        AND (o.oid = c.oid OR strpos(obj_description(o.oid, 'pg_class'), '"' || c.relname || '"') > 0)
                        AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = (obj_description(o.oid, 'pg_class')::json ->> '{{BuildOwner}}')::int)))
                AND NOT EXISTS (SELECT 1 FROM pg_class v WHERE v.relnamespace = c.relnamespace AND v.relkind = 'r'
                    AND v.relname ~ '^{{LedgerModel.Tasks}}_v[0-9]{8}_[0-9]{1,19}_[0-9a-f]{4}$'
                    AND strpos(obj_description(v.oid, 'pg_class'), '"' || c.relname || '"') > 0
                    AND left(obj_description(v.oid, 'pg_class'), {{OwnerPrefix.Length}}) <> '{{OwnerPrefix}}'
                    AND to_regclass(quote_ident('{{LedgerModel.Tasks}}_p' || substring(v.relname FROM '_v([0-9]{8})_'))) IS NOT NULL)
            """, cancellationToken).ConfigureAwait(false);
        await DropDetachedAsync(connection, names.Where(n => BuiltTable().Match(n) is { Success: true } m && IsPartitioned(m.Groups[1].Value)), cancellationToken)
            .ConfigureAwait(false);
    }

    [GeneratedRegex("^(JobLog[A-Za-z]+)_[bv][0-9]{8}_[0-9]{1,19}_[0-9a-f]{4}$", RegexOptions.CultureInvariant)]
    private static partial Regex BuiltTable();

    /// <summary>A partitioned index's definition: <c>CREATE [UNIQUE] INDEX name ON ONLY schema.table USING …</c>.</summary>
    [GeneratedRegex("""^CREATE (UNIQUE )?INDEX (?:"(?:[^"]|"")+"|\S+) ON ONLY (?:(?:"(?:[^"]|"")+"|[^\s."]+)\.)?(?:"(?:[^"]|"")+"|[^\s."]+) (USING .*)$""", RegexOptions.CultureInvariant | RegexOptions.Singleline)]
    private static partial Regex IndexDefinition();
}
