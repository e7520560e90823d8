using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;

namespace JobLog.Bench.Scale;

/// <summary>
/// The bulk paths that build the scale ledger: the same rows the writer would leave (tasks with their runs, inbound
/// requests, commands; see <see cref="ScaleData"/>). SQLite: one prepared INSERT per row in 50,000-row transactions.
/// PostgreSQL: binary COPY per table. Tasks before runs (the foreign key), each table in one pass over the seeded
/// generator. Two ways (docs/scale.md, "The bulk path"):
/// <list type="bullet">
/// <item><see cref="FillAsync"/> (<c>--fill triggers</c>): with every index and trigger in place, so the rollups and the
/// search index are kept row by row (SQLite) or chunk by chunk (PostgreSQL), as the writer's batches keep them.</item>
/// <item><see cref="BulkFillAsync"/> (<c>--fill bulk</c>, the default): into an empty migrated ledger with its secondary
/// indexes and its triggers taken off, then each index built in one statement, the search index (SQLite FTS5) and the
/// three rollups filled in one statement each from the rows, and the triggers put back word for word. The ledger left is
/// the same (<c>ScaleFillTests</c> compares both ways' rollups, search index and search results).</item>
/// </list>
/// </summary>
internal static class ScaleFill
{
    private const int Chunk = 50_000;

    private static readonly string[] Tables = ["JobLogTasks", "JobLogTaskRuns", "JobLogInputRequests", "JobLogCommands"];

    // The FTS5 index of the tasks is built with FTS5's incremental merges off, then 'automerge' back to its default (4):
    // one statement over a million rows took 175 s with the merges on and 60 + 17 s without (Python's sqlite3, the bench's
    // text; docs/scale.md), and the gap grows with the rows. No 'optimize' at the end (see SqliteTextAfter).
    // The rollups from the rows, as the migrations that created them count the rows already there (LedgerRollups, RunRollups),
    // in minute order: the writer adds minute rows as time goes, so a window of minutes is a few contiguous pages (in hash
    // order, PostgreSQL's day window read 6,631 heap pages for its 80,457 minute rows at 10 million tasks instead of 671).
    private static readonly string SqliteRollups = $"""
        INSERT INTO "JobLogTaskCounts" ("State", "Name", "IsInternal", "Count")
            SELECT "State", "Name", "IsInternal", COUNT(*) FROM "JobLogTasks" GROUP BY "State", "Name", "IsInternal";
        INSERT INTO "JobLogTaskMinutes" ("Minute", "State", "Name", "IsInternal", "Count")
            SELECT substr("Stop", 1, 16) || ':00', "State", "Name", "IsInternal", COUNT(*) FROM "JobLogTasks" WHERE "Stop" IS NOT NULL
            GROUP BY substr("Stop", 1, 16), "State", "Name", "IsInternal" ORDER BY 1, 2, 3, 4;
        INSERT INTO "JobLogTaskHours" ("Hour", "State", "Name", "IsInternal", "Count")
            SELECT substr("Minute", 1, 13) || ':00:00', "State", "Name", "IsInternal", SUM("Count") FROM "JobLogTaskMinutes"
            GROUP BY substr("Minute", 1, 13), "State", "Name", "IsInternal" ORDER BY 1, 2, 3, 4;
        INSERT INTO "JobLogRunMinutes" ("Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT substr("Start", 1, 16) || ':00', "Name", COUNT(*), SUM(d), MAX(d)
            FROM (SELECT "Start", "Name", {JobLog.Storage.RunRollups.SqliteMilliseconds("")} AS d FROM "JobLogTaskRuns" WHERE {JobLog.Storage.RunRollups.Counted})
            GROUP BY substr("Start", 1, 16), "Name" ORDER BY 1, 2;
        INSERT INTO "JobLogRunHours" ("Hour", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT substr("Minute", 1, 13) || ':00:00', "Name", SUM("Runs"), SUM("TotalMilliseconds"), MAX("MaxMilliseconds") FROM "JobLogRunMinutes"
            GROUP BY substr("Minute", 1, 13), "Name" ORDER BY 1, 2;
        """;

    /// <summary>
    /// The tasks' FTS5 rows of a rowid range (<c>$from</c> &lt; rowid &lt;= <c>$to</c>), one transaction per range of
    /// <see cref="TextRange"/> rows, with FTS5's incremental merges off (<see cref="SqliteTextBefore"/>).
    /// </summary>
    private const string SqliteTextRange = """
        INSERT INTO "JobLogTaskText"(rowid, "Input", "TaskKwargs")
            SELECT rowid, "Input", "TaskKwargs" FROM "JobLogTasks" WHERE rowid > $from AND rowid <= $to AND ("Input" IS NOT NULL OR "TaskKwargs" IS NOT NULL)
        """;

    private const int TextRange = 1_000_000;

    // And FTS5's in-memory table of pending terms at 512 MB instead of its 1 MB default ('hashsize'), so a 1,000,000-row
    // range is flushed as a few large segments rather than thousands of 1 MB ones that its 'crisismerge' (16 segments on a
    // level, merged whatever 'automerge' says) would merge again and again; set back to the default after.
    private const string SqliteTextBefore = """
        INSERT INTO "JobLogTaskText"("JobLogTaskText", rank) VALUES ('automerge', 0);
        INSERT INTO "JobLogTaskText"("JobLogTaskText", rank) VALUES ('hashsize', 536870912);
        """;

    private const string SqliteWatermark =
        """UPDATE "JobLogSearchWatermark" SET "Tasks" = (SELECT coalesce(max(rowid), 0) FROM "JobLogTasks"), "Runs" = (SELECT coalesce(max(rowid), 0) FROM "JobLogTaskRuns")""";

    // Then FTS5's defaults back, the runs' errors (few) and the watermark past every row indexed (SqliteSearch: the rows
    // past it would be checked one by one, and indexed again by the writer). No 'optimize' (all segments merged into one):
    // at 10 million tasks it ran 9 minutes and read 130 GB without finishing (docs/scale.md, "Session 9 (big)"), and a
    // ledger the writer fills is never optimised either (SqliteSearchIndexer: a segment per 4,000 rows, merged by
    // 'automerge' as they come). The index left is a few segments per 1,000,000-row range, disjoint in rowid.
    private static readonly string SqliteTextAfter = """
        INSERT INTO "JobLogTaskText"("JobLogTaskText", rank) VALUES ('automerge', 4);
        INSERT INTO "JobLogTaskText"("JobLogTaskText", rank) VALUES ('hashsize', 1048576);
        """ + JobLog.Storage.Sqlite.SqliteSearch.IndexEveryRunError + ";\n" + SqliteWatermark + ";";

    private const string PostgresCounts = """
        INSERT INTO "JobLogTaskCounts" ("State", "Name", "IsInternal", "Count")
            SELECT "State", "Name", "IsInternal", COUNT(*) FROM "JobLogTasks" GROUP BY "State", "Name", "IsInternal";
        """;

    private static readonly string PostgresRollups = PostgresCounts + $"""
        INSERT INTO "JobLogTaskMinutes" ("Minute", "State", "Name", "IsInternal", "Count")
            SELECT {JobLog.Storage.LedgerRollups.PostgresMinute}, "State", "Name", "IsInternal", COUNT(*) FROM "JobLogTasks" WHERE "Stop" IS NOT NULL
            GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;
        INSERT INTO "JobLogTaskHours" ("Hour", "State", "Name", "IsInternal", "Count")
            SELECT date_trunc('hour', "Minute" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', "State", "Name", "IsInternal", SUM("Count") FROM "JobLogTaskMinutes"
            GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;
        INSERT INTO "JobLogRunMinutes" ("Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT {JobLog.Storage.RunRollups.PostgresMinute}, "Name", COUNT(*), SUM({JobLog.Storage.RunRollups.PostgresMilliseconds}),
                MAX({JobLog.Storage.RunRollups.PostgresMilliseconds})
            FROM "JobLogTaskRuns" WHERE {JobLog.Storage.RunRollups.Counted} GROUP BY 1, 2 ORDER BY 1, 2;
        INSERT INTO "JobLogRunHours" ("Hour", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds")
            SELECT date_trunc('hour', "Minute" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', "Name", SUM("Runs"), SUM("TotalMilliseconds"), MAX("MaxMilliseconds")
            FROM "JobLogRunMinutes" GROUP BY 1, 2 ORDER BY 1, 2;
        """;

    /// <summary>
    /// The fast path: the rows into an empty migrated ledger with its secondary indexes and triggers off, then the indexes,
    /// the search index and the rollups built from the rows in one statement each, and the triggers back. Leaves the ledger
    /// as <see cref="FillAsync"/> does.
    /// </summary>
    /// <param name="partitioned">
    /// A partitioned PostgreSQL ledger (its day partitions made beforehand): each row carries its partition key as in
    /// <see cref="FillAsync"/> and the binary COPY into the partitioned table routes it to its day. The indexes dropped and
    /// built again are the partitioned tables' own (a drop takes every partition's, a create builds each partition's). The
    /// rollups the triggers keep there are the counts and the day rollups (the minute rollups are views over those):
    /// the counts by one <c>GROUP BY</c>, the day rollups by the statement that converts a ledger
    /// (<see cref="JobLog.Storage.Partitioning.DayRollups.Create"/>: its tables, functions and triggers as they are, then
    /// the rollups of the rows present). Before (session 12), the partitioned fill went through every trigger and index,
    /// ~3,100 tasks/s: 1.5-2 hours at 10 million.
    /// </param>
    public static async Task<long> BulkFillAsync(bool sqlite, string connectionString, ScaleData data, Action<string> progress, bool partitioned = false)
    {
        if (partitioned && sqlite)
        {
            throw new ArgumentException("Only a PostgreSQL ledger is partitioned.", nameof(partitioned));
        }

        await using DbConnection connection = sqlite ? new SqliteConnection(connectionString + ";Pooling=False") : new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        if (await ScalarAsync(connection, "SELECT (SELECT COUNT(*) FROM \"JobLogTasks\") + (SELECT COUNT(*) FROM \"JobLogTaskRuns\")") != 0)
        {
            throw new InvalidOperationException("The bulk fill needs an empty ledger: its rollups are built from the rows, not added to.");
        }

        // What is taken off and put back: every secondary index and trigger of the four tables, as the catalog holds them;
        // PostgreSQL's in the order they were made, so a partition's indexes (named by PostgreSQL after the partition and
        // the columns, with a number when two would be alike) get the names they had.
        var list = string.Join(", ", Tables.Select(t => $"'{t}'"));
        var saved = new List<(string Drop, string Create)>();
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = sqlite
                ? $"SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ({list}) AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type, name"
                : $"""
                  SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
                  WHERE i.indrelid::regclass::text IN ({string.Join(", ", Tables.Select(t => $"'\"{t}\"'"))}) AND NOT i.indisprimary
                  ORDER BY i.indexrelid
                  """;
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                var (type, name, sql) = (reader.GetString(0), reader.GetString(1), reader.GetString(2));
                // A partitioned table's index is defined "ON ONLY" the table (an index of the parent alone, left invalid
                // until each partition's is attached): created again without ONLY, it is built on every partition.
                sql = sql.Replace(" ON ONLY ", " ON ", StringComparison.Ordinal);
                saved.Add((sqlite ? $"DROP {type.ToUpperInvariant()} \"{name}\"" : $"DROP INDEX {name}", sql));
            }
        }

        foreach (var (drop, _) in saved)
        {
            await ExecAsync(connection, drop);
        }

        progress($"bulk: {saved.Count} indexes{(sqlite ? " and triggers" : "")} off");
        var rows = 0L;
        if (sqlite)
        {
            await ExecAsync(connection, "PRAGMA synchronous=OFF; PRAGMA cache_size=-400000;");
        }
        else
        {
            // Every trigger off for this session (rollups; and the foreign key's, which the generator's order keeps anyway).
            await ExecAsync(connection, "SET session_replication_role = replica");
        }

        if (partitioned)
        {
            rows += await TableAsync(connection, "JobLogTasks", [.. ScaleData.TaskColumns, Key], data.Tasks, i => [Keyed(data.Task(i).Task, 0)], progress, indexChunks: false);
            rows += await TableAsync(connection, "JobLogTaskRuns", [.. ScaleData.RunColumns, Key], data.Tasks, i => data.Task(i).Runs.Select(r => Keyed(r, 1)).ToList(), progress, indexChunks: false);
            rows += await TableAsync(connection, "JobLogInputRequests", [.. ScaleData.RequestColumns, Key], data.Requests, i => [Keyed(data.Request(i), 0)], progress, indexChunks: false);
            rows += await TableAsync(connection, "JobLogCommands", [.. ScaleData.CommandColumns, Key], data.Commands, i => [Keyed(data.Command(i), 0)], progress, indexChunks: false);
        }
        else
        {
            rows += await TableAsync(connection, "JobLogTasks", ScaleData.TaskColumns, data.Tasks, i => [data.Task(i).Task], progress, indexChunks: false);
            rows += await TableAsync(connection, "JobLogTaskRuns", ScaleData.RunColumns, data.Tasks, i => data.Task(i).Runs, progress, indexChunks: false);
            rows += await TableAsync(connection, "JobLogInputRequests", ScaleData.RequestColumns, data.Requests, i => [data.Request(i)], progress, indexChunks: false);
            rows += await TableAsync(connection, "JobLogCommands", ScaleData.CommandColumns, data.Commands, i => [data.Command(i)], progress, indexChunks: false);
        }

        if (!sqlite)
        {
            await ExecAsync(connection, "SET maintenance_work_mem = '1GB'");
        }

        // Indexes first, then the rollups and the search index (their GROUP BYs read the tables), then the triggers.
        foreach (var (_, create) in saved.Where(s => !s.Create.StartsWith("CREATE TRIGGER", StringComparison.OrdinalIgnoreCase)))
        {
            await ExecAsync(connection, create);
            progress($"bulk: {create[..Math.Min(create.Length, 90)]}");
        }

        await ExecAsync(connection, sqlite ? SqliteRollups : partitioned ? PostgresCounts + JobLog.Storage.Partitioning.DayRollups.Create : PostgresRollups);
        progress(partitioned ? "bulk: counts and day rollups built" : "bulk: rollups built");
        if (sqlite)
        {
            await SqliteTextAsync((SqliteConnection)connection, progress);
        }
        else
        {
            await ExecAsync(connection, JobLog.Storage.PostgreSql.PostgreSqlSearch.Refill(partitioned));
            progress("bulk: the search's side table filled, its trigram index built");
            await ExecAsync(connection, $"TRUNCATE \"{JobLog.Storage.PostgreSql.OpenRuns.Table}\"; {JobLog.Storage.PostgreSql.OpenRuns.Fill}");
            progress("bulk: the open runs' side table filled");
        }

        foreach (var (_, create) in saved.Where(s => s.Create.StartsWith("CREATE TRIGGER", StringComparison.OrdinalIgnoreCase)))
        {
            await ExecAsync(connection, create);
        }

        if (!sqlite)
        {
            await ExecAsync(connection, "RESET session_replication_role");
        }

        return rows;
    }

    /// <summary>
    /// The FTS5 index of the tasks, in rowid ranges (the rows went in without it), not merged after. Indexing each 50,000-row chunk as it went in, behind the watermark as the writer does, with
    /// FTS5's incremental merges on, wrote 3,300 tasks/s at 10 million (reading 182 GB through the file system in 4.5
    /// minutes: the merges re-read the growing index); and one statement over every row held one transaction over all.
    /// </summary>
    private static async Task SqliteTextAsync(SqliteConnection connection, Action<string> progress)
    {
        await ExecAsync(connection, SqliteTextBefore);
        var last = await ScalarAsync(connection, "SELECT coalesce(max(rowid), 0) FROM \"JobLogTasks\"");
        await using var command = connection.CreateCommand();
        command.CommandText = SqliteTextRange;
        command.CommandTimeout = 3600;
        var from = command.Parameters.Add(new SqliteParameter("$from", 0L));
        var to = command.Parameters.Add(new SqliteParameter("$to", 0L));
        for (var start = 0L; start < last; start += TextRange)
        {
            await using var transaction = connection.BeginTransaction();
            command.Transaction = transaction;
            from.Value = start;
            to.Value = start + TextRange;
            await command.ExecuteNonQueryAsync();
            await transaction.CommitAsync();
            progress($"bulk: FTS5 index of the tasks, rowid {Math.Min(start + TextRange, last):N0} / {last:N0}");
        }

        command.Transaction = null;
        await ExecAsync(connection, SqliteTextAfter);
        progress("bulk: FTS5 index of the tasks built (not merged), the runs' errors indexed, the watermark set");
    }

    private static async Task<long> ScalarAsync(DbConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(await command.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    /// <param name="indexChunks">SQLite: index each chunk's rows in the search index in its transaction, as the writer does (the bulk path builds the index after).</param>
    private static Task<long> TableAsync(
        DbConnection connection, string table, string[] columns, int count, Func<int, IReadOnlyList<object?[]>> rows, Action<string> progress, bool indexChunks = true) =>
        connection is SqliteConnection sqlite
            ? SqliteAsync(sqlite, table, columns, count, rows, progress, indexChunks)
            : PostgresAsync((NpgsqlConnection)connection, table, columns, count, rows, progress);

    /// <param name="sqlite">A SQLite ledger (else PostgreSQL).</param>
    /// <param name="connectionString">The ledger's connection string.</param>
    /// <param name="data">The rows.</param>
    /// <param name="progress">Progress lines.</param>
    /// <param name="partitioned">
    /// A partitioned PostgreSQL ledger: each row also carries its partition key, computed as the writer's statements
    /// compute it (from the task's id for tasks and runs, from their own ids for requests and commands).
    /// </param>
    public static async Task<long> FillAsync(bool sqlite, string connectionString, ScaleData data, Action<string> progress, bool partitioned = false)
    {
        var rows = 0L;
        if (partitioned)
        {
            const string key = Key;
            rows += await TableAsync(sqlite, connectionString, "JobLogTasks", [.. ScaleData.TaskColumns, key], data.Tasks, i => [Keyed(data.Task(i).Task, 0)], progress);
            rows += await TableAsync(sqlite, connectionString, "JobLogTaskRuns", [.. ScaleData.RunColumns, key], data.Tasks, i => data.Task(i).Runs.Select(r => Keyed(r, 1)).ToList(), progress);

            // The logs are partitioned with the tasks, keyed by their own ids.
            rows += await TableAsync(sqlite, connectionString, "JobLogInputRequests", [.. ScaleData.RequestColumns, key], data.Requests, i => [Keyed(data.Request(i), 0)], progress);
            rows += await TableAsync(sqlite, connectionString, "JobLogCommands", [.. ScaleData.CommandColumns, key], data.Commands, i => [Keyed(data.Command(i), 0)], progress);
            return rows;
        }

        rows += await TableAsync(sqlite, connectionString, "JobLogTasks", ScaleData.TaskColumns, data.Tasks, i => [data.Task(i).Task], progress);
        rows += await TableAsync(sqlite, connectionString, "JobLogTaskRuns", ScaleData.RunColumns, data.Tasks, i => data.Task(i).Runs, progress);
        rows += await TableAsync(sqlite, connectionString, "JobLogInputRequests", ScaleData.RequestColumns, data.Requests, i => [data.Request(i)], progress);
        rows += await TableAsync(sqlite, connectionString, "JobLogCommands", ScaleData.CommandColumns, data.Commands, i => [data.Command(i)], progress);
        return rows;
    }

    private const string Key = JobLog.Storage.Partitioning.PartitionDay.Column;

    /// <summary>A row with its partition key, as the writer's statements compute it (from the task's id for tasks and runs, from their own ids for the logs).</summary>
    private static object?[] Keyed(object?[] row, int idColumn) => [.. row, JobLog.Storage.Partitioning.PartitionDay.Of((Guid)row[idColumn]!)];

    internal static async Task<long> TableAsync(
        bool sqlite, string connectionString, string table, string[] columns, int count, Func<int, IReadOnlyList<object?[]>> rows, Action<string> progress)
    {
        await using DbConnection connection = sqlite ? new SqliteConnection(connectionString + ";Pooling=False") : new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        if (connection is SqliteConnection)
        {
            await ExecAsync(connection, "PRAGMA synchronous=NORMAL; PRAGMA cache_size=-200000;");
        }

        return await TableAsync(connection, table, columns, count, rows, progress);
    }

    private static async Task<long> SqliteAsync(
        SqliteConnection connection, string table, string[] columns, int count, Func<int, IReadOnlyList<object?[]>> rows, Action<string> progress, bool indexChunks)
    {
        await using var insert = connection.CreateCommand();
        insert.CommandText = $"INSERT INTO \"{table}\" ({string.Join(", ", columns.Select(c => $"\"{c}\""))}) " +
            $"VALUES ({string.Join(", ", columns.Select((_, i) => "$p" + i.ToString(CultureInfo.InvariantCulture)))})";
        var parameters = columns.Select((_, i) => insert.Parameters.Add(new SqliteParameter("$p" + i.ToString(CultureInfo.InvariantCulture), null))).ToArray();
        // The search index follows a watermark (SqliteSearch): each chunk's rows are indexed in its transaction, as the
        // writer's bulk steps do. Without (the bulk path, which indexes after), the watermark still moves past each chunk:
        // the bench's own host has a writer, and its next commit (the host's heartbeat) would otherwise index every row
        // past the watermark in one transaction, holding the file locked (it did, 10 minutes into the bulk path's index
        // build at 10 million: "database is locked").
        await using var index = connection.CreateCommand();
        index.CommandText = $"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{JobLog.Storage.Sqlite.SqliteSearch.Watermark}'";
        var indexed = table is "JobLogTasks" or "JobLogTaskRuns" && (long)(await index.ExecuteScalarAsync())! > 0;
        index.CommandText = indexChunks ? JobLog.Storage.Sqlite.SqliteSearch.IndexPending : SqliteWatermark;
        index.CommandTimeout = 3600;
        // The request and command search index (SqliteLogSearch) follows its own watermark: each chunk's rows indexed in
        // its transaction, or the host's writer would index them all in its first transaction.
        await using var logIndex = connection.CreateCommand();
        logIndex.CommandText = JobLog.Storage.Sqlite.SqliteLogSearch.Present;
        var logIndexed = table is "JobLogInputRequests" or "JobLogOutputRequests" or "JobLogCommands" && (long)(await logIndex.ExecuteScalarAsync())! > 0;
        logIndex.CommandText = JobLog.Storage.Sqlite.SqliteLogSearch.IndexPending;
        logIndex.CommandTimeout = 3600;
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

            if (logIndexed)
            {
                logIndex.Transaction = transaction;
                await logIndex.ExecuteNonQueryAsync();
            }

            await transaction.CommitAsync();
            Progress(progress, table, start + Chunk, count);
        }

        return written;
    }

    private static async Task<long> PostgresAsync(
        NpgsqlConnection connection, string table, string[] columns, int count, Func<int, IReadOnlyList<object?[]>> rows, Action<string> progress)
    {
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
