namespace JobLog.Storage.Partitioning;

/// <summary>
/// The rollups by partition day of a partitioned ledger (docs/scale.md#partitioning): what the overview's rollups
/// (<see cref="LedgerRollups"/>, <see cref="RunRollups"/>) hold, split by the rows' <see cref="PartitionDay.Column"/>, so
/// a day's drop subtracts that day's share from the rollups without reading the day's partition
/// (<see cref="LedgerPartitioning.DropExpiredAsync"/>). Kept by statement triggers on the partitioned tables, like the
/// rollups; they exist only on a partitioned ledger (made by the conversion, or added to a ledger converted before them).
/// <list type="bullet">
/// <item><c>JobLogTaskDays</c>: tasks by (day, Stop's minute or <c>-infinity</c> while unfinished, state, name, kind).</item>
/// <item><c>JobLogRunDays</c>: the counted runs (<see cref="RunRollups.Counted"/>) by (day, Start's minute, name): count,
/// total and an upper bound of the longest (it only grows: a drop reads the longest again where it may have gone).</item>
/// </list>
/// Rows at zero are left (a day has few keys; they go with the day).
/// </summary>
internal static class DayRollups
{
    internal const string Tasks = "JobLogTaskDays";
    internal const string Runs = "JobLogRunDays";

    private const string T = "\"" + LedgerModel.Tasks + "\"";
    private const string R = "\"" + LedgerModel.Runs + "\"";
    private const string TD = "\"" + Tasks + "\"";
    private const string RD = "\"" + Runs + "\"";
    private const string Key = "\"" + PartitionDay.Column + "\"";
    private const string TaskKey = Key + ", \"Minute\", \"State\", \"Name\", \"IsInternal\"";

    /// <summary>Stop's minute, or <c>-infinity</c> for an unfinished task (a key column cannot be null).</summary>
    internal const string TaskMinute = "coalesce(" + LedgerRollups.PostgresMinute + ", '-infinity'::timestamptz)";

    /// <summary>Whether the day rollups exist.</summary>
    internal const string ExistSql = "SELECT to_regclass('" + TD + "') IS NOT NULL";

    /// <summary>The tables, trigger functions and triggers (idempotent), then the rollups of the rows present.</summary>
    internal static readonly string Create = $"""
        CREATE TABLE IF NOT EXISTS {TD} ({Key} integer NOT NULL, "Minute" timestamptz NOT NULL, "State" integer NOT NULL,
            "Name" varchar({LedgerModel.NameLength}) NOT NULL, "IsInternal" boolean NOT NULL, "Count" bigint NOT NULL, PRIMARY KEY ({TaskKey}));
        CREATE TABLE IF NOT EXISTS {RD} ({Key} integer NOT NULL, "Minute" timestamptz NOT NULL, "Name" varchar({LedgerModel.NameLength}) NOT NULL,
            "Runs" bigint NOT NULL, "TotalMilliseconds" bigint NOT NULL, "MaxMilliseconds" bigint NOT NULL, PRIMARY KEY ({Key}, "Minute", "Name"));

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
        CREATE OR REPLACE FUNCTION joblog_run_days_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {RunApply($"SELECT {Key}, \"Start\", \"Name\", {RunRollups.PostgresMilliseconds} AS ms, 1 AS n FROM new_rows WHERE {RunRollups.Counted}")}
        RETURN NULL;
        END $body$;
        CREATE OR REPLACE FUNCTION joblog_run_days_delete() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {RunApply($"SELECT {Key}, \"Start\", \"Name\", {RunRollups.PostgresMilliseconds} AS ms, -1 AS n FROM old_rows WHERE {RunRollups.Counted}")}
        RETURN NULL;
        END $body$;
        CREATE OR REPLACE FUNCTION joblog_run_days_update() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
        {RunApply($"SELECT {Key}, \"Start\", \"Name\", {RunRollups.PostgresMilliseconds} AS ms, 1 AS n FROM new_rows WHERE {RunRollups.Counted} " +
            $"UNION ALL SELECT {Key}, \"Start\", \"Name\", {RunRollups.PostgresMilliseconds}, -1 FROM old_rows WHERE {RunRollups.Counted}")}
        RETURN NULL;
        END $body$;

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

        TRUNCATE {TD}, {RD};
        INSERT INTO {TD} ({TaskKey}, "Count") SELECT {Key}, {TaskMinute}, "State", "Name", "IsInternal", COUNT(*) FROM {T} GROUP BY 1, 2, 3, 4, 5;
        INSERT INTO {RD} ({Key}, "Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT {Key}, {RunRollups.PostgresMinute}, "Name", COUNT(*), SUM({RunRollups.PostgresMilliseconds}), MAX({RunRollups.PostgresMilliseconds})
            FROM {R} WHERE {RunRollups.Counted} GROUP BY 1, 2, 3;
        """;

    /// <summary>Adds one statement's task deltas (day, State, Name, IsInternal, Stop, n), in key order so concurrent writers lock alike.</summary>
    private static string TaskApply(string deltas) => $"""
            WITH d AS ({deltas})
            INSERT INTO {TD} AS c ({TaskKey}, "Count")
            SELECT {Key}, {TaskMinute}, "State", "Name", "IsInternal", SUM(n) FROM d GROUP BY 1, 2, 3, 4, 5 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3, 4, 5
            ON CONFLICT ({TaskKey}) DO UPDATE SET "Count" = c."Count" + excluded."Count";
        """;

    /// <summary>Adds one statement's run deltas (day, Start, Name, ms, n); the longest only grows.</summary>
    private static string RunApply(string deltas) => $"""
            WITH d AS ({deltas})
            INSERT INTO {RD} AS m ({Key}, "Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT {Key}, {RunRollups.PostgresMinute}, "Name", SUM(n), SUM(n * ms), coalesce(MAX(ms) FILTER (WHERE n > 0), 0) FROM d
            GROUP BY 1, 2, 3 HAVING SUM(n) <> 0 OR SUM(n * ms) <> 0 ORDER BY 1, 2, 3
            ON CONFLICT ({Key}, "Minute", "Name") DO UPDATE SET "Runs" = m."Runs" + excluded."Runs",
                "TotalMilliseconds" = m."TotalMilliseconds" + excluded."TotalMilliseconds",
                "MaxMilliseconds" = GREATEST(m."MaxMilliseconds", excluded."MaxMilliseconds");
        """;

    /// <summary>
    /// What the drop of day <c>{0}</c> takes from the rollups, from the day rollups less the kept rows
    /// (<c>joblog_keep_tasks</c>, <c>joblog_keep_runs</c>): <c>joblog_gone</c> (Minute or -infinity, State, Name,
    /// IsInternal, n) and <c>joblog_gone_runs</c> (Minute, Name, n, total, longest: an upper bound). The rollups' joins to
    /// them must be hash joins: without statistics on the temporary tables the planner chose nested loops (11-14 s for a
    /// day of 9,000 tasks). An <c>ANALYZE</c> of each made them hash joins at 0.15 s each under load (session 7); the rest of
    /// the drop's transaction has no join a nested loop serves better (the kept runs are copied before), so nested loops
    /// are turned off for it instead (session 8: the same hash joins, no <c>ANALYZE</c>).
    /// </summary>
    internal static readonly string Gone = $$"""
        SET LOCAL enable_nestloop = off;
        CREATE TEMP TABLE joblog_gone ON COMMIT DROP AS
            SELECT "Minute", "State", "Name", "IsInternal", SUM(n)::bigint AS n FROM (
                SELECT "Minute", "State", "Name", "IsInternal", "Count" AS n FROM {{TD}} WHERE {{Key}} = {0}
                UNION ALL SELECT {{TaskMinute}}, "State", "Name", "IsInternal", -1 FROM joblog_keep_tasks) x
            GROUP BY 1, 2, 3, 4 HAVING SUM(n) <> 0;
        CREATE TEMP TABLE joblog_gone_runs ON COMMIT DROP AS
            SELECT "Minute", "Name", SUM(n)::bigint AS n, SUM(total)::bigint AS total, MAX(longest) AS longest FROM (
                SELECT "Minute", "Name", "Runs" AS n, "TotalMilliseconds" AS total, "MaxMilliseconds" AS longest FROM {{RD}} WHERE {{Key}} = {0}
                UNION ALL SELECT {{RunRollups.PostgresMinute}}, "Name", -1, -{{RunRollups.PostgresMilliseconds}}, NULL FROM joblog_keep_runs WHERE {{RunRollups.Counted}}) x
            GROUP BY 1, 2 HAVING SUM(n) <> 0;
        """;

    /// <summary>
    /// After the drop of day <c>{0}</c>, its day rollups hold only the kept rows (back in the ledger, in the day's <c>_k</c> partitions, with their
    /// day; a statement straight on a partition fires none of the parent's triggers).
    /// </summary>
    internal static readonly string Reset = $$"""
        DELETE FROM {{TD}} WHERE {{Key}} = {0};
        DELETE FROM {{RD}} WHERE {{Key}} = {0};
        INSERT INTO {{TD}} ({{TaskKey}}, "Count")
            SELECT {{Key}}, {{TaskMinute}}, "State", "Name", "IsInternal", COUNT(*) FROM joblog_keep_tasks GROUP BY 1, 2, 3, 4, 5;
        INSERT INTO {{RD}} ({{Key}}, "Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT {{Key}}, {{RunRollups.PostgresMinute}}, "Name", COUNT(*), SUM({{RunRollups.PostgresMilliseconds}}), MAX({{RunRollups.PostgresMilliseconds}})
            FROM joblog_keep_runs WHERE {{RunRollups.Counted}} GROUP BY 1, 2, 3;
        """;
}
