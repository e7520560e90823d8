using JobLog.MassTransit.Internal.Courier;
using JobLog.MassTransit.Internal.Jobs;
using MassTransit;
using MassTransit.Courier.Contracts;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// The dispatch observer's hook for MassTransit's own features: a routing slip is recorded under its tracking number
/// (<see cref="RoutingSlipTasks"/>), a job submission under its JobId (<see cref="JobTasks"/>), Courier's events and the
/// job service's notifications update those tasks, and infrastructure messages are skipped when
/// <see cref="JobLogOptions.RecordInternalMessages"/> is off.
/// </summary>
internal static class InfrastructureDispatch
{
    /// <summary>True when the message is not to be recorded as an ordinary task (it was recorded here, or is skipped).</summary>
    public static bool Intercept<T>(TaskLoggingServices services, SendContext<T> context)
        where T : class
    {
        long? sequence;
        bool handled;
        if (context.Message is RoutingSlip slip)
        {
            sequence = RoutingSlipTasks.Dispatch(services, context, slip);
            handled = true;
        }
        else
        {
            RoutingSlipTasks.OnEvent(services, context.Message);
            handled = JobTasks.OnDispatch(services, context, out var recorded);
            sequence = recorded;
            handled = handled || (!services.Options.RecordInternalMessages && InternalMessages.IsInternal(typeof(T)));
        }

        if (sequence is > 0 and var committed)
        {
            // PostSend waits for this record's commit, as for any task.
            DispatchTicket.Attach(context, committed);
        }

        return handled;
    }
}
