using System.Text.RegularExpressions;
using JobLog.Storage.Sqlite;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// The statements that stand in for the per-row triggers at the end of each of the writer's batches
/// (<see cref="SqliteWriterTriggers"/>: the search index, the rollups) read the batch's own rows, found by rowid from the
/// batch's marker. A plan that scans the table, or a whole index of it, makes every batch read the ledger: the task counts'
/// <c>GROUP BY "State", "Name", "IsInternal"</c> walked the covering index (Name, State, DispatchedAt) of every task ever
/// written, so the writer's CPU grew with the ledger (writer bench, 60,000 messages: 130 µs a message in this phase
/// against 18 at 6,000; session 26).
/// </summary>
public class SqliteWriterBulkPlanTests
{
    private static readonly Dictionary<string, string> BulkStatements = new()
    {
        ["task search text"] = SqliteWriterTriggers.IndexTasks,
        ["run search text"] = SqliteWriterTriggers.IndexRuns,
        ["task counts"] = SqliteWriterTriggers.CountTasks,
        ["run counts"] = SqliteWriterTriggers.CountRuns,
        ["changed task counts"] = SqliteWriterTriggers.CountChanges,
    };

    private static IEnumerable<string> BulkStatementNames => BulkStatements.Keys;

    private static string Insert(int count) =>
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " + count + ") " +
        "INSERT INTO \"JobLogTasks\" (\"Id\", \"Name\", \"Input\", \"DispatchedAt\", \"Stop\", \"IsSetAsStale\", \"State\", \"IsInternal\") " +
        "SELECT upper(hex(randomblob(16))), 'Name' || (i % 7), 'row ' || i, '2026-03-01 08:00:00', '2026-03-01 08:00:01', 0, 3, 0 FROM n";

    [TestCaseSource(nameof(BulkStatementNames))]
    public async Task ABulkStatement_ReadsTheBatchsRowsByRowid_NeverTheWholeTableOrAnIndexOfIt(string name)
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        await SqliteWriterTriggersTests.ExecAsync(host.Ledger.ConnectionString, Insert(3000));
        await using var connection = new SqliteConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await ExecAsync(connection, SqliteWriterTriggers.CreateMarker);
        await ExecAsync(connection, SqliteWriterTriggers.CreateBefore);

        // Planned as start-up's statistics leave it (an empty ledger), and again once the statistics know the rows.
        foreach (var analyzed in new[] { false, true })
        {
            if (analyzed)
            {
                await ExecAsync(connection, "ANALYZE");
            }

            foreach (var statement in BulkStatements[name].Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var plan = await PlanAsync(connection, statement);
                Assert.That(plan, Is.Not.Empty);
                // The task and run tables (aliased t in the changed counts) only by rowid: no scan, no index range.
                Assert.That(plan.Where(line => Regex.IsMatch(line, @"^(SCAN|SEARCH) (main\.)?(""?JobLog(Tasks|TaskRuns)""?|t)\b")),
                    Has.All.Contains("USING INTEGER PRIMARY KEY"),
                    $"the {name} ({(analyzed ? "analyzed" : "as started")}) read every row of the ledger:\n{string.Join("\n", plan)}\nfor {statement}");
            }
        }
    }

    private static async Task<List<string>> PlanAsync(SqliteConnection connection, string statement)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = "EXPLAIN QUERY PLAN " + statement;
        var lines = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            lines.Add(reader.GetString(3));
        }

        return lines;
    }

    private static async Task ExecAsync(SqliteConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }
}
