using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace JobLog.Bench.Infrastructure;

/// <summary>What a run left in the ledger: counts by state, and the bytes the task tables take.</summary>
internal sealed record LedgerContents(long Tasks, long Runs, long SucceededTasks, long SucceededRuns, long Bytes, string BytesSource)
{
    public double BytesPerTask => Tasks == 0 ? 0 : (double)Bytes / Tasks;

    /// <summary>What the run added to a ledger that held <paramref name="before"/> (--ledger-tasks), or this when it held nothing.</summary>
    public LedgerContents Minus(LedgerContents? before) => before is null
        ? this
        : this with
        {
            Tasks = Tasks - before.Tasks,
            Runs = Runs - before.Runs,
            SucceededTasks = SucceededTasks - before.SucceededTasks,
            SucceededRuns = SucceededRuns - before.SucceededRuns,
            Bytes = Bytes - before.Bytes,
        };
}

internal static class LedgerInspector
{
    private const string Tasks = "\"JobLogTasks\"";
    private const string Runs = "\"JobLogTaskRuns\"";

    public static async Task<LedgerContents> InspectAsync(ThrowawayLedger ledger)
    {
        if (ledger.Provider == LedgerProvider.Sqlite)
        {
            await using var sqlite = new SqliteConnection(ledger.ConnectionString + ";Pooling=False");
            await sqlite.OpenAsync();
            // Fold the WAL into the file so the page counts are the table's.
            await ScalarAsync(sqlite, "PRAGMA wal_checkpoint(TRUNCATE)");
            var (tasks, runs, okTasks, okRuns) = await CountsAsync(sqlite);
            long bytes;
            string source;
            try
            {
                // dbstat: pages of the two task tables and their indexes only.
                bytes = await ScalarAsync(sqlite,
                    "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master WHERE tbl_name IN ('JobLogTasks', 'JobLogTaskRuns'))");
                source = "dbstat: tables + indexes";
            }
            catch (SqliteException)
            {
                var pages = await ScalarAsync(sqlite, "PRAGMA page_count") - await ScalarAsync(sqlite, "PRAGMA freelist_count");
                bytes = pages * await ScalarAsync(sqlite, "PRAGMA page_size");
                source = "file pages in use";
            }

            return new LedgerContents(tasks, runs, okTasks, okRuns, bytes, source);
        }

        await using var pg = new NpgsqlConnection(ledger.ConnectionString);
        await pg.OpenAsync();
        var counts = await CountsAsync(pg);
        var total = await ScalarAsync(pg, $"SELECT pg_total_relation_size('{Tasks}') + pg_total_relation_size('{Runs}')");
        return new LedgerContents(counts.Tasks, counts.Runs, counts.OkTasks, counts.OkRuns, total, "pg_total_relation_size (heap + indexes + TOAST, not vacuumed)");
    }

    private static async Task<(long Tasks, long Runs, long OkTasks, long OkRuns)> CountsAsync(DbConnection connection) =>
        (await ScalarAsync(connection, $"SELECT COUNT(*) FROM {Tasks}"),
         await ScalarAsync(connection, $"SELECT COUNT(*) FROM {Runs}"),
         await ScalarAsync(connection, $"SELECT COUNT(*) FROM {Tasks} WHERE \"State\" = 3"),
         await ScalarAsync(connection, $"SELECT COUNT(*) FROM {Runs} WHERE \"State\" = 2"));

    public static async Task<long> ScalarAsync(DbConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.CommandTimeout = 600;
        var value = await command.ExecuteScalarAsync();
        return value is null or DBNull ? 0 : Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
    }
}
