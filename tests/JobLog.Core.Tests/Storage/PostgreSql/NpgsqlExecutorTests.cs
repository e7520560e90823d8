using System.Globalization;
using System.Text.RegularExpressions;
using JobLog.Storage;
using JobLog.Storage.Partitioning;
using JobLog.Storage.PostgreSql;
using JobLog.Testing;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.PostgreSql;

public class NpgsqlExecutorTests
{
    [Test]
    public async Task Statement_WithAParameterLeftUnbound_FailsTheCommit_AndWritesNothing()
    {
        await using var host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync());
        var ledger = host.Ledger;
        var database = LedgerDatabase.For(LedgerProvider.PostgreSql);
        await using var executor = await database.OpenAsync(ledger.ConnectionString, CancellationToken.None);
        await using (var create = executor.Connection.CreateCommand())
        {
            create.CommandText = "CREATE TABLE pairs (a text, b text)";
            await create.ExecuteNonQueryAsync();
        }

        var plan = new LedgerPlan(database);
        plan.Other.Add("INSERT INTO pairs (a, b) VALUES (@p0, @p1)", "first", "second");
        plan.Other.Add("INSERT INTO pairs (a, b) VALUES (@p0, @p1)", "only one value");

        Assert.ThrowsAsync(Is.InstanceOf<NpgsqlException>(), () => executor.CommitAsync(plan, TimeSpan.FromSeconds(5), CancellationToken.None));

        await using var fresh = await database.OpenAsync(ledger.ConnectionString, CancellationToken.None);
        await using var count = fresh.Connection.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM pairs";
        Assert.That(await count.ExecuteScalarAsync(), Is.EqualTo(0L));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task TheArrayStatements_UnnestTheirArraysInTheSelectList(bool partitioned)
    {
        await using var host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o => o.Partitioning.Enabled = partitioned);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        string[] statements = partitioned
            ? [PartitionedStatements.UpsertDispatchedTasks, PartitionedStatements.InsertTasksIfMissing, PartitionedStatements.UpsertRuns,
               PostgreSqlStatements.FinishRuns, PostgreSqlStatements.SetNextRetries]
            : [PostgreSqlStatements.UpsertDispatchedTasks, PostgreSqlStatements.InsertTasksIfMissing, PostgreSqlStatements.UpsertRuns,
               PostgreSqlStatements.FinishRuns, PostgreSqlStatements.SetNextRetries];
        foreach (var sql in statements)
        {
            await using var command = new NpgsqlCommand("EXPLAIN " + sql, connection);
            var parameters = Regex.Matches(sql, @"\$(\d+)").Max(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
            for (var i = 0; i < parameters; i++)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = DBNull.Value });
            }

            var plan = new List<string>();
            await using (var reader = await command.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    plan.Add(reader.GetString(0));
                }
            }

            // unnest($1, $2, …) in FROM is a function scan that copies every array into a tuple store of its own first.
            Assert.That(plan, Has.None.Contains("Function Scan").And.Some.Contains("ProjectSet"), sql + "\n" + string.Join("\n", plan));
        }
    }
}
