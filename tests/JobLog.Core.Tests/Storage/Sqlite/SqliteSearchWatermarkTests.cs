using JobLog.Recording;
using JobLog.Storage;
using JobLog.Storage.Sqlite;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// The SQLite search index up to a watermark (<see cref="SqliteSearch.Watermark"/>): the rows past it are indexed in
/// bulk steps by the writer, the watermark never lets a row go unindexed, and a ledger with the former INSERT triggers
/// is upgraded at start-up.
/// </summary>
public class SqliteSearchWatermarkTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    private const string Watermark = "SELECT \"Tasks\" FROM \"JobLogSearchWatermark\"";
    private const string MaxRowid = "SELECT coalesce(max(rowid), 0) FROM \"JobLogTasks\"";

    private static string Match(string text) =>
        $"SELECT COUNT(*) FROM \"JobLogTaskText\" WHERE \"JobLogTaskText\" MATCH '{SqliteSearch.Phrase(text).Replace("'", "''", StringComparison.Ordinal)}'";

    private static Task<long> ScalarAsync(LedgerHost host, string sql) => SqliteWriterTriggersTests.ScalarAsync(host.Ledger.ConnectionString, sql);

    private static Task ExecAsync(LedgerHost host, string sql) => SqliteWriterTriggersTests.ExecAsync(host.Ledger.ConnectionString, sql);

    private static string Insert(int i, string input) =>
        "INSERT INTO \"JobLogTasks\" (\"Id\", \"Name\", \"Input\", \"DispatchedAt\", \"IsSetAsStale\", \"State\", \"IsInternal\") " +
        $"VALUES ('{Guid.NewGuid().ToString().ToUpperInvariant()}', 'Hand', '{input}', '2026-03-01 08:00:{i:00}', 0, 1, 0);";

    [Test]
    public async Task DeletingTheNewestIndexedRows_LowersTheWatermark_SoARowidHandedOutAgainIsNotTakenForIndexed()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        await ExecAsync(host, Insert(1, "first row") + Insert(2, "second row") + Insert(3, "third row"));
        await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
        Assert.That(await ScalarAsync(host, Watermark), Is.EqualTo(await ScalarAsync(host, MaxRowid)).And.EqualTo(3));

        // The two newest go; SQLite numbers the next row max(rowid) + 1 = 2 again.
        await ExecAsync(host, "DELETE FROM \"JobLogTasks\" WHERE \"Input\" IN ('second row', 'third row')");
        Assert.That(await ScalarAsync(host, Watermark), Is.EqualTo(1));
        Assert.That(await ScalarAsync(host, Match("third row")), Is.Zero, "a deleted row leaves the index");
        await ExecAsync(host, Insert(4, "reused rowid ORD-REUSED-1"));
        Assert.That(await ScalarAsync(host, MaxRowid), Is.EqualTo(2));

        await using var scope = host.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
        var found = await SqliteSearch.TasksContaining(db, "ord-reused", LedgerSql.LikePattern("ord-reused")).ToListAsync();
        Assert.That(found, Has.Count.EqualTo(1), "past the watermark: checked row by row");
        await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);
        Assert.That(await ScalarAsync(host, Match("ORD-REUSED-1")), Is.EqualTo(1), "and indexed by the next step");
        Assert.That(await SqliteSearch.TasksContaining(db, "ord-reused", LedgerSql.LikePattern("ord-reused")).ToListAsync(), Is.EqualTo(found));
    }

    [Test]
    public async Task ALedgerWithTheFormerInsertTriggers_IsUpgradedAtStartUp_WithEveryRowIndexed()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        // The ledger as the TaskSearchIndexes migration left it: the per-row INSERT triggers, no watermark.
        await ExecAsync(host, SqliteSearch.Drop + SqliteSearch.Create);
        await ExecAsync(host, Insert(1, "indexed by the old trigger ORD-OLD-1"));
        Assert.That(await ScalarAsync(host, Match("ORD-OLD-1")), Is.EqualTo(1));

        await host.QueryAsync(async db =>
        {
            await host.Services.GetRequiredService<LedgerDatabase>().ApplySearchIndexAsync(db, true, CancellationToken.None);
            return 0;
        });

        Assert.That(await ScalarAsync(host, Watermark), Is.EqualTo(await ScalarAsync(host, MaxRowid)), "every row the old triggers indexed is below the watermark");
        Assert.That(await ScalarAsync(host, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'JobLog%Text_Insert'"), Is.Zero);
        await ExecAsync(host, "UPDATE \"JobLogTasks\" SET \"Input\" = 'changed ORD-NEW-2' WHERE \"Name\" = 'Hand'");
        Assert.That(await ScalarAsync(host, Match("ORD-OLD-1")), Is.Zero, "an indexed row's change reaches the index");
        Assert.That(await ScalarAsync(host, Match("ORD-NEW-2")), Is.EqualTo(1));
    }

    [Test]
    public async Task TheWritersTransactions_IndexTheRowsPastTheWatermark_OnceAStepOfThemIsThere()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        var planner = new LedgerPlanner(database);
        await using var executor = await database.OpenAsync(host.Ledger.ConnectionString, CancellationToken.None);

        List<LedgerRecord> Batch(int count, string text) => [.. Enumerable.Range(0, count).Select(i => (LedgerRecord)new TaskDispatched(new TaskPayload
        {
            Id = Guid.NewGuid(), Name = "Charge", Input = $"{text}-{i}", TaskKwargs = "{}", DispatchedAt = T0.AddSeconds(i),
            EstimatedTimeOfFirstArrival = T0,
        }))];

        await planner.CommitAsync(executor, planner.Plan(Batch(10, "SMALL")), TimeSpan.FromSeconds(10), CancellationToken.None);
        Assert.That(await ScalarAsync(host, Match("SMALL-1")), Is.Zero, "ten rows: past the watermark, not indexed yet");

        await planner.CommitAsync(executor, planner.Plan(Batch((int)SqliteSearchIndexer.StepRows, "BULK")), TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.That(await ScalarAsync(host, Match("SMALL-1")), Is.EqualTo(1), "a step's worth: everything past the watermark is indexed");
        Assert.That(await ScalarAsync(host, Match("BULK-3999")), Is.EqualTo(1));
        Assert.That(await ScalarAsync(host, Watermark), Is.EqualTo(await ScalarAsync(host, MaxRowid)));
        await ExecAsync(host, "INSERT INTO \"JobLogTaskText\"(\"JobLogTaskText\", rank) VALUES ('integrity-check', 1);");
    }

    [Test]
    public async Task SearchIndexOff_DropsTheWatermark_AndTheWriterLeavesTheLedgerAlone()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        await host.QueryAsync(async db =>
        {
            await host.Services.GetRequiredService<LedgerDatabase>().ApplySearchIndexAsync(db, false, CancellationToken.None);
            return 0;
        });
        Assert.That(await ScalarAsync(host, "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'JobLogSearch%' OR name LIKE 'JobLog%Text%'"), Is.Zero);

        var database = LedgerDatabase.For(LedgerProvider.Sqlite);
        var planner = new LedgerPlanner(database);
        await using var executor = await database.OpenAsync(host.Ledger.ConnectionString, CancellationToken.None);
        var dispatch = new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "Charge", Input = "x", DispatchedAt = T0, EstimatedTimeOfFirstArrival = T0 });
        await planner.CommitAsync(executor, planner.Plan([dispatch]), TimeSpan.FromSeconds(10), CancellationToken.None);
        Assert.That(await ScalarAsync(host, "SELECT COUNT(*) FROM \"JobLogTasks\""), Is.EqualTo(1));
        SqliteConnection.ClearAllPools();
    }
}
