using System.Net;
using System.Text.Json.Nodes;
using JobLog.Testing;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>
/// A recurring job's task (session 32): each job run shows its occurrence and its attempt within it, on the task page (the
/// runs table, the run's error, the timeline) and in the JSON API's run fields; a run that is no job attempt shows neither.
/// </summary>
public class JobAttemptsPageTests
{
    private static readonly DateTime T0 = DateTime.UtcNow.AddMinutes(-10);

    [Test]
    public async Task ARecurringJobsTask_ShowsEachRunsOccurrenceAndAttempt_OnThePageAndInTheApi()
    {
        await using var host = await DashboardHost.StartAsync(TestLedger.Sqlite());
        var task = new TaskLog { Id = Guid.NewGuid(), Name = "WeeklyReport", DispatchedAt = T0, State = TaskState.Succeeded, Start = T0, Stop = T0.AddSeconds(10) };
        (int? Attempt, TaskRunState State, string Consumer)[] runs =
        [
            (0, TaskRunState.Succeeded, "WeeklyReportConsumer"),
            (0, TaskRunState.Retried, "WeeklyReportConsumer"),
            (1, TaskRunState.Succeeded, "WeeklyReportConsumer"),
        ];
        for (var i = 0; i < runs.Length; i++)
        {
            task.Runs.Add(new TaskRunLog
            {
                Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, ConsumerType = runs[i].Consumer, Start = T0.AddSeconds(3 * i),
                Stop = T0.AddSeconds((3 * i) + 1), State = runs[i].State, Retries = i, JobRetryAttempt = runs[i].Attempt,
                ErrorMessage = runs[i].State == TaskRunState.Retried ? "System.InvalidOperationException: report failed once" : null,
            });
        }

        task.Runs.Add(new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, ConsumerType = "AuditConsumer", Start = T0, Stop = T0.AddSeconds(1),
            State = TaskRunState.Succeeded, Retries = 0,
        });
        await host.SeedAsync(task);

        var page = WebUtility.HtmlDecode(await host.GetStringAsync($"/joblog/tasks/{task.Id}"));
        Assert.That(page, Does.Contain("occurrence 1 · attempt 1").And.Contain("occurrence 2 · attempt 1").And.Contain("occurrence 2 · attempt 2"));
        Assert.That(page, Does.Contain("Run #1 · occurrence 2 · attempt 1 · RETRIED"), "the retried run's error names its occurrence and attempt");
        Assert.That(page, Does.Contain(">#2 occurrence 2 · attempt 2</text>"), "the timeline's label");
        Assert.That(page, Does.Contain(">#0 AuditConsumer</text>"), "a run that is no job attempt keeps its consumer as its label");

        var detail = JsonNode.Parse(await host.GetStringAsync($"/joblog/api/tasks/{task.Id}"))!;
        var fields = detail["runs"]!.AsArray()
            .Select(r => (Consumer: (string)r!["consumerType"]!, Retries: (int)r["retries"]!, Occurrence: (int?)r["occurrence"], Attempt: (int?)r["attempt"]))
            .OrderBy(r => r.Consumer).ThenBy(r => r.Retries);
        Assert.That(fields, Is.EqualTo(new (string, int, int?, int?)[]
        {
            ("AuditConsumer", 0, null, null),
            ("WeeklyReportConsumer", 0, 1, 1), ("WeeklyReportConsumer", 1, 2, 1), ("WeeklyReportConsumer", 2, 2, 2),
        }));
    }
}
