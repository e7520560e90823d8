namespace JobLog.MassTransit.Scheduling;

/// <summary>What <c>AddJobLogScheduler</c> registered: the scheduler's queue (shared by every bus that has it).</summary>
internal sealed class JobLogSchedulerRegistration(string queueName)
{
    // The endpoints configured by ConfigureEndpoints on a bus whose own registration added the scheduler (its
    // AddConfigureEndpointsCallback marks them), so that a bus can tell "added the scheduler, but a filter left its
    // endpoint out" from "never added it" (another bus of the application did).
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<object, object> _addedOn = new();

    public string QueueName { get; } = queueName;

    /// <summary>The short address MassTransit resolves against the bus host (<c>queue:joblog-scheduler</c>).</summary>
    public Uri Address { get; } = new("queue:" + queueName);

    /// <summary><paramref name="endpoint"/> was configured by <c>ConfigureEndpoints</c> on a bus that added the scheduler.</summary>
    public void AddedOn(object endpoint) => _addedOn.AddOrUpdate(endpoint, this);

    /// <summary>Whether <paramref name="endpoint"/> was configured on a bus that added the scheduler (<see cref="AddedOn"/>).</summary>
    public bool WasAddedOn(object endpoint) => _addedOn.TryGetValue(endpoint, out _);
}

/// <summary>
/// The JobLog scheduler as one bus sees it (connected by <c>UseTaskLogging</c> to that bus only): whether this bus has the
/// scheduler's endpoint (<c>AddJobLogScheduler</c> in its own registration), and when that endpoint is ready. Another bus
/// of the application may have the scheduler while this one does not: its broker then has no scheduler exchange, and a
/// send with an ETA must not be deferred to it.
/// </summary>
internal sealed class SchedulerOnBus(JobLogSchedulerRegistration registration)
    : global::MassTransit.IEndpointConfigurationObserver, global::MassTransit.IReceiveEndpointObserver
{
    private TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _sawEndpoint;
    private volatile bool _hasScheduler;
    private readonly List<WeakReference<object>> _endpoints = [];

    public string QueueName => registration.QueueName;

    /// <summary>
    /// This bus configured the scheduler's endpoint. When it configured none after <c>UseTaskLogging</c> (called after
    /// <c>ConfigureEndpoints</c>), nothing is known, and the scheduler is taken as there, as it always was.
    /// </summary>
    public bool Present => _hasScheduler || !_sawEndpoint;

    /// <summary>
    /// This bus's own registration added the scheduler (<c>AddJobLogScheduler</c>) and its endpoints were configured, but
    /// not the scheduler's: a <c>ConfigureEndpoints</c> filter left it out. Not when another bus added it.
    /// </summary>
    public bool LeftOut
    {
        get
        {
            if (Present)
            {
                return false;
            }

            lock (_endpoints)
            {
                return _endpoints.Exists(e => e.TryGetTarget(out var endpoint) && registration.WasAddedOn(endpoint));
            }
        }
    }

    /// <summary>
    /// Completes when this bus's scheduler endpoint is ready: its exchange exists then, so a message deferred to it (a
    /// send straight to that exchange) cannot hit a missing exchange while the bus is still starting. Completed when the
    /// endpoint was not seen (<see cref="Present"/> only assumed): nothing to wait for.
    /// </summary>
    public Task Ready => _hasScheduler ? Volatile.Read(ref _ready).Task : Task.CompletedTask;

    public void EndpointConfigured<T>(T configurator)
        where T : global::MassTransit.IReceiveEndpointConfigurator
    {
        _sawEndpoint = true;
        lock (_endpoints)
        {
            _endpoints.Add(new WeakReference<object>(configurator));
        }

        if (IsScheduler(configurator.InputAddress))
        {
            _hasScheduler = true;
            configurator.ConnectReceiveEndpointObserver(this);
        }
    }

    Task global::MassTransit.IReceiveEndpointObserver.Ready(global::MassTransit.ReceiveEndpointReady ready)
    {
        if (IsScheduler(ready.InputAddress))
        {
            Volatile.Read(ref _ready).TrySetResult();
        }

        return Task.CompletedTask;
    }

    public Task Stopping(global::MassTransit.ReceiveEndpointStopping stopping)
    {
        if (IsScheduler(stopping.InputAddress))
        {
            var current = Volatile.Read(ref _ready);
            if (current.Task.IsCompleted)
            {
                Interlocked.CompareExchange(ref _ready, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously), current);
            }
        }

        return Task.CompletedTask;
    }

    public Task Completed(global::MassTransit.ReceiveEndpointCompleted completed) => Task.CompletedTask;

    public Task Faulted(global::MassTransit.ReceiveEndpointFaulted faulted) => Task.CompletedTask;

    private bool IsScheduler(Uri address) =>
        address.AbsolutePath.EndsWith("/" + registration.QueueName, StringComparison.Ordinal);
}
