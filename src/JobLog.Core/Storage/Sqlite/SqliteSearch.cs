using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// The task search's index on SQLite (docs/search.md): two contentless FTS5 tables with the <c>trigram</c> tokenizer,
/// keyed by the rowid of the row they index. The index holds the rows up to a watermark (<see cref="Watermark"/>: the
/// highest task and run rowid indexed); the rows past it are indexed in bulk steps (<see cref="IndexPending"/>, the
/// writer's <see cref="SqliteSearchIndexer"/>), and the search checks them row by row meanwhile. Triggers keep the
/// indexed rows in step on a change of the indexed columns and on delete (the writer's state updates do not touch them).
/// Ledgers created before the watermark had an INSERT trigger per table instead (<see cref="Create"/>; upgraded at
/// start-up by <see cref="Upgrade"/>).
/// </summary>
internal static class SqliteSearch
{
    /// <summary>The FTS5 table over the tasks' <c>Input</c> and <c>TaskKwargs</c> (rowid = the task's rowid).</summary>
    public const string TaskText = "JobLogTaskText";

    /// <summary>The FTS5 table over the runs' <c>ErrorMessage</c> (rowid = the run's rowid).</summary>
    public const string RunText = "JobLogRunText";

    /// <summary>The one-row table of the highest task rowid (<c>Tasks</c>) and run rowid (<c>Runs</c>) indexed.</summary>
    public const string Watermark = "JobLogSearchWatermark";

    /// <summary>
    /// The runs (rowid, <c>Run</c>) at or below the watermark that may have become the first of their task's runs with
    /// their error text (the former first deleted, or its text changed): the next bulk step indexes those that are, and
    /// the search checks them row by row meanwhile (<see cref="Deduplicated"/>).
    /// </summary>
    public const string Recheck = "JobLogSearchRecheck";

    /// <summary>
    /// The partial index of the runs the sweeper closed with <see cref="Sweeping.TaskLogSweeper.StaleRunError"/> (by their
    /// <c>Stop</c>, so a sweep's entries go in at its end): the search finds them through it, not through the FTS5 index.
    /// </summary>
    public const string SweptRuns = "IX_JobLogTaskRuns_SweptExpired";

    /// <summary>
    /// Since session 13: the distinct error texts of the runs (<c>Id</c>, <c>Text</c> unique); <see cref="RunText"/> indexes
    /// each once, keyed by its <c>Id</c>.
    /// </summary>
    public const string ErrorTexts = "JobLogErrorTexts";

    /// <summary>Since session 13: each indexed run's error text (<c>Run</c> = the run's rowid, <c>Text</c> = its <see cref="ErrorTexts"/> <c>Id</c>).</summary>
    public const string RunErrors = "JobLogRunErrors";

    private const string SweptText = "'" + Sweeping.TaskLogSweeper.StaleRunError + "'";

    private const string E = "\"" + ErrorTexts + "\"";
    private const string M = "\"" + RunErrors + "\"";

    private const string T = "\"" + LedgerModel.Tasks + "\"";
    private const string R = "\"" + LedgerModel.Runs + "\"";
    private const string W = "\"" + Watermark + "\"";
    private const string C = "\"" + Recheck + "\"";

    // A run whose task has an earlier run (a lower rowid) with the same error text: its error is in the index already.
    private const string Repeated = "EXISTS (SELECT 1 FROM " + R + " e WHERE e.\"TaskId\" = {0}.\"TaskId\" AND e.rowid < {0}.rowid AND e.\"ErrorMessage\" = {0}.\"ErrorMessage\")";

    private static string RepeatedOf(string run) => Repeated.Replace("{0}", run, StringComparison.Ordinal);

    // The next run of the task with the same error text (the lowest rowid above): the first of the group once {0} goes.
    private const string NextOfGroup =
        "SELECT min(n.rowid) AS m FROM " + R + " n WHERE n.\"TaskId\" = {0}.\"TaskId\" AND n.rowid > {0}.rowid AND n.\"ErrorMessage\" = {0}.\"ErrorMessage\"";

    private static string NextOf(string run) => NextOfGroup.Replace("{0}", run, StringComparison.Ordinal);

    /// <summary>
    /// Creates the tables, fills them from the rows already there and creates the triggers. Also what a later migration
    /// that rebuilds <c>JobLogTasks</c> or <c>JobLogTaskRuns</c> (which drops their triggers and renumbers their
    /// rowids) must run after <see cref="Drop"/>.
    /// </summary>
    public static readonly string Create = $"""
        CREATE VIRTUAL TABLE "{TaskText}" USING fts5("Input", "TaskKwargs", content='', contentless_delete=1, tokenize='trigram');
        CREATE VIRTUAL TABLE "{RunText}" USING fts5("ErrorMessage", content='', contentless_delete=1, tokenize='trigram');
        INSERT INTO "{TaskText}"(rowid, "Input", "TaskKwargs")
            SELECT rowid, "Input", "TaskKwargs" FROM {T} WHERE "Input" IS NOT NULL OR "TaskKwargs" IS NOT NULL;
        INSERT INTO "{RunText}"(rowid, "ErrorMessage") SELECT rowid, "ErrorMessage" FROM {R} WHERE "ErrorMessage" IS NOT NULL;
        CREATE TRIGGER "{TaskText}_Insert" AFTER INSERT ON {T}
        WHEN new."Input" IS NOT NULL OR new."TaskKwargs" IS NOT NULL BEGIN
            INSERT INTO "{TaskText}"(rowid, "Input", "TaskKwargs") VALUES (new.rowid, new."Input", new."TaskKwargs");
        END;
        CREATE TRIGGER "{TaskText}_Update" AFTER UPDATE OF "Input", "TaskKwargs" ON {T}
        WHEN old."Input" IS NOT new."Input" OR old."TaskKwargs" IS NOT new."TaskKwargs" BEGIN
            DELETE FROM "{TaskText}" WHERE rowid = old.rowid;
            INSERT INTO "{TaskText}"(rowid, "Input", "TaskKwargs")
                SELECT new.rowid, new."Input", new."TaskKwargs" WHERE new."Input" IS NOT NULL OR new."TaskKwargs" IS NOT NULL;
        END;
        CREATE TRIGGER "{TaskText}_Delete" AFTER DELETE ON {T}
        WHEN old."Input" IS NOT NULL OR old."TaskKwargs" IS NOT NULL BEGIN
            DELETE FROM "{TaskText}" WHERE rowid = old.rowid;
        END;
        CREATE TRIGGER "{RunText}_Insert" AFTER INSERT ON {R}
        WHEN new."ErrorMessage" IS NOT NULL BEGIN
            INSERT INTO "{RunText}"(rowid, "ErrorMessage") VALUES (new.rowid, new."ErrorMessage");
        END;
        CREATE TRIGGER "{RunText}_Update" AFTER UPDATE OF "ErrorMessage" ON {R}
        WHEN old."ErrorMessage" IS NOT new."ErrorMessage" BEGIN
            DELETE FROM "{RunText}" WHERE rowid = old.rowid;
            INSERT INTO "{RunText}"(rowid, "ErrorMessage") SELECT new.rowid, new."ErrorMessage" WHERE new."ErrorMessage" IS NOT NULL;
        END;
        CREATE TRIGGER "{RunText}_Delete" AFTER DELETE ON {R}
        WHEN old."ErrorMessage" IS NOT NULL BEGIN
            DELETE FROM "{RunText}" WHERE rowid = old.rowid;
        END;
        """;

    /// <summary>
    /// The watermark's triggers (run after <see cref="Create"/> by <see cref="Upgrade"/>): no INSERT trigger (a new row is
    /// past the watermark: SQLite numbers it <c>max(rowid) + 1</c>); an update or delete of an indexed row (at or below
    /// the watermark) keeps the index in step; and when a delete takes the highest rows, the watermark comes down to the
    /// highest rowid left, so that the rowids SQLite hands out again are past it.
    /// </summary>
    public static readonly string Watermarked = $"""
        CREATE TABLE {W} ("Tasks" INTEGER NOT NULL, "Runs" INTEGER NOT NULL);
        INSERT INTO {W} ("Tasks", "Runs") SELECT (SELECT coalesce(max(rowid), 0) FROM {T}), (SELECT coalesce(max(rowid), 0) FROM {R});
        CREATE TRIGGER "{TaskText}_Update" AFTER UPDATE OF "Input", "TaskKwargs" ON {T}
        WHEN (old."Input" IS NOT new."Input" OR old."TaskKwargs" IS NOT new."TaskKwargs") AND old.rowid <= (SELECT "Tasks" FROM {W}) BEGIN
            DELETE FROM "{TaskText}" WHERE rowid = old.rowid;
            INSERT INTO "{TaskText}"(rowid, "Input", "TaskKwargs")
                SELECT new.rowid, new."Input", new."TaskKwargs" WHERE new."Input" IS NOT NULL OR new."TaskKwargs" IS NOT NULL;
        END;
        CREATE TRIGGER "{TaskText}_Delete" AFTER DELETE ON {T}
        WHEN old.rowid <= (SELECT "Tasks" FROM {W}) BEGIN
            DELETE FROM "{TaskText}" WHERE rowid = old.rowid AND (old."Input" IS NOT NULL OR old."TaskKwargs" IS NOT NULL);
            UPDATE {W} SET "Tasks" = (SELECT coalesce(max(rowid), 0) FROM {T}) WHERE old.rowid > (SELECT coalesce(max(rowid), 0) FROM {T});
        END;
        CREATE TRIGGER "{RunText}_Update" AFTER UPDATE OF "ErrorMessage" ON {R}
        WHEN old."ErrorMessage" IS NOT new."ErrorMessage" AND old.rowid <= (SELECT "Runs" FROM {W}) BEGIN
            DELETE FROM "{RunText}" WHERE rowid = old.rowid;
            INSERT INTO "{RunText}"(rowid, "ErrorMessage") SELECT new.rowid, new."ErrorMessage" WHERE new."ErrorMessage" IS NOT NULL;
        END;
        CREATE TRIGGER "{RunText}_Delete" AFTER DELETE ON {R}
        WHEN old.rowid <= (SELECT "Runs" FROM {W}) BEGIN
            DELETE FROM "{RunText}" WHERE rowid = old.rowid AND old."ErrorMessage" IS NOT NULL;
            UPDATE {W} SET "Runs" = (SELECT coalesce(max(rowid), 0) FROM {R}) WHERE old.rowid > (SELECT coalesce(max(rowid), 0) FROM {R});
        END;
        """;

    /// <summary>
    /// Since session 8 (run after <see cref="Watermarked"/>): a run's error is indexed only when it is the task's first run
    /// with that text (retries of one exception repeat it: the search is per task, so the rows found are the same and a
    /// task with three identical errors costs one index entry). Kept exact under deletes and changes: the index holds a
    /// run iff it is at or below the watermark and no earlier run of its task has the same text, except the runs listed
    /// in <see cref="Recheck"/> (the next of a group whose first went or changed), which the search checks row by row
    /// until the next step indexes them. Every insert into the index is preceded by a delete of that rowid (a delete of
    /// a rowid the index does not hold does nothing), so a ledger indexed before (every error) stays consistent.
    /// </summary>
    public static readonly string Deduplicated = $"""
        CREATE TABLE {C} ("Run" INTEGER NOT NULL PRIMARY KEY);
        DROP TRIGGER IF EXISTS "{RunText}_Update";
        DROP TRIGGER IF EXISTS "{RunText}_Delete";
        CREATE TRIGGER "{RunText}_Update" AFTER UPDATE OF "ErrorMessage" ON {R}
        WHEN old."ErrorMessage" IS NOT new."ErrorMessage" AND old.rowid <= (SELECT "Runs" FROM {W}) BEGIN
            DELETE FROM "{RunText}" WHERE rowid = old.rowid;
            INSERT OR IGNORE INTO {C} ("Run") SELECT m FROM ({NextOf("old")}) WHERE m IS NOT NULL;
            INSERT INTO "{RunText}"(rowid, "ErrorMessage") SELECT new.rowid, new."ErrorMessage"
                WHERE new."ErrorMessage" IS NOT NULL AND NOT {RepeatedOf("new")};
            DELETE FROM "{RunText}" WHERE rowid = ({NextOf("new")}) AND new."ErrorMessage" IS NOT NULL AND NOT {RepeatedOf("new")};
        END;
        CREATE TRIGGER "{RunText}_Delete" AFTER DELETE ON {R}
        WHEN old.rowid <= (SELECT "Runs" FROM {W}) BEGIN
            DELETE FROM "{RunText}" WHERE rowid = old.rowid AND old."ErrorMessage" IS NOT NULL;
            INSERT OR IGNORE INTO {C} ("Run") SELECT m FROM ({NextOf("old")}) WHERE m IS NOT NULL;
            UPDATE {W} SET "Runs" = (SELECT coalesce(max(rowid), 0) FROM {R}) WHERE old.rowid > (SELECT coalesce(max(rowid), 0) FROM {R});
        END;
        """;

    /// <summary>
    /// Since session 10 (run after <see cref="Deduplicated"/>): the sweeper's expiry text is kept out of the FTS5 index. A
    /// backlog sweep writes the same text into every ACTIVE run it closes, and indexing it (53 trigrams a run, their
    /// posting lists flushed and merged at each batch's commit) with the trigger's lookups cost about a third of the
    /// sweep's CPU (docs/scale.md, "Session 10 (sqlsweep)"). The search finds these runs through the partial index
    /// <see cref="SweptRuns"/> instead, when the text searched is in the expiry text (<see cref="TasksContaining"/>). The
    /// UPDATE trigger is <see cref="Deduplicated"/>'s, but does not fire when a run without an error gets the expiry text
    /// (it was not in the index, and its new text is not indexed), and never indexes that text. Runs indexed with it before
    /// stay in the index: both ways find them.
    /// </summary>
    public static readonly string Swept = $"""
        CREATE INDEX IF NOT EXISTS "{SweptRuns}" ON {R} ("Stop") WHERE "ErrorMessage" = {SweptText};
        DROP TRIGGER IF EXISTS "{RunText}_Update";
        CREATE TRIGGER "{RunText}_Update" AFTER UPDATE OF "ErrorMessage" ON {R}
        WHEN old."ErrorMessage" IS NOT new."ErrorMessage" AND old.rowid <= (SELECT "Runs" FROM {W})
            AND NOT (old."ErrorMessage" IS NULL AND new."ErrorMessage" = {SweptText}) BEGIN
            DELETE FROM "{RunText}" WHERE rowid = old.rowid;
            INSERT OR IGNORE INTO {C} ("Run") SELECT m FROM ({NextOf("old")}) WHERE m IS NOT NULL;
            INSERT INTO "{RunText}"(rowid, "ErrorMessage") SELECT new.rowid, new."ErrorMessage"
                WHERE new."ErrorMessage" IS NOT NULL AND new."ErrorMessage" IS NOT {SweptText} AND NOT {RepeatedOf("new")};
            DELETE FROM "{RunText}" WHERE rowid = ({NextOf("new")}) AND new."ErrorMessage" IS NOT NULL AND NOT {RepeatedOf("new")};
        END;
        """;

    // Run {0} (old) lets go of its error text: the text leaves the index and the texts when no other run refers to it.
    private const string Unreference = $$"""
        DELETE FROM "{{RunText}}" WHERE {0}."ErrorMessage" IS NOT NULL AND rowid = (SELECT "Text" FROM {{M}} WHERE "Run" = {0}.rowid)
            AND NOT EXISTS (SELECT 1 FROM {{M}} o WHERE o."Text" = (SELECT "Text" FROM {{M}} WHERE "Run" = {0}.rowid) AND o."Run" <> {0}.rowid);
        DELETE FROM {{E}} WHERE {0}."ErrorMessage" IS NOT NULL AND "Id" = (SELECT "Text" FROM {{M}} WHERE "Run" = {0}.rowid)
            AND NOT EXISTS (SELECT 1 FROM {{M}} o WHERE o."Text" = (SELECT "Text" FROM {{M}} WHERE "Run" = {0}.rowid) AND o."Run" <> {0}.rowid);
        DELETE FROM {{M}} WHERE {0}."ErrorMessage" IS NOT NULL AND "Run" = {0}.rowid;
        """;

    // Run {0} (new) refers to its error text, which is indexed (the next Id: max + 1) when no run had it yet. Never the
    // sweeper's expiry text (SweptRuns finds those runs).
    private const string Reference = $$"""
        INSERT INTO "{{RunText}}"(rowid, "ErrorMessage") SELECT (SELECT coalesce(max("Id"), 0) + 1 FROM {{E}}), {0}."ErrorMessage"
            WHERE {0}."ErrorMessage" IS NOT NULL AND {0}."ErrorMessage" IS NOT {{SweptText}} AND NOT EXISTS (SELECT 1 FROM {{E}} WHERE "Text" = {0}."ErrorMessage");
        INSERT INTO {{E}} ("Id", "Text") SELECT (SELECT coalesce(max("Id"), 0) + 1 FROM {{E}}), {0}."ErrorMessage"
            WHERE {0}."ErrorMessage" IS NOT NULL AND {0}."ErrorMessage" IS NOT {{SweptText}} AND NOT EXISTS (SELECT 1 FROM {{E}} WHERE "Text" = {0}."ErrorMessage");
        INSERT INTO {{M}} ("Run", "Text") SELECT {0}.rowid, "Id" FROM {{E}} WHERE "Text" = {0}."ErrorMessage";
        """;

    // The runs past the watermark, or all of them ({0}: the condition on r), into the texts, the index and the references.
    // "Texts" of the watermark is where this step's new texts start (SQLite numbers them max + 1 on).
    private const string IndexErrorsOf = $$"""
        UPDATE {{W}} SET "Texts" = (SELECT coalesce(max("Id"), 0) FROM {{E}});
        INSERT OR IGNORE INTO {{E}} ("Text") SELECT r."ErrorMessage" FROM {{R}} r
            WHERE {0} AND r."ErrorMessage" IS NOT NULL AND r."ErrorMessage" IS NOT {{SweptText}} ORDER BY r.rowid;
        INSERT INTO "{{RunText}}"(rowid, "ErrorMessage") SELECT "Id", "Text" FROM {{E}} WHERE "Id" > (SELECT "Texts" FROM {{W}}) ORDER BY "Id";
        INSERT INTO {{M}} ("Run", "Text") SELECT r.rowid, e."Id" FROM {{R}} r JOIN {{E}} e ON e."Text" = r."ErrorMessage" WHERE {0} ORDER BY r.rowid
        """;

    private const string AtOrBelowTheWatermark = "r.rowid <= (SELECT \"Runs\" FROM " + W + ")";

    private const string PastTheWatermarkRuns = "r.rowid > (SELECT \"Runs\" FROM " + W + ")";

    private static string IndexErrors(string condition) => IndexErrorsOf.Replace("{0}", condition, StringComparison.Ordinal);

    /// <summary>
    /// Since session 13 (run after <see cref="Swept"/>): each DISTINCT error text is indexed once, not once per task. A
    /// retried failure's text is usually the same as thousands of other tasks' (the 2-retries bench: 3 texts in 20,000
    /// tasks), and indexing it per task was half of the writer's CPU on that path (docs/benchmarks.md, "Session 12
    /// (fail)"). <see cref="ErrorTexts"/> holds the texts (unique), <see cref="RunText"/> indexes them by their <c>Id</c>,
    /// and <see cref="RunErrors"/> has one small row per run at or below the watermark with an error (other than the
    /// sweeper's expiry text), naming its text; the search goes from the texts that match to the runs that refer to them.
    /// A text no run refers to any more leaves both (the triggers). Replaces the per-task deduplication (no
    /// <see cref="Recheck"/>: every run refers to its text, so no run has to take another's place).
    /// </summary>
    public static readonly string Distinct = $"""
        DROP TRIGGER IF EXISTS "{RunText}_Update";
        DROP TRIGGER IF EXISTS "{RunText}_Delete";
        DROP TABLE IF EXISTS {C};
        DROP TABLE IF EXISTS "{RunText}";
        CREATE VIRTUAL TABLE "{RunText}" USING fts5("ErrorMessage", content='', contentless_delete=1, tokenize='trigram');
        ALTER TABLE {W} ADD COLUMN "Texts" INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE {E} ("Id" INTEGER PRIMARY KEY, "Text" TEXT NOT NULL UNIQUE);
        CREATE TABLE {M} ("Run" INTEGER PRIMARY KEY, "Text" INTEGER NOT NULL);
        {IndexErrors(AtOrBelowTheWatermark)};
        CREATE INDEX "IX_{RunErrors}_Text" ON {M} ("Text");
        CREATE TRIGGER "{RunText}_Update" AFTER UPDATE OF "ErrorMessage" ON {R}
        WHEN old."ErrorMessage" IS NOT new."ErrorMessage" AND old.rowid <= (SELECT "Runs" FROM {W})
            AND NOT (old."ErrorMessage" IS NULL AND new."ErrorMessage" = {SweptText}) BEGIN
            {Unreference.Replace("{0}", "old", StringComparison.Ordinal)}
            {Reference.Replace("{0}", "new", StringComparison.Ordinal)}
        END;
        CREATE TRIGGER "{RunText}_Delete" AFTER DELETE ON {R}
        WHEN old.rowid <= (SELECT "Runs" FROM {W}) BEGIN
            {Unreference.Replace("{0}", "old", StringComparison.Ordinal)}
            UPDATE {W} SET "Runs" = (SELECT coalesce(max(rowid), 0) FROM {R}) WHERE old.rowid > (SELECT coalesce(max(rowid), 0) FROM {R});
        END;
        """;

    /// <summary>Drops the search index's triggers on both tables, of either shape (per-row INSERT triggers, or the watermark's).</summary>
    private static readonly string DropTriggers = string.Join("\n",
        new[] { TaskText, RunText }.SelectMany(table => new[] { "Insert", "Update", "Delete" }.Select(on => $"DROP TRIGGER IF EXISTS \"{table}_{on}\";")));

    /// <summary>From the per-row INSERT triggers (<see cref="Create"/>, which indexed every row) to the watermark, errors once per task.</summary>
    public static readonly string Upgrade = $"""
        {DropTriggers}
        {Watermarked}
        {Deduplicated}
        {Swept}
        {Distinct}
        """;

    /// <summary>
    /// The bulk step of shapes 2 and 3 (before session 13): indexes the runs to recheck that are now the first of their task's runs with their error text, and the rows past
    /// the watermark (a run only when no earlier run of its task has the same error text), and moves the watermark to the
    /// highest rowids: statements separated by <c>;</c> (no literal holds one), to run in one transaction.
    /// </summary>
    public static readonly string IndexPendingPerTask =
        $"DELETE FROM \"{RunText}\" WHERE rowid IN (SELECT \"Run\" FROM {C}); " +
        $"INSERT INTO \"{RunText}\"(rowid, \"ErrorMessage\") SELECT r.rowid, r.\"ErrorMessage\" FROM {C} c JOIN {R} r ON r.rowid = c.\"Run\" " +
        $"WHERE r.rowid <= (SELECT \"Runs\" FROM {W}) AND r.\"ErrorMessage\" IS NOT NULL AND NOT {RepeatedOf("r")} ORDER BY r.rowid; " +
        $"DELETE FROM {C}; " +
        $"INSERT INTO \"{TaskText}\"(rowid, \"Input\", \"TaskKwargs\") SELECT rowid, \"Input\", \"TaskKwargs\" FROM {T} " +
        $"WHERE rowid > (SELECT \"Tasks\" FROM {W}) AND (\"Input\" IS NOT NULL OR \"TaskKwargs\" IS NOT NULL) ORDER BY rowid; " +
        $"INSERT INTO \"{RunText}\"(rowid, \"ErrorMessage\") SELECT r.rowid, r.\"ErrorMessage\" FROM {R} r " +
        $"WHERE r.rowid > (SELECT \"Runs\" FROM {W}) AND r.\"ErrorMessage\" IS NOT NULL AND NOT {RepeatedOf("r")} ORDER BY r.rowid; " +
        $"UPDATE {W} SET \"Tasks\" = (SELECT coalesce(max(rowid), 0) FROM {T}), \"Runs\" = (SELECT coalesce(max(rowid), 0) FROM {R})";

    /// <summary>
    /// The bulk step since session 13 (<see cref="Distinct"/>): the tasks past the watermark, the runs' new
    /// distinct texts and the runs' references to their texts, then the watermark.
    /// </summary>
    public static readonly string IndexPending =
        $"INSERT INTO \"{TaskText}\"(rowid, \"Input\", \"TaskKwargs\") SELECT rowid, \"Input\", \"TaskKwargs\" FROM {T} " +
        $"WHERE rowid > (SELECT \"Tasks\" FROM {W}) AND (\"Input\" IS NOT NULL OR \"TaskKwargs\" IS NOT NULL) ORDER BY rowid; " +
        IndexErrors(PastTheWatermarkRuns) + "; " +
        $"UPDATE {W} SET \"Tasks\" = (SELECT coalesce(max(rowid), 0) FROM {T}), \"Runs\" = (SELECT coalesce(max(rowid), 0) FROM {R})";

    /// <summary>
    /// Every run's error in the index, each distinct text once (as <see cref="IndexPending"/> indexes them): for a
    /// bulk load that builds the index after the rows (the scale bench's fill), before the watermark moves past them.
    /// </summary>
    public static readonly string IndexEveryRunError = IndexErrors("1");

    /// <summary>
    /// <see cref="IndexPending"/> for a ledger watermarked before session 8 (no <see cref="Recheck"/>: every run's error
    /// indexed), until start-up upgrades it.
    /// </summary>
    public static readonly string IndexPendingEveryError =
        $"INSERT INTO \"{TaskText}\"(rowid, \"Input\", \"TaskKwargs\") SELECT rowid, \"Input\", \"TaskKwargs\" FROM {T} " +
        $"WHERE rowid > (SELECT \"Tasks\" FROM {W}) AND (\"Input\" IS NOT NULL OR \"TaskKwargs\" IS NOT NULL) ORDER BY rowid; " +
        $"INSERT INTO \"{RunText}\"(rowid, \"ErrorMessage\") SELECT rowid, \"ErrorMessage\" FROM {R} " +
        $"WHERE rowid > (SELECT \"Runs\" FROM {W}) AND \"ErrorMessage\" IS NOT NULL ORDER BY rowid; " +
        $"UPDATE {W} SET \"Tasks\" = (SELECT coalesce(max(rowid), 0) FROM {T}), \"Runs\" = (SELECT coalesce(max(rowid), 0) FROM {R})";

    /// <summary>How many task and run rows are past the watermark (one row: <c>Tasks</c>, <c>Runs</c>).</summary>
    public const string Pending =
        "SELECT (SELECT coalesce(max(rowid), 0) FROM " + T + ") - \"Tasks\", (SELECT coalesce(max(rowid), 0) FROM " + R + ") - \"Runs\" FROM " + W;

    /// <summary>Whether runs wait in <see cref="Recheck"/> (1 or 0).</summary>
    public const string Rechecks = "SELECT EXISTS (SELECT 1 FROM " + C + ")";

    /// <summary>Drops the triggers and the tables (the migration's Down, and <c>SearchIndex = false</c>).</summary>
    public static readonly string Drop = $"""
        {DropTriggers}
        DROP INDEX IF EXISTS "{SweptRuns}";
        DROP TABLE IF EXISTS "{TaskText}";
        DROP TABLE IF EXISTS "{RunText}";
        DROP TABLE IF EXISTS {W};
        DROP TABLE IF EXISTS {C};
        DROP TABLE IF EXISTS {E};
        DROP TABLE IF EXISTS {M};
        """;

    // {0} is the phrase; a text shorter than three characters has no trigram and matches nothing (LedgerQueries scans then).
    // NOT INDEXED on the ledger's tables: every branch reads them by rowid (the index's matches, the range past the
    // watermark, the runs to recheck). Left to itself the planner fed the UNION in "Id" order by scanning the whole
    // tasks table through its Id index (a rare q 42.7 s at 10 million tasks; SqliteSearchWatermarkTests plan test).
    private const string TasksIndexed = $$"""
        SELECT t."Id" AS "Value" FROM {{T}} t NOT INDEXED WHERE t.rowid IN (SELECT rowid FROM "{{TaskText}}" WHERE "{{TaskText}}" MATCH {0})
        """;

    // A run's error as it is shown (FailureSignature.Unstated): without JobLog's "[failure group: …]" first line, which is
    // a grouping marker, not the exception's text. The index holds the text kept (the line too), so the texts it finds
    // that start with that line are checked again on the text after it ({1}, the LIKE pattern): a search of a word of the
    // line finds none of them.
    private static string Shown(string column) =>
        "CASE WHEN substr(" + column + ", 1, " + Failures.FailureSignature.StatedPrefix.Length + ") = '" + Failures.FailureSignature.StatedPrefix + "' " +
        "AND substr(rtrim(substr(" + column + ", 1, instr(" + column + ", char(10)) - 1), char(13)), -1) = ']' " +
        "THEN substr(" + column + ", instr(" + column + ", char(10)) + 1) ELSE " + column + " END";

    private static string ShownLike(string column) => Shown(column) + " LIKE {1} ESCAPE '\\'";

    private static string ShownChecked(string column) =>
        " AND (substr(" + column + ", 1, " + Failures.FailureSignature.StatedPrefix.Length + ") <> '" + Failures.FailureSignature.StatedPrefix + "' OR " + ShownLike(column) + ")";

    private static readonly string RunsIndexed = $$"""
        SELECT r."TaskId" AS "Value" FROM {{R}} r NOT INDEXED WHERE r.rowid IN (SELECT rowid FROM "{{RunText}}" WHERE "{{RunText}}" MATCH {0})
        """ + ShownChecked("r.\"ErrorMessage\"");

    // With a key ({0} the key's phrase, {1} the whole text's LIKE pattern): the index finds the rows that have the key, and
    // the whole text is checked on them.
    private const string TasksChecked = """ AND (t."Input" LIKE {1} ESCAPE '\' OR t."TaskKwargs" LIKE {1} ESCAPE '\')""";

    private static readonly string RunsChecked = " AND " + ShownLike("r.\"ErrorMessage\"");

    private static readonly string Matching = TasksIndexed + "\nUNION\n" + RunsIndexed;

    private static readonly string MatchingKeyed = TasksIndexed + TasksChecked + "\nUNION\n" + RunsIndexed + RunsChecked;

    // {1} is the LIKE pattern: the rows past the watermark are not in the index yet, and are checked one by one.
    private static readonly string PastTheWatermark = $$"""

        UNION
        SELECT t."Id" AS "Value" FROM {{T}} t NOT INDEXED WHERE t.rowid > (SELECT "Tasks" FROM {{W}}) AND (t."Input" LIKE {1} ESCAPE '\' OR t."TaskKwargs" LIKE {1} ESCAPE '\')
        UNION
        SELECT r."TaskId" AS "Value" FROM {{R}} r NOT INDEXED WHERE r.rowid > (SELECT "Runs" FROM {{W}})
        """ + " AND " + ShownLike("r.\"ErrorMessage\"");

    // {1} again: the runs to recheck (the first of their group, not in the index until the next step).
    private static readonly string Rechecked = $$"""

        UNION
        SELECT r."TaskId" AS "Value" FROM {{R}} r NOT INDEXED WHERE r.rowid IN (SELECT "Run" FROM {{C}})
        """ + " AND " + ShownLike("r.\"ErrorMessage\"");

    // {1} again: the runs the sweeper closed with its expiry text, when that text holds the text searched (a constant
    // condition: SQLite decides it once, and reads no index entry when it is false).
    private const string SweptMatching = $$"""

        UNION
        SELECT r."TaskId" AS "Value" FROM {{R}} r INDEXED BY "{{SweptRuns}}" WHERE r."ErrorMessage" = {{SweptText}} AND {{SweptText}} LIKE {1} ESCAPE '\'
        """;

    private static readonly string MatchingWatermarked = Matching + PastTheWatermark;

    private static readonly string MatchingDeduplicated = MatchingWatermarked + Rechecked;

    private static readonly string MatchingKeyedWatermarked = MatchingKeyed + PastTheWatermark;

    private static readonly string MatchingKeyedDeduplicated = MatchingKeyedWatermarked + Rechecked;

    private static readonly string MatchingSwept = MatchingDeduplicated + SweptMatching;

    private static readonly string MatchingKeyedSwept = MatchingKeyedDeduplicated + SweptMatching;

    // Since session 13: the texts that match, then the runs that refer to them (through the index on RunErrors' "Text").
    private static readonly string RunsOfTexts = $$"""
        SELECT r."TaskId" AS "Value" FROM {{R}} r NOT INDEXED WHERE r.rowid IN (SELECT m."Run" FROM {{M}} m WHERE m."Text" IN (
            SELECT e."Id" FROM {{E}} e WHERE e."Id" IN (SELECT rowid FROM "{{RunText}}" WHERE "{{RunText}}" MATCH {0})
        """ + ShownChecked("e.\"Text\"") + "))";

    // With a key: the whole text is checked on each distinct text the key found, not on each run.
    private static readonly string RunsOfTextsChecked = $$"""
        SELECT r."TaskId" AS "Value" FROM {{R}} r NOT INDEXED WHERE r.rowid IN (SELECT m."Run" FROM {{M}} m WHERE m."Text" IN (
            SELECT e."Id" FROM {{E}} e WHERE e."Id" IN (SELECT rowid FROM "{{RunText}}" WHERE "{{RunText}}" MATCH {0})
        """ + " AND " + ShownLike("e.\"Text\"") + "))";

    private static readonly string MatchingDistinct = TasksIndexed + "\nUNION\n" + RunsOfTexts + PastTheWatermark + SweptMatching;

    private static readonly string MatchingKeyedDistinct = TasksIndexed + TasksChecked + "\nUNION\n" + RunsOfTextsChecked + PastTheWatermark + SweptMatching;

    /// <summary>
    /// The shape of the index: 0 per-row triggers, 1 watermark, 2 watermark and errors once per task, 3 and the sweeper's
    /// expiry text kept out (<see cref="Swept"/>), 4 each distinct error text once (<see cref="Distinct"/>).
    /// </summary>
    public const string Shape =
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '" + ErrorTexts + "') THEN 4 ELSE " +
        "(SELECT COUNT(*) FROM sqlite_master WHERE (type = 'table' AND name IN ('" + Watermark + "', '" + Recheck + "')) " +
        "OR (type = 'index' AND name = '" + SweptRuns + "')) END AS \"Value\"";

    /// <summary>
    /// The ids of the tasks whose text contains <paramref name="text"/>, as a composable query: the indexed rows through
    /// the index, the rows past the watermark by <c>LIKE</c> (<paramref name="pattern"/>, escaped with <c>\</c>).
    /// </summary>
    /// <param name="db">The context.</param>
    /// <param name="text">The text.</param>
    /// <param name="pattern">The text's LIKE pattern.</param>
    /// <param name="key">
    /// The text's key (<c>TaskSearch.Key</c>): when given, the index looks the key up and the rows it finds are checked
    /// for the whole text. The common trigrams around a number (<c>CustomerId=</c>, <c>ord-</c>) are in every row, and
    /// FTS5 checks the phrase's positions in every row that has all its trigrams: at 10 million tasks
    /// <c>CustomerId=123457,</c> took 1.4 s in the index, <c>123457</c> 60-90 ms (docs/scale.md, "Session 9 (big)").
    /// Only for an ASCII text: the index folds the case of any letter, <c>LIKE</c> only ASCII's.
    /// </param>
    public static IQueryable<Guid> TasksContaining(JobLogDbContext db, string text, string pattern, string? key = null)
    {
        key = Bounded(text, key);
        var keyed = key is not null && text.All(char.IsAscii);
        if (keyed)
        {
            key = RareTrigram(db, text, key!, TaskText, RunText) ?? key;
        }

        var phrase = Phrase(keyed ? key! : text);
        return (db.Database.SqlQueryRaw<int>(Shape).AsEnumerable().Single(), keyed) switch
        {
            (0, false) => db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(Matching, phrase, pattern)),
            (0, true) => db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(MatchingKeyed, phrase, pattern)),
            (1, false) => db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(MatchingWatermarked, phrase, pattern)),
            (1, true) => db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(MatchingKeyedWatermarked, phrase, pattern)),
            (2, false) => db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(MatchingDeduplicated, phrase, pattern)),
            (2, true) => db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(MatchingKeyedDeduplicated, phrase, pattern)),
            (3, false) => db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(MatchingSwept, phrase, pattern)),
            (3, true) => db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(MatchingKeyedSwept, phrase, pattern)),
            (_, false) => db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(MatchingDistinct, phrase, pattern)),
            (_, true) => db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(MatchingKeyedDistinct, phrase, pattern)),
        };
    }


    /// <summary>The most characters of a text the index looks up as one phrase (<see cref="Bounded"/>).</summary>
    internal const int MaxPhrase = 32;

    /// <summary>
    /// The key the index looks up for <paramref name="text"/>: at most <see cref="MaxPhrase"/> characters. FTS5 checks a
    /// phrase's positions, trigram by trigram, in every row that has all its trigrams: 200 zeros (one trigram, 198 times,
    /// in nearly every row) took 2.3 s on a 100,000-task ledger against 20–70 ms for a plain <c>q</c> (session 43;
    /// docs/scale.md). A longer text, or a longer key, is looked up by its first <see cref="MaxPhrase"/> characters, and
    /// the rows found are checked for the whole text (the keyed path). Null (the whole text as the phrase) when it is short.
    /// </summary>
    internal static string? Bounded(string text, string? key)
    {
        var looked = key ?? (text.Length > MaxPhrase ? text : null);
        return looked is { Length: > MaxPhrase } ? looked[..(char.IsHighSurrogate(looked[MaxPhrase - 1]) ? MaxPhrase - 1 : MaxPhrase)] : looked;
    }

    /// <summary>
    /// The most rows of the index a trigram of the text may be in for <see cref="RareTrigram"/> to look it up instead of the
    /// text's key.
    /// </summary>
    internal const int RareTrigramRows = 64;

    /// <summary>
    /// A trigram of <paramref name="text"/> in fewer than <see cref="RareTrigramRows"/> indexed rows of
    /// <paramref name="tables"/> (FTS5 trigram tables), the fewest, when every trigram of <paramref name="key"/> is in more;
    /// else null (the key is kept). For the keyed path, where the index looks the key up and every row found is checked for
    /// the whole text: a key in most rows has most rows checked with <c>LIKE</c>, where a trigram of the whole text in a
    /// few rows or none finds those at once. <c>/api/orders</c> repeated to 200 characters has the key <c>orders</c> (a
    /// third of the requests) and the trigram <c>s/a</c> (no request). The rows the trigram finds are checked for the whole
    /// text as the key's are, so the results are the same (session 44). Each distinct trigram costs one look-up of at most
    /// <see cref="RareTrigramRows"/> rows per table; none after one in no row. ASCII texts only (the keyed path's).
    /// </summary>
    internal static string? RareTrigram(JobLogDbContext db, string text, string key, params string[] tables)
    {
        var probe = "SELECT " + string.Join(" + ", tables.Select(t =>
            $"(SELECT count(*) FROM (SELECT 1 FROM \"{t}\" WHERE \"{t}\" MATCH {{0}} LIMIT {RareTrigramRows}))")) + " AS \"Value\"";
        var rows = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        int Rows(string trigram)
        {
            if (!rows.TryGetValue(trigram, out var n))
            {
                n = rows[trigram] = db.Database.SqlQuery<int>(FormattableStringFactory.Create(probe, Phrase(trigram))).AsEnumerable().Single();
            }

            return n;
        }

        static IEnumerable<string> Trigrams(string s) => Enumerable.Range(0, Math.Max(0, s.Length - 2)).Select(i => s.Substring(i, 3));

        // One connection for the look-ups (each would open and set up its own otherwise).
        db.Database.OpenConnection();
        try
        {
            // A key with a trigram in few rows finds few rows: kept.
            if (Trigrams(key).Any(t => Rows(t) < RareTrigramRows))
            {
                return null;
            }

            string? rarest = null;
            var fewest = RareTrigramRows;
            foreach (var trigram in Trigrams(text))
            {
                if (Rows(trigram) < fewest)
                {
                    (rarest, fewest) = (trigram, Rows(trigram));
                    if (fewest == 0)
                    {
                        break;
                    }
                }
            }

            return rarest;
        }
        finally
        {
            db.Database.CloseConnection();
        }
    }

    /// <summary>
    /// <paramref name="text"/> as one FTS5 string: inside double quotes every character is literal (<c>*</c>,
    /// <c>-</c>, <c>:</c>, <c>^</c>, parentheses, <c>AND</c>/<c>OR</c>/<c>NOT</c>/<c>NEAR</c>), and a double quote is
    /// written twice. The trigram tokenizer then makes it a phrase of overlapping trigrams: a substring match.
    /// </summary>
    public static string Phrase(string text) => "\"" + text.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
