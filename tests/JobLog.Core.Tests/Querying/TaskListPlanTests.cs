using JobLog.Querying;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>Task lists filtered by several states: the right rows in order, and, on SQLite, no sort of every matching task (docs/scale.md).</summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class TaskListPlanTests(LedgerProvider provider)
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    [Test]
    public async Task TasksAsync_SeveralStates_PagesNewestFirstAcrossTheStates()
    {
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));
        TaskState[] cycle = [TaskState.Waiting, TaskState.Succeeded, TaskState.Active, TaskState.Active, TaskState.Failed];
        var tasks = Enumerable.Range(0, 40).Select(i => new TaskLog
        {
            // Pairs share a DispatchedAt: the id breaks the tie.
            Id = Guid.NewGuid(), Name = i % 2 == 0 ? "Even" : "Odd", DispatchedAt = T0.AddSeconds(i / 2), State = cycle[i % cycle.Length],
            IsInternal = i == 38,
        }).ToList();
        await host.QueryAsync(db =>
        {
            db.AddRange(tasks);
            return db.SaveChangesAsync();
        });

        var pages = new List<List<Guid>>();
        string? cursor = null;
        do
        {
            await using var scope = host.Services.CreateAsyncScope();
            var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
            var page = await queries.TasksAsync(
                new TaskFilter { States = [TaskState.Waiting, TaskState.Active], Limit = 5, After = cursor is null ? null : Cursor.Parse(cursor) }, default);
            pages.Add(page.Items.Select(t => t.Id).ToList());
            cursor = page.NextCursor;
        }
        while (cursor is not null && pages.Count < 20);

        var expected = tasks.Where(t => !t.IsInternal && t.State is TaskState.Waiting or TaskState.Active)
            .OrderByDescending(t => t.DispatchedAt).ThenByDescending(t => t.Id).Select(t => t.Id).ToList();
        Assert.That(pages.SelectMany(p => p), Is.EqualTo(expected));
        Assert.That(pages.Take(pages.Count - 1).Select(p => p.Count), Is.All.EqualTo(5));

        await using var named = host.Services.CreateAsyncScope();
        var odd = await named.ServiceProvider.GetRequiredService<LedgerQueries>().TasksAsync(
            new TaskFilter { Name = "Odd", States = [TaskState.Active, TaskState.Failed, TaskState.Active] }, default);
        Assert.That(odd.Items.Select(t => t.Id), Is.EqualTo(tasks
            .Where(t => t.Name == "Odd" && t.State is TaskState.Active or TaskState.Failed)
            .OrderByDescending(t => t.DispatchedAt).ThenByDescending(t => t.Id).Select(t => t.Id)));
    }

    [Test]
    public async Task SeveralStates_OnSqlite_WalkTheStateIndexInOrderWithoutSortingEveryMatchingTask()
    {
        if (provider != LedgerProvider.Sqlite)
        {
            Assert.Ignore("SQLite's plan; PostgreSQL merges the index scans of an IN list itself.");
        }

        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));
        var plan = await host.QueryAsync(async db =>
        {
            var queries = new LedgerQueries(db, JobLog.Storage.LedgerDatabase.For(LedgerProvider.Sqlite));
            return await SqlitePlan.OfAsync(db, queries.TaskPage(new TaskFilter { States = [TaskState.Waiting, TaskState.Active] }).ToQueryString());
        });

        // Each state is a SEARCH of an index on (…, State, DispatchedAt) read in its order: at most the ties of one
        // DispatchedAt are sorted (LAST TERM OF ORDER BY), never every task of the state (FOR ORDER BY right after it).
        var lines = plan.Split('\n');
        var walks = Enumerable.Range(0, lines.Length)
            .Where(i => lines[i].Contains("SEARCH", StringComparison.Ordinal) && lines[i].Contains("State=?", StringComparison.Ordinal)).ToList();
        Assert.That(walks, Has.Count.EqualTo(2), plan);
        Assert.That(walks.Select(i => i + 1 < lines.Length ? lines[i + 1] : ""), Has.None.Contains("USE TEMP B-TREE FOR ORDER BY"), plan);
    }

    [Test]
    public async Task InternalOnly_OnSqlite_ReadsTheIndexOfInternalTasks_NotEveryTask()
    {
        if (provider != LedgerProvider.Sqlite)
        {
            Assert.Ignore("SQLite's plan; PostgreSQL's planner needs statistics of a big ledger to prefer the partial index.");
        }

        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));
        var plan = await host.QueryAsync(async db =>
        {
            var queries = new LedgerQueries(db, JobLog.Storage.LedgerDatabase.For(LedgerProvider.Sqlite));
            return await SqlitePlan.OfAsync(db, queries.TaskPage(new TaskFilter { Internal = InternalTasks.Only }).ToQueryString());
        });

        // Before this index the list walked IX_JobLogTasks_DispatchedAt over every task to find the few internal ones.
        Assert.That(plan, Does.Contain("IX_JobLogTasks_Internal_DispatchedAt"), plan);
    }
}

/// <summary>SQLite's EXPLAIN QUERY PLAN of a query EF Core printed with <c>ToQueryString()</c>.</summary>
internal static class SqlitePlan
{
    public static async Task<string> OfAsync(JobLogDbContext db, string sql)
    {
        var lines = sql.Split('\n');
        await db.Database.OpenConnectionAsync();
        await using var command = db.Database.GetDbConnection().CreateCommand();
        command.CommandText = "EXPLAIN QUERY PLAN " + string.Join('\n', lines.Where(l => !l.StartsWith(".param", StringComparison.Ordinal)));
        foreach (var line in lines.Where(l => l.StartsWith(".param set", StringComparison.Ordinal)))
        {
            var parts = line.Split(' ', 4);
            var parameter = command.CreateParameter();
            parameter.ParameterName = parts[2];
            parameter.Value = parts[3].Trim('\'', '\r');
            command.Parameters.Add(parameter);
        }

        var rows = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add(reader.GetString(3));
        }

        return string.Join("\n", rows);
    }
}
