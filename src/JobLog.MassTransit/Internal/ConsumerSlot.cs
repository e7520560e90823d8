using JobLog.Recording;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// A run waiting for a concurrency limit that MassTransit applies after JobLog's run filter: a consumer's own
/// <c>ConcurrentMessageLimit</c> or <c>UseConcurrentMessageLimit</c>, a saga's (<see cref="LimitAhead"/>). The run filter
/// does not record the run's start; <see cref="ConsumerSlotFilter{TConsumer, TMessage}"/> on the consumer's pipe, or
/// <see cref="TaskSagaRunFilter{TSaga, TMessage}"/> inside the saga repository (both after the limit), records it when the
/// consumer or saga gets its slot. A consumer's expiry is checked then (<paramref name="checkExpiry"/>); a saga's is not
/// (skipping the saga inside its repository would save a new instance without its event): only on receipt. One record
/// either way, as without a limit.
/// </summary>
internal sealed class ConsumerSlotWait(
    TaskLoggingServices services, ConsumeContext context, DeliveryState delivery, Guid runId, Guid taskId, string name, string? queue,
    string consumerType, DateTime received, long receivedTimestamp, DateTime? expires, TaskPayload seed, DeferredRendering rendering, bool checkExpiry = true)
{
    private static readonly AsyncLocal<ConsumerSlotWait?> s_current = new();

    public static ConsumerSlotWait? Current
    {
        get => s_current.Value;
        set => s_current.Value = value;
    }

    public string ConsumerType { get; } = consumerType;

    public SlotState State { get; private set; }

    /// <summary>The consumer got its slot: the run starts now, unless the message expired while it waited. False: do not consume.</summary>
    public bool Begin()
    {
        if (State != SlotState.Waiting)
        {
            return State == SlotState.Started;
        }

        var now = services.Since(received, receivedTimestamp);
        if (checkExpiry && expires < now)
        {
            State = SlotState.Expired;
            var expired = new RunEnd(
                TaskRunState.Expired, now,
                $"Expired: received at {received:O}, given its slot (the consumer's concurrency limit, partition or rate limit) at {now:O}, after its expiration time {expires:O}; not consumed.");
            Enqueue(now, expired);
            return false;
        }

        State = SlotState.Started;
        Enqueue(now);
        return true;
    }

    /// <summary>The attempt ended without the consumer's slot (a stop cancelled the wait, the consumer could not be created): the run as received.</summary>
    public void EndedWithoutSlot()
    {
        if (State == SlotState.Waiting)
        {
            State = SlotState.Started;
            Enqueue(received);
        }
    }

    private void Enqueue(DateTime start, RunEnd? ended = null)
    {
        var run = ConsumedRecords.Run(services, context, runId, taskId, name, queue, ConsumerType, start, ended);
        delivery.Track(services.Recorder.Enqueue(new RunStarted(run, seed, context.ReceiveContext.Redelivered, rendering)));
    }
}

/// <summary>The probe names of JobLog's filters that stand where a consumer or saga gets its slot (<see cref="LimitAhead"/>).</summary>
internal static class SlotFilterTypes
{
    public const string Consumer = "jobLogConsumerSlot";

    public const string Saga = "jobLogSagaRun";
}

internal enum SlotState
{
    Waiting,
    Started,
    Expired,
}

/// <summary>
/// On the consumer's own pipe (after MassTransit's concurrency limits and the consumer factory) of every consumer: when a
/// limit stands between JobLog's run filter and this one, the run begins here (<see cref="ConsumerSlotWait"/>); when an
/// in-memory retry does, each attempt is recorded here (<see cref="TaskRunFilter{TMessage}.IsInner"/>).
/// </summary>
internal sealed class ConsumerSlotFilter<TConsumer, TMessage>(string consumerType, TaskRunFilter<TMessage> run) : IFilter<ConsumerConsumeContext<TConsumer, TMessage>>
    where TConsumer : class
    where TMessage : class
{
    public Task Send(ConsumerConsumeContext<TConsumer, TMessage> context, IPipe<ConsumerConsumeContext<TConsumer, TMessage>> next)
    {
        if (run.IsInner)
        {
            // An in-memory retry of the consumer's own stands between the run filter and here: each attempt is a run, from here.
            return run.RunAsync(context, next, slotted: false);
        }

        var wait = ConsumerSlotWait.Current;
        if (wait is null || !string.Equals(wait.ConsumerType, consumerType, StringComparison.Ordinal) || wait.Begin())
        {
            Task sent;
            try
            {
                sent = next.Send(context);
            }
            catch (Exception ex)
            {
                // A consumer (or a filter) that throws before it returns a task.
                Note(context, ex);
                throw;
            }

            return sent.IsCompletedSuccessfully ? sent : Noting(context, sent);
        }

        // Expired while it waited for the slot: not given to the consumer (Celery's behaviour, as on receipt).
        return Task.CompletedTask;
    }

    /// <summary>
    /// <paramref name="sent"/>, its consumer's exception noted (<see cref="NotingTheConsumersExceptionAsync"/>). A task
    /// that already faulted (a consumer that throws before its first await) is given back as it is, its first exception
    /// (what an await throws) noted, without throwing it again here: that cost the retry path two exception dispatches
    /// per failed attempt. A task still running takes the awaiting path, whose success costs one state machine.
    /// </summary>
    private Task Noting(ConsumeContext context, Task sent)
    {
        if (sent.IsFaulted && sent.Exception is { InnerExceptions: [var first, ..] })
        {
            Note(context, first);
            return sent;
        }

        return NotingTheConsumersExceptionAsync(context, sent);
    }

    /// <summary>
    /// Notes the consumer's own exception for the run (<see cref="ConsumerLane.ConsumerException"/>): on its way out,
    /// MassTransit's consumer filter generates the fault, and when that throws (a sender's <c>MT-Redelivery-Count</c> that
    /// is not a number: its fault pipe reads the header as an int) its exception, not the consumer's, leaves the pipe.
    /// </summary>
    private async Task NotingTheConsumersExceptionAsync(ConsumeContext context, Task sent)
    {
        try
        {
            await sent.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Note(context, ex);
            throw;
        }
    }

    private void Note(ConsumeContext context, Exception exception)
    {
        if (context.TryGetPayload<DeliveryState>(out var delivery))
        {
            delivery.Lane(consumerType).ConsumerException = exception;
        }
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope(SlotFilterTypes.Consumer).Add("consumer", consumerType);
}
