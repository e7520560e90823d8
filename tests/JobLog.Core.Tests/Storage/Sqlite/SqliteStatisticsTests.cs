using JobLog.Storage;
using JobLog.Sweeping;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// Where JobLog refreshes SQLite's planner statistics (<c>PRAGMA optimize</c>): at start-up and before a sweep, never as
/// a side effect of opening a connection. Analyzing a table changes the schema, and a statement another connection was
/// preparing through the search index's triggers at that moment failed with "no such table: JobLogTasks" (the CI run of
/// session 8: <c>SqliteSearchWatermarkTests</c>, about one run in five).
/// </summary>
public class SqliteStatisticsTests
{
    private const string SchemaVersion = "PRAGMA schema_version";
    private const string TaskStatistics = "SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'JobLogTasks'";

    private static string Insert(int count) =>
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " + count + ") " +
        "INSERT INTO \"JobLogTasks\" (\"Id\", \"Name\", \"Input\", \"DispatchedAt\", \"IsSetAsStale\", \"State\", \"IsInternal\") " +
        "SELECT upper(hex(randomblob(16))), 'Hand', 'row ' || i, '2026-03-01 08:00:00', 0, 1, 0 FROM n";

    [Test]
    public async Task OpeningAConnection_AfterTheLedgerGrew_DoesNotChangeTheSchema()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var connectionString = host.Ledger.ConnectionString;
        // Grown a thousandfold since start-up analyzed it: what made PRAGMA optimize analyze the table again.
        await SqliteWriterTriggersTests.ExecAsync(connectionString, Insert(2000));
        var before = await SqliteWriterTriggersTests.ScalarAsync(connectionString, SchemaVersion);

        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        for (var i = 0; i < 3; i++)
        {
            await using var executor = await database.OpenAsync(connectionString, CancellationToken.None);
        }

        Assert.That(await SqliteWriterTriggersTests.ScalarAsync(connectionString, SchemaVersion), Is.EqualTo(before),
            "the heartbeat, the scheduler and the sweeper's extra connections open one every few seconds");
    }

    [Test]
    public async Task ASweep_RefreshesTheStatistics_OfALedgerThatGrew()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var connectionString = host.Ledger.ConnectionString;
        await SqliteWriterTriggersTests.ExecAsync(connectionString, "DELETE FROM sqlite_stat1"); // start-up analyzed the empty ledger
        await SqliteWriterTriggersTests.ExecAsync(connectionString, Insert(2000));
        Assert.That(await SqliteWriterTriggersTests.ScalarAsync(connectionString, TaskStatistics), Is.Zero);

        await host.Services.GetRequiredService<TaskLogSweeper>().SweepOnceAsync(CancellationToken.None);

        Assert.That(await SqliteWriterTriggersTests.ScalarAsync(connectionString, TaskStatistics), Is.GreaterThan(0),
            "the sweeper's set-based statements need them (93 s instead of 7 per sweep of 1,000,000 tasks without)");
    }
}
