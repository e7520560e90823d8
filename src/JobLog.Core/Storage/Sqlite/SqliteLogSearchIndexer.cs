using SQLitePCL;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// Moves the request and command search index's watermark (<see cref="SqliteLogSearch.Watermark"/>) in the writer's
/// transactions, as <see cref="SqliteSearchIndexer"/> does the tasks': once <see cref="SqliteSearchIndexer.StepRows"/>
/// rows of a log are past it, one <see cref="SqliteLogSearch.IndexPending"/> indexes every log's. Between steps each
/// transaction pays one read of the three logs' highest rowids. A ledger without the index is left alone.
/// </summary>
internal sealed class SqliteLogSearchIndexer(sqlite3 handle) : IDisposable
{
    private static readonly string Present = SqliteLogSearch.Present.Replace("FROM sqlite_master", "FROM main.sqlite_master", StringComparison.Ordinal);

    private static readonly string[] Statements =
        [.. SqliteLogSearch.IndexPending.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];

    private readonly SqliteStatementCache _sql = new(handle);
    private long _schema = -1;
    private bool _present;

    /// <summary>Whether the last <see cref="Step"/> indexed the rows past the watermark (tests).</summary>
    internal bool Indexed { get; private set; }

    /// <summary>In the writer's transaction, after its rows: indexes the logs' rows past the watermark when there are enough of them (or <paramref name="all"/>).</summary>
    public void Step(bool all = false)
    {
        Indexed = false;
        var schema = _sql.Scalar("PRAGMA main.schema_version");
        if (schema != _schema)
        {
            // The index may have been dropped or created since: statements prepared for the old schema go.
            _sql.Dispose();
            _schema = _sql.Scalar("PRAGMA main.schema_version");
            _present = _sql.Scalar(Present) > 0;
        }

        if (!_present || (!all && _sql.Scalar(SqliteLogSearch.Pending) < SqliteSearchIndexer.StepRows))
        {
            return;
        }

        foreach (var sql in Statements)
        {
            _sql.Run(sql);
        }

        Indexed = true;
    }

    public void Dispose() => _sql.Dispose();
}
