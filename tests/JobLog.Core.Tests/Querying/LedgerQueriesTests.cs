using JobLog.Querying;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>The read side is Core's public API: <c>AddJobLog</c> registers it, filters read the same names everywhere.</summary>
public class LedgerQueriesTests
{
    private static readonly DateTime Now = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    private static FilterSource From(params (string Name, string Value)[] values) =>
        name => values.FirstOrDefault(v => v.Name == name).Value;

    [Test]
    public void TaskFilter_ReadsStatesSinceAndLimitByName()
    {
        var filter = TaskFilter.Parse(From(("state", "failed, expired"), ("since", "1h"), ("limit", "20"), ("internal", "all"), ("q", " needle ")), Now);

        Assert.That(filter.States, Is.EqualTo(new[] { TaskState.Failed, TaskState.Expired }));
        Assert.That(filter.From, Is.EqualTo(Now.AddHours(-1)));
        Assert.That((filter.Limit, filter.Internal, filter.Search), Is.EqualTo((20, InternalTasks.All, "needle")));
    }

    [TestCase("state", "3")]
    [TestCase("state", "failed|expired")]
    [TestCase("since", "yesterday")]
    [TestCase("limit", "501")]
    [TestCase("cursor", "not-a-cursor")]
    [TestCase("internal", "maybe")]
    public void TaskFilter_WithAValueItCannotRead_Throws(string name, string value) =>
        Assert.Throws<FilterException>(() => TaskFilter.Parse(From((name, value)), Now));

    [Test]
    public void Cursor_RoundTrips()
    {
        var cursor = new Cursor(Now, Guid.NewGuid());

        Assert.That(Cursor.Parse(cursor.ToString()), Is.EqualTo(cursor));
    }

    [Test]
    public async Task AddJobLog_RegistersTheQueries_WhichPageNewestFirst()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var tasks = Enumerable.Range(0, 5).Select(i => new TaskLog
        {
            Id = Guid.NewGuid(), Name = "T" + i, DispatchedAt = Now.AddMinutes(i), State = i % 2 == 0 ? TaskState.Succeeded : TaskState.Failed,
        }).ToList();
        await host.QueryAsync(db =>
        {
            db.AddRange(tasks);
            return db.SaveChangesAsync();
        });
        await using var scope = host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();

        var first = await queries.TasksAsync(TaskFilter.Parse(From(("limit", "2")), Now), CancellationToken.None);
        var second = await queries.TasksAsync(TaskFilter.Parse(From(("limit", "2"), ("cursor", first.NextCursor!)), Now), CancellationToken.None);
        var failed = await queries.TasksAsync(TaskFilter.Parse(From(("state", "failed")), Now), CancellationToken.None);
        var detail = await queries.TaskAsync(tasks[0].Id, CancellationToken.None);

        Assert.That(first.Items.Select(t => t.Name), Is.EqualTo(new[] { "T4", "T3" }));
        Assert.That(second.Items.Select(t => t.Name), Is.EqualTo(new[] { "T2", "T1" }));
        Assert.That(failed.Items.Select(t => t.Name), Is.EqualTo(new[] { "T3", "T1" }));
        Assert.That(failed.NextCursor, Is.Null);
        Assert.That(detail?.Task.Name, Is.EqualTo("T0"));
        Assert.That(await queries.TaskAsync(Guid.NewGuid(), CancellationToken.None), Is.Null);
    }

    [Test]
    public async Task TaskAsync_OfATaskWithMoreRunsThanAStatementTakesParameters_ReadsItsChildrenAndRequests()
    {
        // A message redelivered without end, or a producer that sends one MessageId again and again: SQLite takes at
        // most 32,766 parameters in a statement, and the runs' ids were one each (a 500 on the page, the API and the
        // CLI). PostgreSQL passes them as one array (66,000 runs held).
        const int count = 33_000;
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var task = new TaskLog { Id = Guid.NewGuid(), Name = "Poison", DispatchedAt = Now, State = TaskState.Failed };
        var runs = Enumerable.Range(0, count).Select(i => new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, Start = Now.AddMilliseconds(i), Stop = Now.AddMilliseconds(i + 0.5),
            State = TaskRunState.Retried, Retries = i,
        }).ToList();
        var child = new TaskLog { Id = Guid.NewGuid(), Name = "Child", DispatchedAt = Now.AddSeconds(1), State = TaskState.Succeeded, ParentRunId = runs[^1].Id };
        var request = new OutputRequestLog
        {
            Id = Guid.NewGuid(), Host = "psp.test", Method = "GET", Path = "/charge", RequestTimestamp = Now, Status = RequestLogStatus.Info,
            RelatedObjects = [new OutputRequestRelatedObject { Id = Guid.NewGuid(), TaskRunLogId = runs[^1].Id }],
        };
        await host.QueryAsync(db =>
        {
            db.AddRange(task, child, request);
            return db.SaveChangesAsync();
        });
        foreach (var chunk in runs.Chunk(10_000))
        {
            await host.QueryAsync(db =>
            {
                db.AddRange(chunk);
                return db.SaveChangesAsync();
            });
        }

        await using var scope = host.Services.CreateAsyncScope();
        var detail = await scope.ServiceProvider.GetRequiredService<LedgerQueries>().TaskAsync(task.Id, CancellationToken.None);

        // The detail holds the latest runs only (a page of 33,000 runs was 32 MB), in order, and says how many there are.
        Assert.That(detail!.Runs.Select(r => r.Retries), Is.EqualTo(Enumerable.Range(count - LedgerQueries.MaxDetailRuns, LedgerQueries.MaxDetailRuns)));
        Assert.That(detail.RunCount, Is.EqualTo(count));
        Assert.That(TaskDetailDocument.From(detail).RunCount, Is.EqualTo(count));
        Assert.That(detail.Children.Select(c => c.Id), Is.EqualTo(new[] { child.Id }));
        Assert.That(detail.OutboundRequests.Select(r => r.Request.Id), Is.EqualTo(new[] { request.Id }));
    }
}
