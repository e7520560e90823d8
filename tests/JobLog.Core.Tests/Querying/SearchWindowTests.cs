using JobLog.Querying;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// The search's newest-rows step grows when its first window holds a few matches but not a page: a text that common
/// is answered from the newest rows, not from an index that lists every task having it (docs/scale.md, "Session 9 (big)":
/// an error text in 1.8% of 10 million tasks took 8.5-24.6 s through the index on SQLite).
/// </summary>
public class SearchWindowTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    [Test]
    public async Task AFewMatchesInTheFirstWindow_GrowTheWindow_AndThePageComesFromTheNewestRows()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        // 200 tasks, one in five with the text: the first window (20 rows) holds 4 of them, a page needs 11.
        var tasks = Enumerable.Range(0, 200).Select(i => new TaskLog
        {
            Id = Guid.NewGuid(), Name = "Hand", DispatchedAt = T0.AddSeconds(i), State = TaskState.Succeeded,
            Input = i % 5 == 0 ? $"row {i} could not serialize" : $"row {i}",
        }).ToList();
        await host.QueryAsync(async db =>
        {
            db.AddRange(tasks);
            await db.SaveChangesAsync();
            // The index made blind to these rows (emptied, the watermark past them): a page from the index step finds none,
            // so the rows found can only come from the newest-rows step.
            return await db.Database.ExecuteSqlRawAsync(
                "INSERT INTO \"JobLogTaskText\"(\"JobLogTaskText\") VALUES ('delete-all'); " +
                "UPDATE \"JobLogSearchWatermark\" SET \"Tasks\" = (SELECT max(rowid) FROM \"JobLogTasks\")");
        });

        await using var scope = host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
        queries.SearchWindow = 20;
        var filter = new TaskFilter { Search = "could not serialize", Limit = 10 };
        // The window not allowed to grow (as before): the page comes from the index step, blind here.
        queries.SearchWindowMax = 20;
        Assert.That((await queries.TasksAsync(filter, CancellationToken.None)).Items, Is.Empty);

        queries.SearchWindowMax = 50_000;
        var page = await queries.TasksAsync(filter, CancellationToken.None);

        var expected = tasks.Where(t => t.Input!.Contains("could not serialize", StringComparison.Ordinal))
            .OrderByDescending(t => t.DispatchedAt).Select(t => t.Id).Take(10);
        Assert.That(page.Items.Select(t => t.Id), Is.EqualTo(expected));
        Assert.That(page.NextCursor, Is.Not.Null);
    }
}
