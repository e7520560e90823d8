using System.Data.Common;
using System.Globalization;
using JobLog.Bench.Infrastructure;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;

namespace JobLog.Bench.Scale;

/// <summary>
/// The bulk path that builds the scale ledger: the same rows the writer would leave (tasks with their runs, inbound
/// requests, commands; see <see cref="ScaleData"/>), written with the schema's indexes and triggers in place. SQLite:
/// one prepared INSERT per row in 50,000-row transactions. PostgreSQL: binary COPY per table. Tasks before runs (the
/// foreign key), each table in one pass over the seeded generator.
/// </summary>
internal static class ScaleFill
{
    private const int Chunk = 50_000;

    /// <param name="ledger">The ledger.</param>
    /// <param name="data">The rows.</param>
    /// <param name="progress">Progress lines.</param>
    /// <param name="partitioned">
    /// A partitioned PostgreSQL ledger: each task and run row also carries its partition key, computed from the task's id
    /// as the writer's statements compute it.
    /// </param>
    public static async Task<long> FillAsync(ThrowawayLedger ledger, ScaleData data, Action<string> progress, bool partitioned = false)
    {
        var rows = 0L;
        if (partitioned)
        {
            const string key = JobLog.Storage.Partitioning.PartitionDay.Column;
            static object?[] Keyed(object?[] row, int taskIdColumn) => [.. row, JobLog.Storage.Partitioning.PartitionDay.Of((Guid)row[taskIdColumn]!)];
            rows += await TableAsync(ledger, "JobLogTasks", [.. ScaleData.TaskColumns, key], data.Tasks, i => [Keyed(data.Task(i).Task, 0)], progress);
            rows += await TableAsync(ledger, "JobLogTaskRuns", [.. ScaleData.RunColumns, key], data.Tasks, i => data.Task(i).Runs.Select(r => Keyed(r, 1)).ToList(), progress);
        }
        else
        {
            rows += await TableAsync(ledger, "JobLogTasks", ScaleData.TaskColumns, data.Tasks, i => [data.Task(i).Task], progress);
            rows += await TableAsync(ledger, "JobLogTaskRuns", ScaleData.RunColumns, data.Tasks, i => data.Task(i).Runs, progress);
        }

        rows += await TableAsync(ledger, "JobLogInputRequests", ScaleData.RequestColumns, data.Requests, i => [data.Request(i)], progress);
        rows += await TableAsync(ledger, "JobLogCommands", ScaleData.CommandColumns, data.Commands, i => [data.Command(i)], progress);
        return rows;
    }

    private static Task<long> TableAsync(
        ThrowawayLedger ledger, string table, string[] columns, int count, Func<int, IReadOnlyList<object?[]>> rows, Action<string> progress) =>
        ledger.Provider == LedgerProvider.Sqlite
            ? SqliteAsync(ledger, table, columns, count, rows, progress)
            : PostgresAsync(ledger, table, columns, count, rows, progress);

    private static async Task<long> SqliteAsync(
        ThrowawayLedger ledger, string table, string[] columns, int count, Func<int, IReadOnlyList<object?[]>> rows, Action<string> progress)
    {
        await using var connection = new SqliteConnection(ledger.ConnectionString + ";Pooling=False");
        await connection.OpenAsync();
        await ExecAsync(connection, "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-200000;");
        await using var insert = connection.CreateCommand();
        insert.CommandText = $"INSERT INTO \"{table}\" ({string.Join(", ", columns.Select(c => $"\"{c}\""))}) " +
            $"VALUES ({string.Join(", ", columns.Select((_, i) => "$p" + i.ToString(CultureInfo.InvariantCulture)))})";
        var parameters = columns.Select((_, i) => insert.Parameters.Add(new SqliteParameter("$p" + i.ToString(CultureInfo.InvariantCulture), null))).ToArray();
        // The search index follows a watermark (SqliteSearch): each chunk's rows are indexed in its transaction, as the
        // writer's bulk steps do.
        await using var index = connection.CreateCommand();
        index.CommandText = $"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{JobLog.Storage.Sqlite.SqliteSearch.Watermark}'";
        var indexed = table is "JobLogTasks" or "JobLogTaskRuns" && (long)(await index.ExecuteScalarAsync())! > 0;
        index.CommandText = JobLog.Storage.Sqlite.SqliteSearch.IndexPending;
        index.CommandTimeout = 3600;
        long written = 0;
        for (var start = 0; start < count; start += Chunk)
        {
            await using var transaction = connection.BeginTransaction();
            insert.Transaction = transaction;
            for (var i = start; i < Math.Min(count, start + Chunk); i++)
            {
                foreach (var row in rows(i))
                {
                    for (var c = 0; c < row.Length; c++)
                    {
                        parameters[c].Value = row[c] switch
                        {
                            null => DBNull.Value,
                            Guid g => g.ToString().ToUpperInvariant(),
                            DateTime d => d.ToString("yyyy-MM-dd HH:mm:ss.FFFFFFF", CultureInfo.InvariantCulture),
                            bool b => b ? 1 : 0,
                            var v => v,
                        };
                    }

                    insert.ExecuteNonQuery();
                    written++;
                }
            }

            if (indexed)
            {
                index.Transaction = transaction;
                await index.ExecuteNonQueryAsync();
            }

            await transaction.CommitAsync();
            Progress(progress, table, start + Chunk, count);
        }

        return written;
    }

    private static async Task<long> PostgresAsync(
        ThrowawayLedger ledger, string table, string[] columns, int count, Func<int, IReadOnlyList<object?[]>> rows, Action<string> progress)
    {
        await using var connection = new NpgsqlConnection(ledger.ConnectionString);
        await connection.OpenAsync();
        long written = 0;
        // One COPY per chunk: a statement-level trigger sees one chunk's transition table, as it would see one writer batch.
        for (var start = 0; start < count; start += Chunk)
        {
            await using var writer = await connection.BeginBinaryImportAsync(
                $"COPY \"{table}\" ({string.Join(", ", columns.Select(c => $"\"{c}\""))}) FROM STDIN (FORMAT BINARY)");
            for (var i = start; i < Math.Min(count, start + Chunk); i++)
            {
                foreach (var row in rows(i))
                {
                    await writer.StartRowAsync();
                    foreach (var value in row)
                    {
                        await (value switch
                        {
                            null => writer.WriteNullAsync(),
                            Guid g => writer.WriteAsync(g, NpgsqlDbType.Uuid),
                            DateTime d => writer.WriteAsync(d, NpgsqlDbType.TimestampTz),
                            bool b => writer.WriteAsync(b, NpgsqlDbType.Boolean),
                            int n => writer.WriteAsync(n, NpgsqlDbType.Integer),
                            double x => writer.WriteAsync(x, NpgsqlDbType.Double),
                            string s => writer.WriteAsync(s, NpgsqlDbType.Text),
                            var v => throw new InvalidOperationException($"No COPY type for {v.GetType()}."),
                        });
                    }

                    written++;
                }
            }

            await writer.CompleteAsync();
            Progress(progress, table, start + Chunk, count);
        }

        return written;
    }

    private static void Progress(Action<string> progress, string table, int done, int count)
    {
        if (done % 1_000_000 == 0 || done >= count)
        {
            progress($"{table}: {Math.Min(done, count):N0} / {count:N0}");
        }
    }

    public static async Task ExecAsync(DbConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.CommandTimeout = 3600;
        await command.ExecuteNonQueryAsync();
    }
}
