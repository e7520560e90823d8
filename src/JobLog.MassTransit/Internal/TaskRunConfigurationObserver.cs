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
        _ = Add(configurator, "Handler<" + TaskLoggingServices.ShortName(typeof(TMessage)) + ">");

    public void ConsumerConfigured<TConsumer>(IConsumerConfigurator<TConsumer> configurator)
        where TConsumer : class
    {
    }

    public void ConsumerMessageConfigured<TConsumer, TMessage>(IConsumerMessageConfigurator<TConsumer, TMessage> configurator)
        where TConsumer : class
        where TMessage : class
    {
        if (configurator is IConsumerMessageConfigurator<TMessage> message)
        {
            if (Jobs.JobTasks.Configure<TConsumer, TMessage>(services, message))
            {
                // A job's messages are consumed here, though their runs are the job's.
                services.Consumed.Add(typeof(TMessage));
                return;
            }

            _ = Add(message, TaskLoggingServices.ShortName(typeof(TConsumer)));
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
        if (configurator is ISagaMessageConfigurator<TMessage> message && Add(message, TaskLoggingServices.ShortName(typeof(TSaga)), saga: true))
        {
            // Inside the repository: each call of the saga, including the repository's own retries, and its state.
            configurator.UseFilter(new TaskSagaRunFilter<TSaga, TMessage>(services));
        }
    }

    private bool Add<TMessage>(IPipeConfigurator<ConsumeContext<TMessage>> configurator, string consumer, bool saga = false)
        where TMessage : class
    {
        // Scheduler and outbox re-sends are not tasks of their own; neither is the scheduler protocol (a ScheduleMessage
        // carries the MessageId of the message it schedules: its consumption must not count as a run of that task).
        if (typeof(TMessage) == typeof(global::MassTransit.Serialization.SerializedMessageBody)
            || typeof(TMessage).Namespace == typeof(global::MassTransit.Scheduling.ScheduleMessage).Namespace)
        {
            return false;
        }

        if (!services.Options.RecordInternalMessages && InternalMessages.IsInternal(typeof(TMessage)))
        {
            return false;
        }

        Debug.Assert(consumer.Length > 0, "consumer name");
        if (typeof(TMessage).IsGenericType && typeof(TMessage).GetGenericTypeDefinition() == typeof(Batch<>))
        {
            // A batch consumer: a run on each message of the batch, per attempt.
            var element = typeof(TMessage).GetGenericArguments()[0];
            services.Messages.Register(element);
            services.Consumed.Add(element, consumer);
            var filter = (IFilter<ConsumeContext<TMessage>>)Activator.CreateInstance(
                typeof(TaskBatchRunFilter<>).MakeGenericType(element), services, consumer)!;
            configurator.UseFilter(filter);
            return true;
        }

        services.Messages.Register(typeof(TMessage));
        services.Consumed.Add(typeof(TMessage), consumer);
        configurator.UseFilter(new TaskRunFilter<TMessage>(services, consumer, saga));
        return true;
    }
}
