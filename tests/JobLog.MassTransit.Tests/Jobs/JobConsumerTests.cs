using JobLog.Querying;
using JobLog.Testing;
using MassTransit;
using MassTransit.Contracts.JobService;
using MassTransit.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Jobs;

/// <summary>Job consumers: the job is a task named after the job (its JobId), its attempts are runs.</summary>
public class JobConsumerTests
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

    /// <summary>Starts the job bus and a recurring <see cref="ConvertVideo"/> job every third second.</summary>
    private async Task<(LedgerHost Host, Guid JobId)> StartEveryThirdSecondAsync(string name, string path)
    {
        var host = _host = await JobBus.StartAsync();
        return (host, await host.Services.GetTestHarness().Bus.AddOrUpdateRecurringJob(name, new ConvertVideo(path, 0), x => x.CronExpression = "0/3 * * * * ?",
            CancellationToken.None));
    }

    private static async Task<TaskLog> WaitFor(LedgerHost host, Guid jobId, Func<TaskLog, bool> done, string because)
    {
        TaskLog? task = null;
        try
        {
            await LedgerHost.EventuallyAsync(
                async () =>
                {
                    task = await host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == jobId));
                    return task is not null && done(task);
                },
                because: because);
        }
        catch (TimeoutException ex)
        {
            var runs = task is null ? "no task" : string.Join("; ", task.Runs.Select(r => $"{r.ConsumerType} #{r.Retries} {r.State}"));
            throw new TimeoutException($"{because}: {task?.Name} {task?.State} ({runs})", ex);
        }

        return task!;
    }

    [Test]
    public async Task SubmitJob_WhenTheJobCompletes_RecordsTheJobUnderItsNameWithOneSucceededRunAndItsProgress()
    {
        _host = await JobBus.StartAsync();
        var bus = _host.Services.GetTestHarness().Bus;

        var jobId = await bus.SubmitJob(new ConvertVideo("a.mp4", 0), CancellationToken.None);

        var task = await WaitFor(_host, jobId, t => t.State == TaskState.Succeeded, "the job succeeded");
        Assert.That(task.Name, Is.EqualTo("ConvertVideo"));
        Assert.That(task.Input, Is.EqualTo("Path=a.mp4, Seconds=0"));
        Assert.That(task.IsInternal, Is.False);
        var run = task.Runs.Single();
        Assert.That((run.Name, run.ConsumerType, run.State, run.Retries), Is.EqualTo(("ConvertVideo", "ConvertVideoConsumer", TaskRunState.Succeeded, 0)));
        Assert.That(run.Output, Does.Contain("converting a.mp4"));
        await LedgerHost.EventuallyAsync(
            async () => (await _host.TaskAsync(jobId)).ExtraData?.Contains("\"value\":2", StringComparison.Ordinal) == true,
            because: "the job's last progress (2 of 2) is on the job");
        var visible = await _host.QueryAsync(db => db.TaskLogs.Where(t => !t.IsInternal).Select(t => t.Name).ToListAsync());
        Assert.That(visible, Is.EqualTo(new[] { "ConvertVideo" }), "StartJob, slots and the rest of the job service's protocol are internal");
    }

    [Test]
    public async Task SubmitJob_TheJobServicesStartJob_IsConsumedOnTheInstanceEndpoint_WithASucceededRunOfItsJobTypesConsumer()
    {
        _host = await JobBus.StartAsync();
        var bus = _host.Services.GetTestHarness().Bus;

        var video = await bus.SubmitJob(new ConvertVideo("d.mp4", 0), CancellationToken.None);
        var broken = await bus.SubmitJob(new BrokenJob(7), CancellationToken.None);

        await WaitFor(_host, video, t => t.State == TaskState.Succeeded, "the video job succeeded");
        await WaitFor(_host, broken, t => t.State == TaskState.Failed, "the broken job failed (three attempts)");
        // StartJob is sent by the job attempt saga to the service instance's endpoint, where StartJobConsumer<T> of the
        // command's job type hands the job to the job service (the other job type's consumer ignores it): consumed like any
        // message, so it has a run and does not stay WAITING. One StartJob per attempt: one for the video, three for the
        // broken job.
        List<TaskLog> startJobs = [];
        try
        {
            await LedgerHost.EventuallyAsync(
                async () =>
                {
                    startJobs = await _host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).Where(t => t.Name == "StartJob").ToListAsync());
                    return startJobs.Count == 4 && startJobs.All(t => t.State == TaskState.Succeeded);
                },
                TimeSpan.FromSeconds(15),
                "every StartJob succeeded");
        }
        catch (TimeoutException ex)
        {
            var seen = string.Join("; ", startJobs.Select(t => $"{t.Name} {t.State} q={t.QueueName} runs={t.Runs.Count}"));
            throw new TimeoutException($"StartJob: {seen}", ex);
        }

        Assert.That(startJobs.Select(t => t.IsInternal), Has.All.True);
        Assert.That(startJobs.Select(t => t.QueueName), Has.All.StartWith("instance-"));
        Assert.That(startJobs.Select(t => t.Runs.Count), Has.All.EqualTo(1));
        var runs = startJobs.Select(t => (Task: t, Run: t.Runs.Single())).ToList();
        Assert.That(runs.Select(r => (r.Run.State, r.Run.QueueName)), Has.All.EqualTo((TaskRunState.Succeeded, runs[0].Task.QueueName)));
        Assert.That(runs.Select(r => r.Run.ConsumerType).Order(),
            Is.EqualTo(new[] { "StartJobConsumer<BrokenJob>", "StartJobConsumer<BrokenJob>", "StartJobConsumer<BrokenJob>", "StartJobConsumer<ConvertVideo>" }));
        Assert.That(runs.Where(r => r.Run.ConsumerType == "StartJobConsumer<ConvertVideo>").Select(r => r.Task.TaskKwargs),
            Has.All.Contain(video.ToString()), "the video's StartJob is the one of ConvertVideo's consumer");
    }

    [Test]
    public async Task CancelJob_WhileRunning_RecordsTheAttemptCancelledNotSucceeded()
    {
        _host = await JobBus.StartAsync();
        var bus = _host.Services.GetTestHarness().Bus;
        var jobId = await bus.SubmitJob(new ConvertVideo("long.mp4", 60), CancellationToken.None);
        await WaitFor(_host, jobId, t => t.State == TaskState.Active, "the job started");

        await bus.CancelJob(jobId);

        var task = await WaitFor(_host, jobId, t => t.State == TaskState.Cancelled, "the job was cancelled");
        var run = task.Runs.Single();
        Assert.That(run.State, Is.EqualTo(TaskRunState.Cancelled));
        Assert.That(run.ErrorMessage, Does.StartWith("Cancelled"));
        Assert.That(run.Stop, Is.Not.Null);
    }

    /// <summary>
    /// A job whose options retry (<c>JobOptions&lt;T&gt;.SetRetry</c>), cancelled while it runs (<c>CancelJob</c>, or its
    /// <c>JobTimeout</c> running out): MassTransit does not retry a cancellation; the attempt is CANCELLED, the only run.
    /// </summary>
    [TestCase(false, TestName = "CancelJob_WhileRunning_AJobWhoseOptionsRetry_IsCancelledNotRetried")]
    [TestCase(true, TestName = "JobTimeout_RunningOut_AJobWhoseOptionsRetry_IsCancelledNotRetried")]
    public async Task CancelledJobWithRetry(bool timeout)
    {
        _host = await JobBus.StartAsync(more: x => x.AddConsumer<RetriedVideoConsumer>(c => c.Options<JobOptions<RetriedVideo>>(o =>
        {
            o.SetRetry(r => r.Intervals(200, 200));
            if (timeout)
            {
                o.SetJobTimeout(TimeSpan.FromSeconds(1));
            }
        })));
        var bus = _host.Services.GetTestHarness().Bus;
        var jobId = await bus.SubmitJob(new RetriedVideo("long.mp4", 60), CancellationToken.None);
        await WaitFor(_host, jobId, t => t.State == TaskState.Active, "the job started");
        if (!timeout)
        {
            await bus.CancelJob(jobId);
        }

        var states = _host.Services.GetRequiredService<IRequestClient<GetJobState>>();
        string? state = null;
        await LedgerHost.EventuallyAsync(async () => (state = (await states.GetJobState(jobId)).CurrentState) is "Canceled" or "Faulted" or "Completed",
            TimeSpan.FromSeconds(30), "the job service ended the job");
        await _host.FlushAsync();
        var task = await WaitFor(_host, jobId, t => t.State is not (TaskState.Active or TaskState.Waiting), "the job's task ended");
        var runs = string.Join("; ", task.Runs.OrderBy(r => r.Start).Select(r => $"{r.ConsumerType} #{r.Retries} {r.State} next={r.EstimatedTimeOfNextRetry:O} err={r.ErrorMessage}"));
        TestContext.Out.WriteLine($"job service: {state}; ledger: {task.State} [{runs}]");
        Assert.That((state, task.State), Is.EqualTo(("Canceled", TaskState.Cancelled)), runs);
        Assert.That(task.Runs.Select(r => r.State), Is.EqualTo(new[] { TaskRunState.Cancelled }), runs);
    }

    [Test]
    public async Task SubmitJob_WhenEveryAttemptFaults_RecordsEachAttemptAsARunTheLastFailed()
    {
        _host = await JobBus.StartAsync();
        var bus = _host.Services.GetTestHarness().Bus;

        var jobId = await bus.SubmitJob(new BrokenJob(5), CancellationToken.None);

        var task = await WaitFor(_host, jobId, t => t.State == TaskState.Failed, "the job failed");
        var runs = task.Runs.OrderBy(r => r.Retries).ToList();
        Assert.That(runs.Select(r => (r.Retries, r.State)),
            Is.EqualTo(new[] { (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, TaskRunState.Failed) }));
        Assert.That(runs[^1].ErrorMessage, Does.StartWith("System.InvalidOperationException: job 5 cannot run"));
        Assert.That(runs[0].EstimatedTimeOfNextRetry, Is.Not.Null);
        Assert.That(runs.Select(r => r.JobRetryAttempt), Is.EqualTo(new int?[] { 0, 1, 2 }), "the job service's retry attempts");
    }

    [Test]
    public async Task SendJobMessage_ToTheJobConsumer_RecordsTheJobAsAChildOfTheSubmission()
    {
        _host = await JobBus.StartAsync();
        var harness = _host.Services.GetTestHarness();
        var client = harness.GetRequestClient<ConvertVideo>();

        var accepted = await client.GetResponse<JobSubmissionAccepted>(new ConvertVideo("b.mp4", 0));

        var job = await WaitFor(_host, accepted.Message.JobId, t => t.State == TaskState.Succeeded, "the job succeeded");
        Assert.That(job.Name, Is.EqualTo("ConvertVideo"));
        Assert.That(job.ParentRunId, Is.Not.Null);
        var submission = await _host.QueryAsync(db => db.TaskRunLogs.AsNoTracking().SingleAsync(r => r.Id == job.ParentRunId));
        Assert.That(submission.ConsumerType, Is.EqualTo("SubmitJobConsumer<ConvertVideo>"));
    }

    [Test]
    public async Task SubmitJob_WithInternalMessagesOff_RecordsOnlyTheJob()
    {
        _host = await JobBus.StartAsync(o => o.RecordInternalMessages = false);
        var bus = _host.Services.GetTestHarness().Bus;

        var jobId = await bus.SubmitJob(new ConvertVideo("c.mp4", 0), CancellationToken.None);

        await WaitFor(_host, jobId, t => t.State == TaskState.Succeeded, "the job succeeded");
        await _host.FlushAsync();
        var names = await _host.QueryAsync(db => db.TaskLogs.Select(t => t.Name).ToListAsync());
        Assert.That(names, Is.EqualTo(new[] { "ConvertVideo" }));
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

        var waiting = await WaitFor(_host, jobId, _ => true, "the scheduled job's task is recorded");
        TestContext.Out.WriteLine($"dispatched {waiting.DispatchedAt:O}, ETA {waiting.EstimatedTimeOfFirstArrival:O}, start {start:O}");
        Assert.That(waiting.EstimatedTimeOfFirstArrival, Is.EqualTo(start.UtcDateTime).Within(TimeSpan.FromMilliseconds(1)), "the ETA is the job's start time");
        var done = await WaitFor(_host, jobId, t => t.State == TaskState.Succeeded, "the job ran at its start time");
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
        var (host, jobId) = await StartEveryThirdSecondAsync("every-third-second", "recurring.mp4");

        var waiting = await WaitFor(host, jobId, _ => true, "the recurring job's task is recorded");
        TestContext.Out.WriteLine($"dispatched {waiting.DispatchedAt:O}, ETA {waiting.EstimatedTimeOfFirstArrival:O}");
        var eta = waiting.EstimatedTimeOfFirstArrival!.Value;
        Assert.That((eta.Second % 3, eta.Millisecond), Is.EqualTo((0, 0)), "the ETA is an occurrence of the cron schedule");
        Assert.That(eta, Is.GreaterThan(waiting.DispatchedAt).And.LessThanOrEqualTo(waiting.DispatchedAt.AddSeconds(3)), "the first occurrence after the submission");
        var twice = await WaitFor(host, jobId, t => t.Runs.Count(r => r.State == TaskRunState.Succeeded) >= 2, "two occurrences ran");
        var first = twice.Runs.OrderBy(r => r.Start).First();
        Assert.That(first.Start, Is.GreaterThanOrEqualTo(eta), "the first occurrence ran at its time");
        Assert.That(twice.Runs.Select(r => r.ConsumerType).Distinct(), Is.EqualTo(new[] { "ConvertVideoConsumer" }));
    }

    /// <summary>
    /// A recurring job whose second occurrence faults once and is retried (session 32): one task, and its runs numbered by
    /// occurrence and attempt on the task's detail (the page, the CLI) and in the JSON API's run fields. Before, only
    /// <c>Retries</c> (#0, #1, #2) told them apart: the second occurrence's retry read like a third occurrence.
    /// </summary>
    [Test]
    public async Task RecurringJob_TheSecondOccurrenceRetriedOnce_RunsAreNumberedByOccurrenceAndAttempt()
    {
        _host = await JobBus.StartAsync(more: x =>
            x.AddConsumer<FlakyReportConsumer>(c => c.Options<JobOptions<FlakyReport>>(o => o.SetRetry(r => r.Intervals(10)))));
        var jobId = await _host.Services.GetTestHarness().Bus.AddOrUpdateRecurringJob("flaky-report", new FlakyReport("weekly"),
            x => x.CronExpression = "0/3 * * * * ?", CancellationToken.None);

        await WaitFor(_host, jobId, t => t.Runs.Count(r => r.State == TaskRunState.Succeeded) >= 2 && t.Runs.Any(r => r.State == TaskRunState.Retried),
            "the first occurrence succeeded, the second was retried and succeeded");
        await using var scope = _host.Services.CreateAsyncScope();
        var detail = (await scope.ServiceProvider.GetRequiredService<LedgerQueries>().TaskAsync(jobId, default))!;
        var runs = detail.Runs.OrderBy(r => r.Retries).Take(3).ToList();
        var shown = runs.Select(r => (r.Retries, r.State, detail.JobAttempt(r))).ToList();
        TestContext.Out.WriteLine(string.Join("; ", shown));
        Assert.That(shown, Is.EqualTo(new (int, TaskRunState, string?)[]
        {
            (0, TaskRunState.Succeeded, "occurrence 1 · attempt 1"),
            (1, TaskRunState.Retried, "occurrence 2 · attempt 1"),
            (2, TaskRunState.Succeeded, "occurrence 2 · attempt 2"),
        }));
        var document = TaskDetailDocument.From(detail).Runs.OrderBy(r => r.Retries).Take(3);
        Assert.That(document.Select(r => (r.Occurrence, r.Attempt, r.JobRetryAttempt)),
            Is.EqualTo(new (int?, int?, int?)[] { (1, 1, 0), (2, 1, 0), (2, 2, 1) }), "the JSON API's run fields");
    }

    /// <summary>
    /// A job scheduled for later and cancelled before its start (<c>bus.CancelJob(jobId, reason)</c>): the job service
    /// cancels it and publishes <c>JobCanceled</c>; no attempt ever runs. Before, its task stayed WAITING, past its ETA,
    /// until its stale limit.
    /// </summary>
    [Test]
    public async Task ScheduleJob_CancelledBeforeItsStart_IsCancelled_WithTheReason()
    {
        _host = await JobBus.StartAsync();
        var bus = _host.Services.GetTestHarness().Bus;
        var jobId = await bus.ScheduleJob(DateTimeOffset.UtcNow.AddSeconds(30), new ConvertVideo("cancelled.mp4", 0), CancellationToken.None);
        await WaitFor(_host, jobId, _ => true, "the scheduled job's task is recorded");

        await bus.CancelJob(jobId, "not needed any more");

        var task = await WaitFor(_host, jobId, t => t.State != TaskState.Waiting, "the cancelled job's task ends");
        var run = task.Runs.Single();
        Assert.That((task.State, run.State, run.ConsumerType), Is.EqualTo((TaskState.Cancelled, TaskRunState.Cancelled, "(job service)")));
        Assert.That(run.ErrorMessage, Is.EqualTo("Cancelled before an attempt ran: not needed any more"));
    }

    /// <summary>
    /// A job whose attempt faulted and which waits to retry (its job options: one retry a minute later), cancelled then
    /// (<c>bus.CancelJob(jobId, reason)</c>): the job service cancels it without another attempt. Before, the task kept the
    /// faulted attempt's RETRIED state (the cancellation's run was the job service's, a lane of its own) and that run said
    /// "before an attempt ran".
    /// </summary>
    [Test]
    public async Task CancelJob_WhileItWaitsToRetry_IsCancelled_OnTheJobConsumersLane_WithTheReason()
    {
        _host = await JobBus.StartAsync(more: x => x.AddConsumer<PatientJobConsumer>(c => c.Options<JobOptions<PatientJob>>(o => o.SetRetry(r => r.Interval(1, TimeSpan.FromMinutes(1))))));
        var bus = _host.Services.GetTestHarness().Bus;
        var jobId = await bus.SubmitJob(new PatientJob(3), CancellationToken.None);
        await WaitFor(_host, jobId, t => t.State == TaskState.Retried, "the first attempt faulted and the job waits to retry");

        await bus.CancelJob(jobId, "the customer gave up");

        var task = await WaitFor(_host, jobId, t => t.State != TaskState.Retried, "the cancelled job's task ends");
        var runs = task.Runs.OrderBy(r => r.Start).Select(r => (r.Name, r.ConsumerType, r.Retries, r.State)).ToList();
        Assert.That(runs, Is.EqualTo(new[] { ("PatientJob", "PatientJobConsumer", 0, TaskRunState.Retried), ("PatientJob", "PatientJobConsumer", 1, TaskRunState.Cancelled) }));
        Assert.That((task.Name, task.State), Is.EqualTo(("PatientJob", TaskState.Cancelled)));
        Assert.That(task.Runs.OrderBy(r => r.Start).Last().ErrorMessage, Is.EqualTo("Cancelled while waiting to retry: the customer gave up"));
    }

    /// <summary>
    /// JobLog's headers naming a retried job's consumer and name on its <c>JobAttemptFaulted</c> (session 30) are clear
    /// text: a sender that publishes a <c>JobAttemptFaulted</c> of its own for a running job, with a retry delay and those
    /// headers set to another lane, made the job saga's process believe them. Cancelled then, the job's cancellation was a
    /// run named as the sender chose, on a consumer that does not exist. Only a signed pair is believed; a forged one leaves
    /// the cancellation to the job service's own run.
    /// </summary>
    [Test]
    public async Task CancelJob_AfterAForgedAttemptFaultWithJobHeaders_TheCancellationIsNotOnTheForgedLane()
    {
        _host = await JobBus.StartAsync(more: x => x.AddConsumer<RenderFrameConsumer>(c => c.Options<JobOptions<RenderFrame>>(o => o.SetRetry(r => r.None()))));
        var bus = _host.Services.GetTestHarness().Bus;
        var jobId = await bus.SubmitJob(new RenderFrame(7, 600_000), CancellationToken.None);
        await WaitFor(_host, jobId, t => t.State == TaskState.Active, "the job's attempt runs");

        await bus.Publish<JobAttemptFaulted>(new
        {
            JobId = jobId,
            AttemptId = NewId.NextGuid(),
            RetryAttempt = 0,
            RetryDelay = TimeSpan.FromMinutes(1),
            Timestamp = DateTime.UtcNow,
            Exceptions = new InvalidOperationException("forged"),
        }, x =>
        {
            x.Headers.Set("JobLog-JobConsumer", "ForgedConsumer");
            x.Headers.Set("JobLog-JobName", "ForgedName");
        });
        await _host.Services.GetTestHarness().Consumed.Any<JobAttemptFaulted>(m => m.Context.Message.JobId == jobId);
        await bus.CancelJob(jobId, "the customer gave up");

        var task = await WaitFor(_host, jobId, t => t.Runs.Any(r => r.State == TaskRunState.Cancelled), "the job's cancellation is recorded");
        var cancelled = task.Runs.Where(r => r.State == TaskRunState.Cancelled).Select(r => (r.Name, r.ConsumerType)).ToList();
        Assert.That(cancelled, Is.EqualTo(new[] { ("CancelJob", JobLog.MassTransit.Internal.Jobs.JobTasks.JobService) }));
        Assert.That(task.Name, Is.EqualTo("RenderFrame"));
    }

    /// <summary>
    /// A recurring job starting in the last hour DateTime holds, in a time zone: MassTransit's cron parser throws an
    /// <see cref="ArgumentOutOfRangeException"/> computing the occurrence after it. Before, only format and time-zone errors
    /// were caught, so the submission's record failed and the job had no task.
    /// </summary>
    [Test]
    public async Task RecurringJob_StartingWhereTheNextOccurrenceIsPastDateTimesRange_IsRecorded_DueAtItsStart()
    {
        var start = DateTimeOffset.MaxValue.AddHours(-1);
        var schedule = new Schedule("0 0 0 * * ?", "America/Los_Angeles", start);
        Assert.That(JobLog.MassTransit.Internal.Jobs.JobTasks.DueAt(schedule, DateTime.UtcNow), Is.EqualTo(start.UtcDateTime), "no occurrence after the start can be told");
        Assert.That(JobLog.MassTransit.Internal.Jobs.JobTasks.DueAt(new Schedule("0 0 0 ? * 1#", null, null), new DateTime(2026, 1, 1)), Is.EqualTo(new DateTime(2026, 1, 1)),
            "a cron the parser refuses: due now");
        _host = await JobBus.StartAsync();
        var bus = _host.Services.GetTestHarness().Bus;

        var jobId = await bus.AddOrUpdateRecurringJob("at-the-end-of-time", new ConvertVideo("last.mp4", 0), x =>
        {
            x.CronExpression = schedule.CronExpression;
            x.TimeZoneId = schedule.TimeZoneId;
            x.Start = start;
        }, CancellationToken.None);

        var task = await WaitFor(_host, jobId, _ => true, "the recurring job's task is recorded");
        Assert.That((task.Name, task.EstimatedTimeOfFirstArrival), Is.EqualTo(("ConvertVideo", (DateTime?)start.UtcDateTime)));
    }

    /// <summary>
    /// A recurring job between occurrences: after an occurrence the job saga computes its <c>NextStartDate</c> and
    /// schedules itself a <c>JobSlotWaitElapsed</c> (the job's id) for then; that is the job's next arrival, so it is the
    /// task's ETA. Before, the ETA stayed the first occurrence, in the past from the second occurrence on.
    /// </summary>
    [Test]
    public async Task RecurringJob_AfterAnOccurrence_TheTasksEtaIsTheNextOccurrence_TheJobSagasScheduledWait()
    {
        var (host, jobId) = await StartEveryThirdSecondAsync("every-third-second-next", "next.mp4");

        var ran = await WaitFor(host, jobId,
            t => t.Runs.Count(r => r.State == TaskRunState.Succeeded) >= 2 && t.EstimatedTimeOfFirstArrival > t.Runs.Max(r => r.Start),
            "two occurrences ran and the task's ETA is the next one");
        var key = jobId.ToString();
        var waits = await host.QueryAsync(db => db.TaskLogs.AsNoTracking().Where(t => t.Name == "JobSlotWaitElapsed").ToListAsync());
        waits = waits.Where(t => (t.Input ?? "").Contains(key, StringComparison.OrdinalIgnoreCase)).OrderBy(t => t.DispatchedAt).ToList();
        foreach (var t in waits)
        {
            TestContext.Out.WriteLine($"{t.Name} {t.State} internal={t.IsInternal} dispatched={t.DispatchedAt:O} eta={t.EstimatedTimeOfFirstArrival:O} {t.Input}");
        }

        TestContext.Out.WriteLine($"task ETA {ran.EstimatedTimeOfFirstArrival:O}; runs " + string.Join("; ", ran.Runs.OrderBy(r => r.Start).Select(r => $"#{r.Retries} {r.State} {r.Start:O}")));
        var eta = ran.EstimatedTimeOfFirstArrival!.Value;
        var period = TimeSpan.FromSeconds(3).Ticks;
        var off = eta.Ticks % period;
        Assert.That(TimeSpan.FromTicks(Math.Min(off, period - off)), Is.LessThan(TimeSpan.FromMilliseconds(100)), "the ETA is an occurrence of the cron schedule");
        Assert.That(waits.Select(t => t.IsInternal), Has.All.True, "the saga's waits stay MassTransit's internal tasks");
        Assert.That(waits.Select(t => (t.EstimatedTimeOfFirstArrival!.Value - eta).Duration()).Min(), Is.LessThan(TimeSpan.FromMilliseconds(100)),
            "the ETA is that of the job saga's wait for the occurrence");
    }

    /// <summary>
    /// A job type with a concurrent job limit of one (<c>JobOptions&lt;T&gt;.SetConcurrentJobLimit(1)</c>) and two jobs
    /// submitted together: the second waits for the job type's slot (MassTransit's slot wait, 1 s here) and runs after the
    /// first. Each is one SUCCEEDED run numbered #0 (a slot wait is no retry), the second's run begins after the first's
    /// ends, and its ETA stays its submission (the slot wait's <c>JobSlotWaitElapsed</c> is no occurrence).
    /// </summary>
    [Test]
    public async Task ConcurrentJobLimitOfOne_TwoJobs_TheSecondWaitsForTheSlot_EachOneSucceededRun_NoRetry()
    {
        _host = await JobBus.StartAsync(more: x =>
        {
            x.AddOptions<JobSagaOptions>().Configure(o => o.SlotWaitTime = TimeSpan.FromSeconds(1));
            x.AddConsumer<RenderFrameConsumer>(c => c.Options<JobOptions<RenderFrame>>(o => o.SetRetry(r => r.None()).SetConcurrentJobLimit(1)));
        });
        var bus = _host.Services.GetTestHarness().Bus;

        var first = await bus.SubmitJob(new RenderFrame(1, 1500), CancellationToken.None);
        var second = await bus.SubmitJob(new RenderFrame(2, 1500), CancellationToken.None);

        var a = await WaitFor(_host, first, t => t.State == TaskState.Succeeded, "the first job succeeded");
        var b = await WaitFor(_host, second, t => t.State == TaskState.Succeeded, "the second job succeeded");
        var runs = new[] { a, b }.Select(t => t.Runs.Single()).ToList();
        TestContext.Out.WriteLine(string.Join("; ", new[] { a, b }.Select(t => $"{t.Name} {t.State} eta={t.EstimatedTimeOfFirstArrival:O} dispatched={t.DispatchedAt:O} run {t.Runs.Single().Start:O}..{t.Runs.Single().Stop:O}")));
        Assert.That(runs.Select(r => (r.Retries, r.State, r.ConsumerType)), Has.All.EqualTo((0, TaskRunState.Succeeded, "RenderFrameConsumer")));
        var (earlier, later) = runs[0].Start < runs[1].Start ? (runs[0], runs[1]) : (runs[1], runs[0]);
        Assert.That(later.Start, Is.GreaterThanOrEqualTo(earlier.Stop!.Value), "one slot: the later job ran after the earlier one ended");
        Assert.That(new[] { a, b }.Select(t => t.EstimatedTimeOfFirstArrival == t.DispatchedAt), Has.All.True, "a slot wait does not move the ETA");
    }

    private sealed record Schedule(string CronExpression, string? TimeZoneId, DateTimeOffset? Start) : RecurringJobSchedule
    {
        public DateTimeOffset? End => null;
    }
}
