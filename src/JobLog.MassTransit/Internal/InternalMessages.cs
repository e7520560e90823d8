using System.Collections.Concurrent;
using System.Reflection;
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

    /// <summary>MassTransit's signing key's token (empty were it unsigned).</summary>
    private static readonly byte[] s_publicKeyToken = typeof(Fault).Assembly.GetName().GetPublicKeyToken() ?? [];

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

        return IsMassTransits(type.Assembly.GetName()) && IsMassTransit(type.Namespace ?? "");
    }

    /// <summary>
    /// MassTransit's own assemblies (<c>MassTransit</c>, <c>MassTransit.Abstractions</c>, <c>MassTransit.RabbitMqTransport</c>,
    /// …), signed with MassTransit's key: not an application's that is merely named like it (<c>MassTransitShop</c>,
    /// or <c>MassTransit.Shop</c> unsigned).
    /// </summary>
    private static bool IsMassTransits(AssemblyName assembly) =>
        IsMassTransit(assembly.Name ?? "") && (assembly.GetPublicKeyToken() ?? []).AsSpan().SequenceEqual(s_publicKeyToken);

    /// <summary><c>MassTransit</c> or a name under it (<c>MassTransit.Contracts</c>), not one that merely begins so.</summary>
    private static bool IsMassTransit(string name) =>
        name == "MassTransit" || name.StartsWith("MassTransit.", StringComparison.Ordinal);
}
