using System.Text.RegularExpressions;
using JobLog.Storage;
using JobLog.Storage.Sqlite;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using SQLitePCL;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// What SQLite compiles the writer's per-row statements into, on a migrated ledger. A partial index's filter is evaluated
/// for every row a statement writes, and a filter with an IN list of more than two constants (<c>"State" IN (1, 2, 5)</c>)
/// opens a temporary b-tree each time: on a task insert once, on a derivation twice, about half the derivation's CPU
/// (docs/benchmarks.md, "Session 11 (sqlwriter)"); so does an <c>INSERT … SELECT</c> that reads the table it inserts into.
/// </summary>
public class SqliteWriterProgramTests
{
    private static readonly (string Name, string Sql)[] PerRowStatements =
    [
        ("task insert", SqliteStatements.InsertTaskIfMissing),
        ("producer fields", SqliteStatements.UpdateProducerFields),
        ("run insert", SqliteStatements.UpsertRun),
        ("derivation", LedgerSql.DeriveTask),
        ("task probe", SqliteStatements.ProbeTask),
        ("derivation from the plan", SqliteStatements.SetDerived),
        ("run finish", LedgerSql.FinishRun),
    ];

    [TestCaseSource(nameof(PerRowStatements))]
    public async Task APerRowStatement_OpensNoTemporaryTable((string Name, string Sql) statement)
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        await using var connection = new SqliteConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        // As the writer prepares them: its batches run with the connection's triggers off (SqliteWriterTriggers), so no
        // trigger program is compiled into the statement.
        Assert.That(raw.sqlite3_db_config(connection.Handle, 1003, 0, out _), Is.EqualTo(raw.SQLITE_OK));
        await using var command = connection.CreateCommand();
        command.CommandText = "EXPLAIN " + statement.Sql;
        foreach (var name in Regex.Matches(statement.Sql, "@p[0-9]+").Select(m => m.Value).Distinct())
        {
            command.Parameters.AddWithValue(name, DBNull.Value);
        }

        var opcodes = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                opcodes.Add(reader.GetString(1));
            }
        }

        Assert.That(opcodes, Is.Not.Empty);
        Assert.That(opcodes, Has.None.EqualTo("OpenEphemeral"), $"the {statement.Name} builds a temporary b-tree for every row it writes");
    }
}
