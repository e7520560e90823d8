using Microsoft.EntityFrameworkCore;

namespace JobLog.Storage;

/// <summary>Tasks of one state, name and kind (application or MassTransit infrastructure), all time: the overview's counts.</summary>
internal sealed class TaskStateCount
{
    public TaskState State { get; set; }

    public string Name { get; set; } = "";

    public bool IsInternal { get; set; }

    public long Count { get; set; }
}

/// <summary>Tasks that ended in one UTC minute, by state, name and kind: the overview's chart.</summary>
internal sealed class TaskMinuteCount
{
    /// <summary>The minute <c>Stop</c> falls in (seconds and below cut off).</summary>
    public DateTime Minute { get; set; }

    public TaskState State { get; set; }

    public string Name { get; set; } = "";

    public bool IsInternal { get; set; }

    public long Count { get; set; }
}

/// <summary>Tasks that ended in one UTC hour, by state, name and kind: the overview's day chart (a minute row per key read
/// 60 times fewer).</summary>
internal sealed class TaskHourCount
{
    /// <summary>The hour <c>Stop</c> falls in (minutes and below cut off).</summary>
    public DateTime Hour { get; set; }

    public TaskState State { get; set; }

    public string Name { get; set; } = "";

    public bool IsInternal { get; set; }

    public long Count { get; set; }
}

/// <summary>
/// The task rollups: three small tables that database triggers on the tasks table keep exact, whoever writes (the writer's
/// upserts, the sweeper's expiries, purges, restores, an application's own SQL): every inserted row counts +1, every
/// deleted row -1, an update moves a row from its old key to its new one. The overview reads them instead of counting the
/// ledger. SQLite: row triggers. PostgreSQL: statement triggers over the transition tables, so one writer batch touches
/// each rollup row once, in key order. See <c>docs/architecture.md#rollups</c> and docs/scale.md. The migration
/// <c>ScaleTaskRollups</c> ran the first triggers (<see cref="SqliteUp"/>, <see cref="PostgreSqlUp"/>: minutes only, kept word
/// for word for it); <c>HourrollTaskHours</c> replaced them with the ones that keep the hours too (<see cref="SqliteHoursUp"/>,
/// <see cref="PostgreSqlHoursUp"/>): a change to those is a new migration that replaces the triggers again.
/// </summary>
internal static class LedgerRollups
{
    internal const string Counts = "JobLogTaskCounts";
    internal const string Minutes = "JobLogTaskMinutes";
    internal const string Hours = "JobLogTaskHours";

    private const string T = "\"" + LedgerModel.Tasks + "\"";
    private const string C = "\"" + Counts + "\"";
    private const string M = "\"" + Minutes + "\"";
    private const string H = "\"" + Hours + "\"";
    private const string CountKey = "\"State\", \"Name\", \"IsInternal\"";
    private const string MinuteKey = "\"Minute\", \"State\", \"Name\", \"IsInternal\"";
    private const string HourKey = "\"Hour\", \"State\", \"Name\", \"IsInternal\"";

    internal static void Configure(ModelBuilder b)
    {
        b.Entity<TaskStateCount>(e =>
        {
            e.ToTable(Counts);
            e.HasKey(x => new { x.State, x.Name, x.IsInternal });
            e.Property(x => x.Name).HasMaxLength(LedgerModel.NameLength);
        });
        b.Entity<TaskMinuteCount>(e =>
        {
            e.ToTable(Minutes);
            e.HasKey(x => new { x.Minute, x.State, x.Name, x.IsInternal });
            e.Property(x => x.Name).HasMaxLength(LedgerModel.NameLength);
        });
        b.Entity<TaskHourCount>(e =>
        {
            e.ToTable(Hours);
            e.HasKey(x => new { x.Hour, x.State, x.Name, x.IsInternal });
            e.Property(x => x.Name).HasMaxLength(LedgerModel.NameLength);
        });
    }

    // ---- SQLite: row triggers ----

    /// <summary>The first SQLite triggers (minutes only) and the rollups of the rows already in the ledger: the migration <c>ScaleTaskRollups</c>'s.</summary>
    internal static readonly string SqliteUp = SqliteTriggers(hours: false) + $"""

        INSERT INTO {C} ({CountKey}, "Count") SELECT {CountKey}, COUNT(*) FROM {T} GROUP BY {CountKey};
        INSERT INTO {M} ({MinuteKey}, "Count")
        SELECT substr("Stop", 1, 16) || ':00', "State", "Name", "IsInternal", COUNT(*) FROM {T} WHERE "Stop" IS NOT NULL
        GROUP BY substr("Stop", 1, 16), "State", "Name", "IsInternal";
        """;

    /// <summary>
    /// The SQLite triggers that keep the hours too, replacing the first ones, and the hours of the minutes already counted
    /// (the migration <c>HourrollTaskHours</c>'s; <see cref="Sqlite.SqliteWriterTriggers"/> recognises these).
    /// </summary>
    internal static readonly string SqliteHoursUp = SqliteDown + "\n" + SqliteTriggers(hours: true) + $"""

        INSERT INTO {H} ({HourKey}, "Count")
        SELECT substr("Minute", 1, 13) || ':00:00', "State", "Name", "IsInternal", SUM("Count") FROM {M}
        GROUP BY substr("Minute", 1, 13), "State", "Name", "IsInternal" ORDER BY 1, 2, 3, 4;
        """;

    private static string SqliteTriggers(bool hours) => $"""
        CREATE TRIGGER "JobLogTasks_Rollup_Insert" AFTER INSERT ON {T}
        BEGIN
        {SqliteAdd("NEW", "1", hours)}
        END;

        CREATE TRIGGER "JobLogTasks_Rollup_Delete" AFTER DELETE ON {T}
        BEGIN
        {SqliteAdd("OLD", "-1", hours)}
        {SqliteDropEmpty("OLD", hours)}
        END;

        CREATE TRIGGER "JobLogTasks_Rollup_Update" AFTER UPDATE ON {T}
        WHEN OLD."State" IS NOT NEW."State" OR OLD."Name" IS NOT NEW."Name" OR OLD."IsInternal" IS NOT NEW."IsInternal" OR OLD."Stop" IS NOT NEW."Stop"
        BEGIN
        {SqliteAdd("OLD", "-1", hours)}
        {SqliteAdd("NEW", "1", hours)}
        {SqliteDropEmpty("OLD", hours)}
        END;
        """;

    internal const string SqliteDown = """
        DROP TRIGGER IF EXISTS "JobLogTasks_Rollup_Insert";
        DROP TRIGGER IF EXISTS "JobLogTasks_Rollup_Delete";
        DROP TRIGGER IF EXISTS "JobLogTasks_Rollup_Update";
        """;

    /// <summary>The migration <c>HourrollTaskHours</c>'s way back: the first triggers again (the hours' table goes with it).</summary>
    internal static readonly string SqliteHoursDown = SqliteDown + "\n" + SqliteTriggers(hours: false);

    // ---- PostgreSQL: statement triggers over transition tables ----

    /// <summary>The PostgreSQL trigger functions and triggers, and the rollups of the rows already in the ledger.</summary>
    internal static readonly string PostgreSqlUp = $"""
        CREATE FUNCTION joblog_tasks_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {PostgresApply("SELECT \"State\", \"Name\", \"IsInternal\", \"Stop\", 1 AS n FROM new_rows", dropEmpty: false)}
        RETURN NULL;
        END $body$;

        CREATE FUNCTION joblog_tasks_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {PostgresApply("SELECT \"State\", \"Name\", \"IsInternal\", \"Stop\", -1 AS n FROM old_rows", dropEmpty: true)}
        RETURN NULL;
        END $body$;

        CREATE FUNCTION joblog_tasks_rollup_update() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {PostgresApply("SELECT \"State\", \"Name\", \"IsInternal\", \"Stop\", 1 AS n FROM new_rows UNION ALL SELECT \"State\", \"Name\", \"IsInternal\", \"Stop\", -1 FROM old_rows", dropEmpty: true)}
        RETURN NULL;
        END $body$;

        CREATE TRIGGER "JobLogTasks_Rollup_Insert" AFTER INSERT ON {T}
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_tasks_rollup_insert();
        CREATE TRIGGER "JobLogTasks_Rollup_Delete" AFTER DELETE ON {T}
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_tasks_rollup_delete();
        CREATE TRIGGER "JobLogTasks_Rollup_Update" AFTER UPDATE ON {T}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_tasks_rollup_update();

        INSERT INTO {C} ({CountKey}, "Count") SELECT {CountKey}, COUNT(*) FROM {T} GROUP BY {CountKey};
        INSERT INTO {M} ({MinuteKey}, "Count")
        SELECT {PostgresMinute}, "State", "Name", "IsInternal", COUNT(*) FROM {T} WHERE "Stop" IS NOT NULL GROUP BY 1, 2, 3, 4;
        """;

    internal const string PostgreSqlDown = """
        DROP TRIGGER IF EXISTS "JobLogTasks_Rollup_Insert" ON "JobLogTasks";
        DROP TRIGGER IF EXISTS "JobLogTasks_Rollup_Delete" ON "JobLogTasks";
        DROP TRIGGER IF EXISTS "JobLogTasks_Rollup_Update" ON "JobLogTasks";
        DROP FUNCTION IF EXISTS joblog_tasks_rollup_insert();
        DROP FUNCTION IF EXISTS joblog_tasks_rollup_delete();
        DROP FUNCTION IF EXISTS joblog_tasks_rollup_update();
        """;

    /// <summary>
    /// The trigger functions that keep the hours too, and the hours of the minutes already counted: the migration
    /// <c>HourrollTaskHours</c>'s. Only where the minute rollup is a table: on a partitioned ledger it is a view over the
    /// day rollups and these functions keep only the counts; there the hours are a view as well, made at start-up
    /// (<see cref="Partitioning.DayRollups"/>). The functions are made by <c>EXECUTE</c> in a <c>DO</c> block, for the condition.
    /// </summary>
    internal static readonly string PostgreSqlHoursUp = $$"""
        DO $hours$ BEGIN
        IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('{{M}}')) = 'r' THEN
        {{PostgresFunctions(hours: true)}}
        INSERT INTO {{H}} ({{HourKey}}, "Count")
            SELECT date_trunc('hour', "Minute" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', "State", "Name", "IsInternal", SUM("Count") FROM {{M}}
            GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;
        END IF;
        END $hours$;
        """;

    /// <summary>The migration <c>HourrollTaskHours</c>'s way back: the first functions again where the minute rollup is a table.</summary>
    internal static readonly string PostgreSqlHoursDown = $$"""
        DO $hours$ BEGIN
        IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('{{M}}')) = 'r' THEN
        {{PostgresFunctions(hours: false)}}
        END IF;
        END $hours$;
        """;

    // One EXECUTE a function (a DO block cannot hold CREATE FUNCTION's own text otherwise).
    private static string PostgresFunctions(bool hours) => $"""
        EXECUTE $f$ CREATE OR REPLACE FUNCTION joblog_tasks_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {PostgresApply("SELECT \"State\", \"Name\", \"IsInternal\", \"Stop\", 1 AS n FROM new_rows", dropEmpty: false, hours)}
        RETURN NULL;
        END $body$ $f$;
        EXECUTE $f$ CREATE OR REPLACE FUNCTION joblog_tasks_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {PostgresApply("SELECT \"State\", \"Name\", \"IsInternal\", \"Stop\", -1 AS n FROM old_rows", dropEmpty: true, hours)}
        RETURN NULL;
        END $body$ $f$;
        EXECUTE $f$ CREATE OR REPLACE FUNCTION joblog_tasks_rollup_update() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {PostgresApply("SELECT \"State\", \"Name\", \"IsInternal\", \"Stop\", 1 AS n FROM new_rows UNION ALL SELECT \"State\", \"Name\", \"IsInternal\", \"Stop\", -1 FROM old_rows", dropEmpty: true, hours)}
        RETURN NULL;
        END $body$ $f$;
        """;

    // The minute in UTC whatever the session's time zone.
    internal const string PostgresMinute = "date_trunc('minute', \"Stop\" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'";

    // The hour in UTC whatever the session's time zone.
    internal const string PostgresHour = "date_trunc('hour', \"Stop\" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'";

    private static string SqliteAdd(string row, string delta, bool hours) => $"""
            INSERT INTO {C} ({CountKey}, "Count") VALUES ({row}."State", {row}."Name", {row}."IsInternal", {delta})
                ON CONFLICT ({CountKey}) DO UPDATE SET "Count" = "Count" + excluded."Count";
            INSERT INTO {M} ({MinuteKey}, "Count")
                SELECT substr({row}."Stop", 1, 16) || ':00', {row}."State", {row}."Name", {row}."IsInternal", {delta} WHERE {row}."Stop" IS NOT NULL
                ON CONFLICT ({MinuteKey}) DO UPDATE SET "Count" = "Count" + excluded."Count";{(hours ? $"""

            INSERT INTO {H} ({HourKey}, "Count")
                SELECT substr({row}."Stop", 1, 13) || ':00:00', {row}."State", {row}."Name", {row}."IsInternal", {delta} WHERE {row}."Stop" IS NOT NULL
                ON CONFLICT ({HourKey}) DO UPDATE SET "Count" = "Count" + excluded."Count";
            """ : "")}
        """;

    // A purged minute (hour) leaves no empty rows behind (the chart's tables stay as long as the ledger's retention).
    private static string SqliteDropEmpty(string row, bool hours) =>
        $"""    DELETE FROM {M} WHERE "Minute" = substr({row}."Stop", 1, 16) || ':00' AND "State" = {row}."State" AND "Name" = {row}."Name" AND "IsInternal" = {row}."IsInternal" AND "Count" = 0;""" +
        (hours ? $"""

                DELETE FROM {H} WHERE "Hour" = substr({row}."Stop", 1, 13) || ':00:00' AND "State" = {row}."State" AND "Name" = {row}."Name" AND "IsInternal" = {row}."IsInternal" AND "Count" = 0;
            """ : "");

    /// <summary>Adds the deltas of one statement's rows (the CTE <c>d</c>), in key order so concurrent writers lock alike.</summary>
    internal static string PostgresApply(string deltas, bool dropEmpty, bool hours = false) => $"""
            WITH d AS ({deltas})
            INSERT INTO {C} AS c ({CountKey}, "Count")
            SELECT {CountKey}, SUM(n) FROM d GROUP BY {CountKey} HAVING SUM(n) <> 0 ORDER BY {CountKey}
            ON CONFLICT ({CountKey}) DO UPDATE SET "Count" = c."Count" + excluded."Count";
            WITH d AS ({deltas})
            INSERT INTO {M} AS m ({MinuteKey}, "Count")
            SELECT {PostgresMinute}, "State", "Name", "IsInternal", SUM(n) FROM d WHERE "Stop" IS NOT NULL
            GROUP BY 1, 2, 3, 4 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3, 4
            ON CONFLICT ({MinuteKey}) DO UPDATE SET "Count" = m."Count" + excluded."Count";
            {(hours ? $"""
            WITH d AS ({deltas})
            INSERT INTO {H} AS m ({HourKey}, "Count")
            SELECT {PostgresHour}, "State", "Name", "IsInternal", SUM(n) FROM d WHERE "Stop" IS NOT NULL
            GROUP BY 1, 2, 3, 4 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3, 4
            ON CONFLICT ({HourKey}) DO UPDATE SET "Count" = m."Count" + excluded."Count";
            """ : "")}
            {(dropEmpty ? PostgresDropEmpty(deltas) : "")}
            {(dropEmpty && hours ? PostgresDropEmptyHours(deltas) : "")}
        """;

    // A purged minute leaves no empty rows behind; only the keys this statement took from are looked at.
    private static string PostgresDropEmpty(string deltas) => $"""
        WITH d AS ({deltas})
            DELETE FROM {M} m USING (SELECT DISTINCT {PostgresMinute} AS "Minute", "State", "Name", "IsInternal" FROM d WHERE "Stop" IS NOT NULL AND n < 0) k
            WHERE m."Minute" = k."Minute" AND m."State" = k."State" AND m."Name" = k."Name" AND m."IsInternal" = k."IsInternal" AND m."Count" = 0;
        """;

    private static string PostgresDropEmptyHours(string deltas) => $"""
        WITH d AS ({deltas})
            DELETE FROM {H} m USING (SELECT DISTINCT {PostgresHour} AS "Hour", "State", "Name", "IsInternal" FROM d WHERE "Stop" IS NOT NULL AND n < 0) k
            WHERE m."Hour" = k."Hour" AND m."State" = k."State" AND m."Name" = k."Name" AND m."IsInternal" = k."IsInternal" AND m."Count" = 0;
        """;
}
