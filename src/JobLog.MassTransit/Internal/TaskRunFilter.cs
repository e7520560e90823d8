using JobLog.Recording;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// One run per consume attempt. Sits inside the retry filters (consumer level), so it is called once per attempt.
/// A failed attempt is recorded RETRIED at once; the delivery filter turns it into FAILED when the delivery fails.
/// </summary>
/// <remarks>
/// For a saga (<paramref name="saga"/>), the attempt's run may be replaced by the saga filter inside the repository
/// (<see cref="SagaAttemptSlot"/>): the outcome is then recorded on the slot's current run, with the saga's state line.
/// When a concurrency limit follows this filter (<paramref name="slotted"/> true, or, when null, a MassTransit limit found in
/// the rest of the pipe before JobLog's slot filter: <see cref="LimitAhead"/>), the run's start is recorded when the
/// consumer or saga gets its slot (<see cref="ConsumerSlotWait"/>), and a consumer's expiry is checked then. False: the
/// run begins on receipt. A handler's (<paramref name="handler"/>) run always begins on receipt (its pipe has no slot
/// filter); its pipe is probed at the first message only to say when the handler's own retry or limit follows this filter.
/// When an in-memory retry follows this filter in a consumer's pipe (<c>UseMessageRetry</c> on the consumer configurator,
/// often in a <c>ConsumerDefinition</c>: MassTransit adds it after JobLog's filter), this filter only passes the delivery
/// on, and each attempt is recorded by <see cref="ConsumerSlotFilter{TConsumer, TMessage}"/> on the consumer's pipe, inside
/// that retry (<see cref="IsInner"/>).
/// </remarks>
internal sealed class TaskRunFilter<TMessage>(TaskLoggingServices services, string consumerType, bool saga = false, bool? slotted = false, bool handler = false)
    : IFilter<ConsumeContext<TMessage>>
    where TMessage : class
{
    private const int Unknown = 0;
    private const int OnReceipt = 1;
    private const int AtSlot = 2;
    private const int Inner = 3;

    // Probed at the first message when not known (the rest of the pipe does not change).
    private int _mode = slotted switch { true => AtSlot, false => OnReceipt, null => Unknown };

    // The input and destination addresses rarely change for a consumer: their queue names are computed once.
    private readonly QueueNameCache _input = new();
    private readonly QueueNameCache _destination = new();
    private string? _name;

    /// <summary>The attempts are recorded inside the consumer's pipe (an in-memory retry follows this filter).</summary>
    public bool IsInner => Volatile.Read(ref _mode) == Inner;

    public Task Send(ConsumeContext<TMessage> context, IPipe<ConsumeContext<TMessage>> next) =>
        Mode(context, next) switch
        {
            Inner => next.Send(context),
            var mode => RunAsync(context, next, mode == AtSlot),
        };

    /// <summary>One attempt of the consumer as a run (from the message pipe, or, inner, from the consumer's pipe).</summary>
    /// <remarks>
    /// A failed attempt's task is passed on as it is, its exception not thrown again here (<see cref="AttemptAsync"/>): each
    /// throw again cost the retry path two exception dispatches per failed attempt and put this filter's frame into the trace
    /// the run records.
    /// </remarks>
    public Task RunAsync<TContext>(TContext context, IPipe<TContext> next, bool slotted)
        where TContext : class, ConsumeContext<TMessage>
    {
        var attempt = AttemptAsync(context, next, slotted);
        return attempt.IsCompletedSuccessfully ? attempt.Result : attempt.Unwrap();
    }

    /// <summary>
    /// The attempt, recorded; its result is the task to give the caller: the consumer pipe's own when it faulted (its
    /// exception recorded, not thrown again), else a completed one. A pipe that throws before it returns a task, or whose
    /// task is cancelled, faults this one with its exception (thrown again, as before).
    /// </summary>
    private async Task<Task> AttemptAsync<TContext>(TContext context, IPipe<TContext> next, bool slotted)
        where TContext : class, ConsumeContext<TMessage>
    {
        if (!context.TryGetPayload<DeliveryState>(out var delivery))
        {
            // UseTaskLogging adds the delivery filter to every endpoint; without it there is nothing to correlate.
            return next.Send(context);
        }

        var recorder = services.Recorder;
        var start = services.UtcNow;
        var started = services.Time.GetTimestamp();
        // A redelivery with ReplaceMessageId (UseScheduledRedelivery's default) carries a new MessageId and the task's
        // in MT-OriginalMessageId.
        // A message without a MessageId (a foreign producer) still gets its own task, not a shared empty id.
        var taskId = ConsumedRecords.TaskId(context) ?? (delivery.GeneratedTaskId ??= NewId.NextGuid());
        var lane = delivery.Lane(consumerType);
        // Ascending in text and byte order: a new run lands at the end of the runs' primary key, not on a random page.
        var runId = NewId.NextSequentialGuid();
        delivery.LastRunId = runId;
        if (lane.PendingFailure is { } previous)
        {
            // The previous attempt was retried in memory: this is when the retry came.
            delivery.Track(recorder.Enqueue(new RunNextRetryKnown(previous.RunId, start)));
            lane.PendingFailure = null;
            lane.PendingException = null;
        }

        // Not rendered here: the run takes the task row's rendering, and the writer renders the message only when the
        // producer's row is missing.
        var rendering = delivery.Rendering ??= new DeferredRendering(context.Message, services.Renderer);
        var name = _name ??= services.TaskName(typeof(TMessage));
        var queue = _input.Get(context.ReceiveContext.InputAddress);
        var expires = context.ExpirationTime is { } x ? DateTime.SpecifyKind(x, DateTimeKind.Utc) : (DateTime?)null;
        var seed = ConsumedRecords.Seed(
            context, taskId, name, _destination.Get(EnvelopeFields.DestinationAddress(context)) ?? queue, start, expires, InternalMessages.IsInternal(typeof(TMessage)),
            delivery.Caller);

        if (expires < start)
        {
            // Celery's behaviour: a message received after its expiry is not given to the consumer.
            var expired = new RunEnd(TaskRunState.Expired, start, $"Expired: received at {start:O}, after its expiration time {context.ExpirationTime:O}; not consumed.");
            var late = ConsumedRecords.Run(services, context, runId, taskId, name, queue, consumerType, start, expired);
            delivery.Track(recorder.Enqueue(new RunStarted(late, seed, context.ReceiveContext.Redelivered, rendering)));
            return Task.CompletedTask;
        }

        var run = ConsumedRecords.Run(services, context, runId, taskId, name, queue, consumerType, start);
        ConsumerSlotWait? wait = null;
        if (slotted)
        {
            // Recorded when the consumer gets its slot, or, without one, when the attempt ends.
            wait = new ConsumerSlotWait(services, context, delivery, runId, taskId, name, queue, consumerType, start, started, expires, seed, rendering, checkExpiry: !saga);
        }
        else
        {
            delivery.Track(recorder.Enqueue(new RunStarted(run, seed, context.ReceiveContext.Redelivered, rendering)));
        }

        var output = new OutputBuffer(services.Options.Redaction.MaxBodyLength);
        var frame = new AmbientFrame(AmbientKind.TaskRun, run.Id, JobLogScope.Current) { Output = output };
        var slot = saga ? new SagaAttemptSlot(run, seed, rendering, output, started) : null;
        var redeliveryBefore = delivery.RedeliveryAt;
        using (JobLogScope.Push(frame))
        {
            SagaAttemptSlot.Current = slot;
            if (wait is not null)
            {
                ConsumerSlotWait.Current = wait;
            }

            lane.ConsumerException = null;
            try
            {
                // The handler's and the saga's filters report the fault themselves: noted on the way (a consumer's is
                // noted by its slot filter).
                var sent = (handler || saga) && next is IPipe<ConsumeContext<TMessage>> ownFaultPipe
                    ? ownFaultPipe.Send(new FaultNotingConsumeContext<TMessage>(context, lane))
                    : next.Send(context);
                await sent.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                if (sent.IsFaulted && sent.Exception is { InnerExceptions: [var first, ..] })
                {
                    // What awaiting it throws (its first exception): recorded, and the task itself given back.
                    Failed(first, delivery, lane, wait, slot, run.Id, taskId, start, started, output);
                    return sent;
                }

                // Cancelled: its exception is the one the await makes.
                await sent.ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                Failed(ex, delivery, lane, wait, slot, run.Id, taskId, start, started, output);
                throw;
            }
            finally
            {
                SagaAttemptSlot.Current = null;
                if (wait is not null)
                {
                    ConsumerSlotWait.Current = null;
                }
            }
        }

        if (wait is not null)
        {
            if (wait.State == SlotState.Expired)
            {
                return Task.CompletedTask;
            }

            wait.EndedWithoutSlot();
        }

        if (delivery.RedeliveryAt is { } redeliveryAt && redeliveryAt != redeliveryBefore && delivery.RedeliveredByRun == run.Id)
        {
            // The consumer handed the message back (context.Defer / Redeliver) instead of doing its work: the attempt
            // is retried at the redelivery's time, as a failed attempt that redelivery took.
            delivery.Track(recorder.Enqueue(new RunFinished(
                slot?.RunId ?? run.Id, taskId, TaskRunState.Retried, services.Since(start, started), $"Deferred: redelivered at {redeliveryAt:O}.",
                Bounded(slot?.Output ?? output, slot?.SagaLine), redeliveryAt)));
            return Task.CompletedTask;
        }

        // A saga the repository never called (no instance, and the event's OnMissingInstance discarded the message or ran
        // its own pipe): say so, or the run reads as if the saga had handled it.
        var sagaLine = slot is { Calls: 0 }
            ? $"Saga {consumerType} was not called: no instance matched the message, and the event's OnMissingInstance policy handled it without the saga (Discard, or its own pipe); or a filter before the saga did not pass it on."
            : slot?.SagaLine;
        delivery.Track(recorder.Enqueue(new RunFinished(
            slot?.RunId ?? run.Id, taskId, TaskRunState.Succeeded, services.Since(start, started), null, Bounded(slot?.Output ?? output, sagaLine), null)));
        return Task.CompletedTask;
    }

    /// <summary>The attempt failed with <paramref name="ex"/>: its run RETRIED (the delivery filter makes it FAILED when the delivery fails).</summary>
    private void Failed(
        Exception ex, DeliveryState delivery, ConsumerLane lane, ConsumerSlotWait? wait, SagaAttemptSlot? slot, Guid runId, Guid taskId,
        DateTime start, long started, OutputBuffer output)
    {
        wait?.EndedWithoutSlot();
        var failed = slot?.RunId ?? runId;
        lane.PendingFailure = (failed, taskId);
        lane.PendingException = TaskLoggingServices.AttemptException(ex, lane.ConsumerException);
        var error = services.AttemptErrorText(ex, lane.ConsumerException);
        lane.ConsumerException = null;
        delivery.Track(services.Recorder.Enqueue(new RunFinished(
            failed, taskId, TaskRunState.Retried, services.Since(start, started), error, Bounded(slot?.Output ?? output, slot?.SagaLine), null)));
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogTaskRun").Add("consumer", consumerType);

    private int Mode(ConsumeContext context, IPipe<ConsumeContext<TMessage>> next)
    {
        var mode = Volatile.Read(ref _mode);
        if (mode == Unknown)
        {
            // Idempotent: two first messages at once find the same answer.
            var (limit, retry) = LimitAhead.Find(next, saga ? SlotFilterTypes.Saga : SlotFilterTypes.Consumer);
            if (handler)
            {
                // Nothing of JobLog's follows a handler's own retry or limit (the handler is the pipe's last filter): the run
                // stays one call of this filter, and the application is told once.
                if ((limit || retry) && Interlocked.CompareExchange(ref _mode, OnReceipt, Unknown) == Unknown)
                {
                    services.HandlerPipeAhead(consumerType, _input.Get(context.ReceiveContext.InputAddress), retry, limit);
                }

                mode = OnReceipt;
            }
            else
            {
                mode = retry && !saga ? Inner : limit ? AtSlot : OnReceipt;
            }

            Volatile.Write(ref _mode, mode);
        }

        return mode;
    }

    private string? Bounded(OutputBuffer output, string? sagaLine = null)
    {
        if (sagaLine is not null)
        {
            output.Append(sagaLine);
        }

        var text = output.Snapshot();
        return text is null ? null : services.Redactor.Bound(text);
    }
}
