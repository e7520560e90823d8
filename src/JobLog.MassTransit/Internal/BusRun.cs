using System.Runtime.CompilerServices;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>A background loop that runs while the bus runs (the scheduler's dispatcher, the failure retry sender).</summary>
internal interface IRunsWithBus
{
    /// <summary>Starts the loop once the bus has started; it sends once <paramref name="busReady"/> completes.</summary>
    void Start(IBus bus, Task busReady);

    /// <summary>Stops the loop: sends in flight finish, the rest is given back.</summary>
    Task StopAsync();
}

/// <summary>
/// Starts an <see cref="IRunsWithBus"/> after the bus starts and stops it before the bus stops (or when its start faults),
/// and keeps <paramref name="buses"/> (the application's running buses) up to date.
/// </summary>
internal sealed class BusRunObserver(IRunsWithBus runner, BusDirectory? buses = null) : IBusObserver
{
    public void PostCreate(IBus bus)
    {
    }

    public void CreateFaulted(Exception exception)
    {
    }

    public Task PreStart(IBus bus) => Task.CompletedTask;

    public Task PostStart(IBus bus, Task<BusReady> busReady)
    {
        buses?.Add(bus);
        runner.Start(bus, busReady);
        return Task.CompletedTask;
    }

    public Task StartFaulted(IBus bus, Exception exception)
    {
        buses?.Remove(bus);
        return runner.StopAsync();
    }

    public Task PreStop(IBus bus)
    {
        buses?.Remove(bus);
        return runner.StopAsync();
    }

    public Task PostStop(IBus bus) => Task.CompletedTask;

    public Task StopFaulted(IBus bus, Exception exception) => Task.CompletedTask;
}

/// <summary>
/// Running buses by the broker address they own. An application with several buses (<c>AddMassTransit&lt;TBus&gt;</c>,
/// each on its own virtual host or broker) must send a stored message (scheduled, kept for a retry) through the bus
/// whose broker its destination names: another bus's broker confirms it and drops it (no such binding there).
/// </summary>
internal sealed class BusDirectory
{
    // One per container (keyed by its LedgerRecorder singleton): the buses' observers and senders are created per bus
    // from the provider, with no container singleton of this project's to share.
    private static readonly ConditionalWeakTable<object, BusDirectory> s_containers = new();
    private readonly Lock _lock = new();
    private readonly List<(IBus Bus, string Host)> _buses = [];

    /// <summary>The directory of the container whose singleton <paramref name="containerSingleton"/> is.</summary>
    public static BusDirectory Of(object containerSingleton) => s_containers.GetValue(containerSingleton, static _ => new BusDirectory());

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _buses.Count;
            }
        }
    }

    public void Add(IBus bus)
    {
        lock (_lock)
        {
            if (!_buses.Exists(b => ReferenceEquals(b.Bus, bus)))
            {
                _buses.Add((bus, HostOf(bus.Address)));
            }
        }
    }

    /// <returns>How many buses are left.</returns>
    public int Remove(IBus bus)
    {
        lock (_lock)
        {
            _buses.RemoveAll(b => ReferenceEquals(b.Bus, bus));
            return _buses.Count;
        }
    }

    /// <summary>The host addresses of the buses (<see cref="HostOf"/>), distinct.</summary>
    public IReadOnlyList<string> Hosts
    {
        get
        {
            lock (_lock)
            {
                return [.. _buses.Select(b => b.Host).Distinct(StringComparer.OrdinalIgnoreCase)];
            }
        }
    }

    public void Clear()
    {
        lock (_lock)
        {
            _buses.Clear();
        }
    }

    /// <summary>
    /// The bus whose broker <paramref name="destination"/> names: the longest host address (a bus's address without its
    /// own queue name) that prefixes it; <paramref name="fallback"/> when none does (an address no bus here names).
    /// </summary>
    public IBus? For(string destination, IBus? fallback)
    {
        lock (_lock)
        {
            var chosen = fallback ?? (_buses.Count > 0 ? _buses[0].Bus : null);
            var length = -1;
            foreach (var candidate in _buses)
            {
                if (candidate.Host.Length > length && destination.StartsWith(candidate.Host, StringComparison.OrdinalIgnoreCase))
                {
                    chosen = candidate.Bus;
                    length = candidate.Host.Length;
                }
            }

            return chosen;
        }
    }

    /// <summary><c>rabbitmq://host/vhost/</c> of a bus at <c>rabbitmq://host/vhost/bus-queue</c>.</summary>
    internal static string HostOf(Uri busAddress)
    {
        var text = busAddress.GetLeftPart(UriPartial.Path);
        var slash = text.LastIndexOf('/');
        return slash < 0 ? text : text[..(slash + 1)];
    }
}

/// <summary>
/// Starts the JobLog scheduler's dispatcher with each bus and stops it with the last one: the container's bus observers
/// are connected to every bus of the application, and the dispatcher sends each message through the bus its
/// destination belongs to.
/// </summary>
internal sealed class SchedulerBusObserver(JobLog.MassTransit.Scheduling.ScheduledMessageDispatcher dispatcher) : IBusObserver
{
    public void PostCreate(IBus bus)
    {
    }

    public void CreateFaulted(Exception exception)
    {
    }

    public Task PreStart(IBus bus) => Task.CompletedTask;

    public Task PostStart(IBus bus, Task<BusReady> busReady)
    {
        dispatcher.Start(bus, busReady);
        return Task.CompletedTask;
    }

    public Task StartFaulted(IBus bus, Exception exception) => dispatcher.StopAsync(bus);

    public Task PreStop(IBus bus) => dispatcher.StopAsync(bus);

    public Task PostStop(IBus bus) => Task.CompletedTask;

    public Task StopFaulted(IBus bus, Exception exception) => Task.CompletedTask;
}

/// <summary>What a message sent again keeps of its stored envelope.</summary>
internal static class StoredEnvelope
{
    /// <summary>
    /// Copies the stored message's request, conversation, correlation and initiator ids and its source, response and
    /// fault addresses onto <paramref name="context"/> (the message id and time to live are the caller's to decide).
    /// </summary>
    public static void CopyIdentity(MessageContext stored, SendContext context)
    {
        context.RequestId = stored.RequestId;
        context.ConversationId = stored.ConversationId;
        context.CorrelationId = stored.CorrelationId;
        context.InitiatorId = stored.InitiatorId;
        context.SourceAddress = stored.SourceAddress ?? context.SourceAddress;
        context.ResponseAddress = stored.ResponseAddress;
        context.FaultAddress = stored.FaultAddress;
    }
}
