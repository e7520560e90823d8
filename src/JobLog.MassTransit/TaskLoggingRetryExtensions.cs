using JobLog.MassTransit.Internal;

namespace MassTransit;

/// <summary>Connects JobLog to a retry policy.</summary>
public static class TaskLoggingRetryExtensions
{
    /// <summary>
    /// Records the exact time of the next attempt (<c>EstimatedTimeOfNextRetry</c>) of every RETRIED run from this retry
    /// policy's delay. Optional: without it JobLog records the time when the next attempt starts.
    /// <code>cfg.UseMessageRetry(r => { r.Intervals(100, 500); r.ConnectTaskLogging(context); });</code>
    /// </summary>
    /// <param name="configurator">The retry configurator.</param>
    /// <param name="context">The registration context (gives JobLog's services).</param>
    /// <returns>The configurator.</returns>
    public static IRetryConfigurator ConnectTaskLogging(this IRetryConfigurator configurator, IRegistrationContext context)
    {
        ArgumentNullException.ThrowIfNull(configurator);
        ArgumentNullException.ThrowIfNull(context);
        configurator.ConnectRetryObserver(new TaskRetryObserver(TaskLoggingServices.From(context)));
        return configurator;
    }
}
