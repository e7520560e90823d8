using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Storage.PostgreSql;

/// <summary>
/// The task search's text on PostgreSQL (docs/search.md): a side table, <see cref="Table"/>, holding each task's
/// <c>Input</c> and <c>TaskKwargs</c> (one row, <see cref="TaskText"/>) and its runs' <c>ErrorMessage</c>s (one row per
/// task and distinct text), with the <c>pg_trgm</c> GIN index, so that <c>ILIKE '%text%'</c> (the plain substring
/// search) is answered from it. Triggers on the tasks and runs keep it in step; the rows the writer and the sweeper
/// update (a task's derived state, its expiry, a run's end) carry no trigram index, so their new row versions cost
/// no trigrams (docs/search.md "Since session 9").
/// </summary>
internal static class PostgreSqlSearch
{
    /// <summary>The side table of the searched text.</summary>
    public const string Table = "JobLogSearchText";

    /// <summary>Its trigram index.</summary>
    public const string TrigramIndex = "IX_JobLogSearchText_Trigram";

    /// <summary>Its index on the task id (the triggers' deletes and the check for a run's error already there).</summary>
    public const string TaskIdIndex = "IX_JobLogSearchText_TaskId";

    /// <summary>
    /// The task's two searched columns as one text, a line feed between them: one row per task instead of one per
    /// column. They mostly carry the same values (the rendered input and the message's JSON), so one text stores each
    /// trigram once per task instead of twice; the line feed keeps a match from spanning the two columns.
    /// </summary>
    public const string TaskText = "(COALESCE(\"Input\", '') || E'\\n' || COALESCE(\"TaskKwargs\", ''))";

    private const string T = "\"" + LedgerModel.Tasks + "\"";
    private const string R = "\"" + LedgerModel.Runs + "\"";
    private const string S = "\"" + Table + "\"";

    /// <summary>
    /// The partial index of the tasks the sweeper marked stale, the search's path to the runs it closed with
    /// <see cref="Sweeping.TaskLogSweeper.StaleRunError"/> (every such run's task is stale-marked): that one sentence is
    /// kept out of the side table (a row and about 50 trigrams in its GIN index for every run a backlog sweep closes: a
    /// fifth of the sweep's WAL at 1 M, docs/scale.md "Session 11 (pgsweep)"), and the search finds those runs through
    /// their tasks instead, when the text searched is in the sentence (as SQLite's <c>SqliteSearch.SweptRuns</c>). Keyed by
    /// <c>Stop</c>, the sweep's time, so a batch's entries go into the index's last pages. On the tasks, not the runs
    /// (<see cref="FormerSweptRuns"/> until session 33): no run index names a column a run's finish changes, so the finish
    /// is a HOT update (<see cref="OpenRuns"/>); a task's update is never HOT anyway (its state is indexed).
    /// </summary>
    public const string SweptRuns = "IX_JobLogTasks_StaleStop";

    /// <summary>The runs' partial index of the expiry text that <see cref="SweptRuns"/> replaced (session 33): dropped by <see cref="Create"/>.</summary>
    public const string FormerSweptRuns = "IX_JobLogTaskRuns_SweptExpired";

    private const string SweptText = "'" + Sweeping.TaskLogSweeper.StaleRunError + "'";

    /// <summary>
    /// The side table's rows for the task rows of <paramref name="tasks"/> and the run rows of <paramref name="runs"/> (a
    /// table or a query's name): what the triggers keep for them, inserted into <paramref name="into"/>. A task's text where
    /// it has one; each distinct error of its runs but the sweeper's. <paramref name="keyed"/>: with the rows' day.
    /// </summary>
    internal static string RowsOf(string tasks, string runs, bool keyed, string into) => $"""
        INSERT INTO {into} ("TaskId", "IsError", "Text"{(keyed ? ", " + Key : "")})
            SELECT "Id", FALSE, {TaskText}{(keyed ? ", " + Key : "")} FROM {tasks} WHERE "Input" IS NOT NULL OR "TaskKwargs" IS NOT NULL;
        INSERT INTO {into} ("TaskId", "IsError", "Text"{(keyed ? ", " + Key : "")})
            SELECT DISTINCT "TaskId", TRUE, "ErrorMessage"{(keyed ? ", " + Key : "")} FROM {runs} WHERE "ErrorMessage" IS NOT NULL AND "ErrorMessage" <> {SweptText}
        """;

    /// <summary>The trigger names, the table each is on, and its definition after the name.</summary>
    private static readonly (string Name, string Table, string Definition)[] Triggers =
    [
        ("JobLogTasks_SearchText_Insert", T, "AFTER INSERT ON " + T + " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_search_tasks_insert()"),
        // A row trigger, only for statements that set the text columns (the dispatch's upsert), and only where the text
        // changed: the writer's and the sweeper's state updates do not fire it at all.
        ("JobLogTasks_SearchText_Update", T, "AFTER UPDATE OF \"Input\", \"TaskKwargs\" ON " + T +
            " FOR EACH ROW WHEN (old.\"Input\" IS DISTINCT FROM new.\"Input\" OR old.\"TaskKwargs\" IS DISTINCT FROM new.\"TaskKwargs\") EXECUTE FUNCTION joblog_search_tasks_update()"),
        ("JobLogTasks_SearchText_Delete", T, "AFTER DELETE ON " + T + " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_search_tasks_delete()"),
        ("JobLogTaskRuns_SearchText_Insert", R, "AFTER INSERT ON " + R + " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_search_runs_insert()"),
        // Statement triggers (the runs' rollup triggers already collect the transition tables of every update and
        // delete): a row trigger would run once per failed run.
        ("JobLogTaskRuns_SearchText_Update", R, "AFTER UPDATE ON " + R + " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_search_runs_update()"),
        ("JobLogTaskRuns_SearchText_Delete", R, "AFTER DELETE ON " + R + " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_search_runs_delete()"),
    ];

    private static readonly string[] Functions =
        ["joblog_search_tasks_insert()", "joblog_search_tasks_update()", "joblog_search_tasks_delete()", "joblog_search_runs_insert()",
         "joblog_search_runs_update()", "joblog_search_runs_delete()"];

    /// <summary>
    /// The partition key column of the side table on a partitioned ledger (<see cref="Partitioning.LedgerPartitioning"/>):
    /// the task's <see cref="Partitioning.PartitionDay"/>, which the triggers read off the task or run row they fire for.
    /// </summary>
    public const string Key = "\"" + Partitioning.PartitionDay.Column + "\"";

    /// <summary>The run errors of <c>new_rows</c> the table lacks for their task (once per task and text).</summary>
    private static string InsertRunErrors(bool keyed) => $$"""
        INSERT INTO {{S}} ("TaskId", "IsError", "Text"{{(keyed ? ", " + Key : "")}})
            SELECT DISTINCT n."TaskId", TRUE, n."ErrorMessage"{{(keyed ? ", n." + Key : "")}} FROM new_rows n
            WHERE n."ErrorMessage" IS NOT NULL AND n."ErrorMessage" <> {{SweptText}}
                AND NOT EXISTS (SELECT 1 FROM {{S}} s WHERE s."TaskId" = n."TaskId"{{SameDay(keyed, "s", "n")}} AND s."IsError" AND s."Text" = n."ErrorMessage")
        """;

    /// <summary>
    /// As <see cref="InsertRunErrors"/>, for an update: only the runs whose error changed (most updates of a run with an
    /// error, a retry's next time or its final failure, leave the error as it was, and cost no lookup).
    /// </summary>
    private static string InsertChangedRunErrors(bool keyed) => $$"""
        INSERT INTO {{S}} ("TaskId", "IsError", "Text"{{(keyed ? ", " + Key : "")}})
            SELECT DISTINCT n."TaskId", TRUE, n."ErrorMessage"{{(keyed ? ", n." + Key : "")}} FROM new_rows n JOIN old_rows o ON o."Id" = n."Id"
            WHERE n."ErrorMessage" IS NOT NULL AND n."ErrorMessage" IS DISTINCT FROM o."ErrorMessage" AND n."ErrorMessage" <> {{SweptText}}
                AND NOT EXISTS (SELECT 1 FROM {{S}} s WHERE s."TaskId" = n."TaskId"{{SameDay(keyed, "s", "n")}} AND s."IsError" AND s."Text" = n."ErrorMessage")
        """;

    /// <summary>The run errors an update replaced that no run of their task carries any more.</summary>
    private static string DeleteChangedRunErrors(bool keyed) => $$"""
        DELETE FROM {{S}} s USING (SELECT DISTINCT o."TaskId", o."ErrorMessage"{{(keyed ? ", o." + Key : "")}} FROM old_rows o JOIN new_rows n ON n."Id" = o."Id"
                WHERE o."ErrorMessage" IS NOT NULL AND o."ErrorMessage" IS DISTINCT FROM n."ErrorMessage") g
            WHERE s."TaskId" = g."TaskId"{{SameDay(keyed, "s", "g")}} AND s."IsError" AND s."Text" = g."ErrorMessage"
                AND NOT EXISTS (SELECT 1 FROM {{R}} r WHERE r."TaskId" = g."TaskId"{{SameDay(keyed, "r", "g")}} AND r."ErrorMessage" = g."ErrorMessage")
        """;

    /// <summary>
    /// The run errors of <c>old_rows</c> (deleted runs) that no run of their task carries any more.
    /// </summary>
    private static string DeleteGoneRunErrors(bool keyed) => $$"""
        DELETE FROM {{S}} s USING (SELECT DISTINCT o."TaskId", o."ErrorMessage"{{(keyed ? ", o." + Key : "")}} FROM old_rows o WHERE o."ErrorMessage" IS NOT NULL) g
            WHERE s."TaskId" = g."TaskId"{{SameDay(keyed, "s", "g")}} AND s."IsError" AND s."Text" = g."ErrorMessage"
                AND NOT EXISTS (SELECT 1 FROM {{R}} r WHERE r."TaskId" = g."TaskId"{{SameDay(keyed, "r", "g")}} AND r."ErrorMessage" = g."ErrorMessage")
        """;

    // The rows of one task share its day: naming it lets PostgreSQL read one partition of a partitioned table.
    private static string SameDay(bool keyed, string alias, string of) => keyed ? $" AND {alias}.{Key} = {of}.{Key}" : "";

    /// <summary>
    /// The six trigger functions, each a <c>CREATE OR REPLACE FUNCTION</c> statement. <paramref name="keyed"/>: for a side
    /// table partitioned by day (a partitioned ledger), each row written with its task's day, each lookup in that day.
    /// </summary>
    internal static string[] FunctionDefinitions(bool keyed) =>
    [
        $$"""
        CREATE OR REPLACE FUNCTION joblog_search_tasks_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            INSERT INTO {{S}} ("TaskId", "IsError", "Text"{{(keyed ? ", " + Key : "")}})
                SELECT "Id", FALSE, {{TaskText}}{{(keyed ? ", " + Key : "")}} FROM new_rows WHERE "Input" IS NOT NULL OR "TaskKwargs" IS NOT NULL;
            RETURN NULL;
        END $body$
        """,
        $$"""
        CREATE OR REPLACE FUNCTION joblog_search_tasks_update() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            DELETE FROM {{S}} WHERE "TaskId" = old."Id"{{(keyed ? $" AND {Key} = old.{Key}" : "")}} AND NOT "IsError";
            IF new."Input" IS NOT NULL OR new."TaskKwargs" IS NOT NULL THEN
                INSERT INTO {{S}} ("TaskId", "IsError", "Text"{{(keyed ? ", " + Key : "")}})
                    VALUES (new."Id", FALSE, COALESCE(new."Input", '') || E'\n' || COALESCE(new."TaskKwargs", ''){{(keyed ? ", new." + Key : "")}});
            END IF;
            RETURN NULL;
        END $body$
        """,
        $$"""
        CREATE OR REPLACE FUNCTION joblog_search_tasks_delete() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            DELETE FROM {{S}} s USING old_rows o WHERE s."TaskId" = o."Id"{{SameDay(keyed, "s", "o")}};
            RETURN NULL;
        END $body$
        """,
        $$"""
        CREATE OR REPLACE FUNCTION joblog_search_runs_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            {{InsertRunErrors(keyed)}};
            RETURN NULL;
        END $body$
        """,
        $$"""
        CREATE OR REPLACE FUNCTION joblog_search_runs_update() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            {{DeleteChangedRunErrors(keyed)}};
            {{InsertChangedRunErrors(keyed)}};
            RETURN NULL;
        END $body$
        """,
        $$"""
        CREATE OR REPLACE FUNCTION joblog_search_runs_delete() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            {{DeleteGoneRunErrors(keyed)}};
            RETURN NULL;
        END $body$
        """,
    ];

    /// <summary>
    /// The trigger functions for the side table as it is (partitioned by day or not), chosen when the statement runs: a
    /// start-up that runs <see cref="Create"/> again on a partitioned side table must not put back functions that write
    /// rows without their day.
    /// </summary>
    private static readonly string CreateFunctions = $$"""
        DO $joblog$
        BEGIN
            IF COALESCE((SELECT c.relkind = 'p' FROM pg_class c WHERE c.oid = to_regclass('{{S}}')), FALSE) THEN
        {{string.Join("\n", FunctionDefinitions(true).Select(f => "        EXECUTE $fn$" + f + "$fn$;"))}}
            ELSE
        {{string.Join("\n", FunctionDefinitions(false).Select(f => "        EXECUTE $fn$" + f + "$fn$;"))}}
            END IF;
        END
        $joblog$;
        """;

    /// <summary>The side table's trigram index, or a WARNING when <c>pg_trgm</c>'s operator class is not there (<see cref="Create"/>).</summary>
    internal static readonly string CreateTrigramIndex = $$"""
        DO $joblog$
        BEGIN
            CREATE INDEX IF NOT EXISTS "{{TrigramIndex}}" ON {{S}} USING gin ("Text" gin_trgm_ops);
        EXCEPTION WHEN undefined_object THEN
            RAISE WARNING 'JobLog: the pg_trgm operator class gin_trgm_ops is not on the search_path (%): the task search works without its index, by scanning (docs/search.md).', SQLERRM;
        END
        $joblog$;
        """;

    /// <summary>
    /// The indexes on the rows the search used until session 8 (the one over both task columns, the runs' error, and the
    /// one per task column of session 6 and before): start-up and the migration <c>SearchTextTable</c> drop them.
    /// </summary>
    public static readonly string[] Former =
        ["IX_JobLogTasks_Text_Trigram", "IX_JobLogTaskRuns_ErrorMessage_Trigram", "IX_JobLogTasks_Input_Trigram", "IX_JobLogTasks_TaskKwargs_Trigram"];

    private const string NoExtension =
        "RAISE WARNING 'JobLog: the pg_trgm extension could not be created (%): the task search works without its index, by scanning. Ask the database owner to run CREATE EXTENSION pg_trgm, then create the index listed in docs/search.md.', SQLERRM;";

    /// <summary>
    /// Creates <c>pg_trgm</c> (a trusted extension: the database owner, or any role with CREATE on the database, may
    /// create it), the side table with its triggers, fills it from the rows when it is new, builds its trigram index,
    /// and drops the <see cref="Former"/> indexes. The tables are locked (as the triggers' creation does) before the
    /// fill, so no write falls between. When the extension cannot be created or found, it still succeeds with a WARNING
    /// and no trigram index: the search gives the same rows, by scanning the side table.
    /// </summary>
    public static readonly string Create = $$"""
        DO $joblog$
        BEGIN
            BEGIN
                CREATE EXTENSION IF NOT EXISTS pg_trgm;
            EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
                {{NoExtension}}
            END;
        END
        $joblog$;
        LOCK TABLE {{T}}, {{R}} IN SHARE ROW EXCLUSIVE MODE;
        {{CreateFunctions}}
        DO $joblog$
        BEGIN
            IF to_regclass('{{S}}') IS NULL THEN
                CREATE TABLE {{S}} ("TaskId" uuid NOT NULL, "IsError" boolean NOT NULL, "Text" text NOT NULL);
                INSERT INTO {{S}} ("TaskId", "IsError", "Text")
                    SELECT "Id", FALSE, {{TaskText}} FROM {{T}} WHERE "Input" IS NOT NULL OR "TaskKwargs" IS NOT NULL;
                INSERT INTO {{S}} ("TaskId", "IsError", "Text")
                    SELECT DISTINCT "TaskId", TRUE, "ErrorMessage" FROM {{R}} WHERE "ErrorMessage" IS NOT NULL AND "ErrorMessage" <> {{SweptText}};
                CREATE INDEX "{{TaskIdIndex}}" ON {{S}} ("TaskId");
            END IF;
            BEGIN
                CREATE INDEX IF NOT EXISTS "{{TrigramIndex}}" ON {{S}} USING gin ("Text" gin_trgm_ops);
            EXCEPTION WHEN undefined_object THEN
                RAISE WARNING 'JobLog: the pg_trgm operator class gin_trgm_ops is not on the search_path (%): the task search works without its index, by scanning (docs/search.md).', SQLERRM;
            END;
        END
        $joblog$;
        DROP INDEX IF EXISTS "{{FormerSweptRuns}}";
        CREATE INDEX IF NOT EXISTS "{{SweptRuns}}" ON {{T}} ("Stop") WHERE "IsSetAsStale";
        DELETE FROM {{S}} WHERE "IsError" AND "Text" = {{SweptText}};
        {{string.Join("\n", Triggers.Select(t => $"DROP TRIGGER IF EXISTS \"{t.Name}\" ON {t.Table};\nCREATE TRIGGER \"{t.Name}\" {t.Definition};"))}}
        {{string.Join("\n", Former.Select(i => $"DROP INDEX IF EXISTS \"{i}\";"))}}
        """;

    /// <summary>
    /// Fills the side table again from the rows, its trigram index built after the fill (a bulk load with the triggers
    /// off: the scale bench's fast fill). <paramref name="partitioned"/>: a side table partitioned by day, each row with its
    /// task's day (the trigram index dropped and built on the partitioned table: on every partition).
    /// </summary>
    public static string Refill(bool partitioned) => $$"""
        TRUNCATE {{S}};
        DROP INDEX IF EXISTS "{{TrigramIndex}}";
        {{RowsOf(T, R, partitioned, S)}};
        CREATE INDEX "{{TrigramIndex}}" ON {{S}} USING gin ("Text" gin_trgm_ops);
        ANALYZE {{S}};
        """;

    /// <summary>Drops the side table, its triggers and functions, and the <see cref="Former"/> indexes (<c>SearchIndex = false</c>); the extension stays, other schemas may use it.</summary>
    public static readonly string Drop =
        string.Join("\n", Triggers.Select(t => $"DROP TRIGGER IF EXISTS \"{t.Name}\" ON {t.Table};")) + "\n" +
        string.Join("\n", Functions.Select(f => $"DROP FUNCTION IF EXISTS {f};")) + "\n" +
        $"DROP TABLE IF EXISTS {S};\n" +
        $"DROP INDEX IF EXISTS \"{SweptRuns}\";\n" +
        $"DROP INDEX IF EXISTS \"{FormerSweptRuns}\";\n" +
        string.Join("\n", Former.Select(i => $"DROP INDEX IF EXISTS \"{i}\";"));

    /// <summary>
    /// How many of the search's objects exist (in the ledger's schema): the side table, its trigram index and the
    /// <see cref="SweptRuns"/> index, <see cref="PresentCount"/> when complete (a ledger from before session 11 has 2,
    /// and start-up runs <see cref="Create"/> again: the swept runs' index, the triggers without the expiry text).
    /// </summary>
    public static readonly string CountPresent =
        $"SELECT ((SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '{Table}') + " +
        $"(SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN ('{TrigramIndex}', '{SweptRuns}')))::int AS \"Value\"";

    /// <summary>The number <see cref="CountPresent"/> counts on a complete ledger.</summary>
    public const int PresentCount = 3;

    /// <summary>How many of the side table's triggers exist (<see cref="Triggers"/>: 6 when complete).</summary>
    public static readonly string CountTriggers =
        "SELECT COUNT(*)::int AS \"Value\" FROM pg_trigger WHERE NOT tgisinternal AND tgparentid = 0 AND tgname IN (" +
        string.Join(", ", Triggers.Select(t => "'" + t.Name + "'")) + ")";

    /// <summary>The number of triggers <see cref="CountTriggers"/> counts on a complete ledger.</summary>
    public static int TriggerCount => Triggers.Length;

    /// <summary>How many of the <see cref="Former"/> indexes are left (in the ledger's schema).</summary>
    public static readonly string CountFormer =
        "SELECT COUNT(*)::int AS \"Value\" FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN ("
        + string.Join(", ", Former.Select(i => "'" + i + "'")) + ")";


    // ---- Until session 8: GIN indexes on the rows themselves (the migration TaskSearchIndexes creates them; SearchTextTable replaces them). ----

    /// <summary>
    /// The task index leaves out <see cref="TaskState.Waiting"/> rows: on the bus a task is written first as Waiting (the
    /// dispatch), then with its derived state, so the dispatch's row version costs no trigrams. The few tasks waiting
    /// for a consumer are searched through <c>IX_JobLogTasks_State_DispatchedAt</c> instead (the search of session 8).
    /// </summary>
    private const string NotWaiting = " WHERE \"State\" <> 1";

    /// <summary>The index names, the tables and what they index (a column or an expression in parentheses).</summary>
    private static readonly (string Index, string Table, string Indexed, string Where)[] s_formerIndexes =
    [
        ("IX_JobLogTasks_Text_Trigram", LedgerModel.Tasks, TaskText, NotWaiting),
        ("IX_JobLogTaskRuns_ErrorMessage_Trigram", LedgerModel.Runs, "\"ErrorMessage\"", " WHERE \"ErrorMessage\" IS NOT NULL"),
    ];

    /// <summary>The indexes of session 6 and before (one per task column), replaced by <c>IX_JobLogTasks_Text_Trigram</c>.</summary>
    private static readonly string[] s_replaced = ["IX_JobLogTasks_Input_Trigram", "IX_JobLogTasks_TaskKwargs_Trigram"];

    /// <summary>
    /// Creates <c>pg_trgm</c> (a trusted extension: the database owner, or any role with CREATE on the database, may
    /// create it) and the indexes, and drops the <c>IX_JobLogTasks_Input_Trigram</c> and <c>IX_JobLogTasks_TaskKwargs_Trigram</c> ones. When the extension cannot be created or
    /// found, the migration still succeeds with a WARNING and no indexes: the search gives the same rows, by scanning.
    /// <c>IF NOT EXISTS</c> lets an operator create the indexes beforehand with <c>CREATE INDEX CONCURRENTLY</c> on a
    /// large ledger.
    /// </summary>
    public static readonly string FormerCreate = $$"""
        DO $joblog$
        BEGIN
            BEGIN
                CREATE EXTENSION IF NOT EXISTS pg_trgm;
            EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
                RAISE WARNING 'JobLog: the pg_trgm extension could not be created (%): the task search works without its indexes, by scanning. Ask the database owner to run CREATE EXTENSION pg_trgm, then create the indexes listed in docs/search.md.', SQLERRM;
            END;
            BEGIN
        {{string.Join("\n", s_formerIndexes.Select(i =>
            $"        CREATE INDEX IF NOT EXISTS \"{i.Index}\" ON \"{i.Table}\" USING gin ({i.Indexed} gin_trgm_ops){i.Where};"))}}
            EXCEPTION WHEN undefined_object THEN
                RAISE WARNING 'JobLog: the pg_trgm operator class gin_trgm_ops is not on the search_path (%): the task search works without its indexes, by scanning (docs/search.md).', SQLERRM;
            END;
        {{string.Join("\n", s_replaced.Select(i => $"    DROP INDEX IF EXISTS \"{i}\";"))}}
        END
        $joblog$;
        """;

    /// <summary>Drops the indexes (the migration TaskSearchIndexes' Down); the extension stays, other schemas may use it.</summary>
    public static readonly string FormerDrop = string.Join("\n", s_formerIndexes.Select(i => i.Index).Concat(s_replaced).Select(i => $"DROP INDEX IF EXISTS \"{i}\";"));

    // The runs closed with the sweeper's expiry text (not in the side table), found through their stale-marked tasks
    // (SweptRuns), when {0} matches that text; the constant comparison is a one-time filter, so a text outside the
    // sentence reads nothing here. On a partitioned ledger (byDay) the join names the task's day too, so each stale task
    // probes its own day's runs partition, not every day's (session 34).
    private static string SweptMatching(bool byDay) => $$"""

        UNION ALL SELECT r."TaskId" AS "Value" FROM {{T}} t JOIN {{R}} r ON r."TaskId" = t."Id"{{(byDay ? $" AND r.{Key} = t.{Key}" : "")}}
            WHERE t."IsSetAsStale" AND r."ErrorMessage" = {{SweptText}} AND {{SweptText}} ILIKE {0} ESCAPE '\'
        """;

    // A run's error as it is shown (FailureSignature.Unstated): without JobLog's "[failure group: …]" first line, which is
    // a grouping marker, not the exception's text. The side table holds the text kept (the line too), so an error row
    // that starts with that line is checked again on the text after it ({0}, the ILIKE pattern): a search of a word of
    // the line finds none of them. Not a form the trigram index serves: its condition stays the one before.
    private static readonly string ShownChecked =
        " AND (NOT s.\"IsError\" OR left(s.\"Text\", " + Failures.FailureSignature.StatedPrefix.Length + ") <> '" + Failures.FailureSignature.StatedPrefix + "'" +
        " OR right(rtrim(split_part(s.\"Text\", E'\\n', 1), E'\\r'), 1) <> ']'" +
        " OR substr(s.\"Text\", strpos(s.\"Text\", E'\\n') + 1) ILIKE {0} ESCAPE '\\')";

    // {0} is the ILIKE pattern of the whole text, asked of the trigram index.
    private static string Matching(bool byDay) => $$"""
        SELECT s."TaskId" AS "Value" FROM {{S}} s WHERE s."Text" ILIKE {0} ESCAPE '\'
        """ + ShownChecked + SweptMatching(byDay);

    // {1} is the ILIKE pattern of the text's key: the only index condition (a GIN scan reads the whole posting list of
    // each trigram of its pattern, and the trigrams of an id's punctuation are in every row); the whole text ({0}) is
    // checked on the rows found, in a form no index serves (`|| ''`).
    private static string MatchingByKey(bool byDay) => $$"""
        SELECT s."TaskId" AS "Value" FROM {{S}} s WHERE s."Text" ILIKE {1} ESCAPE '\' AND (s."Text" || '') ILIKE {0} ESCAPE '\'
        """ + ShownChecked + SweptMatching(byDay);

    /// <summary>
    /// The ids of the tasks whose <c>Input</c>, <c>TaskKwargs</c> or a run's <c>ErrorMessage</c> contains
    /// <paramref name="text"/> (case-insensitive), as a composable query over the side table (a task may come more than
    /// once), answered from its index (looking up <paramref name="key"/> when there is one); <see langword="null"/>
    /// (scan the columns) for a text with a line feed, which could match across the two task columns' joint.
    /// <paramref name="byDay"/>: the ledger is partitioned by day (its side table is): the swept runs are read in their
    /// task's day only.
    /// </summary>
    public static IQueryable<Guid>? TasksContaining(JobLogDbContext db, string text, string? key, bool byDay = false)
    {
        if (text.Contains('\n', StringComparison.Ordinal))
        {
            return null;
        }

        var pattern = LedgerSql.LikePattern(text);
        return key is null
            ? db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(Matching(byDay), pattern))
            : db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(MatchingByKey(byDay), pattern, LedgerSql.LikePattern(key)));
    }

    private static readonly string WithError = $$"""
        SELECT s."TaskId" AS "Value" FROM {{S}} s WHERE s."IsError" AND s."Text" ILIKE {0} ESCAPE '\'
        """ + ShownChecked + SweptMatching(byDay: false);

    // With each row's day (a side table partitioned by day): the correlation names it (PartitionPruning.DayOf), so each
    // task checked reads one partition of the side table (and of the runs), not one per day.
    private static readonly string WithErrorByDay = $$"""
        SELECT s."TaskId" AS "Value", s.{{Key}} FROM {{S}} s WHERE s."IsError" AND s."Text" ILIKE {0} ESCAPE '\'
        """ + ShownChecked + $$"""

        UNION ALL SELECT r."TaskId" AS "Value", r.{{Key}} FROM {{R}} r WHERE r."ErrorMessage" = {{SweptText}} AND {{SweptText}} ILIKE {0} ESCAPE '\'
        """;

    /// <summary>
    /// The ids of the tasks with a run error that contains <paramref name="text"/> (case-insensitive), from the side
    /// table's error rows (the run errors verbatim, once per task and text), to correlate with one task at a time: one
    /// probe of its task id index, where the runs of a partitioned ledger are one probe per day partition (the newest
    /// rows' check of an error text read 11 partitions for each of 6,000 tasks, 137 ms at 1 M; docs/scale.md "Session 10
    /// (part)"). <paramref name="byDay"/>: the side table is partitioned by day, and the rows carry it
    /// (<see cref="Partitioning.PartitionPruning.DayOf"/> names it in the correlation, or the probe is one per partition
    /// again: 97-137 ms for the newest 2,000 tasks at 1 M; docs/scale.md "Session 14 (searchpart)").
    /// </summary>
    public static IQueryable<Guid> TasksWithErrorContaining(JobLogDbContext db, string text, bool byDay = false) =>
        db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(byDay ? WithErrorByDay : WithError, LedgerSql.LikePattern(text)));

    /// <summary>Whether the side table is partitioned (by the tasks' day: a partitioned ledger since session 14).</summary>
    public const string IsPartitioned =
        "SELECT COALESCE((SELECT c.relkind = 'p' FROM pg_class c WHERE c.oid = to_regclass('" + S + "')), FALSE) AS \"Value\"";
}
