namespace JobLog.MassTransit.Scheduling;

/// <summary>What <c>AddJobLogScheduler</c> registered: the scheduler's queue, and whether its endpoint is up.</summary>
internal sealed class JobLogSchedulerRegistration(string queueName)
{
    private TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public string QueueName { get; } = queueName;

    /// <summary>The short address MassTransit resolves against the bus host (<c>queue:joblog-scheduler</c>).</summary>
    public Uri Address { get; } = new("queue:" + queueName);

    /// <summary>
    /// Completes when the scheduler's receive endpoint is ready: its exchange exists then, so a message deferred to it
    /// (a send straight to that exchange) cannot hit a missing exchange while the bus is still starting.
    /// </summary>
    public Task Ready => Volatile.Read(ref _ready).Task;

    public void SetReady() => Volatile.Read(ref _ready).TrySetResult();

    public void SetStopped()
    {
        var current = Volatile.Read(ref _ready);
        if (current.Task.IsCompleted)
        {
            Interlocked.CompareExchange(ref _ready, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), current);
        }
    }
}

/// <summary>Tells the registration when the scheduler's endpoint is ready.</summary>
internal sealed class SchedulerEndpointObserver(JobLogSchedulerRegistration registration) : global::MassTransit.IReceiveEndpointObserver
{
    public Task Ready(global::MassTransit.ReceiveEndpointReady ready)
    {
        if (IsScheduler(ready.InputAddress))
        {
            registration.SetReady();
        }

        return Task.CompletedTask;
    }

    public Task Stopping(global::MassTransit.ReceiveEndpointStopping stopping)
    {
        if (IsScheduler(stopping.InputAddress))
        {
            registration.SetStopped();
        }

        return Task.CompletedTask;
    }

    public Task Completed(global::MassTransit.ReceiveEndpointCompleted completed) => Task.CompletedTask;

    public Task Faulted(global::MassTransit.ReceiveEndpointFaulted faulted) => Task.CompletedTask;

    private bool IsScheduler(Uri address) =>
        address.AbsolutePath.EndsWith("/" + registration.QueueName, StringComparison.Ordinal);
}
