using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// The request and command lists' search index on SQLite (docs/search.md, "Requests and commands"): one contentless
/// FTS5 <c>trigram</c> table per log (<see cref="LogText"/>: the requests' <c>Path</c>, the commands' <c>Input</c>), keyed
/// by the log row's rowid, up to a watermark as the tasks' index (<see cref="SqliteSearch"/>): rows past it are indexed in
/// bulk steps by the writer (<see cref="SqliteLogSearchIndexer"/>) and checked one by one by the search meanwhile. No
/// INSERT trigger (the writer's batches run with triggers off, and a per-row FTS5 insert costs ~100 µs); an UPDATE
/// trigger for a changed column (JobLog's upserts write the same path and arguments again; another writer may not) and
/// a DELETE trigger (retention) keep the indexed rows in step.
/// </summary>
internal static class SqliteLogSearch
{
    /// <summary>The one-row table of the highest rowid indexed, a column per log (<see cref="LogText.Name"/>).</summary>
    public const string Watermark = "JobLogLogSearchWatermark";

    private const string W = "\"" + Watermark + "\"";

    /// <summary>The FTS5 table of <paramref name="log"/>.</summary>
    public static string TextTable(LogText log) => "JobLog" + log.Name + "Text";

    private static string Q(string name) => "\"" + name + "\"";

    private static string Max(LogText log) => $"(SELECT coalesce(max(rowid), 0) FROM {Q(log.Table)})";

    private static string Mark(LogText log) => $"(SELECT {Q(log.Name)} FROM {W})";

    private static string Triggers(LogText log)
    {
        var (t, c, f) = (Q(log.Table), Q(log.Column), TextTable(log));
        return $"""
            CREATE TRIGGER "{f}_Update" AFTER UPDATE OF {c} ON {t}
            WHEN old.{c} IS NOT new.{c} AND old.rowid <= {Mark(log)} BEGIN
                DELETE FROM "{f}" WHERE rowid = old.rowid;
                INSERT INTO "{f}"(rowid, {c}) SELECT new.rowid, new.{c} WHERE new.{c} IS NOT NULL;
            END;
            CREATE TRIGGER "{f}_Delete" AFTER DELETE ON {t}
            WHEN old.rowid <= {Mark(log)} BEGIN
                DELETE FROM "{f}" WHERE rowid = old.rowid AND old.{c} IS NOT NULL;
                UPDATE {W} SET {Q(log.Name)} = {Max(log)} WHERE old.rowid > {Max(log)};
            END;
            """;
    }

    /// <summary>Drops the tables and triggers (<c>SearchIndex = false</c>; also the first step of <see cref="Create"/>).</summary>
    public static readonly string Drop = string.Join("\n", LogText.All.SelectMany(log => new[]
    {
        $"DROP TRIGGER IF EXISTS \"{TextTable(log)}_Update\";",
        $"DROP TRIGGER IF EXISTS \"{TextTable(log)}_Delete\";",
        $"DROP TABLE IF EXISTS \"{TextTable(log)}\";",
    }).Append($"DROP TABLE IF EXISTS {W};"));

    /// <summary>
    /// Creates the tables, indexes every row already there (a ledger filled before session 13 gets its index here, at
    /// start-up), sets the watermark past them and creates the triggers: to run in one transaction.
    /// </summary>
    public static readonly string Create = Drop + "\n" + string.Join("\n", LogText.All.Select(log =>
        $"CREATE VIRTUAL TABLE \"{TextTable(log)}\" USING fts5({Q(log.Column)}, content='', contentless_delete=1, tokenize='trigram');\n" +
        $"INSERT INTO \"{TextTable(log)}\"(rowid, {Q(log.Column)}) SELECT rowid, {Q(log.Column)} FROM {Q(log.Table)} WHERE {Q(log.Column)} IS NOT NULL ORDER BY rowid;"))
        + $"\nCREATE TABLE {W} ({string.Join(", ", LogText.All.Select(l => Q(l.Name) + " INTEGER NOT NULL"))});\n"
        + $"INSERT INTO {W} ({string.Join(", ", LogText.All.Select(l => Q(l.Name)))}) SELECT {string.Join(", ", LogText.All.Select(Max))};\n"
        + string.Join("\n", LogText.All.Select(Triggers));

    /// <summary>Whether the index is there (1) or not (0).</summary>
    public const string Present = "SELECT COUNT(*) AS \"Value\" FROM sqlite_master WHERE type = 'table' AND name = '" + Watermark + "'";

    /// <summary>The most rows past the watermark of any log (one value).</summary>
    public static readonly string Pending =
        $"SELECT max({string.Join(", ", LogText.All.Select(l => $"{Max(l)} - {Q(l.Name)}"))}) FROM {W}";

    /// <summary>
    /// Indexes the rows past the watermark of every log and moves the watermark to the highest rowids: statements
    /// separated by <c>;</c> (no literal holds one), to run in one transaction.
    /// </summary>
    public static readonly string IndexPending = string.Join("; ", LogText.All.Select(log =>
        $"INSERT INTO \"{TextTable(log)}\"(rowid, {Q(log.Column)}) SELECT rowid, {Q(log.Column)} FROM {Q(log.Table)} " +
        $"WHERE rowid > {Mark(log)} AND {Q(log.Column)} IS NOT NULL ORDER BY rowid")
        .Append($"UPDATE {W} SET {string.Join(", ", LogText.All.Select(l => $"{Q(l.Name)} = {Max(l)}"))}"));

    /// <summary>
    /// The ids of the rows of <paramref name="log"/> whose column contains <paramref name="text"/>, as a composable query:
    /// the indexed rows through the FTS5 table (looking up <paramref name="key"/>, the text's distinctive part, when there
    /// is one), the rows past the watermark one by one; every row found is checked with <c>LIKE</c>
    /// (<paramref name="pattern"/>), so the rows are exactly those of the former <c>LIKE '%…%'</c> scan (ASCII case folded,
    /// where the index folds any letter's case).
    /// </summary>
    public static IQueryable<Guid>? Containing(JobLogDbContext db, LogText log, string text, string pattern, string? key)
    {
        if (db.Database.SqlQueryRaw<int>(Present).AsEnumerable().Single() == 0)
        {
            return null;
        }

        // The key bounded as the tasks' (SqliteSearch.Bounded), or a trigram of the whole text in few rows or none when it
        // has one (SqliteSearch.RareTrigram): every row found is checked with LIKE, so the rows are the same.
        key = SqliteSearch.Bounded(text, key);
        if (key is not null && text.All(char.IsAscii))
        {
            key = SqliteSearch.RareTrigram(db, text, key, TextTable(log)) ?? key;
        }

        var (t, c) = (Q(log.Table), Q(log.Column));
        // NOT INDEXED: both branches read the log by rowid (the index's matches, the range past the watermark); the
        // planner must not walk an index of the log instead (as it did for the tasks' search: SqliteSearch).
        var sql = $$"""
            SELECT r."Id" AS "Value" FROM {{t}} r NOT INDEXED WHERE r.rowid IN (SELECT rowid FROM "{{TextTable(log)}}" WHERE "{{TextTable(log)}}" MATCH {0}) AND r.{{c}} LIKE {1} ESCAPE '\'
            UNION ALL
            SELECT r."Id" AS "Value" FROM {{t}} r NOT INDEXED WHERE r.rowid > {{Mark(log)}} AND r.{{c}} LIKE {1} ESCAPE '\'
            """;
        return db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(sql, SqliteSearch.Phrase(key ?? text), pattern));
    }
}
