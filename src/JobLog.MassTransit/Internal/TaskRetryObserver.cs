using JobLog.Recording;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// Gives a RETRIED run its exact <see cref="TaskRunLog.EstimatedTimeOfNextRetry"/> from the retry policy's delay.
/// Without it the time is recorded when the next attempt starts.
/// </summary>
internal sealed class TaskRetryObserver(TaskLoggingServices services) : IRetryObserver
{
    public Task PostCreate<T>(RetryPolicyContext<T> context)
        where T : class, PipeContext => Task.CompletedTask;

    public Task PostFault<T>(RetryContext<T> context)
        where T : class, PipeContext
    {
        if (context.Context is ConsumeContext consume && consume.TryGetPayload<DeliveryState>(out var delivery))
        {
            var next = services.UtcNow + (context.Delay ?? TimeSpan.Zero);
            foreach (var lane in delivery.Lanes())
            {
                if (lane.PendingFailure is { } failed)
                {
                    delivery.Track(services.Recorder.Enqueue(new RunNextRetryKnown(failed.RunId, next)));
                }
            }
        }

        return Task.CompletedTask;
    }

    public Task PreRetry<T>(RetryContext<T> context)
        where T : class, PipeContext => Task.CompletedTask;

    public Task RetryFault<T>(RetryContext<T> context)
        where T : class, PipeContext => Task.CompletedTask;

    public Task RetryComplete<T>(RetryContext<T> context)
        where T : class, PipeContext => Task.CompletedTask;
}
