using System.Diagnostics;
using JobLog.Recording;
using JobLog.Timing;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>Carries the per-call <see cref="TaskDispatchOptions"/> from <c>SetTaskOptions</c> to the dispatch observer.</summary>
internal sealed class TaskOptionsPayload
{
    public TaskDispatchOptions Options { get; } = new();
}

/// <summary>Remembers the dispatch record's sequence between PreSend and PostSend.</summary>
internal sealed class DispatchTicket(long sequence)
{
    public long Sequence { get; } = sequence;
}

/// <summary>
/// A task row on every send and publish (DESIGN §5): observers run after the caller's pipe, so they see TimeToLive,
/// Delay and headers. Redelivery re-sends and <c>Fault&lt;T&gt;</c> are not new tasks.
/// </summary>
internal sealed class TaskDispatchObserver(TaskLoggingServices services) : ISendObserver, IPublishObserver
{
    public Task PreSend<T>(SendContext<T> context)
        where T : class
    {
        Record(context);
        return Task.CompletedTask;
    }

    public Task PostSend<T>(SendContext<T> context)
        where T : class => WaitAsync(context);

    public Task SendFault<T>(SendContext<T> context, Exception exception)
        where T : class
    {
        Fail(context, exception);
        return Task.CompletedTask;
    }

    public Task PrePublish<T>(PublishContext<T> context)
        where T : class
    {
        Record(context);
        return Task.CompletedTask;
    }

    public Task PostPublish<T>(PublishContext<T> context)
        where T : class => WaitAsync(context);

    public Task PublishFault<T>(PublishContext<T> context, Exception exception)
        where T : class
    {
        Fail(context, exception);
        return Task.CompletedTask;
    }

    private void Record<T>(SendContext<T> context)
        where T : class
    {
        try
        {
            if (!IsTask(context))
            {
                return;
            }

            var now = services.UtcNow;
            context.TryGetPayload<TaskOptionsPayload>(out var payload);
            var call = payload?.Options;
            var type = services.Options.GetTaskType(typeof(T));
            var times = TaskTiming.Resolve(now, call, type, services.Options, context.TimeToLive, context.Delay);
            if (context.TimeToLive is null && times.TimeToLive is { } ttl)
            {
                // A derived expiry travels with the message, as the seed passes expires to Celery.
                context.TimeToLive = ttl;
            }

            var rendered = services.Renderer.Render(context.Message);
            var task = new TaskLog
            {
                Id = context.MessageId ?? NewId.NextGuid(),
                Name = services.TaskName(typeof(T), call),
                QueueName = TaskLoggingServices.QueueName(context.DestinationAddress),
                Input = rendered.Input,
                TaskArgs = rendered.TaskArgs,
                TaskKwargs = rendered.TaskKwargs,
                DispatchedAt = now,
                EstimatedTimeOfFirstArrival = times.Eta,
                Expires = times.Expires,
                Stale = times.Stale,
                ParentRunId = JobLogScope.CurrentTaskRunId,
                CorrelationId = context.CorrelationId,
                ConversationId = context.ConversationId,
                TraceId = Activity.Current?.TraceId.ToHexString(),
                SourceAddress = context.SourceAddress?.ToString(),
                Host = services.Options.Host,
                Release = services.Options.Release,
            };
            var sequence = services.Recorder.Enqueue(new TaskDispatched(task));
            context.GetOrAddPayload(() => new DispatchTicket(sequence));
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Recording never breaks the business path.
            Debug.WriteLine(ex);
        }
    }

    private bool IsTask<T>(SendContext<T> context)
        where T : class
    {
        if (context.Message is Fault)
        {
            return false;
        }

        if (context.Headers.TryGetHeader(MessageHeaders.RedeliveryCount, out _))
        {
            // A redelivery of a task that exists: note when it comes back on the delivery being consumed.
            if (context.TryGetPayload<ConsumeContext>(out var consume) && consume.TryGetPayload<DeliveryState>(out var delivery))
            {
                delivery.RedeliveryAt = services.UtcNow + (context.Delay ?? TimeSpan.Zero);
            }

            return false;
        }

        return true;
    }

    private Task WaitAsync<T>(SendContext<T> context)
        where T : class =>
        context.TryGetPayload<DispatchTicket>(out var ticket)
            ? services.Recorder.WaitCommittedAsync(ticket.Sequence).AsTask()
            : Task.CompletedTask;

    private void Fail<T>(SendContext<T> context, Exception exception)
        where T : class
    {
        if (context.TryGetPayload<DispatchTicket>(out _) && context.MessageId is { } id)
        {
            services.Recorder.Enqueue(new TaskDispatchFailed(id, "Dispatch failed: " + services.ErrorText(exception)));
        }
    }
}
