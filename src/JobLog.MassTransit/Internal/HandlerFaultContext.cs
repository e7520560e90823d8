using MassTransit;
using MassTransit.Context;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// An endpoint handler's context (<c>e.Handler&lt;T&gt;</c>). MassTransit's handler filter is the last of the pipe and
/// reports the handler's fault itself, before anything of JobLog's sees the exception: the report notes it for the run
/// (<see cref="ConsumerLane.ConsumerException"/>), since it can throw another exception in its place (a sender's
/// <c>MT-Redelivery-Count</c> its fault pipe cannot read as an int). As <see cref="ConsumerSlotFilter{TConsumer, TMessage}"/>
/// does for a consumer.
/// </summary>
internal sealed class HandlerFaultContext<TMessage>(ConsumeContext<TMessage> context, ConsumerLane lane) : ConsumeContextProxy<TMessage>(context)
    where TMessage : class
{
    public override Task NotifyFaulted(TimeSpan duration, string consumerType, Exception exception)
    {
        lane.ConsumerException = exception;
        return base.NotifyFaulted(duration, consumerType, exception);
    }
}
