using JobLog.Recording;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// A run waiting for its consumer's own concurrency limit (<c>ConcurrentMessageLimit</c> on the consumer). MassTransit
/// applies that limit inside the consumer's message pipe, after JobLog's run filter: the run filter does not record the
/// run's start; <see cref="ConsumerSlotFilter{TConsumer, TMessage}"/>, on the consumer's pipe (after the limit), records it
/// when the consumer gets its slot, and makes the expiry check then. One record either way, as without a limit.
/// </summary>
internal sealed class ConsumerSlotWait(
    TaskLoggingServices services, ConsumeContext context, DeliveryState delivery, Guid runId, Guid taskId, string name, string? queue,
    string consumerType, DateTime received, DateTime? expires, TaskPayload seed, DeferredRendering rendering)
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

        var now = services.UtcNow;
        if (expires < now)
        {
            State = SlotState.Expired;
            var expired = new RunEnd(
                TaskRunState.Expired, now,
                $"Expired: received at {received:O}, given a slot of the consumer's concurrency limit at {now:O}, after its expiration time {expires:O}; not consumed.");
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

internal enum SlotState
{
    Waiting,
    Started,
    Expired,
}

/// <summary>
/// On the consumer's own pipe (after MassTransit's concurrency limit and the consumer factory) of a consumer with a
/// <c>ConcurrentMessageLimit</c>: the run begins here (<see cref="ConsumerSlotWait"/>).
/// </summary>
internal sealed class ConsumerSlotFilter<TConsumer, TMessage>(string consumerType) : IFilter<ConsumerConsumeContext<TConsumer, TMessage>>
    where TConsumer : class
    where TMessage : class
{
    public Task Send(ConsumerConsumeContext<TConsumer, TMessage> context, IPipe<ConsumerConsumeContext<TConsumer, TMessage>> next)
    {
        var wait = ConsumerSlotWait.Current;
        if (wait is null || !string.Equals(wait.ConsumerType, consumerType, StringComparison.Ordinal) || wait.Begin())
        {
            return next.Send(context);
        }

        // Expired while it waited for the slot: not given to the consumer (Celery's behaviour, as on receipt).
        return Task.CompletedTask;
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogConsumerSlot").Add("consumer", consumerType);
}
