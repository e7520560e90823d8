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
}
