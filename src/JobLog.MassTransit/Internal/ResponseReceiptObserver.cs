using System.Diagnostics;
using JobLog.Recording;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// A response's run is its receipt by the request client that waits for it (consumer type <c>RequestClient</c>): the
/// request client consumes it through a handler connected for that one request, which no configuration observer sees.
/// So the response is SUCCEEDED when the requester got it (FAILED when its handler threw), and is linked to the run
/// that answered (its task's <c>ParentRunId</c>). It also records the runs of handlers connected to a running bus
/// (<see cref="ConnectedHandler{T}"/>), which no configuration observer sees either.
/// </summary>
internal sealed class ResponseReceiptObserver(TaskLoggingServices services) : IReceiveObserver
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
            // Request clients consume responses with a MessageHandler of their own; JobLog's hooked handlers are not
            // MessageHandlers and record their runs themselves.
            if (!consumerType.Contains("MessageHandler<", StringComparison.Ordinal))
            {
                return;
            }

            if (context.RequestId is not { } requestId || context.MessageId is not { } taskId)
            {
                ConnectedHandler(context, duration, exception);
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
            var seed = ConsumedRecords.Seed(context, taskId, name, TaskLoggingServices.QueueName(context.DestinationAddress) ?? queue, start);
            services.Recorder.Enqueue(new RunStarted(run, seed, false, new DeferredRendering(context.Message, services.Renderer)));
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Recording never breaks the business path.
            services.RecordingFailed(ex, "response");
        }
    }

    /// <summary>
    /// A handler connected to a running bus (<c>bus.ConnectHandler&lt;T&gt;(…)</c>, or on a receive endpoint's consume
    /// pipe after it started): MassTransit gives it no configuration observer, so no run filter of JobLog's is around it
    /// and its message stayed WAITING with no run, even when the handler failed. Its attempt is recorded here, when
    /// MassTransit reports it consumed or faulted (consumer type <c>ConnectedHandler&lt;T&gt;</c>: a configured handler's
    /// is <c>Handler&lt;T&gt;</c>, and both can take the same message on one endpoint):
    /// SUCCEEDED, or RETRIED pending the delivery's outcome (the delivery filter makes the last one FAILED, as for any
    /// consumer). A handler JobLog hooked is inside its run (<see cref="JobLogScope.CurrentTaskRunId"/>) and is skipped.
    /// The run is recorded after the handler: what it logs is not in the run's output, and what it dispatches is linked to
    /// another run of the delivery that started before it (a configured consumer of the type on the endpoint), else to none.
    /// An endpoint's retry reports only its last attempt here, so the attempts it retried in memory are one run.
    /// </summary>
    private void ConnectedHandler<T>(ConsumeContext<T> context, TimeSpan duration, Exception? exception)
        where T : class
    {
        if (JobLogScope.CurrentTaskRunId is not null || !context.TryGetPayload<DeliveryState>(out var delivery))
        {
            return;
        }

        var recorder = services.Recorder;
        var stop = services.UtcNow;
        var start = stop - duration;
        var taskId = ConsumedRecords.TaskId(context) ?? (delivery.GeneratedTaskId ??= NewId.NextGuid());
        var name = services.TaskName(typeof(T));
        var consumer = "ConnectedHandler<" + TaskLoggingServices.ShortName(typeof(T)) + ">";
        var lane = delivery.Lane(consumer);
        // Not the delivery's LastRunId: the run is recorded after the handler, so what the handler dispatched in a later
        // attempt would be linked to this attempt's run.
        var runId = NewId.NextSequentialGuid();
        if (lane.PendingFailure is { } previous)
        {
            // The previous attempt was retried in memory: this is when the retry came.
            delivery.Track(recorder.Enqueue(new RunNextRetryKnown(previous.RunId, start)));
            lane.PendingFailure = null;
            lane.PendingException = null;
        }

        var queue = TaskLoggingServices.QueueName(context.ReceiveContext.InputAddress);
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
        var seed = ConsumedRecords.Seed(context, taskId, name, TaskLoggingServices.QueueName(context.DestinationAddress) ?? queue, start,
            isInternal: InternalMessages.IsInternal(typeof(T)), caller: delivery.Caller);
        delivery.Track(recorder.Enqueue(new RunStarted(run, seed, context.ReceiveContext.Redelivered, rendering)));
    }
}
