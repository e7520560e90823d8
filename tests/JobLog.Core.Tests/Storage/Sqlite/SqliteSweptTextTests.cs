using JobLog.Storage;
using JobLog.Storage.Sqlite;
using JobLog.Sweeping;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// The sweeper's expiry text is kept out of SQLite's FTS5 index (<see cref="SqliteSearch.Swept"/>): indexing it in every run a
/// backlog sweep closes cost about a third of the sweep. The search still finds those runs (through the partial index
/// <see cref="SqliteSearch.SweptRuns"/>), by any part of the text, as a substring search does.
/// </summary>
public class SqliteSweptTextTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    private static Task<long> ScalarAsync(LedgerHost host, string sql) => SqliteWriterTriggersTests.ScalarAsync(host.Ledger.ConnectionString, sql);

    private static Task ExecAsync(LedgerHost host, string sql) => SqliteWriterTriggersTests.ExecAsync(host.Ledger.ConnectionString, sql);

    private static string RunMatches(string text) =>
        $"SELECT COUNT(*) FROM \"JobLogRunText\" WHERE \"JobLogRunText\" MATCH '{SqliteSearch.Phrase(text).Replace("'", "''", StringComparison.Ordinal)}'";

    private const string IntegrityCheck = "INSERT INTO \"JobLogRunText\"(\"JobLogRunText\", rank) VALUES ('integrity-check', 1);";

    // What the sweeper's third statement does to the ACTIVE runs of the tasks it expires.
    private static string Expire(Guid task) =>
        $"UPDATE \"JobLogTaskRuns\" SET \"State\" = 5, \"Stop\" = '2026-03-01 09:00:00', \"ErrorMessage\" = '{TaskLogSweeper.StaleRunError}' " +
        $"WHERE \"State\" = 1 AND \"TaskId\" = '{task.ToString().ToUpperInvariant()}'";

    private static async Task<Guid> ActiveTaskAsync(LedgerHost host, string input)
    {
        var task = new TaskLog { Id = Guid.NewGuid(), Name = "Charge", DispatchedAt = T0, State = TaskState.Active, Input = input };
        task.Runs.Add(new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = task.Id, Name = "Charge", ConsumerType = "ChargeConsumer", Start = T0.AddSeconds(1), State = TaskRunState.Active,
        });
        await host.QueryAsync(db =>
        {
            db.Add(task);
            return db.SaveChangesAsync();
        });
        return task.Id;
    }

    private static async Task<List<Guid>> FoundAsync(LedgerHost host, string text) => await host.QueryAsync(db =>
        SqliteSearch.TasksContaining(db, text, LedgerSql.LikePattern(text)).ToListAsync());

    [Test]
    public async Task ARunTheSweeperExpires_IsNotIndexed_AndIsFoundByAnyPartOfItsText()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var swept = await ActiveTaskAsync(host, "Charge(1)");
        var other = await ActiveTaskAsync(host, "Charge(2)");
        await SqliteWriterTriggersTests.IndexPendingAsync(host.Ledger.ConnectionString);

        await ExecAsync(host, Expire(swept));

        Assert.That(await ScalarAsync(host, RunMatches("went stale")), Is.Zero, "the expiry text is not in the FTS5 index");
        Assert.That(await FoundAsync(host, "went stale"), Is.EqualTo(new[] { swept }));
        Assert.That(await FoundAsync(host, "EXPIRED: THE TASK"), Is.EqualTo(new[] { swept }), "any case, as LIKE");
        Assert.That(await FoundAsync(host, TaskLogSweeper.StaleRunError), Is.EqualTo(new[] { swept }));
        Assert.That(await FoundAsync(host, "went stale before this run finished, again"), Is.Empty, "longer than the text: no match");
        Assert.That(await FoundAsync(host, "Charge(2)"), Is.EqualTo(new[] { other }));

        // The run's text changed again (a late outcome): the new text is indexed, the expiry text no longer matches.
        await ExecAsync(host, $"UPDATE \"JobLogTaskRuns\" SET \"State\" = 4, \"ErrorMessage\" = 'Card declined ORD-LATE-7' WHERE \"TaskId\" = '{swept.ToString().ToUpperInvariant()}'");
        Assert.That(await ScalarAsync(host, RunMatches("ORD-LATE-7")), Is.EqualTo(1));
        Assert.That(await FoundAsync(host, "went stale"), Is.Empty);
        Assert.That(await FoundAsync(host, "ord-late-7"), Is.EqualTo(new[] { swept }));
        await ExecAsync(host, IntegrityCheck);
    }

    [Test]
    public async Task ALedgerFromBeforeSession10_IsUpgradedAtStartUp_AndFindsTheRunsExpiredBeforeAndAfter()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        // The ledger as session 9 left it: the watermark, errors once per task, the expiry text indexed like any other.
        await ExecAsync(host, SqliteSearch.Drop + SqliteSearch.Create + "DROP TRIGGER \"JobLogTaskText_Insert\"; DROP TRIGGER \"JobLogTaskText_Update\"; " +
            "DROP TRIGGER \"JobLogTaskText_Delete\"; DROP TRIGGER \"JobLogRunText_Insert\"; DROP TRIGGER \"JobLogRunText_Update\"; DROP TRIGGER \"JobLogRunText_Delete\";" +
            SqliteSearch.Watermarked + SqliteSearch.Deduplicated);
        var before = await ActiveTaskAsync(host, "Charge(1)");
        var after = await ActiveTaskAsync(host, "Charge(2)");
        await ExecAsync(host, "BEGIN IMMEDIATE; " + SqliteSearch.IndexPendingPerTask + "; COMMIT;");
        await ExecAsync(host, Expire(before));
        Assert.That(await ScalarAsync(host, RunMatches("went stale")), Is.EqualTo(1), "session 9 indexed the expiry text");

        await host.QueryAsync(async db =>
        {
            await host.Services.GetRequiredService<LedgerDatabase>().ApplySearchIndexAsync(db, true, CancellationToken.None);
            return 0;
        });
        Assert.That(await ScalarAsync(host, $"SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = '{SqliteSearch.SweptRuns}'"), Is.EqualTo(1));

        Assert.That(await ScalarAsync(host, RunMatches("went stale")), Is.Zero, "the upgrade indexes the distinct texts again, without the expiry text");
        await ExecAsync(host, Expire(after));
        Assert.That(await ScalarAsync(host, RunMatches("went stale")), Is.Zero, "the run expired after the upgrade is not indexed");
        Assert.That(await FoundAsync(host, "went stale"), Is.EquivalentTo(new[] { before, after }));
        await ExecAsync(host, IntegrityCheck);
    }
}
