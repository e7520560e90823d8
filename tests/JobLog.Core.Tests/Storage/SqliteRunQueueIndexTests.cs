using JobLog.Core.Tests.Querying;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

/// <summary>
/// The migration <c>SqliteRunQueueIndex</c> (session 43): a SQLite ledger's runs' <c>(QueueName, TaskId)</c> index, whose
/// scattered task ids dirtied a leaf a run, becomes <c>(QueueName, Start, TaskId)</c>; the queue filters of the task list
/// and the failures find the same tasks on the ledger before and after the upgrade, a busy queue's filter looks each
/// task's runs up by task and a rare queue's tasks are still listed from the index, with or without statistics.
/// PostgreSQL keeps <c>(QueueName, TaskId)</c>.
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class SqliteRunQueueIndexTests(LedgerProvider provider)
{
    private const string Old = "IX_JobLogTaskRuns_QueueName_TaskId";
    private const string ByTask = "IX_JobLogTaskRuns_TaskId_ConsumerType_Retries";
    private LedgerHost _host = null!;

    [SetUp]
    public async Task SetUp() => _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    [Test]
    public async Task TheRunsQueueIndex_OnSqlite_IsKeyedByStart_AndTheQueueFiltersFindTheSameTasksBeforeAndAfterTheUpgrade()
    {
        if (provider == LedgerProvider.PostgreSql)
        {
            Assert.That(await IndexExistsAsync(Old), Is.True, "PostgreSQL keeps the index");
            Assert.That(await IndexExistsAsync(LedgerModel.RunsQueueStartIndex), Is.False);
            return;
        }

        Assert.That(await IndexExistsAsync(Old), Is.False, "a new ledger is migrated without it");
        Assert.That(await IndexExistsAsync(LedgerModel.RunsQueueStartIndex), Is.True, "a new ledger has the start-ordered one");
        await MigrateAsync(before: true);
        Assert.That(await IndexExistsAsync(Old), Is.True, "the ledger before the migration has it (the migration's Down)");
        Assert.That(await IndexExistsAsync(LedgerModel.RunsQueueStartIndex), Is.False);

        // billing: two commands sent to it, an event consumed from it (sent to its exchange) that failed, a run without a
        // queue; shipping: one event consumed from it.
        var now = DateTime.UtcNow;
        var recorder = _host.Services.GetRequiredService<LedgerRecorder>();
        var charges = new[] { Guid.NewGuid(), Guid.NewGuid() };
        Run(recorder, charges[0], "Charge", now, "billing", "billing", TaskRunState.Succeeded);
        Run(recorder, charges[1], "Charge", now.AddSeconds(1), "billing", "billing", TaskRunState.Succeeded);
        var invoiced = Guid.NewGuid();
        Run(recorder, invoiced, "Invoiced", now.AddSeconds(2), "Invoiced", "billing", TaskRunState.Failed);
        var mediated = Guid.NewGuid();
        Run(recorder, mediated, "Mediated", now.AddSeconds(3), null, null, TaskRunState.Failed);
        var shipped = Guid.NewGuid();
        Run(recorder, shipped, "Shipped", now.AddSeconds(4), "events", "shipping", TaskRunState.Succeeded);
        await _host.FlushAsync();

        var before = await FilteredAsync();
        Assert.That(before.Billing, Is.EqualTo(new[] { invoiced, charges[1], charges[0] }), "busy: walked");
        Assert.That(before.Shipping, Is.EqualTo(new[] { shipped }), "rare: listed");
        Assert.That(before.BillingFailures, Is.EqualTo(new[] { invoiced }));

        await MigrateAsync(before: false);
        Assert.That(await IndexExistsAsync(Old), Is.False, "the upgrade drops it");
        Assert.That(await IndexExistsAsync(LedgerModel.RunsQueueStartIndex), Is.True, "the upgrade creates the start-ordered one");
        var after = await FilteredAsync();
        Assert.That(after.Billing, Is.EqualTo(before.Billing));
        Assert.That(after.Shipping, Is.EqualTo(before.Shipping));
        Assert.That(after.BillingFailures, Is.EqualTo(before.BillingFailures));
        Assert.That(after.EmptyQueueFailures, Is.EqualTo(before.EmptyQueueFailures), "a run without a queue is in no queue's filter");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task OnSqlite_ABusyQueuesFilter_LooksEachTasksRunsUpByTask_AndARareQueuesTasksAreListedFromTheQueuesIndex(bool analyzed)
    {
        if (provider == LedgerProvider.PostgreSql)
        {
            Assert.Ignore("SQLite's plans");
        }

        var now = DateTime.UtcNow;
        var recorder = _host.Services.GetRequiredService<LedgerRecorder>();
        for (var i = 0; i < 200; i++)
        {
            Run(recorder, Guid.NewGuid(), "Invoiced", now.AddMilliseconds(i), "Invoiced", "billing", TaskRunState.Succeeded);
        }

        await _host.FlushAsync();
        var plans = await _host.QueryAsync(async db =>
        {
            if (analyzed)
            {
                // One queue holds every run: the statistics say a queue's runs are the whole table.
                await db.Database.ExecuteSqlRawAsync("ANALYZE");
            }

            var queries = new LedgerQueries(db, LedgerDatabase.For(provider));
            return (Walk: await QueryPlans.OfAsync(db, provider, queries.TaskPage(new TaskFilter { Queue = "billing" }).ToQueryString()),
                Listed: await QueryPlans.OfAsync(db, provider, queries.FewTasksOfQueueSql("billing")));
        });

        Assert.That(plans.Walk, Does.Contain(ByTask), plans.Walk);
        Assert.That(plans.Walk, Does.Not.Contain(LedgerModel.RunsQueueStartIndex), "a seek of the queue would read all its runs for every task");
        Assert.That(plans.Listed, Does.Contain("COVERING INDEX " + LedgerModel.RunsQueueStartIndex), plans.Listed);
        Assert.That(plans.Listed, Does.Not.Contain("SCAN " + LedgerModel.Runs), plans.Listed);
    }

    /// <summary>The queue filters' tasks, at a busy threshold of three entries: billing's six are walked, shipping's two listed.</summary>
    private Task<(List<Guid> Billing, List<Guid> Shipping, IReadOnlyList<Guid> BillingFailures, IReadOnlyList<Guid> EmptyQueueFailures)> FilteredAsync() =>
        _host.QueryAsync(async db =>
        {
            var queries = new LedgerQueries(db, LedgerDatabase.For(provider)) { BusyQueueRuns = 3 };
            Assert.That(await queries.FewTasksOfQueueAsync("billing", default), Is.Null, "billing is busy");
            var billing = await queries.TasksAsync(new TaskFilter { Queue = "billing" }, default);
            var shipping = await queries.TasksAsync(new TaskFilter { Queue = "shipping" }, default);
            var failures = await queries.OpenFailureIdsAsync(new FailureFilter { Queue = "billing" }, 100, default);
            var empty = await queries.OpenFailureIdsAsync(new FailureFilter { Queue = "" }, 100, default);
            return (billing.Items.Select(t => t.Id).ToList(), shipping.Items.Select(t => t.Id).ToList(), failures, empty);
        });

    private static void Run(LedgerRecorder recorder, Guid id, string name, DateTime at, string? taskQueue, string? runQueue, TaskRunState state)
    {
        recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = name, QueueName = taskQueue, DispatchedAt = at, EstimatedTimeOfFirstArrival = at }));
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = name, QueueName = runQueue, ConsumerType = "C", Start = at.AddSeconds(1) };
        recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = id, Name = name, DispatchedAt = at }, false));
        recorder.Enqueue(new RunFinished(run.Id, id, state, at.AddSeconds(2), state == TaskRunState.Failed ? "System.Exception: no" : null, null, null));
    }

    /// <summary>Migrates to the migration before <c>SqliteRunQueueIndex</c> (<paramref name="before"/>), or to the newest.</summary>
    private Task MigrateAsync(bool before) => _host.QueryAsync(async db =>
    {
        var migrations = db.Database.GetMigrations().ToList();
        var index = migrations.FindIndex(m => m.EndsWith("_SqliteRunQueueIndex", StringComparison.Ordinal));
        Assert.That(index, Is.GreaterThan(0));
        await db.GetService<IMigrator>().MigrateAsync(before ? migrations[index - 1] : migrations[^1]);
        return 0;
    });

    private Task<bool> IndexExistsAsync(string name) => _host.QueryAsync(async db =>
    {
        var sql = provider == LedgerProvider.Sqlite
            ? $"SELECT count(*) AS \"Value\" FROM sqlite_master WHERE type = 'index' AND name = '{name}'"
            : $"SELECT count(*)::int AS \"Value\" FROM pg_indexes WHERE indexname = '{name}'";
        return await db.Database.SqlQueryRaw<int>(sql).SingleAsync() == 1;
    });
}
