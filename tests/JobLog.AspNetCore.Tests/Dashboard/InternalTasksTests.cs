using System.Net;
using System.Text.Json;
using JobLog.Testing;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>MassTransit's infrastructure messages: out of the default lists and the failure rate, one filter away.</summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class InternalTasksTests(LedgerProvider provider)
{
    private DashboardHost _host = null!;

    [SetUp]
    public async Task SetUp()
    {
        _host = await DashboardHost.StartAsync(await Ledgers.CreateAsync(provider));
        var now = DateTime.UtcNow.AddMinutes(-5);
        var job = Rows.Task("ConvertVideo", now, TaskState.Succeeded);
        // What a job service leaves behind: housekeeping, some of it expired (a cancelled slot wait) or failed.
        var housekeeping = new[]
        {
            Internal(Rows.Task("AllocateJobSlot", now.AddSeconds(1), TaskState.Succeeded)),
            Internal(Rows.Task("JobSlotWaitElapsed", now.AddSeconds(2), TaskState.Expired)),
            Internal(Rows.Task("GetJobAttemptStatus", now.AddSeconds(3), TaskState.Expired)),
            Internal(Rows.Task("RoutingSlipActivityFaulted", now.AddSeconds(4), TaskState.Failed)),
        };
        await _host.SeedAsync([job, .. housekeeping]);
    }

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    private static TaskLog Internal(TaskLog task)
    {
        task.IsInternal = true;
        return task;
    }

    private async Task<List<string>> Names(string query)
    {
        using var json = JsonDocument.Parse(await _host.GetStringAsync("/joblog/api/tasks" + query));
        return [.. json.RootElement.GetProperty("items").EnumerateArray().Select(t => t.GetProperty("name").GetString()!).Order()];
    }

    [Test]
    public async Task TaskList_ByDefault_LeavesMassTransitInternalTasksOut()
    {
        Assert.That(await Names(""), Is.EqualTo(new[] { "ConvertVideo" }));
        Assert.That(await Names("?internal=false"), Is.EqualTo(new[] { "ConvertVideo" }));
        Assert.That(await Names("?internal=true"), Is.EqualTo(new[] { "AllocateJobSlot", "GetJobAttemptStatus", "JobSlotWaitElapsed", "RoutingSlipActivityFaulted" }));
        Assert.That(await Names("?internal=all&state=expired"), Is.EqualTo(new[] { "GetJobAttemptStatus", "JobSlotWaitElapsed" }));
        var page = await _host.GetStringAsync("/joblog/tasks?internal=all");
        Assert.That(page, Does.Contain("JobSlotWaitElapsed").And.Contain("name=\"internal\""));
        Assert.That(await _host.GetStringAsync("/joblog/tasks"), Does.Not.Contain("JobSlotWaitElapsed"));
    }

    [Test]
    public async Task TaskList_WithAnUnknownInternalValue_AnswersBadRequest() =>
        await _host.GetStringAsync("/joblog/api/tasks?internal=maybe", HttpStatusCode.BadRequest);

    [Test]
    public async Task Overview_CountsAndFailureRate_LeaveInternalTasksOut()
    {
        using var json = JsonDocument.Parse(await _host.GetStringAsync("/joblog/api/overview"));
        var root = json.RootElement;
        var counts = root.GetProperty("counts").EnumerateArray().ToDictionary(c => c.GetProperty("state").GetString()!, c => c.GetProperty("count").GetInt64());
        Assert.That((counts["succeeded"], counts["failed"], counts["expired"]), Is.EqualTo((1L, 0L, 0L)));
        var buckets = root.GetProperty("chart").GetProperty("buckets").EnumerateArray().ToList();
        Assert.That(buckets.Sum(b => b.GetProperty("failed").GetInt32() + b.GetProperty("expired").GetInt32()), Is.Zero,
            "no job failed: housekeeping expiries are not failures");
    }
}
