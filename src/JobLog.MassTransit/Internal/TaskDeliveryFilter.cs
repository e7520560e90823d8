using System.Runtime.CompilerServices;
using JobLog.Recording;
using MassTransit;
using MassTransit.Configuration;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// Wraps the whole delivery (a pre-pipe filter, outside every retry). Decides the fate of the last failed attempt
/// (FAILED when the exception escapes, RETRIED when redelivery took the message) and, in Acknowledged mode, holds the
/// acknowledgement until the delivery's records are committed.
/// </summary>
internal sealed class TaskDeliveryFilter(TaskLoggingServices services, bool mediator = false) : IFilter<ConsumeContext>
{
    // The task whose delivery an exception failed for good: an open circuit breaker refuses later deliveries by throwing
    // that same exception object (MassTransit's OpenBehavior), which must not read as their own failure.
    private static readonly ConditionalWeakTable<Exception, StrongBox<Guid>> s_failedDeliveries = new();

    // Static factories: a lambda reading the filter's flag would be a new delegate for every delivery.
    private static readonly PayloadFactory<DeliveryState> s_newDelivery = static () => new DeliveryState();
    private static readonly PayloadFactory<DeliveryState> s_newMediatorDelivery =
        static () => new DeliveryState { Caller = (JobLogScope.CurrentTaskRunId, JobLogScope.CurrentInputRequestId) };

    // On the mediator, the consumption reports of what JobLog does not hook (handlers and consumers connected to it): the
    // mediator has no receive observer of JobLog's.
    private readonly ResponseReceiptObserver? _mediatorReports = mediator ? new ResponseReceiptObserver(services) : null;

    public async Task Send(ConsumeContext context, IPipe<ConsumeContext> next)
    {
        var delivery = context.GetOrAddPayload(mediator ? s_newMediatorDelivery : s_newDelivery);
        var recorder = services.Recorder;
        try
        {
            await next.Send(_mediatorReports is { } reports ? new MediatorReportingConsumeContext(context, reports) : context).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!mediator && context.CancellationToken.IsCancellationRequested && ReturnsToItsQueue(context))
        {
            // Not on the mediator: there the token is the caller's (an aborted HTTP request's), no queue redelivers the
            // message, and the attempt is a failure like any other. Nor on the in-memory transport (ReturnsToItsQueue).
            // The endpoint is stopping and cancelled the consumer (MassTransitHostOptions.ConsumerStopTimeout): the
            // transport returns the message to its queue, not to _error, and the next worker runs it again. The attempt
            // stays RETRIED (its next run is that redelivery) and is not kept as a failure.
            await recorder.WaitCommittedAsync(delivery.LastSequence, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        catch (Exception ex)
        {
            List<(Guid RunId, Guid TaskId, string Consumer)>? failedRuns = null;
            var kept = ex;
            foreach (var lane in delivery.HasPendingFailure ? delivery.Lanes() : [])
            {
                if (lane.PendingFailure is { } failed)
                {
                    delivery.Track(recorder.Enqueue(new RunFailedForGood(failed.RunId, failed.TaskId)));
                    lane.PendingFailure = null;
                    // MassTransit could not report the fault (a sender's header it cannot read) and its own exception left
                    // the pipe: the kept message names the consumer's, as its run does.
                    if (ReferenceEquals(kept, ex) && lane.PendingException is { } own && !TaskLoggingServices.Holds(ex, own))
                    {
                        kept = own;
                    }

                    lane.PendingException = null;
                    (failedRuns ??= []).Add((failed.RunId, failed.TaskId, lane.Consumer));
                }
            }

            if (failedRuns is not null && delivery.EscapedActivity is { } escaped)
            {
                // A routing slip whose activity failed and whose exception left Courier's host: the routing slip ends here.
                escaped.Finish(services, delivery);
                delivery.EscapedActivity = null;
            }

            if (failedRuns is null && delivery.LastRunId is null && delivery.Lanes().Count == 0)
            {
                Refused(context, delivery, ex);
            }
            else if (failedRuns is not null)
            {
                s_failedDeliveries.AddOrUpdate(ex, new StrongBox<Guid>(failedRuns[0].TaskId));
            }

            await recorder.WaitCommittedAsync(delivery.LastSequence, CancellationToken.None).ConfigureAwait(false);
            if (failedRuns is not null && services.Keeper is { } keeper)
            {
                // The delivery failed for good: keep the transport message so it can be retried from the ledger.
                await keeper.KeepAsync(context, kept, failedRuns).ConfigureAwait(false);
            }

            throw;
        }

        if (!mediator && !context.ReceiveContext.IsDelivered && delivery.LastRunId is null && delivery.Lanes().Count == 0)
        {
            NotConsumed(context, delivery);
        }

        // Returned normally with a failed attempt pending: redelivery took the message, the run stays RETRIED.
        if (delivery.RedeliveryAt is { } at && delivery.HasPendingFailure)
        {
            foreach (var lane in delivery.Lanes())
            {
                if (lane.PendingFailure is { } retried)
                {
                    delivery.Track(recorder.Enqueue(new RunNextRetryKnown(retried.RunId, at)));
                }
            }
        }

        await recorder.WaitCommittedAsync(delivery.LastSequence, CancellationToken.None).ConfigureAwait(false);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogDelivery");

    /// <summary>
    /// Whether a delivery the endpoint's stop cancelled goes back to its queue for another run: a broker's does (RabbitMQ
    /// and the others requeue what was not acknowledged). The in-memory transport's (<c>loopback://</c>) does not: its
    /// receiver logs the fault and drops the message, so the attempt the stop cancelled (or the retry it cut short) is the
    /// delivery's last, FAILED like any other that failed for good; otherwise it stayed RETRIED, its next run never to
    /// come (session 43).
    /// </summary>
    private static bool ReturnsToItsQueue(ConsumeContext context) =>
        !string.Equals(context.ReceiveContext.InputAddress?.Scheme, "loopback", StringComparison.OrdinalIgnoreCase);

    /// <summary>The consumer a run of <see cref="Refused"/> names when the endpoint's consumers of the message type are not known.</summary>
    public const string RefusedConsumer = "(delivery)";

    /// <summary>The consumer a run of <see cref="NotConsumed"/> names when no consumer on the queue takes the message.</summary>
    public const string SkippedConsumer = "(skipped)";

    /// <summary>How much of a skipped message's type list its run's error names.</summary>
    private const int MaxSkippedTypesText = 1000;

    /// <summary>
    /// A message that nothing consumed where it arrived, no run of JobLog's begun (without a run its task stayed WAITING
    /// until its stale limit, or, a foreign producer's, was not recorded at all):
    /// <list type="bullet">
    /// <item>a response at an endpoint without consumers of this application's (the bus endpoint, where request clients
    /// wait): its request client had stopped waiting for it (the request's timeout ran out, or its caller cancelled it)
    /// and MassTransit drops it; EXPIRED, consumer <see cref="ResponseReceiptObserver.ConsumerType"/>;</item>
    /// <item>a message whose consumers on that endpoint exist but none ran: a filter in front of them did not pass it on
    /// (an application's idempotency filter) and MassTransit moves it to the queue's <c>_skipped</c>; EXPIRED in the lane
    /// of each of them (the application chose to drop it; a later run, the message moved back, supersedes them);</item>
    /// <item>a message no consumer on its queue takes (a send or a ResponseAddress naming the wrong queue, a contract
    /// renamed on one side, a foreign producer's type): MassTransit moves it, unconsumed, to the queue's <c>_skipped</c>;
    /// FAILED, consumer <see cref="SkippedConsumer"/>: nothing processed it, and someone has to move it back or purge it.</item>
    /// </list>
    /// Faults are left out (a fault the request client receives, or nobody consumes, is no task of its own), and so is a
    /// message the JobLog scheduler holds (its dead-letter pipe stores it).
    /// </summary>
    private void NotConsumed(ConsumeContext context, DeliveryState delivery)
    {
        try
        {
            var urns = context.SupportedMessageTypes?.ToArray() ?? [];
            var type = services.Messages.Resolve(urns);
            if (context.ReceiveContext.TransportHeaders.TryGetHeader(Scheduling.SchedulerHeaders.ScheduledTime, out _)
                || (type is not null ? typeof(Fault).IsAssignableFrom(type) : urns.Any(u => u.StartsWith("urn:message:MassTransit:Fault[", StringComparison.Ordinal)))
                || ConsumedRecords.TaskId(context) is not { } taskId)
            {
                return;
            }

            var now = services.UtcNow;
            var queue = TaskLoggingServices.QueueName(context.ReceiveContext.InputAddress);
            var name = type is not null ? services.TaskName(type) : urns.Length > 0 ? SerializedMessages.ShortName(urns[0]) : SkippedConsumer;
            name = name.Length > LedgerModel.NameLength ? name[..(LedgerModel.NameLength - 1)] + "…" : name;
            var consumers = type is not null && queue is not null ? services.Consumed.ConsumersOnEndpoint(queue, type) : [];
            var requestId = EnvelopeFields.RequestId(context);
            var response = requestId is not null && !EnvelopeFields.HasResponseAddress(context) && !services.Consumed.HasConsumersOn(queue);
            var (lanes, ended) = response && services.Requests.NotAccepting(requestId!.Value, urns) is { } accepted
                ? ([ResponseReceiptObserver.ConsumerType], new RunEnd(TaskRunState.Failed, now,
                    $"Not received: it arrived at {queue} at {now:O}, where its request client was waiting for {Bounded(string.Join(", ", accepted), MaxSkippedTypesText)} and does not accept this type ({Bounded(string.Join(", ", urns), MaxSkippedTypesText)}); MassTransit drops it, and the requester gets no answer from it (it times out unless another answer comes)."))
                : response
                ? ([ResponseReceiptObserver.ConsumerType], new RunEnd(TaskRunState.Expired, now,
                    $"Not received: it arrived at {queue} at {now:O}, when nothing there was waiting for it any more (its request client had given up: the request's timeout ran out or its caller cancelled it); not consumed."))
                : consumers.Count > 0
                    ? (consumers, new RunEnd(TaskRunState.Expired, now,
                        $"Not consumed: it arrived at {queue} at {now:O}, but a filter in front of its consumers did not pass it on (none of them ran); MassTransit moved it to {queue}_skipped."))
                    : ([SkippedConsumer], new RunEnd(TaskRunState.Failed, now,
                        $"Skipped: no consumer on {queue} takes this message ({Bounded(string.Join(", ", urns), MaxSkippedTypesText)}); MassTransit moves it, unconsumed, to the endpoint's skipped queue ({queue}_skipped unless configured otherwise)."));
            var seed = ConsumedRecords.Seed(context, taskId, name, TaskLoggingServices.QueueName(EnvelopeFields.DestinationAddress(context)) ?? queue, now,
                isInternal: type is not null && InternalMessages.IsInternal(type));
            foreach (var consumer in lanes)
            {
                var run = ConsumedRecords.Run(services, context, NewId.NextSequentialGuid(), taskId, name, queue, consumer, now, ended);
                delivery.Track(services.Recorder.Enqueue(new RunStarted(run, seed, false)));
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Recording never breaks the business path.
            services.RecordingFailed(ex, "not consumed");
        }

        static string Bounded(string text, int max) => text.Length > max ? text[..max] + "…" : text;
    }

    /// <summary>
    /// The delivery failed before any run began: a filter in front of the consumers threw (an open circuit breaker,
    /// a validation or authorization filter, ...) and the message goes to <c>_error</c> unconsumed. When the message is
    /// of a type JobLog's run filters take here, a FAILED run in the lane of each of the endpoint's consumers of it says so
    /// (<c>(delivery)</c> when they are not known); without it the task stayed WAITING with its message in <c>_error</c>.
    /// </summary>
    private void Refused(ConsumeContext context, DeliveryState delivery, Exception exception)
    {
        try
        {
            if (services.Messages.Registered(context.SupportedMessageTypes) is not { } type || ConsumedRecords.TaskId(context) is not { } taskId)
            {
                return;
            }

            var now = services.UtcNow;
            var name = services.TaskName(type);
            var queue = TaskLoggingServices.QueueName(context.ReceiveContext.InputAddress);
            var prefix = s_failedDeliveries.TryGetValue(exception, out var of) && of.Value != taskId
                ? $"Refused before any consumer ran, by the failure of another message rethrown (an open circuit breaker refuses with the exception that opened it; that message's task: {of.Value}): "
                : "Refused before any consumer ran: ";
            var ended = new RunEnd(TaskRunState.Failed, now, services.ErrorText(exception, prefix));
            var seed = ConsumedRecords.Seed(context, taskId, name, TaskLoggingServices.QueueName(EnvelopeFields.DestinationAddress(context)) ?? queue, now,
                isInternal: InternalMessages.IsInternal(type), caller: delivery.Caller);

            // In the lane of each consumer of this endpoint (whatever other endpoints consume): a later run of it (the
            // message moved back from _error) then decides the task's state instead of this one. "(delivery)" only when
            // the endpoint's consumers are not known.
            var consumers = services.Consumed.ConsumersOn(queue, type);
            foreach (var consumer in consumers.Count > 0 ? consumers : [RefusedConsumer])
            {
                var run = ConsumedRecords.Run(services, context, NewId.NextSequentialGuid(), taskId, name, queue, consumer, now, ended);
                delivery.Track(services.Recorder.Enqueue(new RunStarted(run, seed, false)));
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Recording never breaks the business path.
            services.RecordingFailed(ex, "delivery");
        }
    }
}

/// <summary>Adds <see cref="TaskDeliveryFilter"/> as a pre-pipe specification.</summary>
internal sealed class TaskDeliverySpecification(TaskLoggingServices services, bool mediator) : IPipeSpecification<ConsumeContext>
{
    public void Apply(IPipeBuilder<ConsumeContext> builder) => builder.AddFilter(new TaskDeliveryFilter(services, mediator));

    public IEnumerable<ValidationResult> Validate()
    {
        if (services.Options.AcknowledgeTimeout < TimeSpan.Zero)
        {
            yield return this.Failure("AcknowledgeTimeout", "must not be negative");
        }
    }
}
