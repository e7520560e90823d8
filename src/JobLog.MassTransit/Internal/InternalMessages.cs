using System.Collections.Concurrent;
using MassTransit;
using MassTransit.Courier.Contracts;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// MassTransit's own infrastructure messages: the job service's protocol (slot allocation, attempts, status checks,
/// progress, heartbeats), Courier's routing slip events, and any other contract MassTransit declares in its own
/// assemblies. They are recorded as internal tasks (<see cref="TaskLog.IsInternal"/>), or not at all when
/// <see cref="JobLogOptions.RecordInternalMessages"/> is off. A routing slip itself, a job submission and
/// <c>Fault&lt;T&gt;</c> are not internal: they are what the application sent or listens to.
/// </summary>
internal static class InternalMessages
{
    private static readonly ConcurrentDictionary<Type, bool> s_cache = new();

    public static bool IsInternal(Type messageType) => s_cache.GetOrAdd(messageType, Classify);

    private static bool Classify(Type type)
    {
        if (type == typeof(RoutingSlip) || typeof(RoutingSlip).IsAssignableFrom(type) || typeof(Fault).IsAssignableFrom(type))
        {
            return false;
        }

        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(global::MassTransit.Contracts.JobService.SubmitJob<>))
        {
            return false;
        }

        var assembly = type.Assembly.GetName().Name ?? "";
        var ns = type.Namespace ?? "";
        return assembly.StartsWith("MassTransit", StringComparison.Ordinal) && ns.StartsWith("MassTransit", StringComparison.Ordinal);
    }
}
