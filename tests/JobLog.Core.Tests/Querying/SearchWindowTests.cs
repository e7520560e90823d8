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

    /// <summary>
    /// 1,200 tasks; <paramref name="text"/> in three of them, the 151st to 153rd newest; the index blind to every row (as
    /// above), so a page found comes from the newest-rows step. A page needs 3 matches (limit 2), and the window (1,000
    /// rows) holds them; a text that looks rare is first looked for in the newest 100 only (the default
    /// <c>RareSearchWindow</c>), and without a match there goes to the indexes: at 10 M tasks on PostgreSQL the window's
    /// 2,000 rows cost a rare text 44-94 ms for nothing (docs/scale.md "Session 42 (scale)").
    /// </summary>
    [TestCase("ord-0032dcd5-z", false, TestName = "ARareLookingText_NotAmongTheNewestFewRows_GoesToTheIndexes_WithoutTheWindow")]
    [TestCase("could not serialize", true, TestName = "ACommonLookingText_IsLookedForInTheWholeWindow")]
    public async Task ATextThatLooksRare_IsLookedForInAFewNewestRows_ThenInTheIndexes(string text, bool fromTheWindow)
    {
        await using var host = await BlindLedgerAsync(i => i is 1046 or 1047 or 1048 ? $"row {i} {text}" : $"row {i}");
        await using var scope = host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
        queries.SearchWindow = 1000;

        var page = await queries.TasksAsync(new TaskFilter { Search = text, Limit = 2 }, CancellationToken.None);

        Assert.That(page.Items.Select(t => t.Input), fromTheWindow ? Is.EqualTo(new[] { $"row 1048 {text}", $"row 1047 {text}" }) : Is.Empty);
    }

    [Test]
    public async Task ARareLookingText_AmongTheNewestFewRows_IsLookedForInTheWholeWindow()
    {
        // One match among the newest 100 (the newest), two more further in: the text is not as rare as it looks.
        await using var host = await BlindLedgerAsync(i => i is 1199 or 800 or 500 ? $"row {i} ord-0032dcd5-z" : $"row {i}");
        await using var scope = host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
        queries.SearchWindow = 1000;

        var page = await queries.TasksAsync(new TaskFilter { Search = "ord-0032dcd5-z", Limit = 2 }, CancellationToken.None);

        Assert.That(page.Items.Select(t => t.Input), Is.EqualTo(new[] { "row 1199 ord-0032dcd5-z", "row 800 ord-0032dcd5-z" }));
        Assert.That(page.NextCursor, Is.Not.Null);
    }

    /// <summary>A SQLite ledger of 1,200 tasks (the i-th dispatched i seconds after T0) whose search index sees none of them.</summary>
    private static async Task<LedgerHost> BlindLedgerAsync(Func<int, string> input)
    {
        var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        await host.QueryAsync(async db =>
        {
            db.AddRange(Enumerable.Range(0, 1200).Select(i => new TaskLog
            {
                Id = Guid.NewGuid(), Name = "Hand", DispatchedAt = T0.AddSeconds(i), State = TaskState.Succeeded, Input = input(i),
            }));
            await db.SaveChangesAsync();
            return await db.Database.ExecuteSqlRawAsync(
                "INSERT INTO \"JobLogTaskText\"(\"JobLogTaskText\") VALUES ('delete-all'); " +
                "UPDATE \"JobLogSearchWatermark\" SET \"Tasks\" = (SELECT max(rowid) FROM \"JobLogTasks\")");
        });
        return host;
    }
}
