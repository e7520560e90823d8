using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text.Json;
using JobLog.Internal;
using JobLog.MassTransit.Internal.Courier;
using JobLog.Recording;
using MassTransit;
using MassTransit.Contracts.JobService;
using MassTransit.JobService;
using MassTransit.JobService.Scheduling;

namespace JobLog.MassTransit.Internal.Jobs;

/// <summary>
/// MassTransit's job service, as its user sees it: a job is one task whose id is the <c>JobId</c> and whose name is the
/// job's (the job message type, e.g. <c>ConvertVideo</c>); each attempt is a run of the job consumer, numbered by
/// <c>Retries</c> and by the job service's <c>RetryAttempt</c> (<c>JobRetryAttempt</c>: a recurring job's occurrence
/// begins with attempt 0, so its runs read "occurrence N · attempt M"); a cancelled attempt is CANCELLED, a faulted one RETRIED when the job service retries it, else FAILED;
/// progress (<c>SetJobProgress</c>) is the job's <c>ExtraData</c>. The job service's own protocol (slots, attempts,
/// status checks, heartbeats) is internal (<see cref="InternalMessages"/>).
/// </summary>
internal static class JobTasks
{
    /// <summary>The consumer of the runs the job service itself ends a job with.</summary>
    public const string JobService = "(job service)";

    private static readonly ConcurrentDictionary<Guid, JobAttemptOutcome> s_attempts = new();
    private static readonly AsyncLocal<JobSubmission?> s_submission = new();
    private static readonly ConcurrentDictionary<Type, (Type Job, PropertyInfo JobId, PropertyInfo Payload, PropertyInfo Schedule)?> s_submitJob = new();

    /// <summary>
    /// Per application (its recorder): the jobs whose attempt faulted and which wait to retry, so that a cancellation
    /// ends the job on its consumer's lane. Bounded: a job retried in another process leaves its entry here until it is
    /// past due.
    /// </summary>
    private static readonly ConditionalWeakTable<LedgerRecorder, ConcurrentDictionary<Guid, RetryingJob>> s_retrying = new();

    private const int RetryingLimit = 10_000;

    /// <summary>
    /// On a <c>JobAttemptFaulted</c> that the job service retries: the job's consumer and name, so that the process
    /// running the job saga (which sees the cancellation) knows the lane even when the attempt ran in another process.
    /// </summary>
    internal const string ConsumerHeader = "JobLog-JobConsumer";

    internal const string NameHeader = "JobLog-JobName";

    /// <summary>
    /// The signature of those two headers on that very message (<see cref="ParentStampKey.SignText"/>): only a
    /// <c>JobAttemptFaulted</c> a JobLog process sent names the lane; the clear headers are anyone's to set.
    /// </summary>
    internal const string SignatureHeader = "JobLog-JobSignature";

    /// <summary>What is taken from those headers (a consumer's and a task's name), at most.</summary>
    private const int HeaderValueLimit = 250;

    /// <summary>
    /// Called for every consumer message pipe before JobLog's run filter is added. True when the job service's consumer is
    /// handled here (no ordinary run filter).
    /// </summary>
    public static bool Configure<TConsumer, TMessage>(TaskLoggingServices services, IPipeConfigurator<ConsumeContext<TMessage>> configurator)
        where TConsumer : class
        where TMessage : class
    {
        if (typeof(IJobConsumer<TMessage>).IsAssignableFrom(typeof(TConsumer)))
        {
            configurator.UseFilter(new JobAttemptFilter<TMessage>(services, TaskLoggingServices.ShortName(typeof(TConsumer))));
            return true;
        }

        if (typeof(TConsumer).IsGenericType && typeof(TConsumer).GetGenericTypeDefinition() == typeof(SubmitJobConsumer<>))
        {
            if (SubmitJobShape(typeof(TMessage)) is not null)
            {
                // SubmitJob<T> was recorded as the job itself when it was sent: its hand-over to the job saga is no run.
                return true;
            }

            // The job message itself, sent to the job consumer's endpoint: the job is submitted with a JobId of
            // MassTransit's choosing, known when JobSubmitted is published.
            configurator.UseFilter(new JobSubmissionFilter<TMessage>());
        }

        return false;
    }

    /// <summary>
    /// The dispatch side. Returns true when the message must not be recorded as a task of its own (a <c>SubmitJob&lt;T&gt;</c>
    /// is recorded as the job).
    /// </summary>
    public static bool OnDispatch<T>(TaskLoggingServices services, SendContext<T> context, out long sequence)
        where T : class
    {
        sequence = 0;
        switch (context.Message)
        {
            case JobSubmitted submitted when s_submission.Value is { } submission:
                sequence = services.Recorder.Enqueue(new TaskDispatched(
                    JobTask(services, submitted.JobId, submission.JobType, submission.Job, submitted.Schedule, context.DestinationAddress, context)));
                return false;
            case SetJobProgress progress:
                var extra = JsonSerializer.Serialize(new { progress = new { value = progress.Value, limit = progress.Limit, attemptId = progress.AttemptId } });
                services.Recorder.Enqueue(new TaskExtraDataSet(progress.JobId, extra));
                return false;
            case JobAttemptCompleted completed when s_attempts.TryGetValue(completed.AttemptId, out var outcome):
                outcome.Completed = true;
                return false;
            case JobAttemptFaulted faulted when s_attempts.TryGetValue(faulted.AttemptId, out var outcome):
                outcome.Fault = faulted;
                if (faulted.RetryDelay is not null)
                {
                    context.Headers.Set(ConsumerHeader, outcome.ConsumerType);
                    context.Headers.Set(NameHeader, outcome.Name);
                    Sign(services, context, outcome.ConsumerType, outcome.Name);
                }

                return false;
            case JobAttemptCanceled canceled when s_attempts.TryGetValue(canceled.AttemptId, out var outcome):
                outcome.CancelReason = canceled.Reason ?? "cancelled";
                return false;
            case JobSlotWaitElapsed wait when context.Delay is { } delay && NextOccurrence(context):
                services.Recorder.Enqueue(new TaskEtaSet(wait.JobId, services.UtcNow + delay));
                return false;
            case JobRetryDelayElapsed retry when context.Delay is { } retryDelay:
                RetryScheduled(services, context, retry.JobId, services.UtcNow + retryDelay);
                return false;
            case JobCanceled canceled when context.TryGetPayload<ConsumeContext>(out var consume) && consume.TryGetMessage<CancelJob>(out _):
                // Cancelled by a CancelJob while no attempt ran (waiting for its start, a slot or a retry): no attempt's
                // run ends the job, so the job service's cancellation does; on the job consumer's lane when an attempt of
                // this process faulted and the job waits to retry, so the cancellation, not the retry, is the job's state.
                Retrying(services).TryRemove(canceled.JobId, out var retrying);
                services.Recorder.Enqueue(new RunStarted(CancelledRun(services, canceled, retrying, context.DestinationAddress), Seed(canceled, retrying), false));
                return false;
        }

        if (SubmitJobShape(context.Message.GetType()) is { } shape)
        {
            var jobId = (Guid)shape.JobId.GetValue(context.Message)!;
            var job = shape.Payload.GetValue(context.Message);
            var schedule = shape.Schedule.GetValue(context.Message) as RecurringJobSchedule;
            sequence = services.Recorder.Enqueue(new TaskDispatched(JobTask(services, jobId, shape.Job, job, schedule, context.DestinationAddress, context)));
            return true;
        }

        return false;
    }

    /// <summary>
    /// A recurring job's next occurrence, scheduled through a scheduler (not a transport delay): the task's new ETA. The
    /// scheduled message is recorded as a task of its own by the dispatch observer.
    /// </summary>
    internal static void OnScheduled(TaskLoggingServices services, SendContext context, object? payload, DateTime due)
    {
        if (payload is JobSlotWaitElapsed wait && NextOccurrence(context))
        {
            services.Recorder.Enqueue(new TaskEtaSet(wait.JobId, due));
        }
        else if (payload is JobRetryDelayElapsed retry)
        {
            RetryScheduled(services, context, retry.JobId, due);
        }
    }

    /// <summary>
    /// The job saga schedules the job's retry while it consumes the faulted attempt's <c>JobAttemptFaulted</c>: the job
    /// waits to retry, on the lane of the consumer the attempt's process named (its headers), wherever that attempt ran.
    /// </summary>
    private static void RetryScheduled(TaskLoggingServices services, SendContext context, Guid jobId, DateTime due)
    {
        if (context.TryGetPayload<ConsumeContext>(out var consume)
            && consume.TryGetMessage<JobAttemptFaulted>(out _)
            && consume.Headers.Get<string>(ConsumerHeader) is { Length: > 0 } consumer
            && consume.Headers.Get<string>(NameHeader) is { Length: > 0 } name
            && consume.MessageId is { } messageId
            && services.StampKey.CheckText(consume.Headers.Get<string>(SignatureHeader), Signed(consumer, name), messageId))
        {
            WaitingToRetry(services, jobId, name[..Math.Min(name.Length, HeaderValueLimit)], consumer[..Math.Min(consumer.Length, HeaderValueLimit)], due);
        }
    }

    /// <summary>Signs the job's consumer and name on the <c>JobAttemptFaulted</c> being sent.</summary>
    private static void Sign(TaskLoggingServices services, SendContext context, string consumer, string name)
    {
        if (context.MessageId is not { } messageId)
        {
            return;
        }

        try
        {
            context.Headers.Set(SignatureHeader, services.StampKey.SignText(Signed(consumer, name), messageId));
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Recording never breaks the business path: Data Protection failing to seal the key leaves the headers
            // unsigned, and a cancellation while the job waits to retry is then the job service's run.
            services.StampFailed(ex);
        }
    }

    /// <summary>The text signed for a job's consumer and name (a line break ends the consumer's name: no type name holds one).</summary>
    private static string Signed(string consumer, string name) => string.Concat(consumer, "\n", name);

    /// <summary>
    /// True when the job saga schedules its <c>JobSlotWaitElapsed</c> for a scheduled job's next occurrence: after an
    /// occurrence completed or faulted for good, or when the recurring job is submitted (again). The same message waits
    /// for a job slot while consuming <c>JobSlotUnavailable</c>: that is no occurrence.
    /// </summary>
    private static bool NextOccurrence(SendContext context) =>
        context.TryGetPayload<ConsumeContext>(out var consume)
        && (consume.TryGetMessage<JobCompleted>(out _) || consume.TryGetMessage<JobAttemptFaulted>(out _) || consume.TryGetMessage<JobSubmitted>(out _));

    /// <summary>
    /// The run that ends a job cancelled while no attempt ran: the job consumer's when the job waits to retry after an
    /// attempt of this process, else the job service's own.
    /// </summary>
    private static RunPayload CancelledRun(TaskLoggingServices services, JobCanceled canceled, RetryingJob? retrying, Uri? destination) => new()
    {
        Id = NewId.NextSequentialGuid(),
        TaskId = canceled.JobId,
        Name = retrying?.Name ?? nameof(CancelJob),
        QueueName = TaskLoggingServices.QueueName(destination),
        ConsumerType = retrying?.ConsumerType ?? JobService,
        Start = services.UtcNow,
        Stop = services.UtcNow,
        State = TaskRunState.Cancelled,
        ErrorMessage = services.Redactor.Bound(
            $"{(retrying is null ? "Cancelled before an attempt ran" : "Cancelled while waiting to retry")}: {canceled.Reason ?? "no reason given"}"),
        Host = services.Options.Host,
        WaitingTime = 0,
    };

    /// <summary>The job's task when its submission was not recorded: named after the job when known, else after the cancellation.</summary>
    private static TaskPayload Seed(JobCanceled canceled, RetryingJob? retrying) => new()
    {
        Id = canceled.JobId,
        Name = retrying?.Name ?? nameof(CancelJob),
        DispatchedAt = canceled.Timestamp,
        EstimatedTimeOfFirstArrival = canceled.Timestamp,
    };

    private static ConcurrentDictionary<Guid, RetryingJob> Retrying(TaskLoggingServices services) => s_retrying.GetValue(services.Recorder, static _ => new());

    /// <summary>An attempt of the job faulted and the job service retries it at <paramref name="due"/>.</summary>
    internal static void WaitingToRetry(TaskLoggingServices services, Guid jobId, string name, string consumerType, DateTime due)
    {
        var retrying = Retrying(services);
        if (retrying.Count >= RetryingLimit)
        {
            foreach (var (id, job) in retrying)
            {
                if (job.Due < due.AddHours(-1))
                {
                    retrying.TryRemove(id, out _);
                }
            }

            if (retrying.Count >= RetryingLimit)
            {
                return;
            }
        }

        retrying[jobId] = new RetryingJob(name, consumerType, due);
    }

    internal static JobAttemptOutcome Register(TaskLoggingServices services, Guid jobId, Guid attemptId, string name, string consumerType)
    {
        Retrying(services).TryRemove(jobId, out _);
        return s_attempts[attemptId] = new JobAttemptOutcome(name, consumerType);
    }

    internal static void Unregister(Guid attemptId) => s_attempts.TryRemove(attemptId, out _);

    internal static IDisposable Submitting(Type jobType, object job)
    {
        var previous = s_submission.Value;
        s_submission.Value = new JobSubmission(jobType, job);
        return new Restore(previous);
    }

    private static TaskPayload JobTask(
        TaskLoggingServices services, Guid jobId, Type jobType, object? job, RecurringJobSchedule? schedule, Uri? destination, SendContext context)
    {
        var now = services.UtcNow;
        var rendered = services.Renderer.Render(job);
        return new TaskPayload
        {
            Id = jobId,
            Name = services.TaskName(jobType),
            QueueName = TaskLoggingServices.QueueName(destination),
            Input = rendered.Input,
            TaskArgs = rendered.TaskArgs,
            TaskKwargs = rendered.TaskKwargs,
            DispatchedAt = now,
            EstimatedTimeOfFirstArrival = DueAt(schedule, now),
            ParentRunId = JobLogScope.CurrentTaskRunId,
            CorrelationId = context.CorrelationId,
            ConversationId = context.ConversationId,
            TraceId = System.Diagnostics.Activity.Current?.TraceId.ToHexString(),
            SourceAddress = context.SourceAddress?.ToString(),
            Host = services.Options.Host,
            Release = services.Options.Release,
        };
    }

    /// <summary>
    /// When a job submitted with a schedule is due: a <c>ScheduleJob</c>'s start time, a recurring job's first occurrence of
    /// its cron expression (from its start, in its time zone). The job service holds the job until then; without a
    /// schedule, or when the schedule cannot be read, the job is due now; never throws, so the job keeps its task.
    /// </summary>
    internal static DateTime DueAt(RecurringJobSchedule? schedule, DateTime now)
    {
        if (schedule is null)
        {
            return now;
        }

        var from = schedule.Start is { } start && start.UtcDateTime > now ? start : new DateTimeOffset(now, TimeSpan.Zero);
        if (string.IsNullOrWhiteSpace(schedule.CronExpression))
        {
            return from.UtcDateTime;
        }

        try
        {
            var cron = new CronExpression(schedule.CronExpression);
            if (!string.IsNullOrWhiteSpace(schedule.TimeZoneId))
            {
                cron.TimeZone = TimeZoneInfo.FindSystemTimeZoneById(schedule.TimeZoneId);
            }

            // MassTransit's own parser, so the occurrence is the one the job service computes.
            return cron.GetNextValidTimeAfter(from) is { } next && (schedule.End is not { } end || next <= end) ? next.UtcDateTime : now;
        }
        catch (ArgumentOutOfRangeException)
        {
            // The occurrence after the start is past what DateTime holds (a start in its last hours, in a time zone).
            return from.UtcDateTime;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A cron the parser refuses (FormatException, or whatever else it throws), an unknown time zone: the job keeps
            // its task, due now.
            return now;
        }
    }

    private static (Type Job, PropertyInfo JobId, PropertyInfo Payload, PropertyInfo Schedule)? SubmitJobShape(Type type) => s_submitJob.GetOrAdd(type, static t =>
    {
        var shape = t.IsGenericType && t.GetGenericTypeDefinition() == typeof(SubmitJob<>)
            ? t
            : t.GetInterfaces().FirstOrDefault(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(SubmitJob<>));
        return shape is null
            ? null
            : (shape.GetGenericArguments()[0], shape.GetProperty(nameof(SubmitJob<object>.JobId))!, shape.GetProperty(nameof(SubmitJob<object>.Job))!,
                shape.GetProperty(nameof(SubmitJob<object>.Schedule))!);
    });

    private sealed record JobSubmission(Type JobType, object Job);

    private sealed record RetryingJob(string Name, string ConsumerType, DateTime Due);

    private sealed class Restore(JobSubmission? previous) : IDisposable
    {
        public void Dispose() => s_submission.Value = previous;
    }
}

/// <summary>What the job service reported about one attempt (its JobAttemptCompleted/Faulted/Canceled notification).</summary>
internal sealed class JobAttemptOutcome(string name, string consumerType)
{
    /// <summary>The job's task name and the job consumer: the lane of the attempt's run.</summary>
    public string Name { get; } = name;

    public string ConsumerType { get; } = consumerType;

    public volatile bool Completed;

    public volatile JobAttemptFaulted? Fault;

    public volatile string? CancelReason;
}

/// <summary>Marks the consumption of a job message by MassTransit's <c>SubmitJobConsumer</c>: its <c>JobSubmitted</c> becomes the job's task.</summary>
internal sealed class JobSubmissionFilter<TJob> : IFilter<ConsumeContext<TJob>>
    where TJob : class
{
    public async Task Send(ConsumeContext<TJob> context, IPipe<ConsumeContext<TJob>> next)
    {
        using (JobTasks.Submitting(typeof(TJob), context.Message))
        {
            await next.Send(context).ConfigureAwait(false);
        }
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogJobSubmission");
}

/// <summary>
/// One run per job attempt, on the job's task (<c>JobId</c>), in the job consumer's message pipe. MassTransit's job filter
/// never lets the job's exception or cancellation out, so the attempt's state is what the job service reports.
/// </summary>
internal sealed class JobAttemptFilter<TJob>(TaskLoggingServices services, string consumerType) : IFilter<ConsumeContext<TJob>>
    where TJob : class
{
    public async Task Send(ConsumeContext<TJob> context, IPipe<ConsumeContext<TJob>> next)
    {
        var job = context as JobContext<TJob> ?? (context.TryGetPayload<JobContext<TJob>>(out var payload) ? payload : null);
        RecordedAttempt? attempt = null;
        JobAttemptOutcome? outcome = null;
        if (job is not null)
        {
            try
            {
                outcome = JobTasks.Register(services, job.JobId, job.AttemptId, services.TaskName(typeof(TJob)), consumerType);
                attempt = Start(context, job);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                services.RecordingFailed(ex, "job.start");
            }
        }

        if (attempt is null || outcome is null || job is null)
        {
            await next.Send(context).ConfigureAwait(false);
            return;
        }

        try
        {
            using (attempt.Enter())
            {
                await next.Send(context).ConfigureAwait(false);
            }

            Finish(attempt, outcome, job, null);
        }
        catch (Exception ex)
        {
            Finish(attempt, outcome, job, ex);
            throw;
        }
        finally
        {
            JobTasks.Unregister(job.AttemptId);
        }
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogJobAttempt").Add("consumer", consumerType);

    private RecordedAttempt Start(ConsumeContext<TJob> context, JobContext<TJob> job)
    {
        var start = services.UtcNow;
        var name = services.TaskName(typeof(TJob));
        context.TryGetPayload<DeliveryState>(out var delivery);
        var run = new RunPayload
        {
            Id = NewId.NextSequentialGuid(),
            TaskId = job.JobId,
            Name = name,
            QueueName = TaskLoggingServices.QueueName(context.ReceiveContext.InputAddress),
            ConsumerType = consumerType,
            Start = start,
            Redelivered = context.ReceiveContext.Redelivered,
            Host = services.Options.Host,
            HostInstanceId = services.Recorder.InstanceId,
            JobRetryAttempt = job.RetryAttempt,
        };
        var seed = new TaskPayload
        {
            Id = job.JobId,
            Name = name,
            DispatchedAt = start,
            EstimatedTimeOfFirstArrival = start,
            CorrelationId = context.CorrelationId,
            ConversationId = context.ConversationId,
        };
        return RecordedAttempt.Start(services, delivery, run, seed, new DeferredRendering(job.Job, services.Renderer));
    }

    private void Finish(RecordedAttempt attempt, JobAttemptOutcome outcome, JobContext<TJob> job, Exception? escaped)
    {
        try
        {
            if (outcome.CancelReason is { } reason)
            {
                attempt.Finish(TaskRunState.Cancelled, $"Cancelled: {reason}");
            }
            else if (outcome.Fault is { } fault)
            {
                var error = RoutingSlipTasks.Stating(services.Redactor.Bound(RoutingSlipTasks.Describe(fault.Exceptions)), fault.Exceptions);
                if (fault.RetryDelay is { } delay)
                {
                    var due = services.UtcNow + delay;
                    attempt.Finish(TaskRunState.Retried, error, due);
                    JobTasks.WaitingToRetry(services, job.JobId, outcome.Name, outcome.ConsumerType, due);
                }
                else
                {
                    attempt.Finish(TaskRunState.Failed, error);
                }
            }
            else if (escaped is not null)
            {
                attempt.Finish(TaskRunState.Failed, services.ErrorText(escaped));
            }
            else if (job.CancellationToken.IsCancellationRequested && !outcome.Completed)
            {
                attempt.Finish(TaskRunState.Cancelled, "Cancelled.");
            }
            else
            {
                attempt.Finish(TaskRunState.Succeeded, null);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            services.RecordingFailed(ex, "job.finish");
        }
    }
}
