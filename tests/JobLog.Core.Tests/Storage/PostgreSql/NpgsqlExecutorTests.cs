using JobLog.Storage;
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
}
