using JobLog.Recording;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// One run per message of a batch, per attempt of the batch (<c>IConsumer&lt;Batch&lt;T&gt;&gt;</c>): each message is
/// its own task, and the batch consumer's attempt is a run on each of them, so every message shows the consumer that
/// took it, its state and its retries. The runs of one attempt share start, stop, output and error, and each run's
/// output begins with the size of the batch and the ids of the other messages in it.
/// A failed attempt is RETRIED; each message's own delivery decides whether it was the last (FAILED), as for a consumer.
/// When the batch consumer has an in-memory retry of its own after this filter (<c>UseMessageRetry</c> on its configurator),
/// the attempts are recorded by <see cref="BatchAttemptFilter{TConsumer, T}"/> on the consumer's pipe, inside that retry.
/// </summary>
internal sealed class TaskBatchRunFilter<T>(TaskLoggingServices services, string consumerType) : IFilter<ConsumeContext<Batch<T>>>, IBatchRunFilter
    where T : class
{
    // 0: not known yet (probed at the first batch), 1: attempts recorded here, 2: recorded inside the consumer's pipe.
    private int _mode;
    private string? _name;

    public bool IsInner => Volatile.Read(ref _mode) == 2;

    public object InnerFilter<TConsumer>()
        where TConsumer : class =>
        new BatchAttemptFilter<TConsumer, T>(this);

    public Task Send(ConsumeContext<Batch<T>> context, IPipe<ConsumeContext<Batch<T>>> next)
    {
        var mode = Volatile.Read(ref _mode);
        if (mode == 0)
        {
            mode = LimitAhead.Find(next, BatchAttemptFilter<object, T>.FilterType).Retry ? 2 : 1;
            Volatile.Write(ref _mode, mode);
        }

        return mode == 2 ? next.Send(context) : RunAsync(context, next);
    }

    /// <summary>One attempt of the batch: a run on each of its messages.</summary>
    public async Task RunAsync<TContext>(TContext context, IPipe<TContext> next)
        where TContext : class, ConsumeContext<Batch<T>>
    {
        var recorder = services.Recorder;
        var start = services.UtcNow;
        var started = services.Time.GetTimestamp();
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
            var stop = services.Since(start, started);
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

/// <summary>A batch consumer's run filter that can hand its attempts to a filter on the consumer's own pipe.</summary>
internal interface IBatchRunFilter
{
    /// <summary>The filter for <typeparamref name="TConsumer"/>'s pipe (an <c>IFilter&lt;ConsumerConsumeContext&lt;TConsumer, Batch&lt;T&gt;&gt;&gt;</c>).</summary>
    object InnerFilter<TConsumer>()
        where TConsumer : class;
}

/// <summary>On a batch consumer's own pipe: records each attempt when an in-memory retry stands before it (<see cref="TaskBatchRunFilter{T}"/>).</summary>
internal sealed class BatchAttemptFilter<TConsumer, T>(TaskBatchRunFilter<T> run) : IFilter<ConsumerConsumeContext<TConsumer, Batch<T>>>
    where TConsumer : class
    where T : class
{
    public const string FilterType = "jobLogBatchAttempt";

    public Task Send(ConsumerConsumeContext<TConsumer, Batch<T>> context, IPipe<ConsumerConsumeContext<TConsumer, Batch<T>>> next) =>
        run.IsInner ? run.RunAsync(context, next) : next.Send(context);

    public void Probe(ProbeContext context) => context.CreateFilterScope(FilterType);
}
