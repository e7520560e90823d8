namespace JobLog.Storage.Partitioning;

/// <summary>
/// The rollups by partition day of a partitioned ledger (docs/scale.md#partitioning): what the overview's rollups
/// (<see cref="LedgerRollups"/>, <see cref="RunRollups"/>) hold, split by the rows' <see cref="PartitionDay.Column"/>, so
/// a day's drop subtracts that day's share from the rollups without reading the day's partition
/// (<see cref="LedgerPartitioning.DropExpiredAsync"/>). Kept by statement triggers on the partitioned tables, like the
/// rollups; they exist only on a partitioned ledger (made by the conversion, or added to a ledger converted before them).
/// <list type="bullet">
/// <item><c>JobLogTaskDays</c>: tasks by (day, Stop's minute or <c>-infinity</c> while unfinished, state, name, kind).</item>
/// <item><c>JobLogTaskDayHours</c>: the finished tasks by (day, Stop's hour, state, name, kind), for the overview's day
/// window (session 13: the hours are a view over these, as the minutes are over <c>JobLogTaskDays</c>).</item>
/// <item><c>JobLogRunDayHours</c>: the counted runs by (day, Start's hour, name), the same way, for the day window's
/// slowest names (session 13).</item>
/// <item><c>JobLogRunDays</c>: the counted runs (<see cref="RunRollups.Counted"/>) by (day, Start's minute, name): count,
/// total and the longest (read again from the day's runs when a run that may have been it leaves).</item>
/// </list>
/// Rows at zero are left (a day has few keys; they go with the day).
/// <para>
/// On a partitioned ledger the overview's minute rollups are <b>views</b> over these (session 9, <see cref="MinuteViews"/>): a
/// minute is the sum of its days' rows. The rollup triggers then keep only <c>JobLogTaskCounts</c>, and a day's drop subtracts
/// the day's counts and deletes its day rollup rows, with no per-minute arithmetic (it was ~1.3 s of a 3.1 s drop at 1 M).
/// </para>
/// </summary>
internal static class DayRollups
{
    internal const string Tasks = "JobLogTaskDays";
    internal const string Runs = "JobLogRunDays";
    internal const string TaskHours = "JobLogTaskDayHours";
    internal const string RunHours = "JobLogRunDayHours";

    private const string T = "\"" + LedgerModel.Tasks + "\"";
    private const string R = "\"" + LedgerModel.Runs + "\"";
    private const string TD = "\"" + Tasks + "\"";
    private const string RD = "\"" + Runs + "\"";
    private const string THD = "\"" + TaskHours + "\"";
    private const string RDH = "\"" + RunHours + "\"";
    private const string HourKey = Key + ", \"Hour\", \"State\", \"Name\", \"IsInternal\"";
    private const string HourOfMinute = "date_trunc('hour', \"Minute\" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'";
    private const string Key = "\"" + PartitionDay.Column + "\"";
    private const string TaskKey = Key + ", \"Minute\", \"State\", \"Name\", \"IsInternal\"";

    /// <summary>Stop's minute, or <c>-infinity</c> for an unfinished task (a key column cannot be null).</summary>
    internal const string TaskMinute = "coalesce(" + LedgerRollups.PostgresMinute + ", '-infinity'::timestamptz)";

    /// <summary>Whether the day rollups exist.</summary>
    internal const string ExistSql = "SELECT to_regclass('" + TD + "') IS NOT NULL";

    // Before Create, which interpolates it (static fields are initialised in order).
    /// <summary>
    /// The overview's minute rollups as views over the day rollups, with indexes on the minute for the overview's ranges.
    /// A view has a row per day of a minute and key (a minute holds rows of several days where tasks of different days' ids
    /// ended in it): its readers sum, as the overview does (a view that summed the days itself cost the overview's day
    /// window a second aggregation, 250-530 ms against 85-170 ms at 1 M, load 12-40). The rollup triggers then keep only the
    /// counts (state x name), and the run rollup's triggers go. Idempotent: the tables are dropped only while they are
    /// tables. The EF model still maps the entities to these names; nothing writes them on a partitioned ledger (a
    /// migration that recreates the rollup triggers must keep this).
    /// </summary>
    private static readonly string MinuteViews = $$"""
        CREATE INDEX IF NOT EXISTS "IX_JobLogTaskDays_Minute" ON {{TD}} ("Minute");
        CREATE INDEX IF NOT EXISTS "IX_JobLogRunDays_Minute" ON {{RD}} ("Minute");
        CREATE OR REPLACE FUNCTION joblog_tasks_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {{CountsApply("SELECT \"State\", \"Name\", \"IsInternal\", 1 AS n FROM new_rows")}}
        RETURN NULL;
        END $body$;
        CREATE OR REPLACE FUNCTION joblog_tasks_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {{CountsApply("SELECT \"State\", \"Name\", \"IsInternal\", -1 AS n FROM old_rows")}}
        RETURN NULL;
        END $body$;
        CREATE OR REPLACE FUNCTION joblog_tasks_rollup_update() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {{CountsApply("SELECT \"State\", \"Name\", \"IsInternal\", 1 AS n FROM new_rows UNION ALL SELECT \"State\", \"Name\", \"IsInternal\", -1 FROM old_rows")}}
        RETURN NULL;
        END $body$;
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Rollup_Insert" ON {{R}};
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Rollup_Delete" ON {{R}};
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Rollup_Update" ON {{R}};
        DROP FUNCTION IF EXISTS joblog_runs_rollup_insert();
        DROP FUNCTION IF EXISTS joblog_runs_rollup_delete();
        DROP FUNCTION IF EXISTS joblog_runs_rollup_update();
        DO $views$ BEGIN
            IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('"{{LedgerRollups.Minutes}}"')) = 'r' THEN DROP TABLE "{{LedgerRollups.Minutes}}"; END IF;
            IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('"{{RunRollups.Minutes}}"')) = 'r' THEN DROP TABLE "{{RunRollups.Minutes}}"; END IF;
        END $views$;
        CREATE OR REPLACE VIEW "{{LedgerRollups.Minutes}}" AS
            SELECT "Minute", "State", "Name", "IsInternal", "Count" FROM {{TD}} WHERE "Minute" > '-infinity' AND "Count" <> 0;
        CREATE OR REPLACE VIEW "{{RunRollups.Minutes}}" AS
            SELECT "Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds" FROM {{RD}} WHERE "Runs" <> 0;
        CREATE OR REPLACE FUNCTION joblog_minute_views_read_only() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        RAISE EXCEPTION 'JobLog: "%" is a view over the day rollups on this partitioned ledger: a JobLog host older than the ledger tried to write it; upgrade every host of this ledger', TG_TABLE_NAME
            USING ERRCODE = 'object_not_in_prerequisite_state';
        END $body$;
        DROP TRIGGER IF EXISTS "JobLogTaskMinutes_ReadOnly" ON "{{LedgerRollups.Minutes}}";
        CREATE TRIGGER "JobLogTaskMinutes_ReadOnly" INSTEAD OF INSERT OR UPDATE OR DELETE ON "{{LedgerRollups.Minutes}}"
            FOR EACH ROW EXECUTE FUNCTION joblog_minute_views_read_only();
        DROP TRIGGER IF EXISTS "JobLogRunMinutes_ReadOnly" ON "{{RunRollups.Minutes}}";
        CREATE TRIGGER "JobLogRunMinutes_ReadOnly" INSTEAD OF INSERT OR UPDATE OR DELETE ON "{{RunRollups.Minutes}}"
            FOR EACH ROW EXECUTE FUNCTION joblog_minute_views_read_only();
        """;

    private static string CreateHours => $"""
        CREATE TABLE IF NOT EXISTS {THD} ({Key} integer NOT NULL, "Hour" timestamptz NOT NULL, "State" integer NOT NULL,
            "Name" varchar({LedgerModel.NameLength}) NOT NULL, "IsInternal" boolean NOT NULL, "Count" bigint NOT NULL, PRIMARY KEY ({HourKey}));
        CREATE TABLE IF NOT EXISTS {RDH} ({Key} integer NOT NULL, "Hour" timestamptz NOT NULL, "Name" varchar({LedgerModel.NameLength}) NOT NULL,
            "Runs" bigint NOT NULL, "TotalMilliseconds" bigint NOT NULL, "MaxMilliseconds" bigint NOT NULL, PRIMARY KEY ({Key}, "Hour", "Name"));
        """;

    // The hours of the day rollups' finished minutes (tasks) and of their minutes (runs), after both are filled.
    private static string FillHours => $"""
        INSERT INTO {THD} ({HourKey}, "Count") SELECT {Key}, {HourOfMinute}, "State", "Name", "IsInternal", SUM("Count") FROM {TD}
            WHERE "Minute" > '-infinity' GROUP BY 1, 2, 3, 4, 5 HAVING SUM("Count") <> 0 ORDER BY 2, 1;
        INSERT INTO {RDH} ({Key}, "Hour", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT {Key}, {HourOfMinute}, "Name", SUM("Runs"), SUM("TotalMilliseconds"), MAX("MaxMilliseconds") FROM {RD}
            GROUP BY 1, 2, 3 ORDER BY 2, 1;
        """;

    // The task day rollups' trigger functions: the minutes (and the unfinished), and the hours of the finished.
    private static string TaskFunctions => $"""
        CREATE OR REPLACE FUNCTION joblog_task_days_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {TaskApply($"SELECT {Key}, \"State\", \"Name\", \"IsInternal\", \"Stop\", 1 AS n FROM new_rows")}
        RETURN NULL;
        END $body$;
        CREATE OR REPLACE FUNCTION joblog_task_days_delete() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {TaskApply($"SELECT {Key}, \"State\", \"Name\", \"IsInternal\", \"Stop\", -1 AS n FROM old_rows")}
        RETURN NULL;
        END $body$;
        CREATE OR REPLACE FUNCTION joblog_task_days_update() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {TaskApply($"SELECT {Key}, \"State\", \"Name\", \"IsInternal\", \"Stop\", 1 AS n FROM new_rows UNION ALL SELECT {Key}, \"State\", \"Name\", \"IsInternal\", \"Stop\", -1 FROM old_rows")}
        RETURN NULL;
        END $body$;
        """;

    // The run day rollups' trigger functions: the minutes and the hours.
    private static string RunFunctions => $"""
        CREATE OR REPLACE FUNCTION joblog_run_days_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {RunApply($"SELECT {Key}, \"Start\", \"Name\", {RunRollups.PostgresMilliseconds} AS ms, 1 AS n FROM new_rows WHERE {RunRollups.Counted}", removed: null)}
        RETURN NULL;
        END $body$;
        CREATE OR REPLACE FUNCTION joblog_run_days_delete() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {RunApply($"SELECT {Key}, \"Start\", \"Name\", {RunRollups.PostgresMilliseconds} AS ms, -1 AS n FROM old_rows WHERE {RunRollups.Counted}",
            removed: $"SELECT {Key}, \"Start\", \"Name\", {RunRollups.PostgresMilliseconds} AS ms FROM old_rows WHERE {RunRollups.Counted}")}
        RETURN NULL;
        END $body$;
        CREATE OR REPLACE FUNCTION joblog_run_days_update() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        -- Only the runs whose part in the rollup changed: most updates finish an ACTIVE run (an add) or change nothing it holds.
        IF EXISTS (SELECT 1 FROM {RunChanged}) THEN
        {RunApply(
            $"SELECT n.{Key}, n.\"Start\", n.\"Name\", {RunRollups.PostgresMillisecondsOf("n.\"Start\"", "n.\"Stop\"")} AS ms, 1 AS n FROM {RunChanged} AND {CountedOf("n")} " +
            $"UNION ALL SELECT o.{Key}, o.\"Start\", o.\"Name\", {RunRollups.PostgresMillisecondsOf("o.\"Start\"", "o.\"Stop\"")}, -1 FROM {RunChanged} AND {CountedOf("o")}",
            removed: $"SELECT o.{Key}, o.\"Start\", o.\"Name\", {RunRollups.PostgresMillisecondsOf("o.\"Start\"", "o.\"Stop\"")} AS ms FROM {RunChanged} AND {CountedOf("o")}")}
        END IF;
        RETURN NULL;
        END $body$;
        """;

    /// <summary>
    /// The overview's hour rollup (<see cref="LedgerRollups.Hours"/>) as a view over the day hours, like the minutes
    /// (<see cref="MinuteViews"/>), with an index on the hour for the day window. Idempotent: the table the migration
    /// <c>HourrollTaskHours</c> made is dropped only while it is a table.
    /// </summary>
    private static string HourView => $$"""
        CREATE INDEX IF NOT EXISTS "IX_JobLogTaskDayHours_Hour" ON {{THD}} ("Hour");
        DO $views$ BEGIN
            IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('"{{LedgerRollups.Hours}}"')) = 'r' THEN DROP TABLE "{{LedgerRollups.Hours}}"; END IF;
        END $views$;
        CREATE OR REPLACE VIEW "{{LedgerRollups.Hours}}" AS
            SELECT "Hour", "State", "Name", "IsInternal", "Count" FROM {{THD}} WHERE "Count" <> 0;
        DROP TRIGGER IF EXISTS "JobLogTaskHours_ReadOnly" ON "{{LedgerRollups.Hours}}";
        CREATE TRIGGER "JobLogTaskHours_ReadOnly" INSTEAD OF INSERT OR UPDATE OR DELETE ON "{{LedgerRollups.Hours}}"
            FOR EACH ROW EXECUTE FUNCTION joblog_minute_views_read_only();
        CREATE INDEX IF NOT EXISTS "IX_JobLogRunDayHours_Hour" ON {{RDH}} ("Hour");
        DO $views$ BEGIN
            IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('"{{RunRollups.Hours}}"')) = 'r' THEN DROP TABLE "{{RunRollups.Hours}}"; END IF;
        END $views$;
        CREATE OR REPLACE VIEW "{{RunRollups.Hours}}" AS
            SELECT "Hour", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds" FROM {{RDH}} WHERE "Runs" <> 0;
        DROP TRIGGER IF EXISTS "JobLogRunHours_ReadOnly" ON "{{RunRollups.Hours}}";
        CREATE TRIGGER "JobLogRunHours_ReadOnly" INSTEAD OF INSERT OR UPDATE OR DELETE ON "{{RunRollups.Hours}}"
            FOR EACH ROW EXECUTE FUNCTION joblog_minute_views_read_only();
        """;

    /// <summary>
    /// The day hours added to a ledger whose day rollups serve the minutes already (partitioned before session 13): the
    /// tables, the day triggers' functions that keep them, their rows from the day rollups (no read of the ledger) and the views.
    /// </summary>
    internal static readonly string AddHours = $"""
        {CreateHours}
        {TaskFunctions}
        {RunFunctions}
        TRUNCATE {THD}, {RDH};
        {FillHours}
        {HourView}
        """;

    /// <summary>Whether the day hours exist and serve the hour rollup (<see cref="HourView"/>).</summary>
    internal const string ServeHoursSql =
        "SELECT to_regclass('" + THD + "') IS NOT NULL AND to_regclass('" + RDH + "') IS NOT NULL " +
        "AND coalesce((SELECT relkind = 'v' FROM pg_class WHERE oid = to_regclass('\"" + LedgerRollups.Hours + "\"')), FALSE) " +
        "AND coalesce((SELECT relkind = 'v' FROM pg_class WHERE oid = to_regclass('\"" + RunRollups.Hours + "\"')), FALSE)";

    /// <summary>The tables, trigger functions and triggers (idempotent), then the rollups of the rows present.</summary>
    internal static readonly string Create = $"""
        CREATE TABLE IF NOT EXISTS {TD} ({Key} integer NOT NULL, "Minute" timestamptz NOT NULL, "State" integer NOT NULL,
            "Name" varchar({LedgerModel.NameLength}) NOT NULL, "IsInternal" boolean NOT NULL, "Count" bigint NOT NULL, PRIMARY KEY ({TaskKey}));
        CREATE TABLE IF NOT EXISTS {RD} ({Key} integer NOT NULL, "Minute" timestamptz NOT NULL, "Name" varchar({LedgerModel.NameLength}) NOT NULL,
            "Runs" bigint NOT NULL, "TotalMilliseconds" bigint NOT NULL, "MaxMilliseconds" bigint NOT NULL, PRIMARY KEY ({Key}, "Minute", "Name"));
        {CreateHours}

        {TaskFunctions}
        {RunFunctions}

        DROP TRIGGER IF EXISTS "JobLogTasks_Days_Insert" ON {T};
        DROP TRIGGER IF EXISTS "JobLogTasks_Days_Delete" ON {T};
        DROP TRIGGER IF EXISTS "JobLogTasks_Days_Update" ON {T};
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Days_Insert" ON {R};
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Days_Delete" ON {R};
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Days_Update" ON {R};
        CREATE TRIGGER "JobLogTasks_Days_Insert" AFTER INSERT ON {T}
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_task_days_insert();
        CREATE TRIGGER "JobLogTasks_Days_Delete" AFTER DELETE ON {T}
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_task_days_delete();
        CREATE TRIGGER "JobLogTasks_Days_Update" AFTER UPDATE ON {T}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_task_days_update();
        CREATE TRIGGER "JobLogTaskRuns_Days_Insert" AFTER INSERT ON {R}
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_run_days_insert();
        CREATE TRIGGER "JobLogTaskRuns_Days_Delete" AFTER DELETE ON {R}
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_run_days_delete();
        CREATE TRIGGER "JobLogTaskRuns_Days_Update" AFTER UPDATE ON {R}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_run_days_update();

        TRUNCATE {TD}, {RD}, {THD}, {RDH};
        INSERT INTO {TD} ({TaskKey}, "Count") SELECT {Key}, {TaskMinute}, "State", "Name", "IsInternal", COUNT(*) FROM {T} GROUP BY 1, 2, 3, 4, 5 ORDER BY 2, 1;
        INSERT INTO {RD} ({Key}, "Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT {Key}, {RunRollups.PostgresMinute}, "Name", COUNT(*), SUM({RunRollups.PostgresMilliseconds}), MAX({RunRollups.PostgresMilliseconds})
            FROM {R} WHERE {RunRollups.Counted} GROUP BY 1, 2, 3 ORDER BY 2, 1;
        {FillHours}
        {MinuteViews}
        {HourView}
        """;

    /// <summary>Whether the two minute-grained day rollups are partitioned by day (<see cref="Partition"/>).</summary>
    internal const string PartitionedSql =
        "SELECT coalesce((SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass('" + TD + "')), FALSE) " +
        "AND coalesce((SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass('" + RD + "')), FALSE)";

    /// <summary>The tables partitioned by day like the ledger (<see cref="Partition"/>): a day's drop truncates or drops their day partition.</summary>
    internal static readonly string[] DayTables = [Tasks, Runs];

    /// <summary>
    /// Makes <c>JobLogTaskDays</c> and <c>JobLogRunDays</c> range-partitioned by day, as the ledger (session 31): a day's drop
    /// then empties the day's partition (<c>TRUNCATE</c>, or <c>DROP</c> with no kept rows) instead of deleting its
    /// ~60,000 minute rows each under the lock (220-630 ms at 2 M tasks, session 30). A table that is not partitioned is
    /// renamed <c>_default</c> (its key and index renamed with it) and attached as the new table's default partition: no
    /// row is copied or scanned (a default partition alone has no other partition's range to check). Its rows stay there
    /// and their days go by <c>DELETE</c> as before; the day partitions are made ahead with the ledger's
    /// (<see cref="LedgerPartitioning.EnsureAheadAsync"/>). The minute views are made again: a view names its table by
    /// oid, which the rename kept. Idempotent.
    /// </summary>
    internal static readonly string Partition = $$"""
        {{PartitionOne(Tasks, TaskKey)}}
        {{PartitionOne(Runs, Key + ", \"Minute\", \"Name\"")}}
        {{MinuteViews}}
        """;

    private static string PartitionOne(string table, string key) => $$"""
        DO $partition$ BEGIN
            IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('"{{table}}"')) = 'r' THEN
                ALTER TABLE "{{table}}" RENAME TO "{{table}}_default";
                EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', '{{table}}_default',
                    (SELECT conname FROM pg_constraint WHERE conrelid = '"{{table}}_default"'::regclass AND contype = 'p'), '{{table}}_default_pkey');
                ALTER INDEX IF EXISTS "IX_{{table}}_Minute" RENAME TO "{{table}}_default_Minute_idx";
                CREATE TABLE "{{table}}" (LIKE "{{table}}_default" INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE ({{Key}});
                ALTER TABLE "{{table}}" ADD CONSTRAINT "{{table}}_pkey" PRIMARY KEY ({{key}});
                CREATE INDEX "IX_{{table}}_Minute" ON "{{table}}" ("Minute");
                ALTER TABLE "{{table}}" ATTACH PARTITION "{{table}}_default" DEFAULT;
            END IF;
        END $partition$;
        """;

    /// <summary>
    /// The day rollups' rows of day <c>{0}</c> emptied under the drop's lock: the day partitions named in <c>{1}</c>
    /// (<see cref="DayTables"/> that have one) truncated, or dropped when <c>{2}</c> is true (no kept rows will be added
    /// back); the others' rows of the day deleted (a day whose rows are in the default partition: a ledger partitioned
    /// before session 31, or a day made late).
    /// </summary>
    internal static string Empty(int day, IReadOnlyCollection<string> partitioned, bool drop) => string.Concat(DayTables.Select(table =>
        !partitioned.Contains(table) ? $"DELETE FROM \"{table}\" WHERE {Key} = {day};\n"
        : drop ? $"DROP TABLE \"{table}_{PartitionDay.Suffix(day)}\";\n"
        : $"TRUNCATE \"{table}_{PartitionDay.Suffix(day)}\";\n"));

    /// <summary>Whether the day rollups exist and serve the minute rollups (<see cref="MinuteViews"/>).</summary>
    internal const string ServeMinutesSql =
        "SELECT to_regclass('" + TD + "') IS NOT NULL AND coalesce((SELECT relkind = 'v' FROM pg_class WHERE oid = to_regclass('\"" + LedgerRollups.Minutes + "\"')), FALSE)";

    /// <summary>Adds one statement's deltas (State, Name, IsInternal, n) to the counts, in key order so concurrent writers lock alike.</summary>
    private static string CountsApply(string deltas) => $"""
            WITH d AS ({deltas})
            INSERT INTO "{LedgerRollups.Counts}" AS c ("State", "Name", "IsInternal", "Count")
            SELECT "State", "Name", "IsInternal", SUM(n) FROM d GROUP BY 1, 2, 3 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3
            ON CONFLICT ("State", "Name", "IsInternal") DO UPDATE SET "Count" = c."Count" + excluded."Count";
        """;

    // Old and new versions of the updated runs whose part in the rollup changed (counted or not, minute, name, duration).
    private static string RunChanged =>
        $"old_rows o JOIN new_rows n ON n.\"Id\" = o.\"Id\" WHERE (({CountedOf("o")}) IS DISTINCT FROM ({CountedOf("n")}) " +
        $"OR (o.\"Start\", o.\"Stop\", o.\"Name\", o.{Key}) IS DISTINCT FROM (n.\"Start\", n.\"Stop\", n.\"Name\", n.{Key}))";

    private static string CountedOf(string row) => $"{row}.\"State\" IN (2, 3, 4) AND {row}.\"Stop\" IS NOT NULL";

    /// <summary>Adds one statement's task deltas (day, State, Name, IsInternal, Stop, n), in key order so concurrent writers lock alike.</summary>
    private static string TaskApply(string deltas) => $"""
            WITH d AS ({deltas})
            INSERT INTO {TD} AS c ({TaskKey}, "Count")
            SELECT {Key}, {TaskMinute}, "State", "Name", "IsInternal", SUM(n) FROM d GROUP BY 1, 2, 3, 4, 5 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3, 4, 5
            ON CONFLICT ({TaskKey}) DO UPDATE SET "Count" = c."Count" + excluded."Count";
            WITH d AS ({deltas})
            INSERT INTO {THD} AS c ({HourKey}, "Count")
            SELECT {Key}, {LedgerRollups.PostgresHour}, "State", "Name", "IsInternal", SUM(n) FROM d WHERE "Stop" IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3, 4, 5
            ON CONFLICT ({HourKey}) DO UPDATE SET "Count" = c."Count" + excluded."Count";
        """;

    /// <summary>
    /// Adds one statement's run deltas (day, Start, Name, ms, n); then, for the keys <paramref name="removed"/> (day, Start,
    /// Name, ms of the counted runs taken out) took a run from whose duration reached the longest, the longest is read again
    /// from that day's runs of that minute and name (the <c>(Name, Start)</c> index of one partition).
    /// </summary>
    private static string RunApply(string deltas, string? removed) =>
        RunApplyTo(RD, "Minute", RunRollups.PostgresMinute, "1 minute", deltas, removed) + RunApplyTo(RDH, "Hour", RunRollups.PostgresHour, "1 hour", deltas, removed);

    private static string RunApplyTo(string table, string time, string of, string width, string deltas, string? removed) => $"""
            WITH d AS ({deltas})
            INSERT INTO {table} AS m ({Key}, "{time}", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT {Key}, {of}, "Name", SUM(n), SUM(n * ms), coalesce(MAX(ms) FILTER (WHERE n > 0), 0) FROM d
            GROUP BY 1, 2, 3 HAVING SUM(n) <> 0 OR SUM(n * ms) <> 0 OR bool_or(n > 0) ORDER BY 1, 2, 3
            ON CONFLICT ({Key}, "{time}", "Name") DO UPDATE SET "Runs" = m."Runs" + excluded."Runs",
                "TotalMilliseconds" = m."TotalMilliseconds" + excluded."TotalMilliseconds",
                "MaxMilliseconds" = GREATEST(m."MaxMilliseconds", excluded."MaxMilliseconds");
            {(removed is null ? "" : $"""
            UPDATE {table} m SET "MaxMilliseconds" = coalesce((
                    SELECT MAX({RunRollups.PostgresMillisecondsOf("r.\"Start\"", "r.\"Stop\"")}) FROM {R} r
                    WHERE r.{Key} = m.{Key} AND r."Name" = m."Name" AND r."Start" >= m."{time}" AND r."Start" < m."{time}" + interval '{width}'
                        AND r."State" IN (2, 3, 4) AND r."Stop" IS NOT NULL), 0)
                FROM (SELECT {Key}, {of} AS "{time}", "Name", MAX(ms) AS ms FROM ({removed}) x GROUP BY 1, 2, 3) k
                WHERE m.{Key} = k.{Key} AND m."{time}" = k."{time}" AND m."Name" = k."Name" AND m."MaxMilliseconds" <= k.ms;
            """)}
        """;

    /// <summary>
    /// The kept rows of a day's drop as the few rows its locked statements need (docs/scale.md "Session 38 (retention)"), one
    /// <c>"Kind"</c> each: <c>t</c> the kept tasks by (day, <see cref="TaskMinute"/>, state, name, kind) with their
    /// <c>"Count"</c>; <c>r</c> their counted runs by (day, Start's minute, name) with <c>"Count"</c>, <c>"Total"</c> and
    /// <c>"Max"</c> milliseconds; <c>f</c> what the failure groups lose with the day (<see cref="FailureGroupRollup.PostgresDropDay"/>:
    /// the day's open failures, <paramref name="dayTasks"/>, less the kept ones) by (grouping as <c>"State"</c>, group id as
    /// <c>"Name"</c>, kind). The hours are the minutes' (an hour of a minute is the hour of its time, as <see cref="FillHours"/>).
    /// Made from the kept rows under the lock (six scans of them, 0.18-0.91 s of a 2 M day's lock at load 11-18, docs/scale.md
    /// "Session 37 (scale)"), or before it from a build made ahead when nothing was noted since (LedgerPartitioning.Built.cs).
    /// </summary>
    internal static string KeptAggregates(string keepTasks, string keepRuns, string dayTasks) => $$"""
        SELECT 't'::text AS "Kind", {{Key}} AS "PartitionDay", {{TaskMinute}} AS "Minute", "State", "Name"::text AS "Name", "IsInternal",
                COUNT(*)::bigint AS "Count", 0::bigint AS "Total", 0::bigint AS "Max"
            FROM {{keepTasks}} GROUP BY 2, 3, 4, 5, 6
        UNION ALL SELECT 'r', {{Key}}, {{RunRollups.PostgresMinute}}, 0, "Name"::text, FALSE, COUNT(*), SUM({{RunRollups.PostgresMilliseconds}}), MAX({{RunRollups.PostgresMilliseconds}})
            FROM {{keepRuns}} WHERE {{RunRollups.Counted}} GROUP BY 2, 3, 5
        UNION ALL SELECT 'f', NULL, NULL, g.b, g.id::text, f."IsInternal", SUM(f.n)::bigint, 0, 0 FROM (
                SELECT {{FailureGroupRollup.Columns}}, "IsInternal", -1 AS n FROM {{dayTasks}} WHERE {{FailureGroupRollup.OpenFailure}}
                UNION ALL SELECT {{FailureGroupRollup.Columns}}, "IsInternal", 1 FROM {{keepTasks}} WHERE {{FailureGroupRollup.OpenFailure}}) f
            CROSS JOIN LATERAL (VALUES {{FailureGroupRollup.Groupings("f")}}) AS g(b, id) WHERE g.id IS NOT NULL
            GROUP BY 4, 5, 6 HAVING SUM(f.n) <> 0
        """;

    /// <summary>The columns of <see cref="KeptAggregates"/>, for a record set read back from JSON.</summary>
    internal const string KeptAggregatesColumns =
        "\"Kind\" text, " + Key + " integer, \"Minute\" timestamptz, \"State\" integer, \"Name\" text, \"IsInternal\" boolean, \"Count\" bigint, \"Total\" bigint, \"Max\" bigint";

    /// <summary>
    /// Under the day's lock, from the kept rows' aggregates (<c>joblog_keep_agg</c>, <see cref="KeptAggregates"/>): what the
    /// drop of day <c>{0}</c> takes from the counts (<c>joblog_gone</c>, as <see cref="Gone"/>) and from the failure groups,
    /// and, after the day's rollup partitions are emptied (<see cref="Empty"/>), the kept rows' day rollups (as <see cref="Reset"/>).
    /// </summary>
    internal static readonly string GoneOfAggregates = $$"""
        CREATE TEMP TABLE joblog_gone ON COMMIT DROP AS
            SELECT "State", "Name", "IsInternal", SUM(n)::bigint AS n FROM (
                SELECT "State", "Name", "IsInternal", "Count" AS n FROM {{THD}} WHERE {{Key}} = {0}
                UNION ALL SELECT "State", "Name", "IsInternal", "Count" FROM {{TD}} WHERE {{Key}} = {0} AND "Minute" = '-infinity'
                UNION ALL SELECT "State", "Name", "IsInternal", -"Count" FROM joblog_keep_agg WHERE "Kind" = 't') x
            GROUP BY 1, 2, 3 HAVING SUM(n) <> 0;
        INSERT INTO "{{LedgerRollups.Counts}}" AS c ("State", "Name", "IsInternal", "Count")
            SELECT "State", "Name", "IsInternal", -n FROM joblog_gone ORDER BY 1, 2, 3
            ON CONFLICT ("State", "Name", "IsInternal") DO UPDATE SET "Count" = c."Count" + excluded."Count";
        {{FailureGroupRollup.PostgresDropDayOf("SELECT \"State\", \"Name\", \"IsInternal\", \"Count\" FROM joblog_keep_agg WHERE \"Kind\" = 'f'")}}
        """;

    /// <summary>The kept rows' day rollups from their aggregates (<see cref="GoneOfAggregates"/>), as <see cref="Reset"/> makes them from the rows.</summary>
    internal static readonly string ResetOfAggregates = $$"""
        DELETE FROM {{THD}} WHERE {{Key}} = {0};
        DELETE FROM {{RDH}} WHERE {{Key}} = {0};
        INSERT INTO {{TD}} ({{TaskKey}}, "Count")
            SELECT {{Key}}, "Minute", "State", "Name", "IsInternal", "Count" FROM joblog_keep_agg WHERE "Kind" = 't';
        INSERT INTO {{THD}} ({{HourKey}}, "Count")
            SELECT {{Key}}, {{HourOfMinute}}, "State", "Name", "IsInternal", SUM("Count") FROM joblog_keep_agg WHERE "Kind" = 't' AND "Minute" > '-infinity' GROUP BY 1, 2, 3, 4, 5;
        INSERT INTO {{RD}} ({{Key}}, "Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT {{Key}}, "Minute", "Name", "Count", "Total", "Max" FROM joblog_keep_agg WHERE "Kind" = 'r';
        INSERT INTO {{RDH}} ({{Key}}, "Hour", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT {{Key}}, {{HourOfMinute}}, "Name", SUM("Count"), SUM("Total"), MAX("Max") FROM joblog_keep_agg WHERE "Kind" = 'r' GROUP BY 1, 2, 3;
        """;

    /// <summary>
    /// What the drop of day <c>{0}</c> takes from the counts (state x name), from the day rollups less the kept rows
    /// (<c>joblog_keep_tasks</c>): <c>joblog_gone</c> (State, Name, IsInternal, n), a few hundred rows. The minute rollups
    /// need nothing: they are views over the day rollups (<see cref="MinuteViews"/>), and the day's rows go with
    /// <see cref="Reset"/>. Until session 9 the minute rollups were tables, and the drop subtracted ~50,000 task-minute and
    /// ~50,000 run-minute rows a day by joins (~1.3 s of a 3.1 s drop at 1 M, load ~20). The day's tasks are read from its
    /// hours (the finished ones, ~24 rows a key) and its unfinished minute (<c>-infinity</c>), not its ~84,000 minute rows
    /// at a million tasks a day, which the planner read by a seq scan of the table (330 ms against 12 ms, cold, at 10 M;
    /// docs/scale.md "Session 17 (daydrop)").
    /// </summary>
    internal static readonly string Gone = $$"""
        CREATE TEMP TABLE joblog_gone ON COMMIT DROP AS
            SELECT "State", "Name", "IsInternal", SUM(n)::bigint AS n FROM (
                SELECT "State", "Name", "IsInternal", "Count" AS n FROM {{THD}} WHERE {{Key}} = {0}
                UNION ALL SELECT "State", "Name", "IsInternal", "Count" FROM {{TD}} WHERE {{Key}} = {0} AND "Minute" = '-infinity'
                UNION ALL SELECT "State", "Name", "IsInternal", -1 FROM joblog_keep_tasks) x
            GROUP BY 1, 2, 3 HAVING SUM(n) <> 0;
        INSERT INTO "{{LedgerRollups.Counts}}" AS c ("State", "Name", "IsInternal", "Count")
            SELECT "State", "Name", "IsInternal", -n FROM joblog_gone ORDER BY 1, 2, 3
            ON CONFLICT ("State", "Name", "IsInternal") DO UPDATE SET "Count" = c."Count" + excluded."Count";
        """;

    /// <summary>
    /// After the drop of day <c>{0}</c>, its day rollups hold only the kept rows (back in the ledger, in the day's <c>_k</c> partitions, with their
    /// day; a statement straight on a partition fires none of the parent's triggers). The minute rows of the day are emptied
    /// before, by <see cref="Empty"/>; the hours (~1/60 of them) are deleted here.
    /// </summary>
    internal static readonly string Reset = $$"""
        DELETE FROM {{THD}} WHERE {{Key}} = {0};
        DELETE FROM {{RDH}} WHERE {{Key}} = {0};
        INSERT INTO {{TD}} ({{TaskKey}}, "Count")
            SELECT {{Key}}, {{TaskMinute}}, "State", "Name", "IsInternal", COUNT(*) FROM joblog_keep_tasks GROUP BY 1, 2, 3, 4, 5;
        INSERT INTO {{THD}} ({{HourKey}}, "Count")
            SELECT {{Key}}, {{LedgerRollups.PostgresHour}}, "State", "Name", "IsInternal", COUNT(*) FROM joblog_keep_tasks WHERE "Stop" IS NOT NULL GROUP BY 1, 2, 3, 4, 5;
        INSERT INTO {{RD}} ({{Key}}, "Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT {{Key}}, {{RunRollups.PostgresMinute}}, "Name", COUNT(*), SUM({{RunRollups.PostgresMilliseconds}}), MAX({{RunRollups.PostgresMilliseconds}})
            FROM joblog_keep_runs WHERE {{RunRollups.Counted}} GROUP BY 1, 2, 3;
        INSERT INTO {{RDH}} ({{Key}}, "Hour", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT {{Key}}, {{RunRollups.PostgresHour}}, "Name", COUNT(*), SUM({{RunRollups.PostgresMilliseconds}}), MAX({{RunRollups.PostgresMilliseconds}})
            FROM joblog_keep_runs WHERE {{RunRollups.Counted}} GROUP BY 1, 2, 3;
        """;
}
