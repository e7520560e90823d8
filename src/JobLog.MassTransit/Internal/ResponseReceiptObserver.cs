using System.Diagnostics;
using JobLog.Recording;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// A response's run is its receipt by the request client that waits for it (consumer type <c>RequestClient</c>): the
/// request client consumes it through a handler connected for that one request, which no configuration observer sees.
/// So the response is SUCCEEDED when the requester got it (FAILED when its handler threw), and is linked to the run
/// that answered (its task's <c>ParentRunId</c>).
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
            if (context.RequestId is not { } requestId || context.MessageId is not { } taskId
                || !consumerType.Contains("MessageHandler<", StringComparison.Ordinal))
            {
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
}
