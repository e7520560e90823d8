using JobLog.Querying;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// Issue 15: every search (<c>q</c>) reads under a budget (<see cref="JobLogOptions.SearchBudget"/>). When it runs out the
/// page is not an error: it holds what the newest-rows windows found, says so (<see cref="Page{T}.SearchStopped"/>, how far
/// back it searched) and its cursor searches on from there; the connection the statement was cut on is used again.
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class SearchBudgetTests(LedgerProvider provider)
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    // Punctuation only: no pg_trgm trigram (PostgreSQL scans the rows newest first); on SQLite the FTS5 trigrams of its
    // first 32 characters are in every row below, each then checked whole with LIKE.
    private static readonly string Hostile = new string('(', 199) + ")";

    private TestLedger _ledger = null!;
    private LedgerHost _host = null!;

    [SetUp]
    public async Task SetUp()
    {
        _ledger = await Ledgers.CreateAsync(provider);
        _host = await LedgerHost.StartAsync(_ledger);
    }

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    /// <summary>
    /// 30 tasks, the i-th dispatched i seconds after T0; the text in tasks 29, 25, 15, 10 and 3. The first window (the newest
    /// 10 rows: 29 to 20) holds two of them, not a page of 5 and too few to grow; the budget is spent before the index
    /// step. The page is those two, flagged, searched back to task 20, and its cursor finds the older three.
    /// </summary>
    [Test]
    public async Task ABudgetSpentBeforeTheIndexStep_GivesTheWindowsMatches_Flagged_AndACursorThatSearchesOlder()
    {
        var tasks = await AddTasksAsync(30, i => i is 29 or 25 or 15 or 10 or 3 ? $"row {i} could not serialize" : $"row {i}");
        await using var scope = _host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
        queries.SearchWindow = 10;
        queries.BeforeLastStep = budget => budget.Spend();

        var page = await queries.TasksAsync(new TaskFilter { Search = "could not serialize", Limit = 5 }, CancellationToken.None);

        Assert.That(page.Items.Select(t => t.Input), Is.EqualTo(new[] { "row 29 could not serialize", "row 25 could not serialize" }));
        Assert.That(page.SearchStopped, Is.Not.Null);
        Assert.That(page.SearchStopped!.SearchedBackTo, Is.EqualTo(T0.AddSeconds(20)));
        Assert.That(page.SearchStopped.Notice("tasks"), Does.Contain("it searched tasks back to 2026-03-01 08:00:20 UTC"));
        Assert.That(page.NextCursor, Is.EqualTo(new Cursor(T0.AddSeconds(20), tasks[20].Id).ToString()));

        // Search older: the rows before the window's oldest, this time with the budget left.
        queries.BeforeLastStep = null;
        var older = await queries.TasksAsync(
            new TaskFilter { Search = "could not serialize", Limit = 5, After = Cursor.Parse(page.NextCursor!) }, CancellationToken.None);

        Assert.That(older.Items.Select(t => t.Input), Is.EqualTo(new[] { "row 15 could not serialize", "row 10 could not serialize", "row 3 could not serialize" }));
        Assert.That(older.SearchStopped, Is.Null);
        Assert.That(older.NextCursor, Is.Null);
    }

    [Test]
    public async Task ABudgetSpentWhenTheWindowHeldEveryRow_IsTheWholeAnswer_NotFlagged()
    {
        await AddTasksAsync(8, i => i is 6 or 2 ? $"row {i} could not serialize" : $"row {i}");
        await using var scope = _host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
        queries.SearchWindow = 10;
        queries.BeforeLastStep = budget => budget.Spend();

        var page = await queries.TasksAsync(new TaskFilter { Search = "could not serialize", Limit = 5 }, CancellationToken.None);

        Assert.That(page.Items.Select(t => t.Input), Is.EqualTo(new[] { "row 6 could not serialize", "row 2 could not serialize" }));
        Assert.That(page.SearchStopped, Is.Null);
        Assert.That(page.NextCursor, Is.Null);
    }

    [Test]
    public async Task ACommandSearch_WhoseBudgetIsSpentBeforeTheIndexStep_GivesTheWindowsMatches_Flagged()
    {
        await _host.QueryAsync(async db =>
        {
            db.AddRange(Enumerable.Range(0, 30).Select(i => new CommandLog
            {
                Id = Guid.CreateVersion7(T0.AddSeconds(i)), Name = "import", Start = T0.AddSeconds(i), IsSuccessful = true,
                Input = i is 29 or 25 or 15 ? $"--batch {i} --dry-run" : $"--batch {i}",
            }));
            return await db.SaveChangesAsync();
        });
        await using var scope = _host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
        queries.SearchWindow = 10;
        queries.BeforeLastStep = budget => budget.Spend();

        var page = await queries.CommandsAsync(new CommandFilter { Search = "--dry-run", Limit = 5 }, CancellationToken.None);

        Assert.That(page.Items.Select(c => c.Input), Is.EqualTo(new[] { "--batch 29 --dry-run", "--batch 25 --dry-run" }));
        Assert.That(page.SearchStopped?.SearchedBackTo, Is.EqualTo(T0.AddSeconds(20)));

        queries.BeforeLastStep = null;
        var older = await queries.CommandsAsync(
            new CommandFilter { Search = "--dry-run", Limit = 5, After = Cursor.Parse(page.NextCursor!) }, CancellationToken.None);
        Assert.That(older.Items.Select(c => c.Input), Is.EqualTo(new[] { "--batch 15 --dry-run" }));
        Assert.That(older.SearchStopped, Is.Null);
    }

    /// <summary>
    /// 200 tasks of 5,000 <c>(</c> and three with the hostile text: checking one row for it compares up to 200 characters at
    /// each of its 5,000 positions, so the search's statement takes far longer than its budget of 100 ms (seconds). The
    /// statement is cut (SQLite: a newest-rows window interrupted in its step; PostgreSQL: the index step canceled, 57014),
    /// the page is flagged, not an error, and the connection goes on: the next queries, on this context and another,
    /// answer; with a budget that does not run out the same text finds exactly what a substring search finds. SQLite's
    /// index step is read to its end once begun (<see cref="ReadBudget.ReadIndexAsync{T}"/>): under the same budget it
    /// gives the whole answer, unflagged.
    /// </summary>
    [Test]
    public async Task AHostileSearch_CutByItsBudget_IsAFlaggedPage_AndTheConnectionAnswersAfter()
    {
        var tasks = await AddTasksAsync(203, i => i is 202 or 101 or 0 ? $"a {Hostile} b{i}" : new string('(', 5000));
        await using var scope = _host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
        // SQLite: a window over every row, which the budget cuts; PostgreSQL: the index step (no trigram: the rows scanned).
        queries.SearchWindow = provider == LedgerProvider.Sqlite ? 1000 : 0;
        queries.SearchBudget = TimeSpan.FromMilliseconds(100);
        var filter = new TaskFilter { Search = Hostile, Limit = 10 };
        var expected = tasks.Where(t => t.Input!.Contains(Hostile, StringComparison.Ordinal)).OrderByDescending(t => t.DispatchedAt).Select(t => t.Id);

        var page = await queries.TasksAsync(filter, CancellationToken.None);

        Assert.That(page.SearchStopped, Is.Not.Null);
        Assert.That(page.SearchStopped!.SearchedBackTo, Is.Null);
        Assert.That(page.Items, Is.Empty);

        // The same context (SQLite: the connection the handler interrupted, from the pool) and a new scope's.
        var all = await queries.TasksAsync(new TaskFilter { Limit = 500 }, CancellationToken.None);
        Assert.That(all.Items, Has.Count.EqualTo(203));
        await using (var other = _host.Services.CreateAsyncScope())
        {
            var count = await other.ServiceProvider.GetRequiredService<JobLogDbContext>().TaskLogs.CountAsync();
            Assert.That(count, Is.EqualTo(203));
        }

        if (provider == LedgerProvider.Sqlite)
        {
            queries.SearchWindow = 0;
            var indexStep = await queries.TasksAsync(filter, CancellationToken.None);
            Assert.That(indexStep.Items.Select(t => t.Id), Is.EqualTo(expected), "SQLite's index step, read to its end under the same budget");
            Assert.That(indexStep.SearchStopped, Is.Null);
        }

        queries.SearchBudget = TimeSpan.FromMinutes(10);
        var whole = await queries.TasksAsync(filter, CancellationToken.None);

        Assert.That(whole.Items.Select(t => t.Id), Is.EqualTo(expected));
        Assert.That(whole.SearchStopped, Is.Null);
    }

    /// <summary>Adds <paramref name="count"/> tasks, the i-th dispatched i seconds after T0 with the input given; returns them by i.</summary>
    private async Task<List<TaskLog>> AddTasksAsync(int count, Func<int, string> input)
    {
        var tasks = Enumerable.Range(0, count).Select(i => new TaskLog
        {
            Id = Guid.CreateVersion7(T0.AddSeconds(i)), Name = "Hand", DispatchedAt = T0.AddSeconds(i), State = TaskState.Succeeded, Input = input(i),
        }).ToList();
        await _host.QueryAsync(async db =>
        {
            db.AddRange(tasks);
            return await db.SaveChangesAsync();
        });
        return tasks;
    }
}
