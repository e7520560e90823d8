using JobLog.Recording;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// One run per message of a batch, per attempt of the batch (<c>IConsumer&lt;Batch&lt;T&gt;&gt;</c>): each message is
/// its own task, and the batch consumer's attempt is a run on each of them, so every message shows the consumer that
/// took it, its state and its retries. The runs of one attempt share start, stop, output and error, and each run's
/// output begins with the size of the batch and the ids of the other messages in it.
/// A failed attempt is RETRIED; each message's own delivery decides whether it was the last (FAILED), as for a consumer.
/// </summary>
internal sealed class TaskBatchRunFilter<T>(TaskLoggingServices services, string consumerType) : IFilter<ConsumeContext<Batch<T>>>
    where T : class
{
    private string? _name;

    public async Task Send(ConsumeContext<Batch<T>> context, IPipe<ConsumeContext<Batch<T>>> next)
    {
        var recorder = services.Recorder;
        var start = services.UtcNow;
        var name = _name ??= services.TaskName(typeof(T));
        var members = new List<(ConsumeContext<T> Message, DeliveryState? Delivery, Guid RunId, Guid TaskId)>(context.Message.Length);
        foreach (var message in context.Message)
        {
            message.TryGetPayload<DeliveryState>(out var delivery);
            var taskId = ConsumedRecords.TaskId(message) ?? NewId.NextGuid();
            members.Add((message, delivery, NewId.NextSequentialGuid(), taskId));
        }

        var header = $"Batch of {members.Count}: {string.Join(", ", members.Select(m => m.TaskId))}";
        foreach (var (message, delivery, runId, taskId) in members)
        {
            var lane = delivery?.Lane(consumerType);
            if (lane?.PendingFailure is { } previous)
            {
                delivery!.Track(recorder.Enqueue(new RunNextRetryKnown(previous.RunId, start)));
                lane.PendingFailure = null;
            }

            if (delivery is not null)
            {
                delivery.LastRunId = runId;
            }

            var queue = TaskLoggingServices.QueueName(message.ReceiveContext.InputAddress);
            var run = ConsumedRecords.Run(services, message, runId, taskId, name, queue, consumerType, start);
            var seed = ConsumedRecords.Seed(message, taskId, name, TaskLoggingServices.QueueName(message.DestinationAddress) ?? queue, start);
            var sequence = recorder.Enqueue(new RunStarted(run, seed, message.ReceiveContext.Redelivered, new DeferredRendering(message.Message, services.Renderer)));
            delivery?.Track(sequence);
        }

        var output = new OutputBuffer(services.Options.Redaction.MaxBodyLength);
        output.Append(header);
        var frame = new AmbientFrame(AmbientKind.TaskRun, members.Count > 0 ? members[0].RunId : Guid.Empty, JobLogScope.Current) { Output = output };
        string? error = null;
        try
        {
            using (JobLogScope.Push(frame))
            {
                await next.Send(context).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            error = services.ErrorText(ex);
            throw;
        }
        finally
        {
            var stop = services.UtcNow;
            var text = output.Snapshot() is { } captured ? services.Redactor.Bound(captured) : null;
            foreach (var (_, delivery, runId, taskId) in members)
            {
                if (error is not null && delivery is not null)
                {
                    delivery.Lane(consumerType).PendingFailure = (runId, taskId);
                }

                var sequence = recorder.Enqueue(new RunFinished(
                    runId, taskId, error is null ? TaskRunState.Succeeded : TaskRunState.Retried, stop, error, text, null));
                delivery?.Track(sequence);
            }
        }
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogBatchRun").Add("consumer", consumerType);
}
