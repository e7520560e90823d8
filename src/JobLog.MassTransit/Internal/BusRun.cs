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

/// <summary>Starts an <see cref="IRunsWithBus"/> after the bus starts and stops it before the bus stops (or when its start faults).</summary>
internal sealed class BusRunObserver(IRunsWithBus runner) : IBusObserver
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
        runner.Start(bus, busReady);
        return Task.CompletedTask;
    }

    public Task StartFaulted(IBus bus, Exception exception) => runner.StopAsync();

    public Task PreStop(IBus bus) => runner.StopAsync();

    public Task PostStop(IBus bus) => Task.CompletedTask;

    public Task StopFaulted(IBus bus, Exception exception) => Task.CompletedTask;
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
