using JobLog.Recording;
using JobLog.Scheduling;
using MassTransit;
using MassTransit.Context;
using MassTransit.Middleware;
using MassTransit.Scheduling;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.MassTransit.Scheduling;

/// <summary>
/// MassTransit's scheduler protocol (the one Quartz and Hangfire serve): stores <c>ScheduleMessage</c> in the ledger
/// database for the dispatcher, and cancels with <c>CancelScheduledMessage</c>. A message is acknowledged only once
/// it is stored, so the broker keeps it while the database is unreachable (retries, then <c>_error</c>).
/// </summary>
internal sealed class JobLogSchedulerConsumer(
    ScheduledMessageStore store,
    ScheduledMessageDispatcher dispatcher,
    LedgerRecorder recorder,
    IOptions<JobLogOptions> ledger,
    TimeProvider time,
    ILogger<JobLogSchedulerConsumer> logger) : IConsumer<ScheduleMessage>, IConsumer<CancelScheduledMessage>
{
    // How long a copy met twice waits for this process's records of its sends before the held copy's ETA is shown.
    private static readonly TimeSpan s_dispatchRecordsWait = TimeSpan.FromSeconds(5);

    public async Task Consume(ConsumeContext<ScheduleMessage> context)
    {
        var message = context.Message;

        // The stored body is the message with the envelope the scheduled send carried (MessageId, correlation,
        // headers, expiration): the dispatcher sends exactly that.
        var serializer = context.SerializerContext.GetMessageSerializer(message.Payload, message.PayloadType);
        var envelope = new MessageSendContext<ScheduleMessage>(message, context.CancellationToken)
        {
            MessageId = context.MessageId,
            RequestId = context.RequestId,
            CorrelationId = context.CorrelationId,
            ConversationId = context.ConversationId,
            InitiatorId = context.InitiatorId,
            SourceAddress = context.SourceAddress,
            DestinationAddress = message.Destination,
            ResponseAddress = context.ResponseAddress,
            FaultAddress = context.FaultAddress,
        };
        var row = new ScheduledMessageLog
        {
            Id = message.CorrelationId,
            MessageId = context.MessageId,
            MessageType = message.PayloadType?.FirstOrDefault(),
            Destination = message.Destination.ToString(),
            ScheduledTime = SchedulerTime.Normalize(message.ScheduledTime),
            ContentType = serializer.ContentType.ToString(),
            Body = serializer.GetMessageBody(envelope).GetBytes(),
            CreatedAt = UtcNow,
            Host = ledger.Value.Host,
        };
        await StoreAsync(store, dispatcher, recorder, row, UtcNow, logger, context.CancellationToken).ConfigureAwait(false);
    }

    public async Task Consume(ConsumeContext<CancelScheduledMessage> context)
    {
        var token = context.Message.TokenId;
        var now = UtcNow;
        var outcome = await store.CancelAsync(token, now, ledger.Value.Host, eta => CancelReason(token, now, eta), context.CancellationToken)
            .ConfigureAwait(false);
        Log.Cancelled(logger, token, outcome switch
        {
            CancelOutcome.Cancelled => "it will not be sent; its task is EXPIRED",
            CancelOutcome.CancelledBeforeStored => "it was not stored yet and will not be",
            _ => "too late, it was sent or is being sent (or was cancelled before)",
        });
    }

    /// <summary>Stores a message and wakes the dispatcher; a message cancelled before it arrived only expires its task.</summary>
    internal static async Task StoreAsync(
        ScheduledMessageStore store,
        ScheduledMessageDispatcher dispatcher,
        LedgerRecorder recorder,
        ScheduledMessageLog row,
        DateTime now,
        ILogger logger,
        CancellationToken cancellationToken)
    {
        var state = await store.AddAsync(row, cancellationToken).ConfigureAwait(false);
        if (state == ScheduledMessageState.Pending)
        {
            Log.Stored(logger, row.Id, row.MessageId, row.Destination, row.ScheduledTime);
            dispatcher.Notify(row.ScheduledTime);
        }
        else if (state == ScheduledMessageState.Cancelled)
        {
            await store.ExpireCancelledTaskAsync(row, now, CancelReason(row.Id, now, row.ScheduledTime), cancellationToken).ConfigureAwait(false);
            Log.Cancelled(logger, row.Id, "the cancellation came first; it will not be sent; its task is EXPIRED");
        }
        else
        {
            // Stored before under this id: the broker's or an outbox's redelivery of the same message, or the same
            // MessageId deferred again. A message is scheduled once per id (one task, one delivery); say so.
            var held = await store.HeldAsync(row.Id, cancellationToken).ConfigureAwait(false);
            Log.AlreadyStored(logger, row.Id, row.MessageId, row.Destination, row.ScheduledTime,
                held?.State.ToString() ?? "gone", held?.ScheduledTime);

            // A deferred send is held under its MessageId, which is its task's id; the task's ETA is the one its send
            // recorded last, this copy's. The copy held is the one delivered: its time is shown, once this process's
            // record of this copy's send (enqueued before the send reached the broker) is written.
            if (row.MessageId == row.Id && held is { State: ScheduledMessageState.Pending or ScheduledMessageState.Dispatching } kept
                && kept.ScheduledTime != row.ScheduledTime)
            {
                await recorder.FlushAsync(s_dispatchRecordsWait, cancellationToken).ConfigureAwait(false);
                await store.ShowHeldEtaAsync(row.Id, kept.ScheduledTime, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static string CancelReason(Guid token, DateTime now, DateTime eta) =>
        $"Cancelled: CancelScheduledSend({token}) at {now:O}, before its scheduled time {eta:O}; the message was never sent.";

    private DateTime UtcNow => time.GetUtcNow().UtcDateTime;
}

/// <summary>Endpoint settings of the scheduler queue.</summary>
internal sealed class JobLogSchedulerConsumerDefinition : ConsumerDefinition<JobLogSchedulerConsumer>
{
    public JobLogSchedulerConsumerDefinition(JobLogSchedulerRegistration registration)
    {
        EndpointName = registration.QueueName;
    }

    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator,
        IConsumerConfigurator<JobLogSchedulerConsumer> consumerConfigurator,
        IRegistrationContext context)
    {
        // A database hiccup should not send a schedule to _error at once.
        endpointConfigurator.UseMessageRetry(r => r.Intervals(200, 1000, 5000, 15_000, 30_000));

        // SetTaskOptions(Eta/Countdown) on RabbitMQ sends the message itself here (no consumer matches it): store it.
        var deferred = new DeferredMessageFilter(
            context.GetRequiredService<ScheduledMessageStore>(),
            context.GetRequiredService<ScheduledMessageDispatcher>(),
            context.GetRequiredService<LedgerRecorder>(),
            context.GetRequiredService<IOptions<JobLogOptions>>().Value.Host,
            context.GetRequiredService<TimeProvider>(),
            context.GetRequiredService<ILogger<JobLogSchedulerConsumer>>());
        endpointConfigurator.ConfigureDeadLetter(p =>
        {
            p.UseFilter(deferred);
            p.UseFilter(new DeadLetterTransportFilter());
        });
    }
}
