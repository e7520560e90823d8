using MassTransit;
using MassTransit.Context;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// The context JobLog's delivery filter passes on inside the mediator. MassTransit reports each consumption to the
/// receive observers of the mediator's own endpoint configuration, which <c>IMediatorConfigurator</c> does not let
/// JobLog join, so a handler or consumer connected to the mediator (<c>mediator.ConnectHandler</c>,
/// <c>ConnectConsumer</c>), which no configuration observer sees either, left its message without a task or a run. Every
/// consumer of the delivery reports through this context (MassTransit wraps it for each message type), and the reports
/// go to <see cref="ResponseReceiptObserver"/> as a bus's receive observer gets them.
/// </summary>
internal sealed class MediatorReportingConsumeContext(ConsumeContext context, ResponseReceiptObserver reports) : ConsumeContextProxy(context)
{
    public override Task NotifyConsumed<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType)
    {
        _ = reports.PostConsume(context, duration, consumerType);
        return base.NotifyConsumed(context, duration, consumerType);
    }

    public override Task NotifyFaulted<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType, Exception exception)
    {
        _ = reports.ConsumeFault(context, duration, consumerType, exception);
        return base.NotifyFaulted(context, duration, consumerType, exception);
    }
}
