using System.Diagnostics;
using MassTransit;
using MassTransit.Configuration;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// Adds a <see cref="TaskRunFilter{TMessage}"/> to every consumer, saga and receive-endpoint handler message pipe
/// (inside retry). A handler's runs are named <c>Handler&lt;TMessage&gt;</c>.
/// </summary>
internal sealed class TaskRunConfigurationObserver(TaskLoggingServices services)
    : IConsumerConfigurationObserver, ISagaConfigurationObserver, IHandlerConfigurationObserver
{
    public void HandlerConfigured<TMessage>(IHandlerConfigurator<TMessage> configurator)
        where TMessage : class =>
        _ = Add(configurator, "Handler<" + TaskLoggingServices.ShortName(typeof(TMessage)) + ">", slotted: null, handler: true);

    // MassTransit validates a consumer's specification by calling ConsumerConfigured and then, at once, ConsumerMessageConfigured
    // for each of its message types: the consumer configurator whose message pipes are being configured.
    private object? _consumer;

    public void ConsumerConfigured<TConsumer>(IConsumerConfigurator<TConsumer> configurator)
        where TConsumer : class =>
        _consumer = configurator;

    public void ConsumerMessageConfigured<TConsumer, TMessage>(IConsumerMessageConfigurator<TConsumer, TMessage> configurator)
        where TConsumer : class
        where TMessage : class
    {
        if (configurator is IConsumerMessageConfigurator<TMessage> message)
        {
            if (Jobs.JobTasks.Configure<TConsumer, TMessage>(services, message))
            {
                // A job's messages are consumed here, though their runs are the job's (MassTransit's reports of their
                // consumption, outside a run, are not a connected consumer's: ResponseReceiptObserver).
                services.Consumed.AddJob(typeof(TMessage));
                if (typeof(IJobConsumer<TMessage>).IsAssignableFrom(typeof(TConsumer)))
                {
                    Jobs.StartJobRuns.Configure<TConsumer, TMessage>(services, _consumer as IConsumerConfigurator<TConsumer>);
                }

                return;
            }

            var name = TaskLoggingServices.ShortName(typeof(TConsumer));
            // A consumer's ConcurrentMessageLimit, its UseConcurrentMessageLimit and UseMessageRetry are all added after this
            // filter: the run filter finds them in the pipe at the first message (LimitAhead).
            var added = Add(message, name, slotted: null);
            if (added is TaskRunFilter<TMessage> run)
            {
                // After MassTransit's concurrency limits and the consumer's own retry (in the message pipe, before the
                // consumer factory): when there is a limit, the run begins here; when there is a retry, each attempt is a run here.
                configurator.UseFilter(new ConsumerSlotFilter<TConsumer, TMessage>(name, run));
            }
            else if (added is IBatchRunFilter batch)
            {
                // A batch consumer's own retry stands before its pipe as well: each attempt of the batch is recorded here then.
                configurator.UseFilter((IFilter<ConsumerConsumeContext<TConsumer, TMessage>>)batch.InnerFilter<TConsumer>());
            }
        }
    }

    public void SagaConfigured<TSaga>(ISagaConfigurator<TSaga> configurator)
        where TSaga : class, ISaga
    {
    }

    public void StateMachineSagaConfigured<TInstance>(ISagaConfigurator<TInstance> configurator, SagaStateMachine<TInstance> stateMachine)
        where TInstance : class, ISaga, SagaStateMachineInstance
    {
    }

    public void SagaMessageConfigured<TSaga, TMessage>(ISagaMessageConfigurator<TSaga, TMessage> configurator)
        where TSaga : class, ISaga
        where TMessage : class
    {
        // A saga's ConcurrentMessageLimit or UseConcurrentMessageLimit is added after this (LimitAhead): found at the first message.
        if (configurator is ISagaMessageConfigurator<TMessage> message
            && Add(message, TaskLoggingServices.ShortName(typeof(TSaga)), saga: true, slotted: null) is not null)
        {
            // Inside the repository: each call of the saga, including the repository's own retries, and its state.
            configurator.UseFilter(new TaskSagaRunFilter<TSaga, TMessage>(services));
        }
    }

    /// <returns>The run filter added: a <see cref="TaskRunFilter{TMessage}"/>, an <see cref="IBatchRunFilter"/>, or null when the message has no runs.</returns>
    private object? Add<TMessage>(IPipeConfigurator<ConsumeContext<TMessage>> configurator, string consumer, bool saga = false, bool? slotted = false, bool handler = false)
        where TMessage : class
    {
        if (RunType<TMessage>(services) is not { } runType)
        {
            return null;
        }

        Debug.Assert(consumer.Length > 0, "consumer name");
        services.Messages.Register(runType);
        services.Consumed.Add(runType, consumer);
        if (runType != typeof(TMessage))
        {
            // A batch consumer: a run on each message of the batch, per attempt.
            var filter = (IFilter<ConsumeContext<TMessage>>)Activator.CreateInstance(
                typeof(TaskBatchRunFilter<>).MakeGenericType(runType), services, consumer)!;
            configurator.UseFilter(filter);
            return filter;
        }

        var run = new TaskRunFilter<TMessage>(services, consumer, saga, slotted, handler);
        configurator.UseFilter(run);
        return run;
    }

    /// <summary>
    /// The message type whose tasks the runs of a consumer of <typeparamref name="TMessage"/> belong to (a batch's
    /// element type for <c>Batch&lt;T&gt;</c>), or null when it has no runs.
    /// </summary>
    internal static Type? RunType<TMessage>(TaskLoggingServices services)
        where TMessage : class
    {
        // Scheduler and outbox re-sends are not tasks of their own; neither is the scheduler protocol (a ScheduleMessage
        // carries the MessageId of the message it schedules: its consumption must not count as a run of that task).
        if (typeof(TMessage) == typeof(global::MassTransit.Serialization.SerializedMessageBody)
            || typeof(TMessage).Namespace == typeof(global::MassTransit.Scheduling.ScheduleMessage).Namespace)
        {
            return null;
        }

        if (!services.Options.RecordInternalMessages && InternalMessages.IsInternal(typeof(TMessage)))
        {
            return null;
        }

        return typeof(TMessage).IsGenericType && typeof(TMessage).GetGenericTypeDefinition() == typeof(Batch<>)
            ? typeof(TMessage).GetGenericArguments()[0]
            : typeof(TMessage);
    }
}

/// <summary>
/// Which consumers, sagas and handlers each receive endpoint has (by the names of their runs): a delivery refused before
/// any consumer ran (<see cref="TaskDeliveryFilter"/>) concerns its own endpoint's only, whatever other endpoints consume.
/// </summary>
internal sealed class EndpointConsumersObserver(TaskLoggingServices services) : IEndpointConfigurationObserver
{
    public void EndpointConfigured<T>(T configurator)
        where T : IReceiveEndpointConfigurator
    {
        if (TaskLoggingServices.QueueName(configurator.InputAddress) is not { } queue)
        {
            return;
        }

        var observer = new OnEndpoint(services, queue);
        configurator.ConnectConsumerConfigurationObserver(observer);
        configurator.ConnectSagaConfigurationObserver(observer);
        configurator.ConnectHandlerConfigurationObserver(observer);
    }

    private sealed class OnEndpoint(TaskLoggingServices services, string queue)
        : IConsumerConfigurationObserver, ISagaConfigurationObserver, IHandlerConfigurationObserver
    {
        public void HandlerConfigured<TMessage>(IHandlerConfigurator<TMessage> configurator)
            where TMessage : class =>
            Add<TMessage>("Handler<" + TaskLoggingServices.ShortName(typeof(TMessage)) + ">");

        public void ConsumerConfigured<TConsumer>(IConsumerConfigurator<TConsumer> configurator)
            where TConsumer : class
        {
        }

        public void ConsumerMessageConfigured<TConsumer, TMessage>(IConsumerMessageConfigurator<TConsumer, TMessage> configurator)
            where TConsumer : class
            where TMessage : class
        {
            // A job's messages have the job's runs, not lanes of their own (JobTasks): as without the endpoint's consumers.
            if (!typeof(IJobConsumer<TMessage>).IsAssignableFrom(typeof(TConsumer))
                && !(typeof(TConsumer).IsGenericType && typeof(TConsumer).GetGenericTypeDefinition() == typeof(global::MassTransit.JobService.SubmitJobConsumer<>)))
            {
                Add<TMessage>(TaskLoggingServices.ShortName(typeof(TConsumer)));
            }
        }

        public void SagaConfigured<TSaga>(ISagaConfigurator<TSaga> configurator)
            where TSaga : class, ISaga
        {
        }

        public void StateMachineSagaConfigured<TInstance>(ISagaConfigurator<TInstance> configurator, SagaStateMachine<TInstance> stateMachine)
            where TInstance : class, ISaga, SagaStateMachineInstance
        {
        }

        public void SagaMessageConfigured<TSaga, TMessage>(ISagaMessageConfigurator<TSaga, TMessage> configurator)
            where TSaga : class, ISaga
            where TMessage : class =>
            Add<TMessage>(TaskLoggingServices.ShortName(typeof(TSaga)));

        private void Add<TMessage>(string consumer)
            where TMessage : class
        {
            if (TaskRunConfigurationObserver.RunType<TMessage>(services) is { } runType)
            {
                services.Consumed.Add(queue, runType, consumer);
            }
        }
    }
}
