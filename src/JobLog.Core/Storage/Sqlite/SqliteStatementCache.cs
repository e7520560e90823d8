using SQLitePCL;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// Statements the writer's per-batch SQLite work prepares once on its connection's handle (a statement is compiled
/// again by SQLite only when the schema changed), run and reset in place (<see cref="SqliteWriterTriggers"/>,
/// <see cref="SqliteSearchIndexer"/>).
/// </summary>
internal sealed class SqliteStatementCache(sqlite3 handle) : IDisposable
{
    private readonly Dictionary<string, sqlite3_stmt> _statements = new(StringComparer.Ordinal);

    /// <summary>The prepared statement of <paramref name="sql"/> (one statement), prepared at its first use.</summary>
    public sqlite3_stmt Statement(string sql)
    {
        if (!_statements.TryGetValue(sql, out var statement))
        {
            Check(raw.sqlite3_prepare_v2(handle, sql, out statement));
            _statements[sql] = statement;
        }

        return statement;
    }

    /// <summary>Runs <paramref name="sql"/> (with the bindings made on its <see cref="Statement"/>), then resets and unbinds it.</summary>
    public void Run(string sql)
    {
        var statement = Statement(sql);
        var rc = raw.sqlite3_step(statement);
        raw.sqlite3_reset(statement);
        raw.sqlite3_clear_bindings(statement);
        if (rc is not (raw.SQLITE_DONE or raw.SQLITE_ROW))
        {
            Check(rc);
        }
    }

    /// <summary>The first column of the first row of <paramref name="sql"/>, or 0 when it has no row.</summary>
    public long Scalar(string sql) => Scalar(sql, 0);

    /// <summary>Column <paramref name="column"/> of the first row of <paramref name="sql"/>, or 0 when it has no row.</summary>
    public long Scalar(string sql, int column)
    {
        var statement = Statement(sql);
        var rc = raw.sqlite3_step(statement);
        try
        {
            if (rc != raw.SQLITE_ROW)
            {
                Check(rc);
                return 0;
            }

            return raw.sqlite3_column_int64(statement, column);
        }
        finally
        {
            raw.sqlite3_reset(statement);
        }
    }

    /// <summary>Throws SQLite's error for a result code that is not a success.</summary>
    public void Check(int rc)
    {
        if (rc is not (raw.SQLITE_OK or raw.SQLITE_DONE or raw.SQLITE_ROW))
        {
            Microsoft.Data.Sqlite.SqliteException.ThrowExceptionForRC(rc, handle);
        }
    }

    /// <summary>Finalizes every statement (the connection stays open).</summary>
    public void Dispose()
    {
        foreach (var statement in _statements.Values)
        {
            statement.Dispose();
        }

        _statements.Clear();
    }
}
