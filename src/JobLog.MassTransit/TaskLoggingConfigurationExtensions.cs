using System.Runtime.CompilerServices;
using JobLog;
using JobLog.MassTransit.Internal;
using JobLog.MassTransit.Scheduling;
using Microsoft.Extensions.DependencyInjection;

namespace MassTransit;

/// <summary>Wires JobLog into a MassTransit bus.</summary>
public static class TaskLoggingConfigurationExtensions
{
    private static readonly ConditionalWeakTable<IBusFactoryConfigurator, object> s_configured = new();
    private static readonly ConditionalWeakTable<IMediatorConfigurator, object> s_mediators = new();

    /// <summary>
    /// Records a task for every message this bus sends or publishes, and a run for every consume attempt
    /// (docs/architecture.md#write-path). Call it after <c>UseMessageRetry</c>/<c>UseScheduledRedelivery</c> and before
    /// <c>ConfigureEndpoints</c>. Idempotent.
    /// </summary>
    /// <param name="configurator">The bus configurator.</param>
    /// <param name="context">The registration context (gives JobLog's services, added by <c>AddJobLog</c>).</param>
    /// <exception cref="ConfigurationException">When <c>services.AddJobLog(...)</c> was not called.</exception>
    public static void UseTaskLogging(this IBusFactoryConfigurator configurator, IRegistrationContext context)
    {
        ArgumentNullException.ThrowIfNull(configurator);
        ArgumentNullException.ThrowIfNull(context);
        if (s_configured.TryGetValue(configurator, out _))
        {
            return;
        }

        s_configured.Add(configurator, new object());
        var services = TaskLoggingServices.From(context);
        SchedulerOnBus? scheduler = null;
        if (context.GetService<JobLogSchedulerRegistration>() is { } registration)
        {
            // Per bus: another bus of the application may have the JobLog scheduler while this one does not.
            scheduler = new SchedulerOnBus(registration);
            configurator.ConnectEndpointConfigurationObserver(scheduler);
        }

        Connect(configurator, services, new TaskDispatchObserver(services, scheduler), mediator: false);
        configurator.ConnectActivityConfigurationObserver(new JobLog.MassTransit.Internal.Courier.CourierConfigurationObserver(services));
        configurator.ConnectReceiveObserver(new ResponseReceiptObserver(services));
        configurator.ConnectEndpointConfigurationObserver(new EndpointConsumersObserver(services));
        JobLog.MassTransit.Internal.Failures.FailureWiring.Connect(configurator, context, services);
    }

    /// <summary>
    /// Records a task for every message sent or published through the mediator (<c>AddMediator</c>) and a run for every
    /// consume attempt of its consumers, sagas and handlers:
    /// <c>x.ConfigureMediator((context, cfg) =&gt; cfg.UseTaskLogging(context))</c>. Idempotent.
    /// </summary>
    /// <param name="configurator">The mediator configurator.</param>
    /// <param name="context">The registration context (gives JobLog's services, added by <c>AddJobLog</c>).</param>
    /// <exception cref="ConfigurationException">When <c>services.AddJobLog(...)</c> was not called.</exception>
    public static void UseTaskLogging(this IMediatorConfigurator configurator, IRegistrationContext context)
    {
        ArgumentNullException.ThrowIfNull(configurator);
        ArgumentNullException.ThrowIfNull(context);
        if (s_mediators.TryGetValue(configurator, out _))
        {
            return;
        }

        s_mediators.Add(configurator, new object());
        var services = TaskLoggingServices.From(context);
        Connect(configurator, services, new TaskDispatchObserver(services), mediator: true);
    }

    /// <summary>What a bus and the mediator share: tasks on send and publish, the parent stamp, the delivery filter, runs.</summary>
    private static void Connect<TConfigurator>(TConfigurator configurator, TaskLoggingServices services, TaskDispatchObserver dispatch, bool mediator)
        where TConfigurator : ISendObserverConnector, IPublishObserverConnector, ISendPipelineConfigurator, IPublishPipelineConfigurator,
            IConsumePipeConfigurator, IConsumerConfigurationObserverConnector, ISagaConfigurationObserverConnector, IHandlerConfigurationObserverConnector
    {
        configurator.ConnectSendObserver(dispatch);
        configurator.ConnectPublishObserver(dispatch);
        configurator.ConfigureSend(s => s.UseExecute(c => ParentStamp.Stamp(c, services)));
        configurator.ConfigurePublish(p => p.UseExecute(c => ParentStamp.Stamp(c, services)));
        configurator.AddPrePipeSpecification(new TaskDeliverySpecification(services, mediator));
        var runs = new TaskRunConfigurationObserver(services);
        configurator.ConnectConsumerConfigurationObserver(runs);
        configurator.ConnectSagaConfigurationObserver(runs);
        configurator.ConnectHandlerConfigurationObserver(runs);
    }

    /// <summary>
    /// Sets JobLog's task options on this send or publish: <see cref="TaskDispatchOptions.Expires"/> becomes the
    /// message's TimeToLive; <see cref="TaskDispatchOptions.Countdown"/>/<see cref="TaskDispatchOptions.Eta"/> delay it
    /// and become the task's ETA. On RabbitMQ the delay needs the JobLog scheduler (<c>x.AddJobLogScheduler()</c>,
    /// with <c>UseTaskLogging</c>): the message then waits in the ledger and is sent, with the same MessageId, when
    /// due. Transports that delay natively (in memory, ...) use their own delay.
    /// </summary>
    /// <param name="context">The send or publish context (<c>x</c> in <c>Publish(msg, x =&gt; ...)</c>).</param>
    /// <param name="configure">Sets the options.</param>
    /// <exception cref="ArgumentException">On a negative countdown, expiry or limit.</exception>
    public static void SetTaskOptions(this SendContext context, Action<TaskDispatchOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(configure);
        var options = context.GetOrAddPayload(() => new TaskOptionsPayload()).Options;
        configure(options);
        if (TaskDispatchOptionsValidator.Instance.Validate(null, options) is { Failed: true } invalid)
        {
            throw new ArgumentException(invalid.FailureMessage, nameof(configure));
        }

        if (options.Expires is { } expires)
        {
            context.TimeToLive = expires;
        }

        // The context carries no clock; the dispatch observer records the exact ETA from the options and, on RabbitMQ
        // with the JobLog scheduler, hands the message to the scheduler instead of this transport delay.
        var delay = options.Countdown ?? (options.Eta is { } eta ? eta - TimeProvider.System.GetUtcNow() : null);
        if (delay > TimeSpan.Zero)
        {
            context.Delay = delay;
        }
    }
}
