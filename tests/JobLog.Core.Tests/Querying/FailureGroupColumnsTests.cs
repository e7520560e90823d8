using JobLog.Failures;
using JobLog.Maintenance;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Retention;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// The failures' groups kept on their task rows (<see cref="FailureGroupColumns"/>) give the groups and pages that grouping
/// the failures' text on every read gives (<see cref="LedgerQueries.GroupsFromText"/>), through failures, failures again,
/// retries that succeed, resolves, expiries, purges, restores, a day's drop, and for a ledger written before the columns
/// or before the counts kept per group (<see cref="FailureGroupRollup"/>), which equal a GROUP BY of the open failures
/// after each.
/// </summary>
public class FailureGroupColumnsTests
{
    private static readonly DateTime T0 = new(2026, 3, 10, 12, 0, 0, DateTimeKind.Utc);

    private const string Declined = "Shop.DeclinedException: Declined\n   at MassTransit.X.Y()\n   at Shop.Charge.Handle(ConsumeContext c) in /src/Charge.cs:line 12";
    private const string NoStock = "System.InvalidOperationException: No stock\n   at System.Linq.Enumerable.First()\n   at Shop.Stock.Reserve()";
    private const string Timeout = "System.TimeoutException: The operation has timed out.";

    [TestCase(LedgerProvider.Sqlite, false)]
    [TestCase(LedgerProvider.PostgreSql, false)]
    [TestCase(LedgerProvider.PostgreSql, true)]
    public async Task StoredGroups_GiveWhatGroupingTheTextGives_ThroughFailuresRetriesResolvesExpiriesAndPurges(LedgerProvider provider, bool partitioned)
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(T0));
        await using var host = partitioned
            ? await PartitionedLedgerHosts.StartAsync(clock)
            : await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), services: s => s.AddSingleton<TimeProvider>(clock));
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var ids = Enumerable.Range(0, 9).Select(i => Guid.CreateVersion7(new DateTimeOffset(T0.AddHours(-40 + (i * 4))))).ToArray();
        (string Name, string Queue, string Error)[] kinds =
        [
            ("Charge", "billing", Declined), ("Reserve", "stock", NoStock), ("Charge", "billing", Declined), ("Charge", "payments", Timeout),
            ("Reserve", "stock", NoStock), ("Ship", "shipping", Declined), ("Charge", "billing", Timeout), ("Ship", "shipping", NoStock), ("Charge", "billing", Declined),
        ];
        for (var i = 0; i < ids.Length; i++)
        {
            Run(recorder, ids[i], kinds[i].Name, kinds[i].Queue, T0.AddHours(-40 + (i * 4)), 0, TaskRunState.Failed, kinds[i].Error);
        }

        await host.FlushAsync();
        await AssertSameAsync(host, "after the failures");

        // Task 0 fails again with another error in another queue; task 1 is retried and succeeds; task 2 fails again alike.
        Run(recorder, ids[0], "Charge", "payments", T0.AddHours(-1), 1, TaskRunState.Failed, Timeout);
        Run(recorder, ids[1], "Reserve", "stock", T0.AddHours(-0.5), 1, TaskRunState.Succeeded, null);
        Run(recorder, ids[2], "Charge", "billing", T0.AddMinutes(-10), 1, TaskRunState.Failed, Declined);
        await host.FlushAsync();
        await AssertSameAsync(host, "after a failure again, a retry that succeeded");

        // Resolved, expired, purged.
        await host.QueryAsync(async db =>
        {
            await db.TaskLogs.Where(t => t.Id == ids[3]).ExecuteUpdateAsync(u => u.SetProperty(t => t.Resolution, FailureResolution.Resolved));
            await db.TaskLogs.Where(t => t.Id == ids[4]).ExecuteUpdateAsync(u => u.SetProperty(t => t.State, TaskState.Expired));
            await db.TaskRunLogs.Where(r => r.TaskId == ids[5]).ExecuteDeleteAsync();
            return await db.TaskLogs.Where(t => t.Id == ids[5]).ExecuteDeleteAsync();
        });
        await AssertSameAsync(host, "after a resolve, an expiry and a purge");

        // Reopened (the resolve undone): it is back in its group.
        await host.QueryAsync(db => db.TaskLogs.Where(t => t.Id == ids[3]).ExecuteUpdateAsync(u => u.SetProperty(t => t.Resolution, (FailureResolution?)null)));
        await AssertSameAsync(host, "after a reopen");

        // An old failure (its day the first partition's) purged with a backup, restored, then purged again: on the
        // partitioned ledger by its day's drop, which keeps task 0 (failed since) in the day's _k partition.
        var old = Guid.CreateVersion7(new DateTimeOffset(T0.AddHours(-44)));
        Run(recorder, old, "Ship", "shipping", T0.AddHours(-44), 0, TaskRunState.Failed, Timeout);
        await host.FlushAsync();
        await AssertSameAsync(host, "after an old failure");
        var maintenance = host.Services.GetRequiredService<LedgerMaintenance>();
        var cutoff = T0.Date.AddDays(-1);
        var backups = Path.Combine(Path.GetTempPath(), "joblog-fgroups-" + Guid.NewGuid().ToString("N"));
        try
        {
            var purge = await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, cutoff, cutoff, BackupDirectory: backups));
            Assert.That(purge.Deleted, Is.EqualTo(1));
            await AssertSameAsync(host, "after a purge with a backup");
            Assert.That((await maintenance.RestoreAsync(purge.BackupFile!)).Restored, Is.EqualTo(1));
            await AssertSameAsync(host, "after a restore");
        }
        finally
        {
            Directory.Delete(backups, recursive: true);
        }

        Assert.That((await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, cutoff, cutoff))).Deleted, Is.EqualTo(1));
        Assert.That(await host.QueryAsync(db => db.TaskLogs.AnyAsync(t => t.Id == ids[0])), "task 0 is kept");
        await AssertSameAsync(host, partitioned ? "after a day's drop" : "after a purge");

        // A ledger upgraded to the counts: the migration counts the open failures already grouped.
        await host.QueryAsync(async db =>
        {
            var migrations = db.Database.GetMigrations().ToList();
            var counts = migrations.FindIndex(m => m.EndsWith("_FgroupsFailureGroupCounts", StringComparison.Ordinal));
            await db.GetService<IMigrator>().MigrateAsync(migrations[counts - 1]);
            await db.GetService<IMigrator>().MigrateAsync(migrations[counts]);
            return counts;
        });
        await AssertSameAsync(host, "after the counts' migration onto a ledger with grouped failures");

        // A ledger written before the columns: none filled. Start-up fills them, and the pages give the same.
        await host.QueryAsync(db => db.Database.ExecuteSqlRawAsync(
            $"UPDATE \"JobLogTasks\" SET \"{FailureGroupColumns.Exception}\" = NULL, \"{FailureGroupColumns.Type}\" = NULL, " +
            $"\"{FailureGroupColumns.Queue}\" = NULL, \"{FailureGroupColumns.At}\" = NULL"));
        await host.QueryAsync(db => new LedgerQueries(db, LedgerDatabase.For(provider)).FillFailureGroupsAsync(default));
        var unfilled = await host.QueryAsync(db => db.TaskLogs.CountAsync(t =>
            t.State == TaskState.Failed && t.Resolution == null && EF.Property<string?>(t, FailureGroupColumns.Exception) == null));
        Assert.That(unfilled, Is.Zero);
        await AssertSameAsync(host, "after a fill of a ledger written before the columns");
    }

    private static async Task AssertSameAsync(LedgerHost host, string when)
    {
        var provider = host.Ledger.Provider;
        var (stored, text) = await host.QueryAsync(async db =>
        {
            var fromColumns = new LedgerQueries(db, LedgerDatabase.For(provider));
            var fromText = new LedgerQueries(db, LedgerDatabase.For(provider)) { GroupsFromText = true };
            return (await ReadAllAsync(fromColumns), await ReadAllAsync(fromText));
        });
        Assert.That(stored, Is.EqualTo(text), when);
        var (rollup, grouped) = await host.QueryAsync(async db => (await RollupAsync(db), await GroupByAsync(db)));
        Assert.That(rollup, Is.EqualTo(grouped), when + ": the counts kept per group are a GROUP BY of the open failures");
        var unfilled = await host.QueryAsync(db => db.Database
            .SqlQueryRaw<int>($"SELECT COUNT(*) AS \"Value\" FROM \"JobLogTasks\" WHERE {FailureGroupColumns.Unfilled}").SingleAsync());
        Assert.That(unfilled, Is.Zero, when + ": the pages read the stored groups, every one of them current");
        Assert.That(text, Has.Some.StartsWith("group "), when + ": there are groups to compare");
    }

    /// <summary>The counts kept per group (<see cref="FailureGroupRollup"/>), every row of them.</summary>
    private static async Task<List<string>> RollupAsync(JobLogDbContext db) =>
        (await db.Set<FailureGroupCount>().AsNoTracking().ToListAsync())
        .Select(c => $"{c.Grouping} {c.GroupId} {c.IsInternal} {c.Count}").Order(StringComparer.Ordinal).ToList();

    /// <summary>The open failures counted by each grouping's stored group.</summary>
    private static async Task<List<string>> GroupByAsync(JobLogDbContext db)
    {
        var lines = new List<string>();
        foreach (var by in Enum.GetValues<FailureGrouping>())
        {
            var column = FailureGroupColumns.Of(by);
            var counts = await db.TaskLogs.Where(t => t.State == TaskState.Failed && t.Resolution == null && EF.Property<string?>(t, column) != null)
                .GroupBy(t => new { Id = EF.Property<string?>(t, column), t.IsInternal })
                .Select(g => new { g.Key.Id, g.Key.IsInternal, Count = g.Count() }).ToListAsync();
            lines.AddRange(counts.Select(c => $"{by} {c.Id} {c.IsInternal} {c.Count}"));
        }

        return lines.Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>Every grouping's groups, every group's pages (two rows a page) and ids, as text.</summary>
    private static async Task<List<string>> ReadAllAsync(LedgerQueries queries)
    {
        var lines = new List<string>();
        foreach (var by in Enum.GetValues<FailureGrouping>())
        {
            var groups = await queries.FailureGroupsAsync(new FailureFilter { By = by }, T0, default);
            lines.Add($"{by}: total {groups.Total}, truncated {groups.Truncated}");
            lines.AddRange(groups.Groups.Select(g => "group " + Line(g)));

            // The trend's start not a whole microsecond (PostgreSQL's times are): a failure 0.5 µs before it is not in it.
            var fraction = await queries.FailureGroupsAsync(new FailureFilter { By = by }, T0.AddSeconds(2).AddTicks(5), default);
            lines.AddRange(fraction.Groups.Select(g => "at a fraction " + Line(g)));
            foreach (var limit in new[] { 1, 2 })
            {
                var first = await queries.FailureGroupsAsync(new FailureFilter { By = by, Limit = limit, Internal = InternalTasks.All }, T0, default);
                lines.Add($"the first {limit}: total {first.Total}; " + string.Join("; ", first.Groups.Select(Line)));
            }

            foreach (var g in groups.Groups)
            {
                // One group's summary (the header of its page).
                var summary = await queries.FailureGroupsAsync(new FailureFilter { By = by, Group = g.Id, Limit = 1 }, T0.AddMinutes(-30), default);
                lines.Add($"  summary: total {summary.Total}; " + string.Join("; ", summary.Groups.Select(Line)));
                var filter = new FailureFilter { By = by, Group = g.Id, Limit = 2 };
                var page = await queries.FailuresAsync(filter, default);
                lines.AddRange(page.Items.Select(r => "  " + r));
                while (page.NextCursor is { } next)
                {
                    page = await queries.FailuresAsync(filter with { After = Cursor.Parse(next) }, default);
                    lines.AddRange(page.Items.Select(r => "  " + r));
                }

                lines.Add("  ids " + string.Join(',', await queries.OpenFailureIdsAsync(filter, 100, default)));
            }

            var named = await queries.FailureGroupsAsync(new FailureFilter { By = by, Name = "Charge", Queue = "billing" }, T0, default);
            lines.Add($"{by} Charge/billing: " + string.Join(';', named.Groups.Select(g => $"{g.Key} {g.Count}")));
        }

        var all = await queries.FailuresAsync(new FailureFilter { Limit = 100 }, default);
        lines.AddRange(all.Items.Select(r => "all " + r));
        return lines;
    }

    private static string Line(FailureGroup g) =>
        $"{g.Id} {g.By} {g.Key} {g.ExceptionType} {g.Count} {g.FirstSeen:O} {g.LastSeen:O} {g.SampleTaskId} {g.SampleError} [{string.Join(',', g.Trend)}]";

    private static void Run(LedgerRecorder recorder, Guid id, string name, string queue, DateTime at, int attempt, TaskRunState state, string? error)
    {
        var task = new TaskPayload { Id = id, Name = name, QueueName = queue, DispatchedAt = at, EstimatedTimeOfFirstArrival = at };
        if (attempt == 0)
        {
            recorder.Enqueue(new TaskDispatched(task));
        }

        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = name, QueueName = queue, ConsumerType = "C", Start = at.AddSeconds(1) };
        recorder.Enqueue(new RunStarted(run, task, false));
        recorder.Enqueue(new RunFinished(run.Id, id, state, at.AddSeconds(2), error, null, null));
    }
}
