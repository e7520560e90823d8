using SQLitePCL;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// Moves the search index's watermark (<see cref="SqliteSearch.Watermark"/>) in the writer's transactions: once
/// <see cref="StepRows"/> task or run rows are past it, one <see cref="SqliteSearch.IndexPending"/> indexes them all.
/// FTS5 writes a segment per transaction and each small segment is merged again later, so a few thousand rows indexed
/// at once cost about half what the same rows cost batch by batch (docs/benchmarks.md, "Session 7"). Until then the
/// search checks those rows one by one (<see cref="SqliteSearch.TasksContaining"/>), which bounds that check to
/// <see cref="StepRows"/> rows of each table. A ledger without the watermark (the index off, or not upgraded) is left alone.
/// </summary>
internal sealed class SqliteSearchIndexer(sqlite3 handle) : IDisposable
{
    /// <summary>Rows past the watermark (of either table) that make the next transaction index them.</summary>
    internal const long StepRows = 4000;

    private static readonly string Shape = SqliteSearch.Shape.Replace("FROM sqlite_master", "FROM main.sqlite_master", StringComparison.Ordinal);

    private static readonly string[] PerTaskStatements = Split(SqliteSearch.IndexPendingPerTask);

    private static readonly string[] EveryErrorStatements = Split(SqliteSearch.IndexPendingEveryError);

    private static readonly string[] Statements = Split(SqliteSearch.IndexPending);

    private readonly SqliteStatementCache _sql = new(handle);
    private long _schema = -1;
    private long _shape;

    /// <summary>Whether the last <see cref="Step"/> indexed the rows past the watermark (for tests and the benchmark).</summary>
    internal bool Indexed { get; private set; }

    /// <summary>In the writer's transaction, after its rows: indexes the rows past the watermark when there are enough of them (or <paramref name="all"/>).</summary>
    public void Step(bool all = false)
    {
        Indexed = false;
        var schema = _sql.Scalar("PRAGMA main.schema_version");
        if (schema != _schema)
        {
            // The index may have been dropped or created since: statements prepared for the old schema go.
            _sql.Dispose();
            _schema = _sql.Scalar("PRAGMA main.schema_version");
            _shape = _sql.Scalar(Shape);
        }

        if (_shape == 0 || (!all && !Due()))
        {
            return;
        }

        foreach (var sql in _shape switch { 1 => EveryErrorStatements, 2 or 3 => PerTaskStatements, _ => Statements })
        {
            _sql.Run(sql);
        }

        Indexed = true;
    }

    public void Dispose() => _sql.Dispose();

    private static string[] Split(string statements) => [.. statements.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    private bool Due()
    {
        var pending = _sql.Statement(SqliteSearch.Pending);
        var rc = raw.sqlite3_step(pending);
        try
        {
            if (rc != raw.SQLITE_ROW)
            {
                _sql.Check(rc);
                return false;
            }

            if (raw.sqlite3_column_int64(pending, 0) >= StepRows || raw.sqlite3_column_int64(pending, 1) >= StepRows)
            {
                return true;
            }
        }
        finally
        {
            raw.sqlite3_reset(pending);
        }

        // Runs to recheck (after a delete of runs) are checked row by row by every search until a step: take them now.
        return _shape is 2 or 3 && _sql.Scalar(SqliteSearch.Rechecks) > 0;
    }
}
