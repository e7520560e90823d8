using JobLog.Querying;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Storage.PostgreSql;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// On PostgreSQL the failures groups list and one group's summary run statements kept prepared on the connection, each
/// with its generic plan from its first execution (<see cref="PreparedReads"/>): planning them over every day partition
/// was most of the list's time on the partitioned 10 M ledger (docs/scale.md "Session 17 (pgprep)").
/// </summary>
public class PreparedFailureReadsTests
{
    private static readonly DateTime T0 = new(2026, 3, 10, 12, 0, 0, DateTimeKind.Utc);

    private static readonly string[] Errors = ["System.TimeoutException: Timed out", "System.InvalidOperationException: No stock", "Shop.DeclinedException: Declined"];

    [TestCase(false)]
    [TestCase(true)]
    public async Task FailureGroupsListAndOneGroupsSummary_RunPreparedStatements_WithTheirGenericPlans(bool partitioned)
    {
        await using var host = await StartWithFailuresAsync(partitioned);
        var (groups, prepared) = await host.QueryAsync(async db =>
        {
            // One connection throughout: prepared statements are the connection's (the pool keeps them across its opens).
            await db.Database.OpenConnectionAsync();
            var queries = new LedgerQueries(db, LedgerDatabase.For(LedgerProvider.PostgreSql));
            FailureGroups list = null!;
            for (var read = 0; read < 2; read++)
            {
                list = await queries.FailureGroupsAsync(new FailureFilter(), T0, default);
                await queries.FailureGroupsAsync(new FailureFilter { Group = list.Groups[0].Id, Limit = 1 }, T0, default);
            }

            await using var command = db.Database.GetDbConnection().CreateCommand();
            command.CommandText = "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE @tag";
            var tag = command.CreateParameter();
            tag.ParameterName = "tag";
            tag.Value = PreparedReads.Comment + "%";
            command.Parameters.Add(tag);
            var statements = new List<(string Text, long Generic, long Custom)>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                statements.Add((reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2)));
            }

            return (list, statements);
        });

        Assert.That(groups.Groups, Has.Count.EqualTo(3), "the test's premise: three exception groups");
        Assert.Multiple(() =>
        {
            // The unfilled groups' check; the counts kept (the list's, the group's); the groups' ends; the newest failures; the trend.
            Assert.That(prepared, Has.Count.GreaterThanOrEqualTo(6), string.Join("\n", prepared.Select(p => p.Text)));
            Assert.That(prepared.Where(p => p.Text.Contains("JobLogFailureGroups", StringComparison.Ordinal)).ToList(), Has.Count.GreaterThanOrEqualTo(4));
            Assert.That(prepared, Has.All.Matches<(string Text, long Generic, long Custom)>(p => p.Custom == 0 && p.Generic >= 2),
                "planned once each, their generic plans run on every read: " + string.Join("\n", prepared.Select(p => $"{p.Generic} generic, {p.Custom} custom: {p.Text}")));
        });
    }

    /// <summary>
    /// Under Npgsql's <c>Multiplexing</c>, which refuses an explicit preparation, the list and a group's summary are read
    /// as before, unprepared (the statements planned on each read).
    /// </summary>
    [Test]
    public async Task UnderMultiplexing_TheListAndOneGroupsSummaryAreReadUnprepared()
    {
        await using var host = await StartWithFailuresAsync(partitioned: false);
        var database = LedgerDatabase.For(LedgerProvider.PostgreSql);
        await using var db = database.ContextFactory(host.Ledger.ConnectionString + ";Multiplexing=true")();
        var queries = new LedgerQueries(db, database);
        var list = await queries.FailureGroupsAsync(new FailureFilter(), T0, default);
        var summary = await queries.FailureGroupsAsync(new FailureFilter { Group = list.Groups[0].Id, Limit = 1 }, T0, default);
        Assert.Multiple(() =>
        {
            Assert.That(list.Groups.Select(g => g.Count), Is.EqualTo(new[] { 2, 2, 2 }));
            Assert.That(summary.Groups.Select(g => (g.Id, g.Count)), Is.EqualTo(new[] { (list.Groups[0].Id, 2) }));
        });
    }

    /// <summary>Six failures over the last 30 hours, two in each of three exception groups.</summary>
    private static async Task<LedgerHost> StartWithFailuresAsync(bool partitioned)
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(T0));
        var host = partitioned
            ? await PartitionedLedgerHosts.StartAsync(clock)
            : await LedgerHost.StartAsync(await Ledgers.CreateAsync(LedgerProvider.PostgreSql), services: s => s.AddSingleton<TimeProvider>(clock));
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        for (var i = 0; i < 6; i++)
        {
            var at = T0.AddHours(-30 + (i * 5));
            var task = new TaskPayload { Id = Guid.CreateVersion7(new DateTimeOffset(at)), Name = "Charge" + (i % 2), QueueName = "billing", DispatchedAt = at };
            var run = new RunPayload { Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, QueueName = "billing", ConsumerType = "C", Start = at.AddSeconds(1) };
            recorder.Enqueue(new TaskDispatched(task));
            recorder.Enqueue(new RunStarted(run, task, false));
            recorder.Enqueue(new RunFinished(run.Id, task.Id, TaskRunState.Failed, at.AddSeconds(2), Errors[i % 3], null, null));
        }

        await host.FlushAsync();
        return host;
    }
}
