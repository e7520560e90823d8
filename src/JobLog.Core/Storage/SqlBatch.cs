using System.Collections.Concurrent;
using System.Data;
using System.Data.Common;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace JobLog.Storage;

/// <summary>An ordered list of parameterised statements executed in one transaction.</summary>
/// <remarks>SQL is written with <c>@p0</c>, <c>@p1</c>, … placeholders; values are converted by the dialect.</remarks>
internal sealed class SqlBatch(SqlDialect dialect)
{
    private readonly List<(string Sql, object[] Values)> _statements = [];

    public int Count => _statements.Count;

    public void Add(string sql, params object?[] values)
    {
        var converted = new object[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            converted[i] = dialect.ToDb(values[i]);
        }

        _statements.Add((sql, converted));
    }

    public void Clear() => _statements.Clear();

    internal IReadOnlyList<(string Sql, object[] Values)> Statements => _statements;
}

/// <summary>Runs <see cref="SqlBatch"/>es on one open connection, reusing prepared statements.</summary>
internal abstract partial class SqlExecutor : IAsyncDisposable
{
    public abstract DbConnection Connection { get; }

    public abstract Task ExecuteAsync(SqlBatch batch, DbTransaction transaction, TimeSpan timeout, CancellationToken cancellationToken);

    public abstract ValueTask DisposeAsync();

    public static async Task<SqlExecutor> OpenAsync(SqlDialect dialect, string connectionString, CancellationToken cancellationToken, TimeSpan? busyTimeout = null)
    {
        if (dialect.Provider == LedgerProvider.Sqlite && busyTimeout is { } timeout)
        {
            // Transactions begin IMMEDIATE; that wait is bounded by the connection's default timeout, not the command's.
            connectionString = new SqliteConnectionStringBuilder(connectionString)
            {
                DefaultTimeout = (int)Math.Max(1, Math.Ceiling(timeout.TotalSeconds)),
            }.ConnectionString;
        }

        var connection = dialect.CreateConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            if (connection is SqliteConnection sqlite)
            {
                await SqliteSetup.ConfigureAsync(sqlite, busyTimeout ?? TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
                return new SqliteExecutor(sqlite);
            }

            return new NpgsqlExecutor((NpgsqlConnection)connection);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    [GeneratedRegex(@"@p(\d+)")]
    private static partial Regex Placeholder();

    private sealed class SqliteExecutor(SqliteConnection connection) : SqlExecutor
    {
        private readonly Dictionary<string, SqliteCommand> _prepared = new(StringComparer.Ordinal);

        public override DbConnection Connection => connection;

        public override Task ExecuteAsync(SqlBatch batch, DbTransaction transaction, TimeSpan timeout, CancellationToken cancellationToken)
        {
            // SQLite is in-process: synchronous execution avoids an allocation per statement.
            foreach (var (sql, values) in batch.Statements)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (!_prepared.TryGetValue(sql, out var command))
                {
                    command = connection.CreateCommand();
                    command.CommandText = sql;
                    for (var i = 0; i < values.Length; i++)
                    {
                        command.Parameters.Add(new SqliteParameter("@p" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), null));
                    }

                    _prepared[sql] = command;
                }

                command.Transaction = (SqliteTransaction)transaction;
                command.CommandTimeout = (int)Math.Max(1, timeout.TotalSeconds);
                for (var i = 0; i < values.Length; i++)
                {
                    command.Parameters[i].Value = values[i];
                }

                command.ExecuteNonQuery();
            }

            return Task.CompletedTask;
        }

        public override async ValueTask DisposeAsync()
        {
            foreach (var command in _prepared.Values)
            {
                await command.DisposeAsync().ConfigureAwait(false);
            }

            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private sealed class NpgsqlExecutor(NpgsqlConnection connection) : SqlExecutor
    {
        private static readonly ConcurrentDictionary<string, string> s_positional = new(StringComparer.Ordinal);

        public override DbConnection Connection => connection;

        public override async Task ExecuteAsync(SqlBatch batch, DbTransaction transaction, TimeSpan timeout, CancellationToken cancellationToken)
        {
            // One round trip for the whole batch; positional parameters skip Npgsql's SQL rewriting.
            await using var npgsqlBatch = new NpgsqlBatch(connection, (NpgsqlTransaction)transaction)
            {
                Timeout = (int)Math.Max(1, timeout.TotalSeconds),
            };
            foreach (var (sql, values) in batch.Statements)
            {
                var command = new NpgsqlBatchCommand(s_positional.GetOrAdd(sql, s => Placeholder().Replace(s, m => "$" + (int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) + 1).ToString(System.Globalization.CultureInfo.InvariantCulture))));
                foreach (var value in values)
                {
                    command.Parameters.Add(new NpgsqlParameter { Value = value });
                }

                npgsqlBatch.BatchCommands.Add(command);
            }

            if (npgsqlBatch.BatchCommands.Count > 0)
            {
                await npgsqlBatch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }

        public override ValueTask DisposeAsync() => connection.DisposeAsync();
    }
}

/// <summary>SQLite connection settings JobLog relies on.</summary>
internal static class SqliteSetup
{
    public static async Task ConfigureAsync(SqliteConnection connection, TimeSpan busyTimeout, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        // The busy timeout first: any other statement may already wait for a lock. NORMAL sync is durable in WAL mode
        // against process crashes (the schema switches the file to WAL once).
        command.CommandText = "PRAGMA busy_timeout=" +
            ((int)busyTimeout.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture) +
            "; PRAGMA synchronous=NORMAL;";
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

}
