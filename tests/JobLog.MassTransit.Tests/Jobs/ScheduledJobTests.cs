using JobLog.Testing;
using MassTransit;
using MassTransit.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Jobs;

/// <summary>
/// Jobs the job service starts later (in memory): <c>ScheduleJob</c> (a start time) and recurring jobs (a cron schedule,
/// <c>AddOrUpdateRecurringJob</c>). The job's task is recorded when it is submitted; its ETA is when the job is due.
/// </summary>
public class ScheduledJobTests
{
    private LedgerHost? _host;

    [TearDown]
    public async Task TearDown()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
            _host = null;
        }
    }

    private static string Describe(TaskLog? t) => t is null ? "(no task)" :
        $"{t.Name} {t.State} dispatched={t.DispatchedAt:O} eta={t.EstimatedTimeOfFirstArrival:O} runs=[" +
        string.Join("; ", t.Runs.OrderBy(r => r.Start).Select(r => $"{r.ConsumerType} #{r.Retries} {r.State} {r.Start:O}")) + "]";

    private async Task<TaskLog> WaitFor(Guid jobId, Func<TaskLog, bool> done, string because)
    {
        TaskLog? task = null;
        try
        {
            await LedgerHost.EventuallyAsync(
                async () => (task = await _host!.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == jobId))) is { } found && done(found),
                TimeSpan.FromSeconds(30), because);
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException(because + ": last seen " + Describe(task), ex);
        }

        TestContext.Out.WriteLine(Describe(task));
        return task!;
    }

    /// <summary>
    /// <c>ScheduleJob(start, job)</c>: the job service holds the job until its start time. Before, the job's task showed its
    /// submission time as its ETA, so a job due in an hour looked overdue from the first second.
    /// </summary>
    [Test]
    public async Task ScheduleJob_StartingLater_TheJobsTaskShowsItsStartTimeAsItsEta_AndItsRunBeginsThen()
    {
        _host = await JobBus.StartAsync();
        var bus = _host.Services.GetTestHarness().Bus;
        var start = DateTimeOffset.UtcNow.AddSeconds(3);

        var jobId = await bus.ScheduleJob(start, new ConvertVideo("later.mp4", 0), CancellationToken.None);

        var waiting = await WaitFor(jobId, _ => true, "the scheduled job's task is recorded");
        Assert.That(waiting.EstimatedTimeOfFirstArrival, Is.EqualTo(start.UtcDateTime).Within(TimeSpan.FromMilliseconds(1)), "the ETA is the job's start time");
        var done = await WaitFor(jobId, t => t.State == TaskState.Succeeded, "the job ran at its start time");
        Assert.That(done.EstimatedTimeOfFirstArrival, Is.EqualTo(start.UtcDateTime).Within(TimeSpan.FromMilliseconds(1)));
        Assert.That(done.Runs.Single().Start, Is.GreaterThanOrEqualTo(start.UtcDateTime.AddMilliseconds(-1)), "the job did not run before its start time");
    }

    /// <summary>
    /// A recurring job (<c>AddOrUpdateRecurringJob</c>, every third second): one task (the recurring job's JobId) whose ETA
    /// is the first occurrence, and a run per occurrence. Before, the ETA was the submission time.
    /// </summary>
    [Test]
    public async Task RecurringJob_OnACronSchedule_TheTaskShowsItsFirstOccurrenceAsItsEta_AndARunPerOccurrence()
    {
        _host = await JobBus.StartAsync();
        var bus = _host.Services.GetTestHarness().Bus;

        var jobId = await bus.AddOrUpdateRecurringJob("every-third-second", new ConvertVideo("recurring.mp4", 0), x => x.CronExpression = "0/3 * * * * ?",
            CancellationToken.None);

        var waiting = await WaitFor(jobId, _ => true, "the recurring job's task is recorded");
        var eta = waiting.EstimatedTimeOfFirstArrival!.Value;
        Assert.That((eta.Second % 3, eta.Millisecond), Is.EqualTo((0, 0)), "the ETA is an occurrence of the cron schedule");
        Assert.That(eta, Is.GreaterThan(waiting.DispatchedAt).And.LessThanOrEqualTo(waiting.DispatchedAt.AddSeconds(3)), "the first occurrence after the submission");
        var twice = await WaitFor(jobId, t => t.Runs.Count(r => r.State == TaskRunState.Succeeded) >= 2, "two occurrences ran");
        var first = twice.Runs.OrderBy(r => r.Start).First();
        Assert.That(first.Start, Is.GreaterThanOrEqualTo(eta), "the first occurrence ran at its time");
        Assert.That(twice.Runs.Select(r => r.ConsumerType).Distinct(), Is.EqualTo(new[] { "ConvertVideoConsumer" }));
    }
}
