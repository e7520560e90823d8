using System.Diagnostics;
using JobLog.MassTransit.Internal.Jobs;
using JobLog.MassTransit.Scheduling;
using JobLog.Recording;
using JobLog.Timing;
using MassTransit;
using MassTransit.Scheduling;
using MassTransit.Serialization;

namespace JobLog.MassTransit.Internal;

/// <summary>Carries the per-call <see cref="TaskDispatchOptions"/> from <c>SetTaskOptions</c> to the dispatch observer.</summary>
internal sealed class TaskOptionsPayload
{
    public TaskDispatchOptions Options { get; } = new();
}

/// <summary>Remembers the dispatch record's sequence between PreSend and PostSend.</summary>
internal sealed class DispatchTicket(long sequence)
{
    // The factory reads the ticket from here instead of capturing it: no closure and no delegate per dispatch.
    [ThreadStatic]
    private static DispatchTicket? t_next;

    private static readonly PayloadFactory<DispatchTicket> s_next = static () => t_next!;

    public long Sequence { get; } = sequence;

    /// <summary>Gives <paramref name="context"/> the ticket of <paramref name="sequence"/>, unless it has one.</summary>
    public static void Attach(PipeContext context, long sequence)
    {
        t_next = new DispatchTicket(sequence);
        try
        {
            context.GetOrAddPayload(s_next);
        }
        finally
        {
            t_next = null;
        }
    }
}

/// <summary>
/// A task row on every send and publish (docs/architecture.md#task-state): observers run after the caller's pipe, so they see TimeToLive,
/// Delay and headers. Redelivery re-sends are not new tasks; a <c>Fault&lt;T&gt;</c> is one only where this application
/// consumes it. The outbox's <c>SerializedMessageBody</c> deliveries are recorded as the message they carry. A <c>ScheduleMessage</c> is
/// recorded as the task of the message it schedules (its MessageId, exact ETA); the scheduler's own later send of it
/// is not a second task. With the JobLog scheduler, a <c>SetTaskOptions(Eta/Countdown)</c> send on RabbitMQ is
/// deferred to the scheduler instead of asking the broker for a delay it cannot give.
/// </summary>
internal sealed class TaskDispatchObserver(TaskLoggingServices services, SchedulerOnBus? scheduler = null) : ISendObserver, IPublishObserver
{
    /// <summary>The consumer type of the run that closes a published message nobody here consumes.</summary>
    public const string NoConsumer = "(no consumer)";

    /// <summary>The consumer type of the run that ends a message a send or publish observer refused before it was sent.</summary>
    public const string NotSent = "(dispatch)";

    private const string FaultUrn = "urn:message:MassTransit:Fault";

    private readonly QueueNameCache _destinations = new();

    public Task PreSend<T>(SendContext<T> context)
        where T : class => Record(context);

    public Task PostSend<T>(SendContext<T> context)
        where T : class => WaitAsync(context);

    public Task SendFault<T>(SendContext<T> context, Exception exception)
        where T : class
    {
        Fail(context, exception, "send");
        return Task.CompletedTask;
    }

    public Task PrePublish<T>(PublishContext<T> context)
        where T : class => Record(context, published: true);

    public Task PostPublish<T>(PublishContext<T> context)
        where T : class => WaitAsync(context);

    public Task PublishFault<T>(PublishContext<T> context, Exception exception)
        where T : class
    {
        Fail(context, exception, "publish");
        return Task.CompletedTask;
    }

    /// <returns>Completed, or, for a message deferred to the scheduler, when the scheduler's exchange exists.</returns>
    private Task Record<T>(SendContext<T> context, bool published = false)
        where T : class
    {
        var deferred = false;
        try
        {
            if (context.TryGetPayload<ScheduledDispatchPayload>(out _))
            {
                // The scheduler sends a stored message: its task was recorded when it was scheduled.
                return Task.CompletedTask;
            }

            if (context.Message is ScheduleMessage schedule)
            {
                RecordScheduled(context, schedule);
                return Task.CompletedTask;
            }

            if (typeof(T).Namespace == typeof(ScheduleMessage).Namespace)
            {
                // Cancellations and the rest of the scheduler protocol are not tasks.
                return Task.CompletedTask;
            }

            // The transactional outbox delivers a stored body: the task is the message it carries.
            SerializedMessage? serialized = context.Message is SerializedMessageBody ? services.Messages.Read(context)
                : !published && IsCourierEvent<T>() ? services.Messages.ReadReplaced(context)
                : null;
            if (!IsTask(context, serialized))
            {
                // A redelivery with a transport delay (UseDelayedRedelivery, Defer) needs the scheduler as much as an ETA does.
                deferred = context.Delay is { } redelivery && redelivery > TimeSpan.Zero
                    && DeferToScheduler(context, services.UtcNow + redelivery, token: NewId.NextGuid());
                return ReadyAsync(context, deferred);
            }

            if (InfrastructureDispatch.Intercept(services, context))
            {
                return Task.CompletedTask;
            }

            services.Requests.Sent(context);
            var messageType = serialized?.Type ?? typeof(T);
            var now = services.UtcNow;
            context.TryGetPayload<TaskOptionsPayload>(out var payload);
            var call = payload?.Options;
            var type = services.Options.GetTaskType(messageType);
            var times = TaskTiming.Resolve(now, call, type, services.Options, context.TimeToLive, context.Delay);
            if (context.TimeToLive is null && times.TimeToLive is { } ttl)
            {
                // A derived expiry travels with the message, as the seed passes expires to Celery.
                context.TimeToLive = ttl;
            }

            if ((call is { Countdown: not null } or { Eta: not null } || context.Delay > TimeSpan.Zero) && times.Eta > now)
            {
                deferred = DeferToScheduler(context, times.Eta);
            }

            Enqueue(context, messageType, serialized is { } body ? body.Message : context.Message, context.DestinationAddress, call, times, now,
                serialized is { Type: null } unresolved ? unresolved.Name : null);
            // The outbox delivers a publish as a send to the message type's exchange.
            published = published || serialized is { Type: { } carried }
                && string.Equals(TaskLoggingServices.QueueName(context.DestinationAddress), MessageUrn.ForTypeString(carried)[MessageUrn.Prefix.Length..], StringComparison.Ordinal);
            if (published && services.Options.CloseUnconsumedPublishes && !services.Consumed.IsConsumed(messageType))
            {
                RecordUnconsumed(context, messageType, now);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException and not SchedulerLeftOutException)
        {
            // Recording never breaks the business path; a delay nothing can give is the application's configuration error.
            services.RecordingFailed(ex, "dispatch");
        }

        return ReadyAsync(context, deferred);
    }

    /// <summary>A Courier event (<c>RoutingSlipCompleted</c>, …), which a routing slip subscription's own message may replace when it is sent.</summary>
    private static bool IsCourierEvent<T>() =>
        typeof(T).Namespace is { } ns && ns.StartsWith("MassTransit.Courier", StringComparison.Ordinal) && typeof(T) != typeof(global::MassTransit.Courier.Contracts.RoutingSlip);

    /// <summary>While the bus starts, the scheduler's endpoint may not have declared its exchange yet.</summary>
    private Task ReadyAsync(SendContext context, bool deferred) =>
        deferred && scheduler is { Ready.IsCompleted: false }
            ? scheduler.Ready.WaitAsync(TimeSpan.FromSeconds(30), services.Time, context.CancellationToken)
            : Task.CompletedTask;

    /// <summary>
    /// A <c>ScheduleMessage</c> to a scheduler endpoint: the task of the scheduled message (the command's MessageId is
    /// the one the message is sent with), due at <c>ScheduledTime</c>. A scheduled redelivery is no new task: its time
    /// is when the failed run's retry comes.
    /// </summary>
    private void RecordScheduled<T>(SendContext<T> context, ScheduleMessage schedule)
        where T : class
    {
        var scheduled = SchedulerTime.Normalize(schedule.ScheduledTime);
        if (IsRedelivery(context, out var delivery))
        {
            if (delivery is not null)
            {
                delivery.RedeliveryAt = scheduled;
                delivery.RedeliveredByRun = CurrentRun();
            }

            return;
        }

        // A countdown set inside a ScheduleSend's pipe must not become a transport delay of the command: the schedule decides.
        context.Delay = null;
        var now = services.UtcNow;
        context.TryGetPayload<TaskOptionsPayload>(out var payload);
        var call = payload?.Options;
        var messageType = ScheduledType(schedule);
        JobTasks.OnScheduled(services, context, schedule.Payload, scheduled);
        var times = TaskTiming.Resolve(now, call, services.Options.GetTaskType(messageType), services.Options, context.TimeToLive, null, scheduled);
        Enqueue(context, messageType, schedule.Payload, schedule.Destination, call, times, now);
    }

    private static Type ScheduledType(ScheduleMessage schedule)
    {
        // MassTransit's ScheduleMessageCommand<T> names the scheduled type; the payload may be a generated implementation.
        var type = schedule.GetType();
        return type.IsGenericType && type.GetGenericArguments() is [var argument]
            ? argument
            : schedule.Payload?.GetType() ?? typeof(object);
    }

    /// <summary>
    /// RabbitMQ without the delayed-message plugin cannot delay a message (a <c>Delay</c> closes the channel): the
    /// message goes to the JobLog scheduler's queue instead, with its due time and destination in headers, and the
    /// scheduler sends it, same MessageId, when due. Other transports delay natively and keep <c>Delay</c>. A message
    /// deferred more than once under one MessageId (each redelivery of a message) carries a <paramref name="token"/> of
    /// its own, which the scheduler stores it under.
    /// </summary>
    private bool DeferToScheduler<T>(SendContext<T> context, DateTime eta, Guid? token = null)
        where T : class
    {
        if (scheduler is null || !scheduler.Present && !scheduler.LeftOut || context.DestinationAddress is null
            || !context.TryGetPayload<global::MassTransit.Context.TransportSendContext>(out var transport))
        {
            return false;
        }

        // MassTransit's own way to move a send's transport settings (its Quartz job restores them with it).
        var properties = new Dictionary<string, object>(StringComparer.Ordinal);
        transport.WritePropertiesTo(properties);
        if (!properties.ContainsKey(SchedulerHeaders.RabbitMqExchange))
        {
            return false;
        }

        if (scheduler.LeftOut)
        {
            // Left to RabbitMQ, the delay closes the channel and the send waits for ever, whatever its token (session 44).
            throw new SchedulerLeftOutException(scheduler.QueueName);
        }

        properties[SchedulerHeaders.RabbitMqExchange] = scheduler.QueueName;
        properties.Remove(SchedulerHeaders.Delay);
        context.Headers.Set(SchedulerHeaders.ScheduledTime, SchedulerTime.Format(eta));
        context.Headers.Set(SchedulerHeaders.Destination, context.DestinationAddress.ToString());
        if (token is { } id)
        {
            context.Headers.Set(SchedulerHeaders.Token, id.ToString("N"));
        }

        transport.ReadPropertiesFrom(properties);
        context.Delay = null;
        return true;
    }

    private void Enqueue<T>(
        SendContext<T> context, Type messageType, object? message, Uri? destination, TaskDispatchOptions? call, TaskTimes times, DateTime now,
        string? name = null)
        where T : class
    {
        var isInternal = InternalMessages.IsInternal(messageType);
        if (isInternal && !services.Options.RecordInternalMessages)
        {
            return;
        }

        var rendered = services.Renderer.Render(message);
        var stamp = context.Message is SerializedMessageBody ? ParentStamp.Read(context, services.StampKey) : (null, null);
        var task = new TaskPayload
        {
            Id = context.MessageId ?? NewId.NextGuid(),
            Name = name is not null && call?.Name is null ? name : services.TaskName(messageType, call),
            QueueName = _destinations.Get(destination),
            Input = rendered.Input,
            TaskArgs = rendered.TaskArgs,
            TaskKwargs = rendered.TaskKwargs,
            DispatchedAt = now,
            EstimatedTimeOfFirstArrival = times.Eta,
            Expires = times.Expires,
            Stale = times.Stale,
            ParentRunId = ParentRun(context, stamp.Run),
            InputRequestId = stamp.Request ?? JobLogScope.CurrentInputRequestId,
            CorrelationId = context.CorrelationId,
            ConversationId = context.ConversationId,
            TraceId = Activity.Current?.TraceId.ToHexString(),
            SourceAddress = context.SourceAddress?.ToString(),
            Host = services.Options.Host,
            Release = services.Options.Release,
            IsInternal = isInternal,
        };
        var sequence = services.Recorder.Enqueue(new TaskDispatched(task));
        DispatchTicket.Attach(context, sequence);
    }

    /// <summary>
    /// The run this message was dispatched in: the ambient run; for a message the outbox stored and delivers later
    /// (outside that run), the run JobLog signed on it when it was written (<paramref name="stamped"/>, read only on an
    /// outbox delivery: <see cref="ParentStamp.Read"/>), else the run of the delivery that releases it.
    /// </summary>
    private static Guid? ParentRun<T>(SendContext<T> context, Guid? stamped)
        where T : class =>
        stamped
        ?? JobLogScope.CurrentTaskRunId
        ?? (context.TryGetPayload<ConsumeContext>(out var consume) && consume.TryGetPayload<DeliveryState>(out var delivery) ? delivery.LastRunId : null);

    /// <summary>
    /// A published message that no consumer, saga or handler of this application takes: one run of consumer
    /// <c>(no consumer)</c>, SUCCEEDED at once, so that the task neither waits forever nor counts as failed. Runs that
    /// other applications record on the same ledger are added to it as usual.
    /// </summary>
    private void RecordUnconsumed<T>(SendContext<T> context, Type messageType, DateTime now)
        where T : class
    {
        if (context.MessageId is not { } taskId)
        {
            return;
        }

        var name = services.TaskName(messageType);
        EndAtDispatch(context, taskId, name, now, NoConsumer, TaskRunState.Succeeded, output: $"Published; no consumer of {name} in this application.");
    }

    /// <summary>A run of consumer <paramref name="consumer"/> that ends the task where it was dispatched, at once.</summary>
    private void EndAtDispatch<T>(
        SendContext<T> context, Guid taskId, string name, DateTime now, string consumer, TaskRunState state, string? output = null, string? error = null)
        where T : class
    {
        var run = new RunPayload
        {
            Id = NewId.NextSequentialGuid(),
            TaskId = taskId,
            Name = name,
            QueueName = TaskLoggingServices.QueueName(context.DestinationAddress),
            ConsumerType = consumer,
            Start = now,
            Stop = now,
            State = state,
            Output = output,
            ErrorMessage = error,
            Host = services.Options.Host,
            WaitingTime = 0,
        };
        var seed = new TaskPayload { Id = taskId, Name = name, DispatchedAt = now, EstimatedTimeOfFirstArrival = now };
        services.Recorder.Enqueue(new RunStarted(run, seed, false));
    }

    private bool IsTask<T>(SendContext<T> context, SerializedMessage? serialized)
        where T : class
    {
        if (context.Message is Fault)
        {
            // A fault is a task only where something consumes it; the task that faulted already shows the failure.
            return services.Consumed.IsConsumed(typeof(T));
        }

        if (serialized is { Type: { } faultType } && typeof(Fault).IsAssignableFrom(faultType))
        {
            return services.Consumed.IsConsumed(faultType);
        }

        if (serialized is { Type: null } && context.SupportedMessageTypes?.FirstOrDefault()?.StartsWith(FaultUrn, StringComparison.Ordinal) == true)
        {
            return false;
        }

        if (IsRedelivery(context, out var delivery))
        {
            // A redelivery of a task that exists: note when it comes back on the delivery being consumed.
            if (delivery is not null)
            {
                delivery.RedeliveryAt = services.UtcNow + (context.Delay ?? TimeSpan.Zero);
                delivery.RedeliveredByRun = CurrentRun();
            }

            return false;
        }

        return true;
    }

    /// <summary>
    /// Whether this send is MassTransit redelivering the message being consumed (redelivery, <c>Defer</c>,
    /// <c>Redeliver</c>): its <c>MT-Redelivery-Count</c> is above the consumed message's. A consumer that copies the
    /// inbound headers onto a message it sends (a relay, a forward) copies the count unchanged: that message is a task
    /// of its own, and the run that sent it did not hand its message back. Outside a consume, a message with the header
    /// is taken as a redelivery, as before.
    /// </summary>
    private static bool IsRedelivery(SendContext context, out DeliveryState? delivery)
    {
        delivery = null;
        if (!context.Headers.TryGetHeader(MessageHeaders.RedeliveryCount, out var sent))
        {
            return false;
        }

        if (!context.TryGetPayload<ConsumeContext>(out var consume))
        {
            return true;
        }

        if (Count(sent) is { } count && count <= Count(consume.Headers.Get<object>(MessageHeaders.RedeliveryCount)).GetValueOrDefault())
        {
            return false;
        }

        consume.TryGetPayload(out delivery);
        return true;
    }

    /// <summary>The task run whose scope this code runs in (the nearest, through nested frames), or null.</summary>
    private static Guid? CurrentRun()
    {
        for (var frame = JobLogScope.Current; frame is not null; frame = frame.Parent)
        {
            if (frame.Kind == AmbientKind.TaskRun)
            {
                return frame.Id;
            }
        }

        return null;
    }

    private static int? Count(object? value)
    {
        try
        {
            return value switch
            {
                null => null,
                int i => i,
                long l => (int)Math.Clamp(l, 0, int.MaxValue),
                string text => int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : null,
                byte[] bytes => int.TryParse(System.Text.Encoding.UTF8.GetString(bytes), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : null,
                IConvertible convertible => convertible.ToInt32(System.Globalization.CultureInfo.InvariantCulture),
                _ => null,
            };
        }
        catch (Exception ex) when (ex is FormatException or InvalidCastException or OverflowException)
        {
            return null;
        }
    }

    private Task WaitAsync<T>(SendContext<T> context)
        where T : class =>
        context.TryGetPayload<DispatchTicket>(out var ticket)
            ? services.Recorder.WaitCommittedAsync(ticket.Sequence).AsTask()
            : Task.CompletedTask;

    /// <summary>
    /// A send or publish recorded here failed. A failure of the transport may still have left the message with the
    /// broker (a send cancelled during a resource alarm): the task keeps waiting, with the error. A refusal by a send or
    /// publish observer connected after JobLog's (its <c>PreSend</c>/<c>PrePublish</c> threw) is certain, as observers run
    /// before the transport is given the message: the task is EXPIRED, its one run (consumer <see cref="NotSent"/>)
    /// naming the observer.
    /// </summary>
    private void Fail<T>(SendContext<T> context, Exception exception, string verb)
        where T : class
    {
        if (!context.TryGetPayload<DispatchTicket>(out _) || context.MessageId is not { } id)
        {
            return;
        }

        if (context.Message is not SerializedMessageBody && ObserverRefusal.Of(exception) is { } observer)
        {
            context.TryGetPayload<TaskOptionsPayload>(out var payload);
            EndAtDispatch(context, id, services.TaskName(typeof(T), payload?.Options), services.UtcNow, NotSent, TaskRunState.Expired,
                error: services.ErrorText(exception, $"Not sent: refused by the observer {observer} before it reached the transport (the {verb} threw to its caller): "));
            return;
        }

        services.Recorder.Enqueue(new TaskDispatchFailed(id, services.ErrorText(exception, "Dispatch failed: ")));
    }
}

/// <summary>
/// A delayed send on RabbitMQ (JobLog's <c>Countdown</c> or <c>Eta</c>, a delayed redelivery) on a bus whose registration
/// added the JobLog scheduler but whose endpoints left its queue out (a <c>ConfigureEndpoints</c> filter): RabbitMQ without
/// the delayed-message plugin cannot delay it, and the send would never return.
/// </summary>
internal sealed class SchedulerLeftOutException(string queue) : InvalidOperationException(
    $"This message is delayed (JobLog's Countdown or Eta, or a delayed redelivery) on RabbitMQ, which cannot delay it without its delayed-message plugin, "
    + $"and this bus has no endpoint for the JobLog scheduler that would (AddJobLogScheduler): its queue '{queue}' was not configured. "
    + "A ConfigureEndpoints filter that names the consumers it includes must include it too: f.IncludeJobLogScheduler().");

