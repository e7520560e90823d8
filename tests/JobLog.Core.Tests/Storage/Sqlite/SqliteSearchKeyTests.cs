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
}
