using JobLog.Failures;
using JobLog.Querying;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Storage;

/// <summary>The open failures of one group under one grouping, of one kind (application or MassTransit infrastructure).</summary>
internal sealed class FailureGroupCount
{
    public FailureGrouping Grouping { get; set; }

    /// <summary>The group's id (<see cref="FailureGroupColumns"/>: what the task rows store).</summary>
    public string GroupId { get; set; } = "";

    public bool IsInternal { get; set; }

    public long Count { get; set; }
}

/// <summary>
/// The open failures (failed, not resolved) counted per group under each grouping, from the groups stored on their task
/// rows (<see cref="FailureGroupColumns"/>): the unfiltered failures groups list reads these few rows instead of
/// aggregating every open failure (90,000 at 10 M tasks: 137–385 ms; docs/scale.md "Session 16 (fgroups)"). Database
/// triggers on the tasks table keep it exact whoever writes, as <see cref="LedgerRollups"/>: a row counts +1 under each
/// of its stored groups while it is an open failure, -1 when it stops being one (a retry that succeeds, a resolve, an
/// expiry, a delete), and moves when the fill (re)computes its groups or its kind changes. The writer's new rows carry
/// no groups (only the fill writes them), so the SQLite writer's batches need nothing for their own rows
/// (<see cref="Sqlite.SqliteWriterTriggers"/>). A day partition's drop fires no trigger: it takes its open failures off
/// itself (<see cref="PostgresDropDay"/>). Only counts: a first or last time cannot be kept exactly under deletes, so
/// the list reads them, for the groups it shows, from each group's range of its grouping's index.
/// </summary>
internal static class FailureGroupRollup
{
    internal const string Table = "JobLogFailureGroups";

    private const string T = "\"" + LedgerModel.Tasks + "\"";
    private const string F = "\"" + Table + "\"";
    private const string Key = "\"Grouping\", \"GroupId\", \"IsInternal\"";
    private const string Open = "\"State\" = 4 AND \"Resolution\" IS NULL";
    private const string E = "\"" + FailureGroupColumns.Exception + "\"";
    private const string Y = "\"" + FailureGroupColumns.Type + "\"";
    private const string Q = "\"" + FailureGroupColumns.Queue + "\"";

    internal static void Configure(ModelBuilder b) => b.Entity<FailureGroupCount>(e =>
    {
        e.ToTable(Table);
        e.HasKey(x => new { x.Grouping, x.GroupId, x.IsInternal });
        e.Property(x => x.GroupId).HasMaxLength(16);
    });

    // ---- SQLite: row triggers with WHEN ----

    private static string SqliteOpen(string row) => $"{row}.\"State\" = 4 AND {row}.\"Resolution\" IS NULL";

    private static string SqliteGrouped(string row) => $"({row}.{E} IS NOT NULL OR {row}.{Y} IS NOT NULL OR {row}.{Q} IS NOT NULL)";

    /// <summary>
    /// The SQLite triggers and the counts of the open failures already grouped: the migration <c>FgroupsFailureGroupCounts</c>'s
    /// (<see cref="Sqlite.SqliteWriterTriggers"/> recognises these; a change to them is a new migration).
    /// </summary>
    internal static readonly string SqliteUp = $"""
        CREATE TRIGGER "JobLogTasks_FailureGroups_Insert" AFTER INSERT ON {T}
        WHEN {SqliteOpen("NEW")} AND {SqliteGrouped("NEW")}
        BEGIN
        {SqliteAdd("NEW", "1")}
        END;

        CREATE TRIGGER "JobLogTasks_FailureGroups_Delete" AFTER DELETE ON {T}
        WHEN {SqliteOpen("OLD")} AND {SqliteGrouped("OLD")}
        BEGIN
        {SqliteAdd("OLD", "-1")}
        {SqliteDropEmpty("OLD")}
        END;

        CREATE TRIGGER "JobLogTasks_FailureGroups_Update" AFTER UPDATE ON {T}
        WHEN ((({SqliteOpen("OLD")}) AND {SqliteGrouped("OLD")}) OR (({SqliteOpen("NEW")}) AND {SqliteGrouped("NEW")}))
            AND (OLD."State" IS NOT NEW."State" OR OLD."Resolution" IS NOT NEW."Resolution" OR OLD."IsInternal" IS NOT NEW."IsInternal"
            OR OLD.{E} IS NOT NEW.{E} OR OLD.{Y} IS NOT NEW.{Y} OR OLD.{Q} IS NOT NEW.{Q})
        BEGIN
        {SqliteAdd("OLD", "-1", SqliteOpen("OLD"))}
        {SqliteAdd("NEW", "1", SqliteOpen("NEW"))}
        {SqliteDropEmpty("OLD")}
        END;

        {Build}
        """;

    internal const string SqliteDown = """
        DROP TRIGGER IF EXISTS "JobLogTasks_FailureGroups_Insert";
        DROP TRIGGER IF EXISTS "JobLogTasks_FailureGroups_Delete";
        DROP TRIGGER IF EXISTS "JobLogTasks_FailureGroups_Update";
        """;

    private static string SqliteAdd(string row, string delta, string? when = null) => string.Join("\n", new[] { (0, E), (1, Y), (2, Q) }.Select(g => $"""
            INSERT INTO {F} ({Key}, "Count") SELECT {g.Item1}, {row}.{g.Item2}, {row}."IsInternal", {delta} WHERE {row}.{g.Item2} IS NOT NULL{(when is null ? "" : " AND " + when)}
                ON CONFLICT ({Key}) DO UPDATE SET "Count" = "Count" + excluded."Count";
        """));

    // A group left without open failures leaves no row behind.
    private static string SqliteDropEmpty(string row) =>
        $"""    DELETE FROM {F} WHERE "Count" = 0 AND (("Grouping" = 0 AND "GroupId" = {row}.{E}) OR ("Grouping" = 1 AND "GroupId" = {row}.{Y}) OR ("Grouping" = 2 AND "GroupId" = {row}.{Q}));""";

    /// <summary>
    /// The counts of the open failures already grouped (a ledger upgraded at start-up; the fill moves the rest in), one
    /// grouping at a time through its partial index. Both databases.
    /// </summary>
    internal const string Build = $"""
        INSERT INTO {F} ({Key}, "Count")
        SELECT b, id, "IsInternal", COUNT(*) FROM (
            SELECT 0 AS b, {E} AS id, "IsInternal" FROM {T} WHERE {Open} AND {E} IS NOT NULL
            UNION ALL SELECT 1, {Y}, "IsInternal" FROM {T} WHERE {Open} AND {Y} IS NOT NULL
            UNION ALL SELECT 2, {Q}, "IsInternal" FROM {T} WHERE {Open} AND {Q} IS NOT NULL) g
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
        """;

    // ---- PostgreSQL: statement triggers over transition tables ----

    private static string Rows(string table, int n) =>
        $"SELECT {E}, {Y}, {Q}, \"IsInternal\", {n} AS n FROM {table} WHERE {Open} AND ({E} IS NOT NULL OR {Y} IS NOT NULL OR {Q} IS NOT NULL)";

    /// <summary>The PostgreSQL trigger functions and triggers, and the counts of the open failures already grouped (the migration's).</summary>
    internal static readonly string PostgreSqlUp = $"""
        CREATE FUNCTION joblog_failure_groups_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {PostgresApply(Rows("new_rows", 1), dropEmpty: false)}
        RETURN NULL;
        END $body$;

        CREATE FUNCTION joblog_failure_groups_delete() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {PostgresApply(Rows("old_rows", -1), dropEmpty: true)}
        RETURN NULL;
        END $body$;

        CREATE FUNCTION joblog_failure_groups_update() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {PostgresApply(Rows("new_rows", 1) + " UNION ALL " + Rows("old_rows", -1), dropEmpty: true)}
        RETURN NULL;
        END $body$;

        CREATE TRIGGER "JobLogTasks_FailureGroups_Insert" AFTER INSERT ON {T}
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_failure_groups_insert();
        CREATE TRIGGER "JobLogTasks_FailureGroups_Delete" AFTER DELETE ON {T}
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_failure_groups_delete();
        CREATE TRIGGER "JobLogTasks_FailureGroups_Update" AFTER UPDATE ON {T}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_failure_groups_update();

        {Build}
        """;

    internal const string PostgreSqlDown = """
        DROP TRIGGER IF EXISTS "JobLogTasks_FailureGroups_Insert" ON "JobLogTasks";
        DROP TRIGGER IF EXISTS "JobLogTasks_FailureGroups_Delete" ON "JobLogTasks";
        DROP TRIGGER IF EXISTS "JobLogTasks_FailureGroups_Update" ON "JobLogTasks";
        DROP FUNCTION IF EXISTS joblog_failure_groups_insert();
        DROP FUNCTION IF EXISTS joblog_failure_groups_delete();
        DROP FUNCTION IF EXISTS joblog_failure_groups_update();
        """;

    /// <summary>Adds one statement's deltas (rows with <c>n</c>), each grouping's group counted, in key order so concurrent writers lock alike.</summary>
    private static string PostgresApply(string rows, bool dropEmpty) => $"""
            WITH d AS (SELECT g.b, g.id, r."IsInternal", r.n FROM ({rows}) r CROSS JOIN LATERAL (VALUES {Groupings("r")}) AS g(b, id) WHERE g.id IS NOT NULL)
            INSERT INTO {F} AS f ({Key}, "Count")
            SELECT b, id, "IsInternal", SUM(n) FROM d GROUP BY 1, 2, 3 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3
            ON CONFLICT ({Key}) DO UPDATE SET "Count" = f."Count" + excluded."Count";
            {(dropEmpty ? $"""
            WITH d AS (SELECT g.b, g.id, r."IsInternal", r.n FROM ({rows}) r CROSS JOIN LATERAL (VALUES {Groupings("r")}) AS g(b, id) WHERE g.id IS NOT NULL AND r.n < 0)
            DELETE FROM {F} f USING (SELECT DISTINCT b, id, "IsInternal" FROM d) k
            WHERE f."Grouping" = k.b AND f."GroupId" = k.id AND f."IsInternal" = k."IsInternal" AND f."Count" = 0;
            """ : "")}
        """;

    /// <summary>The grouped columns, in the order of <see cref="Groupings"/>.</summary>
    internal const string Columns = E + ", " + Y + ", " + Q;

    /// <summary>Whether a task row is an open failure (counted in its groups).</summary>
    internal const string OpenFailure = Open;

    /// <summary>The (grouping, group id) pairs of a row <paramref name="alias"/>: a <c>VALUES</c> list for a lateral join.</summary>
    internal static string Groupings(string alias) => $"(0, {alias}.{E}), (1, {alias}.{Y}), (2, {alias}.{Q})";

    /// <summary>Adds the deltas of <paramref name="deltas"/> (grouping, group id, kind, n) to the counts, and drops the groups at zero.</summary>
    internal static string PostgresDropDayOf(string deltas) => $$"""
        INSERT INTO {{F}} AS f ({{Key}}, "Count") SELECT * FROM ({{deltas}}) s ORDER BY 1, 2, 3
        ON CONFLICT ({{Key}}) DO UPDATE SET "Count" = f."Count" + excluded."Count";
        DELETE FROM {{F}} WHERE "Count" = 0;
        """;

    /// <summary>
    /// A day partition's drop (a DETACH and DROP fire no trigger): its open failures leave the counts, and those kept in
    /// the day's <c>_k</c> partition (<c>joblog_keep_tasks</c>, attached without a trigger either) come back. {0}: the
    /// day's partition. Reads the day's open failures only (the grouping's partial index).
    /// </summary>
    internal const string PostgresDropDay = $$"""
        WITH d AS (
            SELECT g.b, g.id, r."IsInternal", r.n FROM (
                SELECT {{E}}, {{Y}}, {{Q}}, "IsInternal", -1 AS n FROM {0} WHERE {{Open}}
                UNION ALL SELECT {{E}}, {{Y}}, {{Q}}, "IsInternal", 1 FROM joblog_keep_tasks WHERE {{Open}}) r
            CROSS JOIN LATERAL (VALUES (0, r.{{E}}), (1, r.{{Y}}), (2, r.{{Q}})) AS g(b, id) WHERE g.id IS NOT NULL),
        s AS (SELECT b, id, "IsInternal", SUM(n) AS n FROM d GROUP BY 1, 2, 3 HAVING SUM(n) <> 0)
        INSERT INTO {{F}} AS f ({{Key}}, "Count") SELECT b, id, "IsInternal", n FROM s ORDER BY 1, 2, 3
        ON CONFLICT ({{Key}}) DO UPDATE SET "Count" = f."Count" + excluded."Count";
        DELETE FROM {{F}} WHERE "Count" = 0;
        """;
}
