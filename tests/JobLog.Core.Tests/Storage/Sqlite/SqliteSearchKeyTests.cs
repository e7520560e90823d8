using JobLog.Querying;
using JobLog.Storage;
using JobLog.Storage.Sqlite;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// SQLite's index looks up the text's key (its longest run of letters and digits with a digit) and checks the whole text
/// on the rows found: at 10 million tasks <c>CustomerId=123457,</c> took 1.4 s in FTS5 (every row has the trigrams of
/// <c>CustomerId=</c>), its key 60-90 ms (docs/scale.md, "Session 9 (big)").
/// </summary>
public class SqliteSearchKeyTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    [Test]
    public async Task TheIndexLooksUpTheKey_AndTheRowsItFindsAreCheckedForTheWholeText()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        string[] inputs = ["CustomerId=123457, Amount=1.00", "CustomerId=1234570, Amount=2.00", "Customer 123457", "customerid=123457, lower case", "other"];
        var tasks = inputs.Select((input, i) => new TaskLog
        {
            Id = Guid.NewGuid(), Name = "Hand", DispatchedAt = T0.AddSeconds(i), State = TaskState.Succeeded, Input = input,
        }).ToList();
        var runTask = new TaskLog { Id = Guid.NewGuid(), Name = "Hand", DispatchedAt = T0.AddSeconds(10), State = TaskState.Failed, Input = "no text" };
        await host.QueryAsync(async db =>
        {
            db.AddRange(tasks);
            db.Add(runTask);
            db.Add(new TaskRunLog
            {
                Id = Guid.NewGuid(), TaskId = runTask.Id, Name = "Hand", ConsumerType = "C", Start = T0, State = TaskRunState.Failed,
                ErrorMessage = "Lookup of CustomerId=123457, failed",
            });
            await db.SaveChangesAsync();
            // Every row into the index (below the watermark), so that the index branches answer.
            return await db.Database.ExecuteSqlRawAsync(SqliteSearch.IndexPending);
        });

        var (sql, found) = await host.QueryAsync(async db =>
        {
            var queries = new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.Sqlite)) { SearchWindow = 0 };
            var page = await queries.TasksAsync(new TaskFilter { Search = "CustomerId=123457," }, CancellationToken.None);
            return (queries.MatchingIdsQuery("CustomerId=123457,").ToQueryString(), page.Items.Select(t => t.Id).ToList());
        });

        Assert.That(found, Is.EqualTo(new[] { runTask.Id, tasks[3].Id, tasks[0].Id }), "newest first: the run's error, the lower-case row, the first");
        Assert.That(sql, Does.Contain("'\"123457\"'"), "the index's phrase is the key");
        Assert.That(sql, Does.Not.Contain("'\"CustomerId=123457,\"'"));
    }

    /// <summary>
    /// A long text with no shorter key (200 zeros: one trigram 198 times, in nearly every row) made FTS5 check 198
    /// positions in every row: 2.3 s on a 100,000-task ledger (session 43). The index now looks up its first
    /// <see cref="SqliteSearch.MaxPhrase"/> characters, and the rows it finds are checked for the whole text.
    /// </summary>
    [Test]
    public async Task ALongTextWithoutAShorterKey_IsLookedUpByItsFirst32Characters_AndCheckedWhole()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var zeros = new string('0', 40);
        string[] inputs = ["ref " + zeros + "x end", "ref " + zeros + "y end", "ref " + zeros[..31] + "x end", "REF " + zeros + "X END"];
        var tasks = inputs.Select((input, i) => new TaskLog
        {
            Id = Guid.NewGuid(), Name = "Hand", DispatchedAt = T0.AddSeconds(i), State = TaskState.Succeeded, Input = input,
        }).ToList();
        await host.QueryAsync(async db =>
        {
            db.AddRange(tasks);
            await db.SaveChangesAsync();
            return await db.Database.ExecuteSqlRawAsync(SqliteSearch.IndexPending);
        });

        var q = zeros + "x";
        var (sql, found) = await host.QueryAsync(async db =>
        {
            var queries = new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.Sqlite)) { SearchWindow = 0 };
            var page = await queries.TasksAsync(new TaskFilter { Search = q }, CancellationToken.None);
            return (queries.MatchingIdsQuery(q).ToQueryString(), page.Items.Select(t => t.Id).ToList());
        });

        Assert.That(found, Is.EqualTo(new[] { tasks[3].Id, tasks[0].Id }), "newest first: the upper-case row, the first; not the other zeros");
        Assert.That(sql, Does.Contain("'\"" + new string('0', SqliteSearch.MaxPhrase) + "\"'"), "the index's phrase is the text's first 32 characters");
        Assert.That(sql, Does.Not.Contain("'\"" + q + "\"'"));
    }

    /// <summary>
    /// A key in many rows (every trigram of <c>orders</c> in 70) with a trigram of the whole text in few (<c>s/a</c>: one
    /// row): every row the key found was checked with <c>LIKE</c> (<c>/api/orders</c> repeated to 200 characters checked a
    /// third of the requests, session 44). The index now looks that trigram up, and the rows it finds are checked for the
    /// whole text as before: the same rows.
    /// </summary>
    [Test]
    public async Task AKeyInManyRows_WithATrigramOfTheTextInFewRows_IsLookedUpByThatTrigram_AndCheckedWhole()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var inputs = Enumerable.Range(0, 70).Select(i => "orders " + i).Concat(["x ORDERS/API y", "orders/list", "orders api"]).ToList();
        var tasks = inputs.Select((input, i) => new TaskLog
        {
            Id = Guid.NewGuid(), Name = "Hand", DispatchedAt = T0.AddSeconds(i), State = TaskState.Succeeded, Input = input,
        }).ToList();
        await host.QueryAsync(async db =>
        {
            db.AddRange(tasks);
            await db.SaveChangesAsync();
            return await db.Database.ExecuteSqlRawAsync(SqliteSearch.IndexPending);
        });

        const string q = "orders/api";
        var (sql, found, old) = await host.QueryAsync(async db =>
        {
            var queries = new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.Sqlite)) { SearchWindow = 0 };
            var page = await queries.TasksAsync(new TaskFilter { Search = q }, CancellationToken.None);
            // The whole text as the phrase (no key): the same rows.
            var byKey = await SqliteSearch.TasksContaining(db, q, LedgerSql.LikePattern(q), null).ToListAsync();
            return (queries.MatchingIdsQuery(q).ToQueryString(), page.Items.Select(t => t.Id).ToList(), byKey);
        });

        Assert.That(found, Is.EqualTo(new[] { tasks[70].Id }), "the upper-case row only");
        Assert.That(old, Is.EquivalentTo(found));
        Assert.That(sql, Does.Contain("'\"s/a\"'"), "the index's phrase is the trigram in one row");
        Assert.That(sql, Does.Not.Contain("'\"orders\"'"));
    }

    /// <summary>
    /// The command and request search (<see cref="SqliteLogSearch"/>) the same way: <c>--batch</c> repeated has the key
    /// <c>batch</c>, in every command; its trigram <c>h -</c> is in one. And a text longer than
    /// <see cref="SqliteSearch.MaxPhrase"/> with no key is looked up by its first 32 characters, as the tasks' search.
    /// </summary>
    [Test]
    public async Task TheLogSearch_LooksUpATrigramInFewRowsForAKeyInMany_AndALongTextByItsFirst32Characters()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var zeros = new string('0', 40);
        var inputs = Enumerable.Range(0, 70).Select(i => "--batch " + i).Concat(["--BATCH --BATCH x", "--batch --dry", "z " + zeros + "x", "z " + zeros + "y"]).ToList();
        var commands = inputs.Select((input, i) => new CommandLog { Id = Guid.NewGuid(), Name = "import", Input = input, Start = T0.AddSeconds(i) }).ToList();
        await host.QueryAsync(async db =>
        {
            db.AddRange(commands);
            await db.SaveChangesAsync();
            return await db.Database.ExecuteSqlRawAsync(SqliteLogSearch.IndexPending);
        });

        async Task<(string Sql, List<Guid> Found, List<Guid> Expected)> SearchAsync(string q) => await host.QueryAsync(async db =>
        {
            var ids = SqliteLogSearch.Containing(db, LogText.Commands, q, LedgerSql.LikePattern(q), new TaskSearch(q, null, null).Key)!;
            var expected = await db.CommandLogs.Where(c => EF.Functions.Like(c.Input, LedgerSql.LikePattern(q), "\\")).Select(c => c.Id).ToListAsync();
            return (ids.ToQueryString(), await ids.ToListAsync(), expected);
        });

        var (sql, found, expected) = await SearchAsync("--batch --batch");
        Assert.That(found, Is.EquivalentTo(new[] { commands[70].Id }));
        Assert.That(expected, Is.EquivalentTo(found), "what LIKE finds");
        Assert.That(sql, Does.Contain("'\"h -\"'"), "the index's phrase is the trigram in one row");

        (sql, found, expected) = await SearchAsync(zeros + "x");
        Assert.That(found, Is.EquivalentTo(new[] { commands[72].Id }));
        Assert.That(expected, Is.EquivalentTo(found), "what LIKE finds");
        Assert.That(sql, Does.Contain("'\"" + new string('0', SqliteSearch.MaxPhrase) + "\"'"), "the index's phrase is the text's first 32 characters");
    }
}
