using JobLog.Storage;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.PostgreSql;

/// <summary>
/// Processes that start together on an empty PostgreSQL ledger (a deployment of several replicas, a ledger database
/// dropped and made again under load) migrate it together: each must end with the schema, none with a failed migration.
/// </summary>
public class ConcurrentMigrationTests
{
    [Test]
    [CancelAfter(120_000)]
    public async Task ProcessesMigratingAnEmptyLedgerTogether_AllSucceed()
    {
        for (var round = 0; round < 4; round++)
        {
            var ledger = await TestLedger.PostgresAsync();
            var hosts = new List<LedgerHost>();
            try
            {
                for (var i = 0; i < 3; i++)
                {
                    hosts.Add(await LedgerHost.StartAsync(ledger, start: false));
                }

                var schemas = hosts.Select(h => ActivatorUtilities.CreateInstance<LedgerSchema>(h.Services)).ToList();
                var migrations = schemas.Select(s => Task.Run(() => s.TryMigrateAsync(CancellationToken.None))).ToArray();
                var failures = new List<string>();
                foreach (var migration in migrations)
                {
                    try
                    {
                        await migration;
                    }
                    catch (Exception ex)
                    {
                        failures.Add(ex.GetType().Name + ": " + ex.Message);
                    }
                }

                Assert.That(failures, Is.Empty, $"round {round}");
            }
            finally
            {
                foreach (var host in hosts)
                {
                    await host.DisposeAsync();
                }
            }
        }
    }

    /// <summary>
    /// A ledger whose connection string allows one pooled connection (<c>Maximum Pool Size=1</c>): the migration lock's
    /// connection must not take the pool's only connection, which the migration itself then waits for. Before, the
    /// migration failed with "The connection pool has been exhausted" after the pool's timeout, at every retry.
    /// </summary>
    [Test]
    [CancelAfter(60_000)]
    public async Task ALedgerWithAPoolOfOneConnection_Migrates()
    {
        var created = await TestLedger.PostgresAsync();
        var ledger = TestLedger.ExistingPostgres(
            new Npgsql.NpgsqlConnectionStringBuilder(created.ConnectionString) { MaxPoolSize = 1, Timeout = 3 }.ConnectionString);
        await using var host = await LedgerHost.StartAsync(ledger, start: false);
        try
        {
            var schema = ActivatorUtilities.CreateInstance<LedgerSchema>(host.Services);
            Assert.That(async () => await schema.TryMigrateAsync(CancellationToken.None), Throws.Nothing);
        }
        finally
        {
            Npgsql.NpgsqlConnection.ClearAllPools();
            await created.DisposeAsync();
        }
    }
}
