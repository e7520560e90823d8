using System.Runtime.CompilerServices;
using JobLog;
using JobLog.MassTransit.Internal;
using JobLog.MassTransit.Scheduling;
using JobLog.Recording;
using JobLog.Scheduling;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace MassTransit;

/// <summary>Registers the JobLog scheduler: exact ETAs on a plain RabbitMQ (no delayed-message plugin).</summary>
public static class JobLogSchedulerConfigurationExtensions
{
    /// <summary>
    /// Keeps the JobLog scheduler's endpoint in a <c>ConfigureEndpoints</c> filter that names the consumers it includes
    /// (<c>cfg.ConfigureEndpoints(context, f =&gt; { f.Include&lt;MyConsumer&gt;(); f.IncludeJobLogScheduler(); })</c>): its
    /// consumer is JobLog's own type, which such a filter otherwise leaves out, and then a delayed send on RabbitMQ fails
    /// saying so.
    /// </summary>
    /// <param name="filter">The filter.</param>
    public static void IncludeJobLogScheduler(this global::MassTransit.DependencyInjection.Registration.IRegistrationFilterConfigurator filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        filter.Include(typeof(JobLogSchedulerConsumer));
    }

    /// <summary>
    /// Adds the JobLog scheduler: a consumer of MassTransit's <c>ScheduleMessage</c>/<c>CancelScheduledMessage</c> on
    /// the queue <see cref="JobLogSchedulerOptions.QueueName"/> that stores each message in the ledger database, and a
    /// dispatcher that sends it when due (on every process that calls this; they share the work). Registers
    /// MassTransit's message scheduler against that queue (<c>AddMessageScheduler</c>, and <c>UseMessageScheduler</c>
    /// on every endpoint <c>ConfigureEndpoints</c> configures), so <c>ScheduleSend</c>, <c>SchedulePublish</c>,
    /// <c>CancelScheduledSend</c> and <c>UseScheduledRedelivery</c> work; with <c>UseTaskLogging</c>,
    /// <c>SetTaskOptions(t =&gt; t.Eta/Countdown)</c> on RabbitMQ goes through it too. Idempotent: a second call only
    /// applies <paramref name="configure"/> (the first call's queue name stays).
    /// </summary>
    /// <param name="configurator">The bus registration (<c>x</c> in <c>AddMassTransit(x =&gt; ...)</c>).</param>
    /// <param name="configure">Adjusts the scheduler's options.</param>
    /// <returns>The configurator.</returns>
    /// <exception cref="ConfigurationException">When the bus is created without <c>services.AddJobLog(...)</c>.</exception>
    /// <exception cref="OptionsValidationException">At start-up, on options out of range.</exception>
    public static IBusRegistrationConfigurator AddJobLogScheduler(this IBusRegistrationConfigurator configurator, Action<JobLogSchedulerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(configurator);
        var registration = AddShared(configurator, configure);
        if (FirstOnThisBus(configurator))
        {
            configurator.AddMessageScheduler(registration.Address);
            AddToBus(configurator, registration);
        }

        return configurator;
    }

    /// <summary>
    /// Adds the JobLog scheduler to a second bus (<c>AddMassTransit&lt;TBus&gt;(x =&gt; x.AddJobLogScheduler())</c>): the
    /// scheduler's queue on that bus's broker, <c>AddMessageScheduler&lt;TBus&gt;</c> and <c>UseMessageScheduler</c> on its
    /// endpoints, as <see cref="AddJobLogScheduler(IBusRegistrationConfigurator, Action{JobLogSchedulerOptions})"/> does
    /// for the bus. Every bus that schedules, redelivers with <c>UseScheduledRedelivery</c> or sends with an ETA needs
    /// it. The buses share the options (the first call's queue name), the ledger's table and one dispatcher, which sends
    /// each message through the bus whose broker its destination names. Idempotent per bus.
    /// </summary>
    /// <typeparam name="TBus">The bus's interface.</typeparam>
    /// <param name="configurator">The bus registration (<c>x</c> in <c>AddMassTransit&lt;TBus&gt;(x =&gt; ...)</c>).</param>
    /// <param name="configure">Adjusts the scheduler's options (shared by every bus).</param>
    /// <returns>The configurator.</returns>
    /// <exception cref="ConfigurationException">When the bus is created without <c>services.AddJobLog(...)</c>.</exception>
    /// <exception cref="OptionsValidationException">At start-up, on options out of range.</exception>
    public static IBusRegistrationConfigurator<TBus> AddJobLogScheduler<TBus>(this IBusRegistrationConfigurator<TBus> configurator, Action<JobLogSchedulerOptions>? configure = null)
        where TBus : class, IBus
    {
        ArgumentNullException.ThrowIfNull(configurator);
        var registration = AddShared(configurator, configure);
        if (FirstOnThisBus(configurator))
        {
            configurator.AddMessageScheduler<TBus>(registration.Address);
            AddToBus(configurator, registration);
        }

        return configurator;
    }

    private static readonly ConditionalWeakTable<IBusRegistrationConfigurator, object> s_buses = new();

    private static bool FirstOnThisBus(IBusRegistrationConfigurator configurator)
    {
        lock (s_buses)
        {
            if (s_buses.TryGetValue(configurator, out _))
            {
                return false;
            }

            s_buses.Add(configurator, new object());
            return true;
        }
    }

    /// <summary>What every bus shares, registered once in the container: options, registration, store, dispatcher, observers.</summary>
    private static JobLogSchedulerRegistration AddShared(IBusRegistrationConfigurator configurator, Action<JobLogSchedulerOptions>? configure)
    {
        var options = configurator.AddOptions<JobLogSchedulerOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        if (configurator.FirstOrDefault(d => d.ServiceType == typeof(JobLogSchedulerRegistration))?.ImplementationInstance is JobLogSchedulerRegistration existing)
        {
            return existing;
        }

        var initial = new JobLogSchedulerOptions();
        configure?.Invoke(initial);
        ArgumentException.ThrowIfNullOrWhiteSpace(initial.QueueName, "QueueName");
        var registration = new JobLogSchedulerRegistration(initial.QueueName);

        configurator.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<JobLogSchedulerOptions>, JobLogSchedulerOptionsValidator>());
        options.Validate(
            o => o.QueueName == registration.QueueName,
            $"JobLogSchedulerOptions.QueueName cannot change after the first AddJobLogScheduler call (it is '{registration.QueueName}').")
            .ValidateOnStart();
        configurator.AddSingleton(registration);
        configurator.TryAddSingleton<ScheduledMessageStore>();
        configurator.TryAddSingleton<ScheduledMessageDispatcher>();
        // Bus and receive endpoint observers in the container are connected to every bus of the application.
        configurator.AddBusObserver(provider =>
        {
            if (provider.GetService<LedgerRecorder>() is null)
            {
                throw new ConfigurationException(
                    "AddJobLogScheduler stores scheduled messages in the ledger: call services.AddJobLog(o => o.UseSqlite(...)) before AddMassTransit.");
            }

            return new SchedulerBusObserver(provider.GetRequiredService<ScheduledMessageDispatcher>());
        });
        return registration;
    }

    /// <summary>What each bus needs of its own: the scheduler's queue and the scheduler on its endpoints.</summary>
    private static void AddToBus(IBusRegistrationConfigurator configurator, JobLogSchedulerRegistration registration)
    {
        configurator.AddConsumer<JobLogSchedulerConsumer, JobLogSchedulerConsumerDefinition>();
        configurator.AddConfigureEndpointsCallback((_, endpoint) =>
        {
            registration.AddedOn(endpoint);
            endpoint.UseMessageScheduler(registration.Address);
        });
    }
}
