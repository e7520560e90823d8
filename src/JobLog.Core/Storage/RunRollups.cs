using Microsoft.EntityFrameworkCore;

namespace JobLog.Storage;

/// <summary>Finished runs of one task name that started in one UTC minute: the overview's slowest task names.</summary>
internal sealed class RunMinuteDurations
{
    /// <summary>The minute <c>Start</c> falls in (seconds and below cut off).</summary>
    public DateTime Minute { get; set; }

    public string Name { get; set; } = "";

    /// <summary>Runs that ended (SUCCEEDED, FAILED, RETRIED, with a <c>Stop</c>).</summary>
    public long Runs { get; set; }

    /// <summary>The sum of their durations (<c>Stop - Start</c>), in whole milliseconds.</summary>
    public long TotalMilliseconds { get; set; }

    /// <summary>The longest of them, in whole milliseconds.</summary>
    public long MaxMilliseconds { get; set; }
}

/// <summary>Finished runs of one task name that started in one UTC hour: the overview's slowest task names over a day.</summary>
internal sealed class RunHourDurations
{
    /// <summary>The hour <c>Start</c> falls in (minutes and below cut off).</summary>
    public DateTime Hour { get; set; }

    public string Name { get; set; } = "";

    public long Runs { get; set; }

    public long TotalMilliseconds { get; set; }

    public long MaxMilliseconds { get; set; }
}

/// <summary>
/// The run rollup: finished runs per start minute and task name, with their total and longest duration, kept exact by
/// database triggers on the runs table the way <see cref="LedgerRollups"/> keeps the task rollups (whoever writes: the
/// writer, the sweeper's and the orphan expiries, purges, restores). A run counts while it is SUCCEEDED, FAILED or
/// RETRIED with a <c>Stop</c> (what the overview's "slowest task names" table reads); only a change of that (its state
/// into or out of those, its <c>Stop</c>, <c>Start</c> or name) touches the rollup. The count and the total are added
/// and subtracted; the longest is raised on insert and, when the longest run of a minute leaves it, read again from
/// the runs of that minute and name (the <c>(Name, Start)</c> index). The migration <c>ScaleRunRollup</c> ran the first
/// triggers (<see cref="SqliteUp"/>, <see cref="PostgreSqlUp"/>, kept word for word for it); <c>HourrollRunHours</c> replaced
/// them with the ones that keep the hours too (<see cref="SqliteHoursUp"/>, <see cref="PostgreSqlHoursUp"/>): a change to
/// those is a new migration that replaces the triggers again. See docs/scale.md.
/// </summary>
internal static class RunRollups
{
    internal const string Minutes = "JobLogRunMinutes";
    internal const string Hours = "JobLogRunHours";

    private const string R = "\"" + LedgerModel.Runs + "\"";
    private const string M = "\"" + Minutes + "\"";
    private const string H = "\"" + Hours + "\"";
    internal const string Counted = "\"State\" IN (2, 3, 4) AND \"Stop\" IS NOT NULL";

    internal static void Configure(ModelBuilder b)
    {
        b.Entity<RunMinuteDurations>(e =>
        {
            e.ToTable(Minutes);
            e.HasKey(x => new { x.Minute, x.Name });
            e.Property(x => x.Name).HasMaxLength(LedgerModel.NameLength);
        });
        b.Entity<RunHourDurations>(e =>
        {
            e.ToTable(Hours);
            e.HasKey(x => new { x.Hour, x.Name });
            e.Property(x => x.Name).HasMaxLength(LedgerModel.NameLength);
        });
    }

    // ---- SQLite: row triggers, each fired only when the run's part in the rollup changes ----

    /// <summary>The first SQLite triggers (minutes only) and the rollup of the runs already in the ledger: the migration <c>ScaleRunRollup</c>'s.</summary>
    internal static readonly string SqliteUp = SqliteTriggers(hours: false) + $"""

        INSERT INTO {M} ("Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
        SELECT substr("Start", 1, 16) || ':00', "Name", COUNT(*), SUM(d), MAX(d)
        FROM (SELECT "Start", "Name", {SqliteMilliseconds("")} AS d FROM {R} WHERE {Counted})
        GROUP BY substr("Start", 1, 16), "Name";
        """;

    /// <summary>
    /// The SQLite triggers that keep the hours too, replacing the first ones, and the hours of the minutes already counted
    /// (the migration <c>HourrollRunHours</c>'s; <see cref="Sqlite.SqliteWriterTriggers"/> recognises these).
    /// </summary>
    internal static readonly string SqliteHoursUp = SqliteDown + "\n" + SqliteTriggers(hours: true) + $"""

        INSERT INTO {H} ("Hour", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
        SELECT substr("Minute", 1, 13) || ':00:00', "Name", SUM("Runs"), SUM("TotalMilliseconds"), MAX("MaxMilliseconds") FROM {M}
        GROUP BY substr("Minute", 1, 13), "Name" ORDER BY 1, 2;
        """;

    private static string SqliteTriggers(bool hours) => $"""
        CREATE TRIGGER "JobLogTaskRuns_Rollup_Insert" AFTER INSERT ON {R}
        WHEN {SqliteCounted("NEW")}
        BEGIN
        {SqliteAdd("NEW")}{(hours ? SqliteAddHour("NEW") : "")}
        END;

        CREATE TRIGGER "JobLogTaskRuns_Rollup_Delete" AFTER DELETE ON {R}
        WHEN {SqliteCounted("OLD")}
        BEGIN
        {SqliteRemove("OLD", "TRUE")}{(hours ? SqliteRemoveHour("OLD", "TRUE") : "")}
        END;

        CREATE TRIGGER "JobLogTaskRuns_Rollup_Update" AFTER UPDATE ON {R}
        WHEN ({SqliteCounted("OLD")} OR {SqliteCounted("NEW")})
            AND NOT ({SqliteCounted("OLD")} AND {SqliteCounted("NEW")} AND OLD."Name" = NEW."Name" AND OLD."Start" = NEW."Start" AND OLD."Stop" = NEW."Stop")
        BEGIN
        {SqliteRemove("OLD", SqliteCounted("OLD"))}{(hours ? SqliteRemoveHour("OLD", SqliteCounted("OLD")) : "")}
        INSERT INTO {M} ("Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT {SqliteMinute("NEW")}, NEW."Name", 1, {SqliteMilliseconds("NEW")}, {SqliteMilliseconds("NEW")} WHERE {SqliteCounted("NEW")}
            {SqliteAddConflict};{(hours ? $"""

            INSERT INTO {H} ("Hour", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
                SELECT {SqliteHour("NEW")}, NEW."Name", 1, {SqliteMilliseconds("NEW")}, {SqliteMilliseconds("NEW")} WHERE {SqliteCounted("NEW")}
                {SqliteAddHourConflict};
            """ : "")}
        END;
        """;

    internal const string SqliteDown = """
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Rollup_Insert";
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Rollup_Delete";
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Rollup_Update";
        """;

    /// <summary>The migration <c>HourrollRunHours</c>'s way back: the first triggers again (the hours' table goes with it).</summary>
    internal static readonly string SqliteHoursDown = SqliteDown + "\n" + SqliteTriggers(hours: false);

    private const string SqliteAddHourConflict =
        "ON CONFLICT (\"Hour\", \"Name\") DO UPDATE SET \"Runs\" = \"Runs\" + 1, \"TotalMilliseconds\" = \"TotalMilliseconds\" + excluded.\"TotalMilliseconds\", " +
        "\"MaxMilliseconds\" = max(\"MaxMilliseconds\", excluded.\"MaxMilliseconds\")";

    private static string SqliteHour(string row) => $"substr({row}.\"Start\", 1, 13) || ':00:00'";

    private static string SqliteAddHour(string row) => $"""

            INSERT INTO {H} ("Hour", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
                VALUES ({SqliteHour(row)}, {row}."Name", 1, {SqliteMilliseconds(row)}, {SqliteMilliseconds(row)})
                {SqliteAddHourConflict};
        """;

    // As SqliteRemove for the row's hour: the longest is read again from the hour's runs of the name.
    private static string SqliteRemoveHour(string row, string when) => $"""

            UPDATE {H} SET "Runs" = "Runs" - 1, "TotalMilliseconds" = "TotalMilliseconds" - {SqliteMilliseconds(row)}
                WHERE "Hour" = {SqliteHour(row)} AND "Name" = {row}."Name" AND {when};
            DELETE FROM {H} WHERE "Hour" = {SqliteHour(row)} AND "Name" = {row}."Name" AND "Runs" <= 0 AND {when};
            UPDATE {H} SET "MaxMilliseconds" = (
                    SELECT coalesce(max({SqliteMilliseconds("r")}), 0) FROM {R} r
                    WHERE r."Name" = {row}."Name" AND r."Start" >= {SqliteHour(row)} AND r."Start" < datetime({SqliteHour(row)}, '+1 hour')
                        AND r."State" IN (2, 3, 4) AND r."Stop" IS NOT NULL)
                WHERE "Hour" = {SqliteHour(row)} AND "Name" = {row}."Name" AND "MaxMilliseconds" <= {SqliteMilliseconds(row)} AND {when};
        """;

    private const string SqliteAddConflict =
        "ON CONFLICT (\"Minute\", \"Name\") DO UPDATE SET \"Runs\" = \"Runs\" + 1, \"TotalMilliseconds\" = \"TotalMilliseconds\" + excluded.\"TotalMilliseconds\", " +
        "\"MaxMilliseconds\" = max(\"MaxMilliseconds\", excluded.\"MaxMilliseconds\")";

    private static string SqliteCounted(string row) => $"""{row}."State" IN (2, 3, 4) AND {row}."Stop" IS NOT NULL""";

    private static string SqliteMinute(string row) => $"substr({row}.\"Start\", 1, 16) || ':00'";

    // EF Core stores timestamps as 'yyyy-MM-dd HH:mm:ss.FFFFFFF'; julianday reads them, rounded to the millisecond.
    internal static string SqliteMilliseconds(string row)
    {
        var p = row.Length == 0 ? "" : row + ".";
        return $"CAST(round((julianday({p}\"Stop\") - julianday({p}\"Start\")) * 86400000.0) AS INTEGER)";
    }

    private static string SqliteAdd(string row) => $"""
            INSERT INTO {M} ("Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
                VALUES ({SqliteMinute(row)}, {row}."Name", 1, {SqliteMilliseconds(row)}, {SqliteMilliseconds(row)})
                {SqliteAddConflict};
        """;

    // Takes the row out; an emptied minute goes; when the row was the minute's longest, the longest is read again.
    private static string SqliteRemove(string row, string when) => $"""
            UPDATE {M} SET "Runs" = "Runs" - 1, "TotalMilliseconds" = "TotalMilliseconds" - {SqliteMilliseconds(row)}
                WHERE "Minute" = {SqliteMinute(row)} AND "Name" = {row}."Name" AND {when};
            DELETE FROM {M} WHERE "Minute" = {SqliteMinute(row)} AND "Name" = {row}."Name" AND "Runs" <= 0 AND {when};
            UPDATE {M} SET "MaxMilliseconds" = (
                    SELECT coalesce(max({SqliteMilliseconds("r")}), 0) FROM {R} r
                    WHERE r."Name" = {row}."Name" AND r."Start" >= {SqliteMinute(row)} AND r."Start" < datetime({SqliteMinute(row)}, '+1 minute')
                        AND r."State" IN (2, 3, 4) AND r."Stop" IS NOT NULL)
                WHERE "Minute" = {SqliteMinute(row)} AND "Name" = {row}."Name" AND "MaxMilliseconds" <= {SqliteMilliseconds(row)} AND {when};
        """;

    // ---- PostgreSQL: statement triggers over transition tables ----

    /// <summary>The PostgreSQL trigger functions and triggers, and the rollup of the runs already in the ledger.</summary>
    internal static readonly string PostgreSqlUp = $"""
        CREATE FUNCTION joblog_runs_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {PostgresApply($"SELECT \"Start\", \"Name\", {PostgresMilliseconds} AS ms, 1 AS n FROM new_rows WHERE {Counted}", removed: null)}
        RETURN NULL;
        END $body$;

        CREATE FUNCTION joblog_runs_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {PostgresApply($"SELECT \"Start\", \"Name\", {PostgresMilliseconds} AS ms, -1 AS n FROM old_rows WHERE {Counted}",
            removed: $"SELECT \"Start\", \"Name\" FROM old_rows WHERE {Counted}")}
        RETURN NULL;
        END $body$;

        CREATE FUNCTION joblog_runs_rollup_update() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        -- Only the runs whose part in the rollup changed: most updates finish an ACTIVE run (an add) or change nothing it holds.
        IF EXISTS (SELECT 1 FROM {Changed}) THEN
        {PostgresApply(
            $"SELECT n.\"Start\", n.\"Name\", {PostgresMillisecondsOf("n.\"Start\"", "n.\"Stop\"")} AS ms, 1 AS n FROM {Changed} AND {CountedOf("n")} " +
            $"UNION ALL SELECT o.\"Start\", o.\"Name\", {PostgresMillisecondsOf("o.\"Start\"", "o.\"Stop\"")}, -1 FROM {Changed} AND {CountedOf("o")}",
            removed: $"SELECT o.\"Start\", o.\"Name\" FROM {Changed} AND {CountedOf("o")}")}
        END IF;
        RETURN NULL;
        END $body$;

        CREATE TRIGGER "JobLogTaskRuns_Rollup_Insert" AFTER INSERT ON {R}
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_runs_rollup_insert();
        CREATE TRIGGER "JobLogTaskRuns_Rollup_Delete" AFTER DELETE ON {R}
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_runs_rollup_delete();
        CREATE TRIGGER "JobLogTaskRuns_Rollup_Update" AFTER UPDATE ON {R}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_runs_rollup_update();

        INSERT INTO {M} ("Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
        SELECT {PostgresMinute}, "Name", COUNT(*), SUM({PostgresMilliseconds}), MAX({PostgresMilliseconds}) FROM {R} WHERE {Counted} GROUP BY 1, 2;
        """;

    internal const string PostgreSqlDown = """
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Rollup_Insert" ON "JobLogTaskRuns";
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Rollup_Delete" ON "JobLogTaskRuns";
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Rollup_Update" ON "JobLogTaskRuns";
        DROP FUNCTION IF EXISTS joblog_runs_rollup_insert();
        DROP FUNCTION IF EXISTS joblog_runs_rollup_delete();
        DROP FUNCTION IF EXISTS joblog_runs_rollup_update();
        """;

    // The minute in UTC whatever the session's time zone.
    internal const string PostgresMinute = "date_trunc('minute', \"Start\" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'";

    // The hour in UTC whatever the session's time zone.
    internal const string PostgresHour = "date_trunc('hour', \"Start\" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'";

    internal static string PostgresMilliseconds => PostgresMillisecondsOf("\"Start\"", "\"Stop\"");

    internal static string PostgresMillisecondsOf(string start, string stop) => $"round(EXTRACT(EPOCH FROM ({stop} - {start})) * 1000)::bigint";

    // Old and new versions of the updated runs whose part in the rollup changed (counted or not, minute, name, duration).
    private static string Changed =>
        $"old_rows o JOIN new_rows n ON n.\"Id\" = o.\"Id\" WHERE (({CountedOf("o")}) IS DISTINCT FROM ({CountedOf("n")}) " +
        "OR (o.\"Start\", o.\"Stop\", o.\"Name\") IS DISTINCT FROM (n.\"Start\", n.\"Stop\", n.\"Name\"))";

    private static string CountedOf(string row) => $"{row}.\"State\" IN (2, 3, 4) AND {row}.\"Stop\" IS NOT NULL";

    /// <summary>
    /// Adds one statement's deltas (<paramref name="deltas"/>: Start, Name, ms, n), in key order so concurrent writers
    /// lock alike; then drops the minutes left empty and reads the longest run again for the minutes
    /// <paramref name="removed"/> (Start, Name of the counted runs taken out) took a run from.
    /// </summary>
    private static string PostgresApply(string deltas, string? removed, bool hours = false) =>
        PostgresApplyTo(M, "Minute", PostgresMinute, "1 minute", deltas, removed) + (hours ? PostgresApplyTo(H, "Hour", PostgresHour, "1 hour", deltas, removed) : "");

    private static string PostgresApplyTo(string table, string key, string of, string width, string deltas, string? removed) => $"""
            WITH d AS ({deltas})
            INSERT INTO {table} AS m ("{key}", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT {of}, "Name", SUM(n), SUM(n * ms), coalesce(MAX(ms) FILTER (WHERE n > 0), 0) FROM d
            GROUP BY 1, 2 HAVING bool_or(n > 0) OR SUM(n) <> 0 OR SUM(n * ms) <> 0 ORDER BY 1, 2
            ON CONFLICT ("{key}", "Name") DO UPDATE SET "Runs" = m."Runs" + excluded."Runs",
                "TotalMilliseconds" = m."TotalMilliseconds" + excluded."TotalMilliseconds",
                "MaxMilliseconds" = GREATEST(m."MaxMilliseconds", excluded."MaxMilliseconds");
            {(removed is null ? "" : PostgresAfterRemoval(table, key, of, width, removed))}
        """;

    private static string PostgresAfterRemoval(string table, string key, string of, string width, string removed) => $"""
        DELETE FROM {table} m USING (SELECT DISTINCT {of} AS "{key}", "Name" FROM ({removed}) x) k
            WHERE m."{key}" = k."{key}" AND m."Name" = k."Name" AND m."Runs" <= 0;
            UPDATE {table} m SET "MaxMilliseconds" = coalesce((
                    SELECT MAX({PostgresMillisecondsOf("r.\"Start\"", "r.\"Stop\"")}) FROM {R} r
                    WHERE r."Name" = m."Name" AND r."Start" >= m."{key}" AND r."Start" < m."{key}" + interval '{width}'
                        AND r."State" IN (2, 3, 4) AND r."Stop" IS NOT NULL), 0)
                FROM (SELECT DISTINCT {of} AS "{key}", "Name" FROM ({removed}) x) k
                WHERE m."{key}" = k."{key}" AND m."Name" = k."Name";
        """;

    /// <summary>
    /// The trigger functions that keep the hours too, and the hours of the minutes already counted: the migration
    /// <c>HourrollRunHours</c>'s, only where the minute rollup is a table (on a partitioned ledger the day rollups keep both
    /// as views, <see cref="Partitioning.DayRollups"/>). The functions are made by <c>EXECUTE</c> in a <c>DO</c> block, for the condition.
    /// </summary>
    internal static readonly string PostgreSqlHoursUp = $$"""
        DO $hours$ BEGIN
        IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('{{M}}')) = 'r' THEN
        {{PostgresFunctions(hours: true)}}
        INSERT INTO {{H}} ("Hour", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT date_trunc('hour', "Minute" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', "Name", SUM("Runs"), SUM("TotalMilliseconds"), MAX("MaxMilliseconds") FROM {{M}}
            GROUP BY 1, 2 ORDER BY 1, 2;
        END IF;
        END $hours$;
        """;

    /// <summary>The migration <c>HourrollRunHours</c>'s way back: the first functions again where the minute rollup is a table.</summary>
    internal static readonly string PostgreSqlHoursDown = $$"""
        DO $hours$ BEGIN
        IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('{{M}}')) = 'r' THEN
        {{PostgresFunctions(hours: false)}}
        END IF;
        END $hours$;
        """;

    private static string PostgresFunctions(bool hours) => $"""
        EXECUTE $f$ CREATE OR REPLACE FUNCTION joblog_runs_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {PostgresApply($"SELECT \"Start\", \"Name\", {PostgresMilliseconds} AS ms, 1 AS n FROM new_rows WHERE {Counted}", removed: null, hours)}
        RETURN NULL;
        END $body$ $f$;
        EXECUTE $f$ CREATE OR REPLACE FUNCTION joblog_runs_rollup_delete() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {PostgresApply($"SELECT \"Start\", \"Name\", {PostgresMilliseconds} AS ms, -1 AS n FROM old_rows WHERE {Counted}",
            removed: $"SELECT \"Start\", \"Name\" FROM old_rows WHERE {Counted}", hours)}
        RETURN NULL;
        END $body$ $f$;
        EXECUTE $f$ CREATE OR REPLACE FUNCTION joblog_runs_rollup_update() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        IF EXISTS (SELECT 1 FROM {Changed}) THEN
        {PostgresApply(
            $"SELECT n.\"Start\", n.\"Name\", {PostgresMillisecondsOf("n.\"Start\"", "n.\"Stop\"")} AS ms, 1 AS n FROM {Changed} AND {CountedOf("n")} " +
            $"UNION ALL SELECT o.\"Start\", o.\"Name\", {PostgresMillisecondsOf("o.\"Start\"", "o.\"Stop\"")}, -1 FROM {Changed} AND {CountedOf("o")}",
            removed: $"SELECT o.\"Start\", o.\"Name\" FROM {Changed} AND {CountedOf("o")}", hours)}
        END IF;
        RETURN NULL;
        END $body$ $f$;
        """;
}
