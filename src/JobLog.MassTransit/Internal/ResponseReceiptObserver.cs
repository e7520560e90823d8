using System.Diagnostics;
using System.Text.RegularExpressions;
using JobLog.Recording;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// A response's run is its receipt by the request client that waits for it (consumer type <c>RequestClient</c>): the
/// request client consumes it through a handler connected for that one request, which no configuration observer sees.
/// So the response is SUCCEEDED when the requester got it (FAILED when its handler threw), and is linked to the run
/// that answered (its task's <c>ParentRunId</c>). It also records the runs of handlers, consumers and sagas connected to
/// a running bus or endpoint (<see cref="Connected{T}"/>), which no configuration observer sees either.
/// </summary>
internal sealed partial class ResponseReceiptObserver(TaskLoggingServices services) : IReceiveObserver
{
    public const string ConsumerType = "RequestClient";

    public Task PreReceive(ReceiveContext context) => Task.CompletedTask;

    public Task PostReceive(ReceiveContext context) => Task.CompletedTask;

    public Task PostConsume<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType)
        where T : class
    {
        Record(context, duration, consumerType, null);
        return Task.CompletedTask;
    }

    public Task ConsumeFault<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType, Exception exception)
        where T : class
    {
        Record(context, duration, consumerType, exception);
        return Task.CompletedTask;
    }

    public Task ReceiveFault(ReceiveContext context, Exception exception) => Task.CompletedTask;

    private void Record<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType, Exception? exception)
        where T : class
    {
        try
        {
            // Request clients consume responses with a MessageHandler of their own; JobLog's hooked handlers, consumers
            // and sagas record their runs themselves (inside their run), anything else is connected at run time. A
            // handler reports itself as a MessageHandler too, configured or connected, and a request carries a RequestId
            // as its response does: a request names where to answer (its ResponseAddress), a response does not.
            var handler = consumerType.Contains("MessageHandler<", StringComparison.Ordinal);
            if (EnvelopeFields.RequestId(context) is not { } requestId || EnvelopeFields.MessageId(context) is not { } taskId || !handler || EnvelopeFields.HasResponseAddress(context))
            {
                Connected(context, duration, consumerType, handler, exception);
                return;
            }

            services.Requests.Answered(requestId);

            if (context.Message is Fault && !services.Consumed.IsConsumed(typeof(T)))
            {
                // A fault the request client receives (RequestFaultException) is no task of its own, as a fault nobody
                // consumes is not one: the request's task already shows FAILED with the exception. Recorded here it
                // was a SUCCEEDED task without a parent.
                return;
            }

            var stop = services.UtcNow;
            var start = stop - duration;
            var name = services.TaskName(typeof(T));
            var queue = TaskLoggingServices.QueueName(context.ReceiveContext.InputAddress);
            var ended = exception is null
                ? new RunEnd(TaskRunState.Succeeded, stop, null)
                : new RunEnd(TaskRunState.Failed, stop, services.ErrorText(exception));
            var run = ConsumedRecords.Run(services, context, NewId.NextSequentialGuid(), taskId, name, queue, ConsumerType, start, ended);
            var seed = ConsumedRecords.Seed(context, taskId, name, TaskLoggingServices.QueueName(EnvelopeFields.DestinationAddress(context)) ?? queue, start);
            services.Recorder.Enqueue(new RunStarted(run, seed, false, new DeferredRendering(context.Message, services.Renderer)));
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Recording never breaks the business path.
            services.RecordingFailed(ex, "response");
        }
    }

    /// <summary>
    /// A handler, consumer or saga connected to a running bus or receive endpoint (<c>bus.ConnectHandler&lt;T&gt;</c>,
    /// <c>ConnectConsumer</c>, <c>ConnectInstance</c>, <c>ConnectSaga</c>/<c>ConnectStateMachineSaga</c>, or the same on
    /// <c>handle.ReceiveEndpoint</c> or the mediator, whose reports come through <see cref="MediatorReportingConsumeContext"/>): MassTransit gives it no configuration observer, so no run filter of JobLog's is around
    /// it and its message stayed WAITING with no run. Its attempt is recorded here, when MassTransit reports it consumed or
    /// faulted: consumer <c>ConnectedHandler&lt;T&gt;</c> for a handler (a configured one is <c>Handler&lt;T&gt;</c>, and
    /// both report themselves as <c>MessageHandler&lt;T&gt;</c>), the consumer's or saga's type name otherwise (as a
    /// configured one's); SUCCEEDED, or RETRIED pending the delivery's outcome (the delivery filter makes the last one
    /// FAILED and keeps the message, as for any consumer).
    /// <para>What is not a connected consumer's report, and is skipped:</para>
    /// <list type="bullet">
    /// <item>a report inside a JobLog run (a configured consumer, saga, handler, batch or job: they record their own), other
    /// than the run a mediator's caller runs in (<see cref="DeliveryState.Caller"/>: the mediator's consumers run in its flow);</item>
    /// <item>a fault whose exception a JobLog run of this delivery already recorded: an endpoint's <c>UseMessageRetry</c>
    /// holds back its attempts' faults and reports the last one after the retries, outside every run (session 40's
    /// double run of a configured handler);</item>
    /// <item>a consumer or saga JobLog knows configured on this endpoint under that name (the same late report, when its
    /// exception was replaced);</item>
    /// <item>MassTransit's own consumers (a batch consumer's collector, <c>MassTransit.Batching.BatchConsumer&lt;T&gt;</c>,
    /// reports each message of a batch consumed outside the batch's run; the job service's);</item>
    /// <item>Courier's activity hosts (their routing slips are recorded by JobLog's Courier filters), a job's messages (their
    /// runs are the job's attempts), and messages without runs of their own (the scheduler's, MassTransit's internal ones).</item>
    /// </list>
    /// Limits: the run is recorded after the attempt, so what the consumer logs is not in its output, and what it
    /// dispatches is linked to the run of the delivery that started last (a configured consumer of the type on that
    /// endpoint), else to none. An endpoint retry reports only the last attempt, so the attempts it retried are one run.
    /// </summary>
    private void Connected<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType, bool handler, Exception? exception)
        where T : class
    {
        // On the mediator the consumer runs in its caller's flow: the caller's run is around it, not a run of its own.
        if (!context.TryGetPayload<DeliveryState>(out var delivery)
            || (JobLogScope.CurrentTaskRunId is { } ambient && ambient != delivery.Caller.Run)
            || TaskRunConfigurationObserver.RunType<T>(services) != typeof(T)
            || string.Equals(typeof(T).Namespace, typeof(global::MassTransit.Courier.Contracts.RoutingSlip).Namespace, StringComparison.Ordinal)
            || services.Consumed.IsJob(typeof(T))
            || (!handler && consumerType.StartsWith("MassTransit.", StringComparison.Ordinal))
            || (exception is not null && delivery.RecordedByARun(exception)))
        {
            return;
        }

        var queue = TaskLoggingServices.QueueName(context.ReceiveContext.InputAddress);
        var consumer = handler ? "ConnectedHandler<" + TaskLoggingServices.ShortName(typeof(T)) + ">" : TypeName(consumerType);
        if (consumer.Length == 0 || (!handler && queue is not null && services.Consumed.ConsumersOnEndpoint(queue, typeof(T)).Contains(consumer)))
        {
            return;
        }

        var recorder = services.Recorder;
        var stop = services.UtcNow;
        var start = stop - duration;
        var taskId = ConsumedRecords.TaskId(context) ?? (delivery.GeneratedTaskId ??= NewId.NextGuid());
        var name = services.TaskName(typeof(T));
        var lane = delivery.Lane(consumer);
        // Not the delivery's LastRunId: the run is recorded after the consumer, so what it dispatched in a later attempt
        // would be linked to this attempt's run.
        var runId = NewId.NextSequentialGuid();
        if (lane.PendingFailure is { } previous)
        {
            // The previous attempt was redelivered in memory: this is when the retry came.
            delivery.Track(recorder.Enqueue(new RunNextRetryKnown(previous.RunId, start)));
            lane.PendingFailure = null;
            lane.PendingException = null;
        }

        var ended = exception is null
            ? new RunEnd(TaskRunState.Succeeded, stop, null)
            : new RunEnd(TaskRunState.Retried, stop, services.ErrorText(exception));
        if (exception is not null)
        {
            lane.PendingFailure = (runId, taskId);
            lane.PendingException = exception;
        }

        var rendering = delivery.Rendering ??= new DeferredRendering(context.Message, services.Renderer);
        var run = ConsumedRecords.Run(services, context, runId, taskId, name, queue, consumer, start, ended);
        var seed = ConsumedRecords.Seed(context, taskId, name, TaskLoggingServices.QueueName(EnvelopeFields.DestinationAddress(context)) ?? queue, start,
            isInternal: InternalMessages.IsInternal(typeof(T)), caller: delivery.Caller);
        delivery.Track(recorder.Enqueue(new RunStarted(run, seed, context.ReceiveContext.Redelivered, rendering)));
    }

    /// <summary>
    /// A consumer's or saga's name as its configured runs have it (<see cref="TaskLoggingServices.ShortName"/>), from the
    /// name MassTransit reports (its <c>TypeCache.ShortName</c>: namespaces and declaring types included).
    /// </summary>
    internal static string TypeName(string reported)
    {
        var name = Qualifiers().Replace(reported, "");
        return name.Length > LedgerModel.NameLength ? name[..(LedgerModel.NameLength - 1)] + "…" : name;
    }

    [GeneratedRegex(@"(?:[A-Za-z_][A-Za-z0-9_`]*[.+])+", RegexOptions.CultureInvariant)]
    private static partial Regex Qualifiers();
}
