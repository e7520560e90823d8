using System.Diagnostics;
using JobLog.Recording;
using MassTransit;
using MassTransit.Configuration;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// One run per consume attempt. Sits inside the retry filters (consumer level), so it is called once per attempt.
/// A failed attempt is recorded RETRIED at once; the delivery filter turns it into FAILED when the delivery fails.
/// </summary>
/// <remarks>
/// For a saga (<paramref name="saga"/>), the attempt's run may be replaced by the saga filter inside the repository
/// (<see cref="SagaAttemptSlot"/>): the outcome is then recorded on the slot's current run, with the saga's state line.
/// </remarks>
internal sealed class TaskRunFilter<TMessage>(TaskLoggingServices services, string consumerType, bool saga = false) : IFilter<ConsumeContext<TMessage>>
    where TMessage : class
{
    // The input and destination addresses rarely change for a consumer: their queue names are computed once.
    private AddressName? _input;
    private AddressName? _destination;
    private string? _name;

    public async Task Send(ConsumeContext<TMessage> context, IPipe<ConsumeContext<TMessage>> next)
    {
        if (!context.TryGetPayload<DeliveryState>(out var delivery))
        {
            // UseTaskLogging adds the delivery filter to every endpoint; without it there is nothing to correlate.
            await next.Send(context).ConfigureAwait(false);
            return;
        }

        var recorder = services.Recorder;
        var start = services.UtcNow;
        // A redelivery with ReplaceMessageId (UseScheduledRedelivery's default) carries a new MessageId and the task's
        // in MT-OriginalMessageId.
        // A message without a MessageId (a foreign producer) still gets its own task, not a shared empty id.
        var taskId = context.GetOriginalMessageId() ?? context.ReceiveContext.TransportHeaders.Get<Guid>("MessageId")
            ?? (delivery.GeneratedTaskId ??= NewId.NextGuid());
        var lane = delivery.Lane(consumerType);
        // Ascending in text and byte order: a new run lands at the end of the runs' primary key, not on a random page.
        var runId = NewId.NextSequentialGuid();
        delivery.LastRunId = runId;
        if (lane.PendingFailure is { } previous)
        {
            // The previous attempt was retried in memory: this is when the retry came.
            delivery.Track(recorder.Enqueue(new RunNextRetryKnown(previous.RunId, start)));
            lane.PendingFailure = null;
        }

        // Not rendered here: the run takes the task row's rendering, and the writer renders the message only when the
        // producer's row is missing.
        var rendering = delivery.Rendering ??= new DeferredRendering(context.Message, services.Renderer);
        var name = _name ??= services.TaskName(typeof(TMessage));
        var queue = QueueName(ref _input, context.ReceiveContext.InputAddress);
        var run = ConsumedRecords.Run(services, context, runId, taskId, name, queue, consumerType, start);
        var seed = ConsumedRecords.Seed(context, taskId, name, QueueName(ref _destination, context.DestinationAddress) ?? queue, start);
        seed.Expires = context.ExpirationTime is { } x ? DateTime.SpecifyKind(x, DateTimeKind.Utc) : null;
        seed.IsInternal = InternalMessages.IsInternal(typeof(TMessage));

        if (context.ExpirationTime is { } expiration && DateTime.SpecifyKind(expiration, DateTimeKind.Utc) < start)
        {
            // Celery's behaviour: a message received after its expiry is not given to the consumer.
            run.State = TaskRunState.Expired;
            run.Stop = start;
            run.ErrorMessage = $"Expired: received at {start:O}, after its expiration time {expiration:O}; not consumed.";
            delivery.Track(recorder.Enqueue(new RunStarted(run, seed, context.ReceiveContext.Redelivered, rendering)));
            return;
        }

        delivery.Track(recorder.Enqueue(new RunStarted(run, seed, context.ReceiveContext.Redelivered, rendering)));
        var output = new OutputBuffer(services.Options.Redaction.MaxBodyLength);
        var frame = new AmbientFrame(AmbientKind.TaskRun, run.Id, JobLogScope.Current) { Output = output };
        var slot = saga ? new SagaAttemptSlot(run, seed, rendering, output) : null;
        using (JobLogScope.Push(frame))
        {
            SagaAttemptSlot.Current = slot;
            try
            {
                await next.Send(context).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                var failed = slot?.RunId ?? run.Id;
                lane.PendingFailure = (failed, taskId);
                delivery.Track(recorder.Enqueue(new RunFinished(
                    failed, taskId, TaskRunState.Retried, services.UtcNow, services.ErrorText(ex), Bounded(slot?.Output ?? output, slot?.SagaLine), null)));
                throw;
            }
            finally
            {
                SagaAttemptSlot.Current = null;
            }
        }

        delivery.Track(recorder.Enqueue(new RunFinished(
            slot?.RunId ?? run.Id, taskId, TaskRunState.Succeeded, services.UtcNow, null, Bounded(slot?.Output ?? output, slot?.SagaLine), null)));
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogTaskRun").Add("consumer", consumerType);

    private static string? QueueName(ref AddressName? cache, Uri? address)
    {
        if (address is null)
        {
            return null;
        }

        var cached = Volatile.Read(ref cache);
        if (cached is not null && ReferenceEquals(cached.Address, address))
        {
            return cached.Name;
        }

        var name = TaskLoggingServices.QueueName(address);
        Volatile.Write(ref cache, new AddressName(address, name));
        return name;
    }

    private string? Bounded(OutputBuffer output, string? sagaLine = null)
    {
        if (sagaLine is not null)
        {
            output.Append(sagaLine);
        }

        var text = output.Snapshot();
        return text is null ? null : services.Redactor.Bound(text);
    }

    private sealed record AddressName(Uri Address, string? Name);
}

/// <summary>
/// Wraps the whole delivery (a pre-pipe filter, outside every retry). Decides the fate of the last failed attempt
/// (FAILED when the exception escapes, RETRIED when redelivery took the message) and, in Acknowledged mode, holds the
/// acknowledgement until the delivery's records are committed.
/// </summary>
internal sealed class TaskDeliveryFilter(TaskLoggingServices services) : IFilter<ConsumeContext>
{
    public async Task Send(ConsumeContext context, IPipe<ConsumeContext> next)
    {
        var delivery = context.GetOrAddPayload(() => new DeliveryState());
        var recorder = services.Recorder;
        try
        {
            await next.Send(context).ConfigureAwait(false);
        }
        catch (Exception)
        {
            foreach (var lane in delivery.HasPendingFailure ? delivery.Lanes() : [])
            {
                if (lane.PendingFailure is { } failed)
                {
                    delivery.Track(recorder.Enqueue(new RunFailedForGood(failed.RunId, failed.TaskId)));
                    lane.PendingFailure = null;
                }
            }

            await recorder.WaitCommittedAsync(delivery.LastSequence, CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        // Returned normally with a failed attempt pending: redelivery took the message, the run stays RETRIED.
        if (delivery.RedeliveryAt is { } at && delivery.HasPendingFailure)
        {
            foreach (var lane in delivery.Lanes())
            {
                if (lane.PendingFailure is { } retried)
                {
                    delivery.Track(recorder.Enqueue(new RunNextRetryKnown(retried.RunId, at)));
                }
            }
        }

        await recorder.WaitCommittedAsync(delivery.LastSequence, CancellationToken.None).ConfigureAwait(false);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("jobLogDelivery");
}

/// <summary>Adds <see cref="TaskDeliveryFilter"/> as a pre-pipe specification.</summary>
internal sealed class TaskDeliverySpecification(TaskLoggingServices services) : IPipeSpecification<ConsumeContext>
{
    public void Apply(IPipeBuilder<ConsumeContext> builder) => builder.AddFilter(new TaskDeliveryFilter(services));

    public IEnumerable<ValidationResult> Validate()
    {
        if (services.Options.AcknowledgeTimeout < TimeSpan.Zero)
        {
            yield return this.Failure("AcknowledgeTimeout", "must not be negative");
        }
    }
}

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
            services.Consumed.Add(element);
            var filter = (IFilter<ConsumeContext<TMessage>>)Activator.CreateInstance(
                typeof(TaskBatchRunFilter<>).MakeGenericType(element), services, consumer)!;
            configurator.UseFilter(filter);
            return true;
        }

        services.Messages.Register(typeof(TMessage));
        services.Consumed.Add(typeof(TMessage));
        configurator.UseFilter(new TaskRunFilter<TMessage>(services, consumer, saga));
        return true;
    }
}
