using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// The task search's index on SQLite (docs/search.md): two contentless FTS5 tables with the <c>trigram</c> tokenizer,
/// keyed by the rowid of the row they index, kept in step by triggers that fire on insert, on a change of the indexed
/// columns and on delete only (the writer's state updates do not touch them).
/// </summary>
internal static class SqliteSearch
{
    /// <summary>The FTS5 table over the tasks' <c>Input</c> and <c>TaskKwargs</c> (rowid = the task's rowid).</summary>
    public const string TaskText = "JobLogTaskText";

    /// <summary>The FTS5 table over the runs' <c>ErrorMessage</c> (rowid = the run's rowid).</summary>
    public const string RunText = "JobLogRunText";

    private const string T = "\"" + LedgerModel.Tasks + "\"";
    private const string R = "\"" + LedgerModel.Runs + "\"";

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

    /// <summary>Drops the triggers and the tables (the migration's Down).</summary>
    public static readonly string Drop = $"""
        DROP TRIGGER IF EXISTS "{TaskText}_Insert";
        DROP TRIGGER IF EXISTS "{TaskText}_Update";
        DROP TRIGGER IF EXISTS "{TaskText}_Delete";
        DROP TRIGGER IF EXISTS "{RunText}_Insert";
        DROP TRIGGER IF EXISTS "{RunText}_Update";
        DROP TRIGGER IF EXISTS "{RunText}_Delete";
        DROP TABLE IF EXISTS "{TaskText}";
        DROP TABLE IF EXISTS "{RunText}";
        """;

    // {0} is the phrase; a text shorter than three characters has no trigram and matches nothing (LedgerQueries scans then).
    private const string Matching = $$"""
        SELECT t."Id" AS "Value" FROM {{T}} t WHERE t.rowid IN (SELECT rowid FROM "{{TaskText}}" WHERE "{{TaskText}}" MATCH {0})
        UNION
        SELECT r."TaskId" AS "Value" FROM {{R}} r WHERE r.rowid IN (SELECT rowid FROM "{{RunText}}" WHERE "{{RunText}}" MATCH {0})
        """;

    /// <summary>The ids of the tasks whose indexed text contains <paramref name="text"/>, as a composable query.</summary>
    public static IQueryable<Guid> TasksContaining(JobLogDbContext db, string text) =>
        db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(Matching, Phrase(text)));

    /// <summary>
    /// <paramref name="text"/> as one FTS5 string: inside double quotes every character is literal (<c>*</c>,
    /// <c>-</c>, <c>:</c>, <c>^</c>, parentheses, <c>AND</c>/<c>OR</c>/<c>NOT</c>/<c>NEAR</c>), and a double quote is
    /// written twice. The trigram tokenizer then makes it a phrase of overlapping trigrams: a substring match.
    /// </summary>
    public static string Phrase(string text) => "\"" + text.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
