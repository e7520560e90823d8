using System.Data.Common;
using JobLog.Bench.Scale;
using JobLog.Querying;
using JobLog.Storage.Partitioning;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Bench;

/// <summary>
/// The scale bench's bulk fill (indexes and triggers off, then built in one statement each; bench/JobLog.Bench/Scale,
/// compiled in here) leaves the ledger its fill through every trigger leaves: the same rollups, search index, indexes and
/// triggers, and the same search results.
/// </summary>
/// <remarks>
/// Partitioned (PostgreSQL partitioned by day): the rows in the same partitions, the counts and the day rollups the
/// triggers keep there (the minute rollups are views over the day rollups), the search's side table row by row.
/// </remarks>
[TestFixture(LedgerProvider.Sqlite, false)]
[TestFixture(LedgerProvider.PostgreSql, false)]
[TestFixture(LedgerProvider.PostgreSql, true)]
public class ScaleFillTests(LedgerProvider provider, bool partitioned)
{
    private static readonly DateTime Now = new(2026, 3, 11, 8, 0, 0, DateTimeKind.Utc);

    private static readonly string[] Rollups =
    [
        """SELECT "State", "Name", "IsInternal", "Count" FROM "JobLogTaskCounts" ORDER BY 1, 2, 3""",
        """SELECT "Minute", "State", "Name", "IsInternal", "Count" FROM "JobLogTaskMinutes" ORDER BY 1, 2, 3, 4, 5""",
        """SELECT "Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds" FROM "JobLogRunMinutes" ORDER BY 1, 2, 3, 4, 5""",
        """SELECT "Hour", "State", "Name", "IsInternal", "Count" FROM "JobLogTaskHours" ORDER BY 1, 2, 3, 4, 5""",
        """SELECT "Hour", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds" FROM "JobLogRunHours" ORDER BY 1, 2, 3, 4, 5""",
    ];

    private static readonly string[] Partitioned =
    [
        """SELECT "PartitionDay", "Minute", "State", "Name", "IsInternal", "Count" FROM "JobLogTaskDays" ORDER BY 1, 2, 3, 4, 5""",
        """SELECT "PartitionDay", "Minute", "Name", "Runs", "TotalMilliseconds", "MaxMilliseconds" FROM "JobLogRunDays" ORDER BY 1, 2, 3""",
        """
        SELECT 'tasks', tableoid::regclass::text, COUNT(*) FROM "JobLogTasks" GROUP BY 2
        UNION ALL SELECT 'runs', tableoid::regclass::text, COUNT(*) FROM "JobLogTaskRuns" GROUP BY 2
        UNION ALL SELECT 'requests', tableoid::regclass::text, COUNT(*) FROM "JobLogInputRequests" GROUP BY 2
        UNION ALL SELECT 'commands', tableoid::regclass::text, COUNT(*) FROM "JobLogCommands" GROUP BY 2
        ORDER BY 1, 2
        """,
    ];

    private const string SearchText = """SELECT "TaskId", "IsError", "Text" FROM "JobLogSearchText" ORDER BY 1, 2, 3""";

    [Test]
    public async Task BulkFill_LeavesTheLedgerTheTriggersLeave()
    {
        var data = new ScaleData(3000, 3, Now);
        var sqlite = provider == LedgerProvider.Sqlite;
        await using var triggered = await StartAsync(data);
        await using var bulk = await StartAsync(data);
        await ScaleFill.FillAsync(sqlite, triggered.Ledger.ConnectionString, data, _ => { }, partitioned);
        await ScaleFill.BulkFillAsync(sqlite, bulk.Ledger.ConnectionString, data, _ => { }, partitioned);

        foreach (var sql in Rollups.Concat(partitioned ? Partitioned : []).Concat(sqlite ? [] : [SearchText]).Concat([Schema(sqlite)]))
        {
            var expected = await RowsAsync(triggered, sql);
            Assert.That(expected, Is.Not.Empty, sql);
            Assert.That(await RowsAsync(bulk, sql), Is.EqualTo(expected), sql);
        }

        if (sqlite)
        {
            // The FTS5 index, trigram by trigram, and its own check.
            foreach (var table in new[] { "JobLogTaskText", "JobLogRunText" })
            {
                var vocabulary = $"""CREATE VIRTUAL TABLE temp."v_{table}" USING fts5vocab(main, "{table}", 'instance'); SELECT term, doc, col, offset FROM temp."v_{table}" ORDER BY 1, 2, 3, 4""";
                var expected = await RowsAsync(triggered, vocabulary);
                Assert.That(expected, Is.Not.Empty);
                Assert.That(await RowsAsync(bulk, vocabulary), Is.EqualTo(expected), table);
                await RowsAsync(bulk, $"""INSERT INTO "{table}"("{table}", rank) VALUES ('integrity-check', 0)""");
            }

            // Every row indexed is behind the watermark (rows past it are checked one by one, and indexed again by the writer).
            const string watermark = """SELECT "Tasks", "Runs" FROM "JobLogSearchWatermark" """;
            Assert.That(await RowsAsync(bulk, watermark), Is.EqualTo(await RowsAsync(triggered, watermark)).And.Not.EqualTo(new[] { "0 | 0" }), "the watermark");
        }

        foreach (var search in new[] { ScaleData.RareTerm(1234), "gateway did not", data.TaskId(77).ToString(), "Currency=USD" })
        {
            Assert.That(await SearchAsync(bulk, search), Is.EqualTo(await SearchAsync(triggered, search)).And.Not.Empty, search);
        }
    }

    /// <summary>A migrated ledger; partitioned, with the data's day partitions made (as the scale bench makes them).</summary>
    private async Task<LedgerHost> StartAsync(ScaleData data)
    {
        var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), o => o.Partitioning.Enabled = partitioned);
        if (partitioned)
        {
            await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
            await connection.OpenAsync();
            await LedgerPartitioning.EnsureAheadAsync(connection, data.First, 3 + 4, CancellationToken.None);
        }

        return host;
    }

    // In full order: a partitioned table's row triggers are cloned on every partition under the same name.
    private static string Schema(bool sqlite) => sqlite
        ? """SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY 1, 2"""
        : """
          SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
          UNION ALL SELECT 'trigger', tgname, pg_get_triggerdef(oid) || ' ' || tgenabled::text FROM pg_trigger WHERE NOT tgisinternal
          ORDER BY 1, 2, 3
          """;

    /// <summary>Every page of the search, through the index only (no window of newest rows checked one by one).</summary>
    private static async Task<List<Guid>> SearchAsync(LedgerHost host, string text)
    {
        var ids = new List<Guid>();
        string? cursor = null;
        do
        {
            await using var scope = host.Services.CreateAsyncScope();
            var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
            queries.SearchWindow = 0;
            var page = await queries.TasksAsync(new TaskFilter { Search = text, Limit = 500, After = cursor is null ? null : Cursor.Parse(cursor) }, default);
            ids.AddRange(page.Items.Select(r => r.Id));
            cursor = page.NextCursor;
        }
        while (cursor is not null);
        return ids;
    }

    private static async Task<List<string>> RowsAsync(LedgerHost host, string sql)
    {
        await using DbConnection connection = host.Ledger.Provider == LedgerProvider.Sqlite
            ? new SqliteConnection(host.Ledger.ConnectionString)
            : new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync())
        {
            rows.Add(string.Join(" | ", Enumerable.Range(0, reader.FieldCount).Select(i => Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture))));
        }

        return rows;
    }
}
