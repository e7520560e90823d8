using System.Text;
using JobLog.Failures;
using JobLog.Recording;
using MassTransit;
using MassTransit.Courier.Contracts;

namespace JobLog.MassTransit.Internal.Courier;

/// <summary>
/// A routing slip is one task: its id is the routing slip's <c>TrackingNumber</c> (what Courier's events, logs and
/// users call it by), its name <c>RoutingSlip</c>, its input the itinerary. Its runs are each activity's execution and
/// compensation attempts, plus one run for the routing slip itself (consumer <c>RoutingSlip</c>): ACTIVE while the
/// itinerary runs, then SUCCEEDED when it completed (or was terminated), FAILED when it faulted (with the activity's
/// exception; "compensated" when compensation ran) or when compensation failed. That run keeps the task ACTIVE between
/// two activities and gives it its final state. The hops between activities (Courier sends the same routing slip on
/// to the next address) are not tasks of their own.
/// </summary>
internal static class RoutingSlipTasks
{
    /// <summary>The name of a routing slip's task and of its own run (by which a retry from the ledger knows a routing slip).</summary>
    public const string Name = JobLog.Failures.LedgerFailureActions.RoutingSlipConsumer;

    // XORed into the tracking number: the routing slip's own run has an id every host derives alike.
    private static readonly Guid s_runSalt = new("5a0c6c3e-7c1b-4f4e-9d6a-2f1d9b8e4c71");

    private static readonly AsyncLocal<CourierStep?> s_inHost = new();

    /// <summary>Marks the current flow as inside an activity host wrapped by <see cref="CourierStepFilter"/>, on <paramref name="step"/>.</summary>
    public static IDisposable InHost(CourierStep step)
    {
        var previous = s_inHost.Value;
        s_inHost.Value = step;
        return new HostScope(previous);
    }

    public static Guid RunId(Guid trackingNumber)
    {
        Span<byte> a = stackalloc byte[16];
        Span<byte> b = stackalloc byte[16];
        trackingNumber.TryWriteBytes(a);
        s_runSalt.TryWriteBytes(b);
        for (var i = 0; i < 16; i++)
        {
            a[i] ^= b[i];
        }

        return new Guid(a);
    }

    /// <summary>A new routing slip has no logs yet; a hop to the next activity or a compensation carries them.</summary>
    public static bool IsNew(RoutingSlip slip) =>
        Count(slip.ActivityLogs) == 0 && Count(slip.CompensateLogs) == 0 && Count(slip.ActivityExceptions) == 0;

    /// <summary>
    /// The routing slip's task, recorded when the application executes it (its first send). Returns the record's
    /// sequence, or null for a hop.
    /// </summary>
    public static long? Dispatch<T>(TaskLoggingServices services, SendContext<T> context, RoutingSlip slip)
        where T : class
    {
        if (!IsNew(slip))
        {
            return null;
        }

        context.TryGetPayload<TaskOptionsPayload>(out var payload);
        var seed = Seed(services, slip, context.DestinationAddress, services.UtcNow);
        var task = seed with
        {
            Name = payload?.Options.Name ?? seed.Name,
            ParentRunId = JobLogScope.CurrentTaskRunId,
            CorrelationId = context.CorrelationId,
            ConversationId = context.ConversationId,
            TraceId = System.Diagnostics.Activity.Current?.TraceId.ToHexString(),
            SourceAddress = context.SourceAddress?.ToString(),
        };
        return services.Recorder.Enqueue(new TaskDispatched(task));
    }

    /// <summary>The routing slip's task row as any host can build it from the routing slip.</summary>
    public static TaskPayload Seed(TaskLoggingServices services, RoutingSlip slip, Uri? destination, DateTime now)
    {
        var itinerary = slip.Itinerary ?? [];
        var rendered = services.Renderer.Render(new RoutingSlipView(
            slip.TrackingNumber,
            [.. itinerary.Select(a => new ActivityView(a.Name, a.Address?.ToString()))],
            slip.Variables ?? new Dictionary<string, object>()));
        var created = Started(slip, now);
        return new TaskPayload
        {
            Id = slip.TrackingNumber,
            Name = Name,
            QueueName = TaskLoggingServices.QueueName(destination ?? itinerary.FirstOrDefault()?.Address),
            Input = services.Redactor.Bound("Itinerary: " + string.Join(" → ", itinerary.Select(a => a.Name))),
            TaskArgs = "[]",
            TaskKwargs = rendered.TaskKwargs,
            DispatchedAt = created,
            EstimatedTimeOfFirstArrival = created,
            Host = services.Options.Host,
            Release = services.Options.Release,
        };
    }

    /// <summary>The routing slip's own run, started (idempotently: every hop upserts it) when an activity host receives it.</summary>
    public static void EnsureRun(TaskLoggingServices services, ConsumeContext<RoutingSlip> context, DeliveryState? delivery)
    {
        var slip = context.Message;
        var now = services.UtcNow;
        var run = new RunPayload
        {
            Id = RunId(slip.TrackingNumber),
            TaskId = slip.TrackingNumber,
            Name = Name,
            ConsumerType = Name,
            Start = Started(slip, now),
            Host = services.Options.Host,
            HostInstanceId = services.Recorder.InstanceId,
        };
        var seed = Seed(services, slip, null, now);
        var sequence = services.Recorder.Enqueue(new RunStarted(run, seed, expireOrphans: false));
        delivery?.Track(sequence);
    }

    /// <summary>When the routing slip began: its creation (the creator's clock), or <paramref name="now"/> when it carries none.</summary>
    public static DateTime Started(RoutingSlip slip, DateTime now) =>
        slip.CreateTimestamp == default ? now : DateTime.SpecifyKind(slip.CreateTimestamp, DateTimeKind.Utc);

    /// <inheritdoc cref="Finish(TaskLoggingServices, Guid, DateTime, DateTime, TaskRunState, string?, string?, DeliveryState?)"/>
    public static void Finish(TaskLoggingServices services, RoutingSlip slip, DateTime end, TaskRunState state, string? error, string? output, DeliveryState? delivery) =>
        Finish(services, slip.TrackingNumber, Started(slip, end), end, state, error, output, delivery);

    /// <summary>
    /// Ends the routing slip's run at <paramref name="end"/>, never before its <paramref name="start"/> (the creator's
    /// clock, or this host's before a step back); a run that already ended (another host, or Courier's event) is left as it is.
    /// </summary>
    public static void Finish(
        TaskLoggingServices services, Guid trackingNumber, DateTime start, DateTime end, TaskRunState state, string? error, string? output, DeliveryState? delivery)
    {
        var sequence = services.Recorder.Enqueue(new RunFinished(
            RunId(trackingNumber), trackingNumber, state, end < start ? start : end, error is null ? null : services.Redactor.Bound(error), output, null));
        delivery?.Track(sequence);
    }

    /// <summary>
    /// Courier's routing slip events end the routing slip's run when no JobLog activity host did (the last activity ran
    /// on an application without JobLog, or the itinerary was revised away).
    /// </summary>
    public static void OnEvent(TaskLoggingServices services, object message)
    {
        if (s_inHost.Value is { } step)
        {
            // Published by an activity host that JobLog wraps: its step filter ends the run, knowing more. A completion is
            // noted for it: an activity that revises the itinerary to nothing ends the routing slip with a result that is
            // not a completion (ReviseItineraryExecutionResult), and a slip whose last step it is has more in its itinerary.
            if (message is RoutingSlipCompleted)
            {
                step.CompletedHere = true;
            }

            return;
        }

        // Courier's event says when the routing slip began: its timestamp less its duration (the creator's clock).
        var now = services.UtcNow;
        switch (message)
        {
            case RoutingSlipCompleted completed:
                Finish(services, completed.TrackingNumber, Began(completed.Timestamp, completed.Duration), now, TaskRunState.Succeeded, null, "Completed.", null);
                break;
            case RoutingSlipTerminated terminated:
                Finish(services, terminated.TrackingNumber, Began(terminated.Timestamp, terminated.Duration), now, TaskRunState.Succeeded, null, "Terminated.", null);
                break;
            case RoutingSlipFaulted faulted:
                Finish(services, faulted.TrackingNumber, Began(faulted.Timestamp, faulted.Duration), now, TaskRunState.Failed,
                    Stating(Describe(faulted.ActivityExceptions), faulted.ActivityExceptions), "Faulted.", null);
                break;
            case RoutingSlipCompensationFailed failed:
                Finish(services, failed.TrackingNumber, Began(failed.Timestamp, failed.Duration), now, TaskRunState.Failed,
                    Stating("Compensation failed: " + Describe(failed.ExceptionInfo), failed.ExceptionInfo), "Compensation failed.", null);
                break;
        }
    }

    private static DateTime Began(DateTime timestamp, TimeSpan duration) =>
        timestamp == default ? default : DateTime.SpecifyKind(timestamp, DateTimeKind.Utc) - duration;

    public static string Describe(IEnumerable<ActivityException>? exceptions)
    {
        var text = new StringBuilder();
        foreach (var exception in exceptions ?? [])
        {
            text.Append("Faulted in ").Append(exception.Name).Append(": ").AppendLine(Describe(exception.ExceptionInfo));
        }

        return text.ToString().TrimEnd();
    }

    /// <summary>
    /// A text of <see cref="Describe(IEnumerable{ActivityException})"/> that reads as its failure group: the first
    /// exception's type and the first application frame of their stack traces, never their messages (the sender's text).
    /// </summary>
    public static string Stating(string text, IEnumerable<ActivityException>? exceptions)
    {
        var infos = (exceptions ?? []).Select(e => e.ExceptionInfo).Where(i => i is not null).ToList();
        return infos.Count == 0 ? text : FailureSignature.Stating(text, FailureSignature.From(infos[0].ExceptionType, null, infos.Select(i => i.StackTrace)));
    }

    /// <summary>A text of <see cref="Describe(ExceptionInfo)"/> that reads as its failure group (see above).</summary>
    public static string Stating(string text, ExceptionInfo? info) =>
        info is null ? text : FailureSignature.Stating(text, FailureSignature.From(info.ExceptionType, null, [info.StackTrace]));

    public static string Describe(ExceptionInfo? info)
    {
        if (info is null)
        {
            return "(no exception information)";
        }

        var text = new StringBuilder().Append(info.ExceptionType).Append(": ").Append(info.Message);
        if (!string.IsNullOrEmpty(info.StackTrace))
        {
            text.AppendLine().Append(info.StackTrace);
        }

        return text.ToString();
    }

    private static int Count<TItem>(ICollection<TItem>? items) => items?.Count ?? 0;

    private sealed class HostScope(CourierStep? previous) : IDisposable
    {
        public void Dispose() => s_inHost.Value = previous;
    }

    private sealed record ActivityView(string Name, string? Address);

    private sealed record RoutingSlipView(Guid TrackingNumber, IReadOnlyList<ActivityView> Itinerary, IDictionary<string, object> Variables);
}
