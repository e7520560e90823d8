using JobLog.Core.Tests.Querying;
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

        var plan = await host.QueryAsync(db => SqlitePlan.OfAsync(db,
            LedgerPurger.Candidates(db, LedgerKind.Tasks, successes: true, new DateTime(2026, 3, 1, 0, 0, 0, DateTimeKind.Utc)).Take(1000).ToQueryString()));

        Assert.That(plan, Does.Contain("USING INDEX"));
        Assert.That(plan, Does.Not.Contain("TEMP B-TREE"), "each batch would sort every succeeded task");
    }
}
