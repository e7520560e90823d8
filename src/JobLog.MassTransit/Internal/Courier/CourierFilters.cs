using JobLog.Recording;
using MassTransit;
using MassTransit.Courier.Contracts;

namespace JobLog.MassTransit.Internal.Courier;

/// <summary>Whether an activity host executes or compensates.</summary>
internal enum CourierStepKind
{
    Execute,
    Compensate,
}

/// <summary>
/// One delivery of a routing slip to an activity host, shared by the step filter (around Courier's host, outside its
/// retry) and the attempt filter (inside retry, once per attempt).
/// </summary>
internal sealed class CourierStep(DateTime receivedAt, long receivedTimestamp)
{
    /// <summary>
    /// Now, as this host's step counts it: the wall time when the host received the routing slip plus the monotonic time
    /// since, so that a wall clock stepped meanwhile cannot end the routing slip before it began.
    /// </summary>
    public DateTime Now(TaskLoggingServices services) => services.Since(receivedAt, receivedTimestamp);

    /// <summary>The last attempt threw and was recorded RETRIED; the host's outcome decides whether it was the last.</summary>
    public RecordedAttempt? PendingFailure { get; set; }

    public Exception? Failure { get; set; }

    public bool Succeeded { get; set; }

    /// <summary>The activity's result type (<c>CompletedExecutionResult</c>, <c>TerminateExecutionResult</c>, ...).</summary>
    public string? ResultKind { get; set; }

    public string? ActivityName { get; set; }

    /// <summary>
    /// Courier published <c>RoutingSlipCompleted</c> inside this host: the itinerary ended here (its last activity, or an
    /// activity that revised it to nothing).
    /// </summary>
    public bool CompletedHere { get; set; }
}

/// <summary>
/// Wraps Courier's execute or compensate host on the routing slip pipe: upserts the routing slip's own run, then, when
/// the host is done, decides the fate of the last failed attempt (FAILED: Courier faulted the activity) and whether the
/// routing slip ended here.
/// </summary>
internal sealed class CourierStepFilter(TaskLoggingServices services, CourierStepKind kind) : IFilter<ConsumeContext<RoutingSlip>>
{
    private CourierStep NewStep() => new(services.UtcNow, services.Time.GetTimestamp());

    public async Task Send(ConsumeContext<RoutingSlip> context, IPipe<ConsumeContext<RoutingSlip>> next)
    {
        CourierStep? step = null;
        DeliveryState? delivery = null;
        try
        {
            context.TryGetPayload(out delivery);
            step = context.AddOrUpdatePayload(NewStep, _ => NewStep());
            RoutingSlipTasks.EnsureRun(services, context, delivery);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Recording never breaks the business path.
            services.RecordingFailed(ex, "routing_slip.start");
        }

        using (RoutingSlipTasks.InHost(step ?? NewStep()))
        {
            try
            {
                await next.Send(context).ConfigureAwait(false);
            }
            catch (Exception ex) when (step?.PendingFailure is not null)
            {
                Escaped(context.Message, step, delivery, ex);
                throw;
            }
        }

        if (step is null)
        {
            return;
        }

        try
        {
            Settle(context.Message, step, delivery);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            services.RecordingFailed(ex, "routing_slip.finish");
        }
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogCourierStep").Add("kind", kind.ToString());

    /// <summary>
    /// An activity failed and an exception left Courier's host: the host reports the activity's fault before it faults the
    /// routing slip, and when that report throws (a sender's <c>MT-Redelivery-Count</c> MassTransit's fault pipe cannot
    /// read as an int) Courier neither faults nor compensates the routing slip. What follows is the delivery's to decide,
    /// as for a consumer: a retry around the host (<c>UseRetry</c> on the endpoint) runs the routing slip again, and the
    /// failed attempt was RETRIED; otherwise the message goes to the error queue, and the delivery filter ends the attempt
    /// FAILED, the routing slip FAILED with the activity's exception, not MassTransit's, and keeps the message under it.
    /// </summary>
    private void Escaped(RoutingSlip slip, CourierStep step, DeliveryState? delivery, Exception escaped)
    {
        try
        {
            var failed = step.PendingFailure!;
            step.PendingFailure = null;
            var activity = (step.ActivityName ?? "?") + (kind == CourierStepKind.Compensate ? CourierAttempts.CompensateSuffix : "");
            var error = step.Failure is null ? "(no exception)" : services.RawErrorText(step.Failure);
            var replaced = step.Failure is null || TaskLoggingServices.Holds(escaped, step.Failure)
                ? ""
                : $"{Environment.NewLine}(MassTransit then failed to report this fault, and its own exception left the activity host in its place: {escaped.GetType().FullName}: {Shortened(escaped.Message)})";
            var pending = new EscapedActivity(
                failed.Run.ConsumerType, slip.TrackingNumber, RoutingSlipTasks.Started(slip, step.Now(services)), step, CourierAttempts.Stating($"Faulted in {activity}: {error}{replaced}", step.Failure),
                $"Faulted in {activity}; the routing slip was not faulted or compensated by Courier (the exception left its host).");
            if (delivery is null)
            {
                failed.Track(services.Recorder.Enqueue(new RunFailedForGood(failed.Run.Id, failed.Run.TaskId)));
                pending.Finish(services, null);
                return;
            }

            var lane = delivery.Lane(pending.Consumer);
            lane.PendingFailure = (failed.Run.Id, failed.Run.TaskId);
            lane.PendingException = step.Failure;
            delivery.EscapedActivity = pending;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            services.RecordingFailed(ex, "routing_slip.finish");
        }
    }

    private static string Shortened(string message) => message.Length > 500 ? message[..500] + "…" : message;

    private void Settle(RoutingSlip slip, CourierStep step, DeliveryState? delivery)
    {
        var activity = step.ActivityName ?? "?";
        if (step.PendingFailure is { } handedBack && delivery?.RedeliveryAt is { } redelivery)
        {
            // The activity's redelivery (UseScheduledRedelivery, UseDelayedRedelivery) sent the routing slip back to this
            // host instead of faulting it: the attempt stays RETRIED, and its retry comes when the redelivery does.
            handedBack.Track(services.Recorder.Enqueue(new RunNextRetryKnown(handedBack.Run.Id, redelivery)));
            step.PendingFailure = null;
            return;
        }

        if (step.PendingFailure is { } failed)
        {
            // Courier caught the exception and faulted the activity: the attempt recorded RETRIED was the last one.
            failed.Track(services.Recorder.Enqueue(new RunFailedForGood(failed.Run.Id, failed.Run.TaskId)));
            step.PendingFailure = null;
            var error = step.Failure is null ? "(no exception)" : services.RawErrorText(step.Failure);
            if (kind == CourierStepKind.Compensate)
            {
                var original = RoutingSlipTasks.Describe(slip.ActivityExceptions);
                RoutingSlipTasks.Finish(services, slip, step.Now(services), TaskRunState.Failed,
                    CourierAttempts.Stating($"Compensation of {activity} failed: {error}\n\n{original}", step.Failure), $"Faulted; compensation of {activity} failed.", delivery);
            }
            else if ((slip.CompensateLogs?.Count ?? 0) == 0)
            {
                RoutingSlipTasks.Finish(services, slip, step.Now(services), TaskRunState.Failed,
                    CourierAttempts.Stating($"Faulted in {activity}: {error}", step.Failure), $"Faulted in {activity}; nothing to compensate.", delivery);
            }

            // Otherwise Courier sent the routing slip to compensation: it stays ACTIVE until the last compensation.
            return;
        }

        if (!step.Succeeded)
        {
            return;
        }

        if (kind == CourierStepKind.Compensate)
        {
            if ((slip.CompensateLogs?.Count ?? 0) <= 1)
            {
                var compensated = string.Join(", ", (slip.ActivityLogs ?? []).Select(a => a.Name).Reverse());
                RoutingSlipTasks.Finish(services, slip, step.Now(services), TaskRunState.Failed,
                    RoutingSlipTasks.Stating("Compensated. " + RoutingSlipTasks.Describe(slip.ActivityExceptions), slip.ActivityExceptions),
                    $"Faulted; compensated: {compensated}.", delivery);
            }

            return;
        }

        if (step.ResultKind?.StartsWith("Terminate", StringComparison.Ordinal) == true)
        {
            RoutingSlipTasks.Finish(services, slip, step.Now(services), TaskRunState.Succeeded, null, $"Terminated by {activity}.", delivery);
        }
        else if (step.CompletedHere || (step.ResultKind?.StartsWith("Completed", StringComparison.Ordinal) == true && (slip.Itinerary?.Count ?? 0) <= 1))
        {
            RoutingSlipTasks.Finish(services, slip, step.Now(services), TaskRunState.Succeeded, null, "Completed.", delivery);
        }
    }
}

/// <summary>
/// One run per execution attempt of an activity (inside Courier's retry filter): the activity's arguments are the
/// run's input. A failed attempt is RETRIED until the step filter learns that Courier faulted the activity.
/// </summary>
internal sealed class ExecuteAttemptFilter<TArguments>(TaskLoggingServices services, string activityType) : IFilter<ExecuteContext<TArguments>>
    where TArguments : class
{
    public async Task Send(ExecuteContext<TArguments> context, IPipe<ExecuteContext<TArguments>> next)
    {
        var attempt = CourierAttempts.Begin(services, context, activityType, context.ActivityName, () => context.Arguments, out var step);
        if (attempt is null || step is null)
        {
            await next.Send(context).ConfigureAwait(false);
            return;
        }

        using (attempt.Enter())
        {
            try
            {
                await next.Send(context).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                CourierAttempts.Failed(services, step, attempt, ex);
                throw;
            }
        }

        CourierAttempts.Succeeded(step, attempt, context.Result?.GetType().Name);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogActivityRun").Add("activity", activityType);
}

/// <summary>One run per compensation attempt (inside Courier's retry filter): the activity's log is the run's input.</summary>
internal sealed class CompensateAttemptFilter<TLog>(TaskLoggingServices services, string activityType) : IFilter<CompensateContext<TLog>>
    where TLog : class
{
    public async Task Send(CompensateContext<TLog> context, IPipe<CompensateContext<TLog>> next)
    {
        var attempt = CourierAttempts.Begin(services, context, activityType + CourierAttempts.CompensateSuffix,
            context.ActivityName + CourierAttempts.CompensateSuffix, () => context.Log, out var step);
        if (attempt is null || step is null)
        {
            await next.Send(context).ConfigureAwait(false);
            return;
        }

        using (attempt.Enter())
        {
            try
            {
                await next.Send(context).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                CourierAttempts.Failed(services, step, attempt, ex);
                throw;
            }
        }

        CourierAttempts.Succeeded(step, attempt, context.Result?.GetType().Name);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogCompensateRun").Add("activity", activityType);
}

/// <summary>
/// An activity's failed attempt whose exception left Courier's host (<see cref="CourierStepFilter"/>): the routing slip's
/// end, FAILED, that the delivery filter records when the delivery fails for good (its attempt is the lane's pending failure).
/// </summary>
internal sealed record EscapedActivity(string Consumer, Guid TrackingNumber, DateTime Start, CourierStep Step, string Error, string Output)
{
    public void Finish(TaskLoggingServices services, DeliveryState? delivery) =>
        RoutingSlipTasks.Finish(services, TrackingNumber, Start, Step.Now(services), TaskRunState.Failed, Error, Output, delivery);
}

/// <summary>What the execute and compensate attempt filters share.</summary>
internal static class CourierAttempts
{
    public const string CompensateSuffix = " (compensate)";

    public static RecordedAttempt? Begin(
        TaskLoggingServices services, CourierContext context, string consumerType, string runName, Func<object?> input, out CourierStep? step)
    {
        step = null;
        try
        {
            if (!context.TryGetPayload(out step))
            {
                return null;
            }

            context.TryGetPayload<DeliveryState>(out var delivery);
            var start = services.UtcNow;
            if (delivery?.EscapedActivity is { } escaped)
            {
                // An earlier attempt's exception left the host and a retry around it runs the routing slip again: that
                // attempt was retried, and the routing slip goes on.
                var lane = delivery.Lane(escaped.Consumer);
                if (lane.PendingFailure is { } retried)
                {
                    delivery.Track(services.Recorder.Enqueue(new RunNextRetryKnown(retried.RunId, start)));
                }

                lane.PendingFailure = null;
                lane.PendingException = null;
                delivery.EscapedActivity = null;
            }

            if (step.PendingFailure is { } previous)
            {
                // The previous attempt was retried: this is when the retry came.
                previous.Track(services.Recorder.Enqueue(new RunNextRetryKnown(previous.Run.Id, start)));
                step.PendingFailure = null;
            }

            step.ActivityName = context.ActivityName;
            var rendered = services.Renderer.Render(input());
            var run = ConsumedRecords.Run(
                services, context, NewId.NextSequentialGuid(), context.TrackingNumber, runName,
                TaskLoggingServices.QueueName(context.ReceiveContext.InputAddress), consumerType, start, rendered: rendered);
            return RecordedAttempt.Start(services, delivery, run, RoutingSlipTasks.Seed(services, context.Message, null, start));
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            services.RecordingFailed(ex, "activity.start");
            return null;
        }
    }

    /// <summary>A routing slip's error text about a failed step, reading as the step's exception's failure group.</summary>
    public static string Stating(string text, Exception? exception) =>
        exception is null ? text : TaskLoggingServices.Stating(text, exception);

    public static void Failed(TaskLoggingServices services, CourierStep step, RecordedAttempt attempt, Exception exception)
    {
        step.PendingFailure = attempt;
        step.Failure = exception;
        step.Succeeded = false;
        attempt.Finish(TaskRunState.Retried, services.ErrorText(exception));
    }

    public static void Succeeded(CourierStep step, RecordedAttempt attempt, string? resultKind)
    {
        step.Succeeded = true;
        step.ResultKind = resultKind;
        attempt.Finish(TaskRunState.Succeeded, null);
    }
}

/// <summary>
/// Hooks every activity host of the bus (<c>ConnectActivityConfigurationObserver</c>): an attempt filter inside the
/// execute/compensate pipe (after the retry filters that <c>UseMessageRetry</c> adds, when <c>UseTaskLogging</c> is
/// called after it) and a step filter on the routing slip pipe around Courier's host.
/// </summary>
internal sealed class CourierConfigurationObserver(TaskLoggingServices services) : IActivityConfigurationObserver
{
    public void ActivityConfigured<TActivity, TArguments>(IExecuteActivityConfigurator<TActivity, TArguments> configurator, Uri compensateAddress)
        where TActivity : class, IExecuteActivity<TArguments>
        where TArguments : class =>
        ExecuteActivityConfigured(configurator);

    public void ExecuteActivityConfigured<TActivity, TArguments>(IExecuteActivityConfigurator<TActivity, TArguments> configurator)
        where TActivity : class, IExecuteActivity<TArguments>
        where TArguments : class
    {
        var activity = TaskLoggingServices.ShortName(typeof(TActivity));
        configurator.Arguments(a => a.UseFilter(new ExecuteAttemptFilter<TArguments>(services, activity)));
        configurator.RoutingSlip(r => r.UseFilter(new CourierStepFilter(services, CourierStepKind.Execute)));
    }

    public void CompensateActivityConfigured<TActivity, TLog>(ICompensateActivityConfigurator<TActivity, TLog> configurator)
        where TActivity : class, ICompensateActivity<TLog>
        where TLog : class
    {
        var activity = TaskLoggingServices.ShortName(typeof(TActivity));
        configurator.Log(l => l.UseFilter(new CompensateAttemptFilter<TLog>(services, activity)));
        configurator.RoutingSlip(r => r.UseFilter(new CourierStepFilter(services, CourierStepKind.Compensate)));
    }
}
