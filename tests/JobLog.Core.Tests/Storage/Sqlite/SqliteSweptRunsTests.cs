using JobLog.Storage;
using JobLog.Storage.Sqlite;
using JobLog.Sweeping;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// The SQLite sweeper expires the ACTIVE runs of the tasks it expires without the per-row triggers that do nothing for
/// them (<see cref="SqliteSweptRuns"/>), and with them whenever they could do something: a run with an error text, an
/// UPDATE trigger that is not JobLog's.
/// </summary>
public class SqliteSweptRunsTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);
    private LedgerHost _host = null!;
    private FakeTimeProvider _clock = null!;

    [SetUp]
    public async Task SetUp()
    {
        _clock = new FakeTimeProvider(new DateTimeOffset(T0.AddHours(1)));
        _host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o => o.Sweeper.BatchSize = 3, s => s.AddSingleton<TimeProvider>(_clock));
    }

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    private string ConnectionString => _host.Ledger.ConnectionString;

    private TaskLogSweeper Sweeper => _host.Services.GetRequiredService<TaskLogSweeper>();

    // A stale task (its deadline passed at T0 + 5 min) with one run: ACTIVE (error text or none) or finished.
    private async Task<Guid> StaleTaskAsync(int n, TaskRunState run, string? error = null)
    {
        var task = new TaskLog
        {
            Id = Guid.NewGuid(), Name = "Charge", DispatchedAt = T0.AddSeconds(n), State = TaskState.Active, Input = $"Charge({n})",
            Stale = T0.AddMinutes(5),
        };
        task.Runs.Add(new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = task.Id, Name = "Charge", ConsumerType = "ChargeConsumer", Start = T0.AddSeconds(n + 1), State = run,
            Stop = run == TaskRunState.Active ? null : T0.AddSeconds(n + 2), ErrorMessage = error,
        });
        await _host.QueryAsync(db =>
        {
            db.Add(task);
            return db.SaveChangesAsync();
        });
        return task.Id;
    }

    private Task<List<Guid>> FoundAsync(string text) => _host.QueryAsync(db =>
        SqliteSearch.TasksContaining(db, text, LedgerSql.LikePattern(text)).ToListAsync());

    private Task<List<TaskRunLog>> RunsAsync() => _host.QueryAsync(db => db.Set<TaskRunLog>().AsNoTracking().ToListAsync());

    [Test]
    public async Task TheRunsOfExpiredTasks_AreExpiredWithoutTriggers_AndTheIndexesAndRollupsStayRight()
    {
        var plain = new List<Guid>();
        for (var i = 0; i < 7; i++)
        {
            plain.Add(await StaleTaskAsync(i, TaskRunState.Active));
        }

        // An ACTIVE run that already has an error text (a retry under way): its text leaves the search index.
        var withText = await StaleTaskAsync(20, TaskRunState.Active, "Card declined ORD-77");
        var healed = await StaleTaskAsync(30, TaskRunState.Succeeded);
        var failed = await StaleTaskAsync(40, TaskRunState.Failed, "Gateway timeout ORD-88");
        await SqliteWriterTriggersTests.IndexPendingAsync(ConnectionString);
        Assert.That(await FoundAsync("ORD-77"), Is.EqualTo(new[] { withText }), "indexed before the sweep");

        var result = await Sweeper.SweepOnceAsync(CancellationToken.None);

        Assert.That(result, Is.EqualTo(new SweepResult(8, 2)));
        Assert.That(Sweeper.UntriggeredRunBatches, Is.GreaterThan(0), "the runs' expiry ran without triggers");
        var runs = await RunsAsync();
        Assert.That(runs.Where(r => r.TaskId != healed && r.TaskId != failed).Select(r => (r.State, r.ErrorMessage, r.Stop)),
            Is.All.EqualTo((TaskRunState.Expired, TaskLogSweeper.StaleRunError, (DateTime?)T0.AddHours(1))));
        Assert.That(await FoundAsync("ORD-77"), Is.Empty, "the replaced text left the index (its trigger fired)");
        Assert.That(await FoundAsync("ORD-88"), Is.EqualTo(new[] { failed }));
        Assert.That(await FoundAsync("went stale"), Is.EquivalentTo(plain.Append(withText)));
        await SqliteWriterTriggersTests.ExecAsync(ConnectionString, "INSERT INTO \"JobLogRunText\"(\"JobLogRunText\", rank) VALUES ('integrity-check', 1);");

        var contents = await SqliteWriterTriggersTests.ContentsAsync(ConnectionString);
        Assert.That(contents.Counts, Is.EquivalentTo(contents.CountedTasks));
        Assert.That(contents.Minutes, Is.EquivalentTo(contents.CountedMinutes));
        Assert.That(contents.RunMinutes, Is.EquivalentTo(contents.CountedRunMinutes));
        Assert.That(contents.RunMinutes, Is.EqualTo(new[] { "2026-03-01 08:00:00 Charge 2 2000 1000" }), "the two finished runs, the expired ones not counted");

    }

    [Test]
    public async Task AnUpdateTriggerOfTheApplicationOnTheRuns_FiresForEveryExpiredRun()
    {
        await SqliteWriterTriggersTests.ExecAsync(ConnectionString, """
            CREATE TABLE "AppRunAudit" ("RunId" TEXT NOT NULL, "State" INTEGER NOT NULL);
            CREATE TRIGGER "AppRunAudit_Update" AFTER UPDATE OF "State" ON "JobLogTaskRuns"
            BEGIN INSERT INTO "AppRunAudit" VALUES (new."Id", new."State"); END;
            """);
        for (var i = 0; i < 5; i++)
        {
            await StaleTaskAsync(i, TaskRunState.Active);
        }

        var result = await Sweeper.SweepOnceAsync(CancellationToken.None);

        Assert.That(result.Expired, Is.EqualTo(5));
        Assert.That(Sweeper.UntriggeredRunBatches, Is.Zero);
        Assert.That(await SqliteWriterTriggersTests.ScalarAsync(ConnectionString, "SELECT COUNT(*) FROM \"AppRunAudit\" WHERE \"State\" = 5"), Is.EqualTo(5));
    }

    [Test]
    public async Task TheSweepersConnection_HasItsTriggersOnAfterABatch()
    {
        await StaleTaskAsync(0, TaskRunState.Active);
        await Sweeper.SweepOnceAsync(CancellationToken.None);
        Assert.That(Sweeper.UntriggeredRunBatches, Is.EqualTo(1));

        // The next user of the pooled connection: JobLog's own rollup trigger counts a new finished run.
        await StaleTaskAsync(1, TaskRunState.Succeeded);
        var contents = await SqliteWriterTriggersTests.ContentsAsync(ConnectionString);
        Assert.That(contents.RunMinutes, Is.EquivalentTo(contents.CountedRunMinutes));
        Assert.That(contents.RunMinutes, Has.Count.EqualTo(1));
    }
}
