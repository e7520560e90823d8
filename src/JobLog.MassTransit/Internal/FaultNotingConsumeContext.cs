using MassTransit;
using MassTransit.Context;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// The context JobLog's run filter passes an endpoint handler (<c>e.Handler&lt;T&gt;</c>) or a saga. MassTransit's handler
/// filter and its saga filters report the fault themselves, before anything of JobLog's sees the exception: the first
/// report of the attempt (the innermost: a saga's state machine reports on the saga's context, which reports here, before
/// the saga filter does) notes its exception for the run (<see cref="ConsumerLane.ConsumerException"/>), since the report
/// can throw another exception in its place (a sender's <c>MT-Redelivery-Count</c> its fault pipe cannot read as an int).
/// As <see cref="ConsumerSlotFilter{TConsumer, TMessage}"/> does for a consumer.
/// </summary>
internal sealed class FaultNotingConsumeContext<TMessage>(ConsumeContext<TMessage> context, ConsumerLane lane) : ConsumeContextProxy<TMessage>(context)
    where TMessage : class
{
    public override Task NotifyFaulted(TimeSpan duration, string consumerType, Exception exception)
    {
        Note(exception);
        return base.NotifyFaulted(duration, consumerType, exception);
    }

    public override Task NotifyFaulted<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType, Exception exception)
    {
        Note(exception);
        return base.NotifyFaulted(context, duration, consumerType, exception);
    }

    private void Note(Exception exception) => lane.ConsumerException ??= exception;
}
