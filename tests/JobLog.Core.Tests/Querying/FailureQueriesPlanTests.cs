using System.Data.Common;
using System.Text.Json;
using System.Text.RegularExpressions;
using JobLog.Querying;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// The failures pages read the newest open failures in the order of an index on PostgreSQL (docs/scale.md "Session 12
/// (tenm)"): at 10 M tasks, sorting every open failure (81,000) took 0.2–0.5 s of the page; the index reads 10,001
/// entries. SQLite's planner keeps its <c>(State, DispatchedAt)</c> search and a sort with such an index in place (1 M
/// tasks, with statistics), so SQLite has none.
/// </summary>
public class FailureQueriesPlanTests
{
    private const string Index = "IX_JobLogTasks_OpenFailures_FailedAt";

    [TestCase(LedgerProvider.PostgreSql)]
    public async Task OpenFailures_AreReadInTheOrderOfTheirIndex_NotSorted(LedgerProvider provider)
    {
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));
        var plan = await host.QueryAsync(async db =>
        {
            var sql = new LedgerQueries(db, LedgerDatabase.For(provider)).OpenFailuresSql(new FailureFilter(), partitioned: false).Split('\n');
            await db.Database.OpenConnectionAsync();
            var connection = db.Database.GetDbConnection();
            if (provider == LedgerProvider.PostgreSql)
            {
                // An empty table's costs would favour a sort of nothing; the question is whether an index serves the order.
                await using var off = connection.CreateCommand();
                off.CommandText = "SET enable_sort = off";
                await off.ExecuteNonQueryAsync();
            }

            await using var command = connection.CreateCommand();
            command.CommandText = (provider == LedgerProvider.Sqlite ? "EXPLAIN QUERY PLAN " : "EXPLAIN (FORMAT JSON) ")
                + string.Join('\n', sql.Where(l => !l.StartsWith("--", StringComparison.Ordinal) && !l.StartsWith(".param", StringComparison.Ordinal)));
            foreach (var name in Regex.Matches(command.CommandText, "@\\w+").Select(m => m.Value).Distinct())
            {
                var parameter = command.CreateParameter();
                parameter.ParameterName = name;
                parameter.Value = LedgerQueries.MaxFailuresScanned + 1;
                command.Parameters.Add(parameter);
            }

            return await ReadPlanAsync(command, provider);
        });

        Assert.That(plan, Does.Contain(Index), plan);
        Assert.That(plan, Does.Not.Contain("TOP-LEVEL SORT"), plan);
    }

    /// <summary>
    /// One group's page is one range of the index of its grouping's stored groups (docs/scale.md "Session 13 (failgroup)"):
    /// read from the failures' text, it read the newest 10,000 open failures and their runs' errors to find the group's.
    /// </summary>
    [TestCase(LedgerProvider.Sqlite)]
    [TestCase(LedgerProvider.PostgreSql)]
    public async Task OneGroupsPage_IsOneRangeOfItsGroupingsIndex(LedgerProvider provider)
    {
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));
        var plan = await host.QueryAsync(async db =>
        {
            var filter = new FailureFilter { By = JobLog.Failures.FailureGrouping.Queue, Group = "0123456789abcdef" };
            var sql = new LedgerQueries(db, LedgerDatabase.For(provider)).FailurePageSql(filter, partitioned: false).Split('\n');
            await db.Database.OpenConnectionAsync();
            var connection = db.Database.GetDbConnection();
            if (provider == LedgerProvider.PostgreSql)
            {
                // Open failures of 50 queues, with statistics: an empty table's costs would not tell the two indexes apart.
                for (var i = 0; i < 1000; i++)
                {
                    var id = Guid.NewGuid();
                    var task = new TaskLog { Id = id, Name = "Charge", DispatchedAt = DateTime.UtcNow.AddSeconds(-i), State = TaskState.Failed };
                    db.Add(task);
                }

                await db.SaveChangesAsync();
                await using var analyze = connection.CreateCommand();
                analyze.CommandText = $"UPDATE \"JobLogTasks\" SET \"{FailureGroupColumns.Queue}\" = lpad((random() * 50)::int::text, 16, '0'); ANALYZE \"JobLogTasks\"";
                await analyze.ExecuteNonQueryAsync();
            }

            await using var command = connection.CreateCommand();
            command.CommandText = (provider == LedgerProvider.Sqlite ? "EXPLAIN QUERY PLAN " : "EXPLAIN (FORMAT JSON) ")
                + string.Join('\n', sql.Where(l => !l.StartsWith("--", StringComparison.Ordinal) && !l.StartsWith(".param", StringComparison.Ordinal)));
            foreach (var name in Regex.Matches(command.CommandText, "@\\w+").Select(m => m.Value).Distinct())
            {
                var parameter = command.CreateParameter();
                parameter.ParameterName = name;
                parameter.Value = name.Contains("group", StringComparison.OrdinalIgnoreCase) ? filter.Group : filter.Limit + 1;
                command.Parameters.Add(parameter);
            }

            return await ReadPlanAsync(command, provider);
        });

        Assert.That(plan, Does.Contain("IX_JobLogTasks_FailureGroupQueue"), plan);
        Assert.That(plan, Does.Not.Contain("TOP-LEVEL SORT"), plan);
    }

    /// <summary>
    /// One group's summary (the header of its page on the dashboard) counts that group's range of its grouping's index:
    /// it counted every open failure of every group and kept one (at 10 M, 90,000 open failures for one group's page;
    /// docs/scale.md "Session 15 (lead)").
    /// </summary>
    [Test]
    public async Task OneGroupsSummary_CountsOnlyItsRangeOfTheGroupingsIndex()
    {
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(LedgerProvider.Sqlite));
        var plan = await host.QueryAsync(async db =>
        {
            var filter = new FailureFilter { By = JobLog.Failures.FailureGrouping.Queue, Group = "0123456789abcdef", Limit = 1 };
            var sql = new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.Sqlite)).GroupCountsSql(filter, partitioned: false).Split('\n');
            await db.Database.OpenConnectionAsync();
            await using (var analyze = db.Database.GetDbConnection().CreateCommand())
            {
                // Statistics of a ledger with open failures in 50 queues: an empty table's plan would not tell the indexes apart.
                analyze.CommandText = "CREATE TEMP TABLE n(i); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000) INSERT INTO n SELECT i FROM c; " +
                    $"INSERT INTO \"JobLogTasks\" (\"Id\", \"Name\", \"DispatchedAt\", \"State\", \"IsSetAsStale\", \"IsInternal\", \"{FailureGroupColumns.Queue}\") " +
                    $"SELECT randomblob(16), 'Charge', '2026-12-01 00:00:00', CASE WHEN i % 2 = 0 THEN 4 ELSE 3 END, 0, 0, printf('%016d', i % 50) FROM n; ANALYZE;";
                await analyze.ExecuteNonQueryAsync();
            }

            return await GroupSummaryPlanAsync(db.Database.GetDbConnection(), sql, filter.Group!);
        });

        Assert.That(plan, Does.Contain("(FailureGroupQueue=?)"), plan);
    }

    /// <summary>
    /// The same summary on the statistics JobLog keeps itself (<c>RefreshStatisticsAsync</c>: <c>PRAGMA optimize</c> with
    /// its <c>analysis_limit</c>, then the State and Name indexes' from the counts rollup), on a ledger whose groups each
    /// hold more failures than the limited analysis reads: it gave the State index a thousand rows per state, as selective
    /// as a group, and SQLite walked every failed task through it (10 M tasks: 330 ms warm against 7; docs/scale.md
    /// "Session 16 (lead)").
    /// </summary>
    [Test]
    public async Task OneGroupsSummary_UsesTheGroupsIndex_WithTheStatisticsJobLogKeeps()
    {
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(LedgerProvider.Sqlite));
        var (plan, stat) = await host.QueryAsync(async db =>
        {
            var filter = new FailureFilter { By = JobLog.Failures.FailureGrouping.Exception, Group = "0000000000000001", Limit = 1 };
            var sql = new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.Sqlite)).GroupCountsSql(filter, partitioned: false).Split('\n');
            await db.Database.OpenConnectionAsync();
            var connection = db.Database.GetDbConnection();
            await FillWithBigGroupsAsync(connection);
            await using var read = connection.CreateCommand();
            read.CommandText = "SELECT group_concat(idx || ': ' || stat, '; ') FROM (SELECT idx, stat FROM sqlite_stat1 " +
                "WHERE idx IN ('IX_JobLogTasks_State_DispatchedAt', 'IX_JobLogTasks_Name_DispatchedAt', 'IX_JobLogTasks_Name_State_DispatchedAt') ORDER BY idx)";
            var stat = (string?)await read.ExecuteScalarAsync();
            return (await GroupSummaryPlanAsync(connection, sql, filter.Group!), stat);
        });

        Assert.Multiple(() =>
        {
            Assert.That(stat, Is.EqualTo("IX_JobLogTasks_Name_DispatchedAt: 16000 16000 1; IX_JobLogTasks_Name_State_DispatchedAt: 16000 16000 8000 1; " +
                "IX_JobLogTasks_State_DispatchedAt: 16000 8000 1"), "16,000 tasks of one name, 8,000 a state");
            Assert.That(plan, Does.Contain("(FailureGroupException=?)"), plan);
        });
    }

    /// <summary>
    /// The read of the open failures whose groups are still to compute, before every failures page, walks its partial
    /// index (normally empty) on SQLite with JobLog's statistics: the planner searched the State index instead and read
    /// every failed task's row (10 M tasks: 420–780 ms, twice a group's page; docs/scale.md "Session 16 (lead)").
    /// </summary>
    [Test]
    public async Task UnfilledGroups_AreReadFromTheirPartialIndex()
    {
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(LedgerProvider.Sqlite));
        var plan = await host.QueryAsync(async db =>
        {
            await db.Database.OpenConnectionAsync();
            var connection = db.Database.GetDbConnection();
            await FillWithBigGroupsAsync(connection);
            await using var command = connection.CreateCommand();
            command.CommandText = "EXPLAIN QUERY PLAN " + FailureGroupColumns.SelectUnfilled(LedgerDatabase.For(LedgerProvider.Sqlite), 1000);
            return await ReadPlanAsync(command, LedgerProvider.Sqlite);
        });

        Assert.That(plan, Does.Contain(FailureGroupColumns.UnfilledIndex), plan);
    }

    /// <summary>
    /// 8,000 succeeded tasks, then 8,000 open failures (their groups computed) in four exception groups of 2,000, and the
    /// statistics JobLog keeps (<c>RefreshStatisticsAsync</c>, as at start-up and before each sweep).
    /// </summary>
    private static async Task FillWithBigGroupsAsync(DbConnection connection)
    {
        await using (var fill = connection.CreateCommand())
        {
            fill.CommandText = "CREATE TEMP TABLE n(i); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 16000) INSERT INTO n SELECT i FROM c; " +
                $"INSERT INTO \"JobLogTasks\" (\"Id\", \"Name\", \"DispatchedAt\", \"State\", \"IsSetAsStale\", \"IsInternal\", \"{FailureGroupColumns.Exception}\", \"{FailureGroupColumns.At}\") " +
                "SELECT randomblob(16), 'Charge', '2026-12-01 00:00:00', CASE WHEN i > 8000 THEN 4 ELSE 3 END, 0, 0, " +
                "CASE WHEN i > 8000 THEN printf('%016d', i % 4) END, CASE WHEN i > 8000 THEN '2026-12-01 00:00:00' END FROM n;";
            await fill.ExecuteNonQueryAsync();
        }

        await LedgerDatabase.For(LedgerProvider.Sqlite).RefreshStatisticsAsync(connection, CancellationToken.None);
    }

    /// <summary>The SQLite plan of a group summary's statement, its parameters all set to the group.</summary>
    private static async Task<string> GroupSummaryPlanAsync(DbConnection connection, string[] sql, string group)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = "EXPLAIN QUERY PLAN " + string.Join('\n', sql.Where(l => !l.StartsWith("--", StringComparison.Ordinal) && !l.StartsWith(".param", StringComparison.Ordinal)));
        foreach (var name in Regex.Matches(command.CommandText, "@\\w+").Select(m => m.Value).Distinct())
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = group;
            command.Parameters.Add(parameter);
        }

        return await ReadPlanAsync(command, LedgerProvider.Sqlite);
    }

    /// <summary>
    /// The unfiltered groups list (the dashboard's default) takes its counts from the counts kept per group
    /// (<see cref="FailureGroupRollup"/>), not from an aggregation of every open failure (90,000 at 10 M tasks: 137–385
    /// ms; docs/scale.md "Session 16 (fgroups)"): counts changed behind the ledger's back show in it, and not in a
    /// filtered list, which still aggregates its own open failures.
    /// </summary>
    [TestCase(LedgerProvider.Sqlite)]
    [TestCase(LedgerProvider.PostgreSql)]
    public async Task UnfilteredGroups_TakeTheirCountsFromTheCountsKeptPerGroup_NotFromEveryOpenFailure(LedgerProvider provider)
    {
        await using var host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));
        var by = JobLog.Failures.FailureGrouping.Type;
        var (before, after, filtered) = await host.QueryAsync(async db =>
        {
            for (var i = 0; i < 30; i++)
            {
                db.Add(new TaskLog
                {
                    Id = Guid.NewGuid(), Name = "Charge" + (i % 3), QueueName = "q" + (i % 2), DispatchedAt = DateTime.UtcNow.AddMinutes(-i),
                    State = TaskState.Failed, ErrorMessage = "System.TimeoutException: " + (i % 3),
                });
            }

            await db.SaveChangesAsync();
            var queries = new LedgerQueries(db, LedgerDatabase.For(provider));
            var now = DateTime.UtcNow;
            var before = await queries.FailureGroupsAsync(new FailureFilter { By = by }, now, default);
            var charge0 = JobLog.Failures.FailureGroupKey.Hash(by, "Charge0");
            await db.Set<FailureGroupCount>().Where(c => c.Grouping == by && c.GroupId == charge0).ExecuteUpdateAsync(u => u.SetProperty(c => c.Count, 1000));
            var after = await queries.FailureGroupsAsync(new FailureFilter { By = by }, now, default);
            var filtered = await queries.FailureGroupsAsync(new FailureFilter { By = by, From = now.AddDays(-1) }, now, default);
            return (before, after, filtered);
        });

        Assert.That(before.Groups.Select(g => (g.Key, g.Count)), Is.EquivalentTo(new[] { ("Charge0", 10), ("Charge1", 10), ("Charge2", 10) }), "the test's premise");
        Assert.That(after.Groups.Select(g => (g.Key, g.Count)), Is.EqualTo(new[] { ("Charge0", 1000), ("Charge1", 10), ("Charge2", 10) }).Or.EqualTo(new[] { ("Charge0", 1000), ("Charge2", 10), ("Charge1", 10) }));
        Assert.That(after.Total, Is.EqualTo(1020));
        Assert.That(filtered.Groups.Select(g => (g.Key, g.Count)), Is.EquivalentTo(new[] { ("Charge0", 10), ("Charge1", 10), ("Charge2", 10) }), "a filtered list counts its failures");
    }

    /// <summary>The plan as text, with the statement's own sort (not a run lookup's) marked <c>TOP-LEVEL SORT</c>.</summary>
    private static async Task<string> ReadPlanAsync(DbCommand command, LedgerProvider provider)
    {
        await using var reader = await command.ExecuteReaderAsync();
        if (provider == LedgerProvider.PostgreSql)
        {
            await reader.ReadAsync();
            var json = reader.GetString(0);
            using var document = JsonDocument.Parse(json);
            var node = document.RootElement[0].GetProperty("Plan");
            while (node.GetProperty("Node Type").GetString() is "Limit" or "Result")
            {
                node = node.GetProperty("Plans").EnumerateArray().First(p => p.GetProperty("Parent Relationship").GetString() == "Outer");
            }

            return (node.GetProperty("Node Type").GetString() == "Sort" ? "TOP-LEVEL SORT\n" : "") + json;
        }

        // SQLite: id, parent, notused, detail; the statement's own lines have parent 0.
        var lines = new List<string>();
        while (await reader.ReadAsync())
        {
            var detail = reader.GetString(3);
            lines.Add((reader.GetInt64(1) == 0 && detail.StartsWith("USE TEMP B-TREE FOR ORDER BY", StringComparison.Ordinal) ? "TOP-LEVEL SORT " : "") + detail);
        }

        return string.Join('\n', lines);
    }
}
