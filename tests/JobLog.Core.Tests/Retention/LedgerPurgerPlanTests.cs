using JobLog.Retention;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.Core.Tests.Retention;

/// <summary>The purge's batch selection on SQLite: served in order by an index, not sorted per batch (docs/scale.md).</summary>
public class LedgerPurgerPlanTests
{
    [Test]
    public async Task PurgeOfSuccesses_OnSqlite_WalksAnIndexInOrderWithoutSortingEveryBatch()
    {
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(LedgerProvider.Sqlite));

        var plan = await host.QueryAsync(async db =>
        {
            var sql = LedgerPurger.Candidates(db, LedgerKind.Tasks, successes: true, new DateTime(2026, 3, 1, 0, 0, 0, DateTimeKind.Utc))
                .Take(1000).ToQueryString();
            var lines = sql.Split('\n');
            await db.Database.OpenConnectionAsync();
            await using var command = db.Database.GetDbConnection().CreateCommand();
            command.CommandText = "EXPLAIN QUERY PLAN " + string.Join('\n', lines.Where(l => !l.StartsWith(".param", StringComparison.Ordinal)));
            foreach (var line in lines.Where(l => l.StartsWith(".param set", StringComparison.Ordinal)))
            {
                var parts = line.Split(' ', 4);
                var parameter = command.CreateParameter();
                parameter.ParameterName = parts[2];
                parameter.Value = parts[3].Trim('\'', '\r');
                command.Parameters.Add(parameter);
            }

            var rows = new List<string>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                rows.Add(reader.GetString(3));
            }

            return string.Join("\n", rows);
        });

        Assert.That(plan, Does.Contain("USING INDEX"));
        Assert.That(plan, Does.Not.Contain("TEMP B-TREE"), "each batch would sort every succeeded task");
    }
}
