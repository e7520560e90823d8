using System.Text.Json;
using JobLog.Failures;
using JobLog.Testing;
using JobLog.Worker.Cli;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary><c>failures</c>: the Failures page's groups and a group's failures, with the same filter names and JSON.</summary>
public class FailuresCommandTests
{
    private const string Declined = "Shop.CardDeclinedException: Declined\n   at MassTransit.X.Y()\n   at Shop.Charge.Handle(ConsumeContext c)";

    private static async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Cli.Cli.RunAsync(args, CliConsole.Redirected(output, error), recordCommand: false);
        return (exit, output.ToString(), error.ToString());
    }

    [Test]
    public async Task Failures_ListsTheGroups_ThenAGroupsFailures_AndTheSameAsJson()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var now = DateTime.UtcNow;
        var ids = new List<Guid>();
        await host.QueryAsync(db =>
        {
            for (var i = 0; i < 3; i++)
            {
                var id = Guid.NewGuid();
                ids.Add(id);
                db.Add(new TaskLog
                {
                    Id = id, Name = "Charge", QueueName = "charge", DispatchedAt = now.AddMinutes(-i), Stop = now.AddMinutes(-i), State = TaskState.Failed,
                    Runs = [new TaskRunLog { Id = Guid.NewGuid(), TaskId = id, Name = "Charge", ConsumerType = "C", QueueName = "charge", Start = now.AddMinutes(-i), State = TaskRunState.Failed, ErrorMessage = Declined }],
                });
            }

            return db.SaveChangesAsync();
        });
        var setting = "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString;
        var groupId = new FailureGroupKey(FailureGrouping.Exception, "Shop.CardDeclinedException at Shop.Charge.Handle").Id;

        var (exit, output, _) = await RunAsync("failures", setting);
        var (jsonExit, json, _) = await RunAsync("failures", "--json", setting);
        var (typeExit, byType, _) = await RunAsync("failures", "--by", "type", "--json", setting);
        var (groupExit, group, _) = await RunAsync("failures", "--group", groupId, setting);
        var (badExit, _, bad) = await RunAsync("failures", "--by", "colour", setting);

        Assert.That((exit, jsonExit, typeExit, groupExit, badExit), Is.EqualTo((0, 0, 0, 0, 2)));
        Assert.That(output, Does.Contain(groupId).And.Contain("Shop.CardDeclinedException at Shop.Charge.Handle").And.Contain("1 groups, 3 open failures"));
        var groups = JsonDocument.Parse(json).RootElement.GetProperty("groups");
        Assert.That((groups[0].GetProperty("id").GetString(), groups[0].GetProperty("count").GetInt32()), Is.EqualTo((groupId, 3)));
        Assert.That(JsonDocument.Parse(byType).RootElement.GetProperty("groups")[0].GetProperty("key").GetString(), Is.EqualTo("Charge"));
        Assert.That(ids, Has.All.Matches<Guid>(id => group.Contains(id.ToString(), StringComparison.Ordinal)));
        Assert.That(bad, Does.Contain("--by must be one of"));
    }

    [Test]
    public async Task Help_ListsTheFailuresCommand()
    {
        var (_, output, _) = await RunAsync("--help");

        Assert.That(output, Does.Contain("  failures "));
    }
}
