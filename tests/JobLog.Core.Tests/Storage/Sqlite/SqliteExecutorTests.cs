using JobLog.Storage;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

public class SqliteExecutorTests
{
    [Test]
    public async Task Statement_WithAParameterLeftUnbound_FailsTheCommit_AndWritesNothing()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var ledger = host.Ledger;
        await using (var setup = new SqliteConnection(ledger.ConnectionString))
        {
            await setup.OpenAsync();
            await using var create = setup.CreateCommand();
            create.CommandText = "CREATE TABLE pairs (a TEXT, b TEXT)";
            await create.ExecuteNonQueryAsync();
        }

        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        await using var executor = await database.OpenAsync(ledger.ConnectionString, CancellationToken.None);
        var plan = new LedgerPlan(database);
        plan.Other.Add("INSERT INTO pairs (a, b) VALUES (@p0, @p1)", "first", "second");
        plan.Other.Add("INSERT INTO pairs (a, b) VALUES (@p0, @p1)", "only one value");

        var error = Assert.ThrowsAsync<InvalidOperationException>(() => executor.CommitAsync(plan, TimeSpan.FromSeconds(5), CancellationToken.None));

        Assert.That(error!.Message, Does.Contain("@p1"));
        await using var count = executor.Connection.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM pairs";
        Assert.That(await count.ExecuteScalarAsync(), Is.EqualTo(0L));
    }

    [Test]
    public async Task Statement_WithAParameterNotNamedAfterItsPosition_IsRejectedWhenPrepared()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var ledger = host.Ledger;
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        await using var executor = await database.OpenAsync(ledger.ConnectionString, CancellationToken.None);
        var plan = new LedgerPlan(database);
        plan.Other.Add("SELECT @p0, @value", 1);

        var error = Assert.ThrowsAsync<InvalidOperationException>(() => executor.CommitAsync(plan, TimeSpan.FromSeconds(5), CancellationToken.None));

        Assert.That(error!.Message, Does.Contain("@value"));
    }

    [Test]
    public async Task Statement_GivenAValueForAParameterItDoesNotHave_FailsTheCommit()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var ledger = host.Ledger;
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        await using var executor = await database.OpenAsync(ledger.ConnectionString, CancellationToken.None);
        var plan = new LedgerPlan(database);
        plan.Other.Add("SELECT @p0", 1, "one too many");

        var error = Assert.ThrowsAsync<InvalidOperationException>(() => executor.CommitAsync(plan, TimeSpan.FromSeconds(5), CancellationToken.None));

        Assert.That(error!.Message, Does.Contain("@p1"));
    }
}
