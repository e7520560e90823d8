using System.Collections.Concurrent;
using System.Reflection;
using JobLog.Recording;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// A saga attempt as the saga repository runs it. The run filter outside the repository opens the slot; this filter,
/// inside the repository (on the saga's own pipe, with the instance loaded), notes the saga's CorrelationId and state
/// before and after the event, and turns every extra call within one outer attempt — a repository that retries
/// internally after an optimistic-concurrency or serialization failure — into a run of its own: the earlier run is
/// closed RETRIED with the error that made the repository retry.
/// </summary>
internal sealed class SagaAttemptSlot(RunPayload template, TaskPayload seed, DeferredRendering rendering, OutputBuffer output, long started)
{
    private static readonly AsyncLocal<SagaAttemptSlot?> s_current = new();

    public static SagaAttemptSlot? Current
    {
        get => s_current.Value;
        set => s_current.Value = value;
    }

    public RunPayload Template { get; } = template;

    /// <summary>The attempt's monotonic timestamp, taken with <see cref="RunPayload.Start"/> of <see cref="Template"/>.</summary>
    public long Started { get; } = started;

    public TaskPayload Seed { get; } = seed;

    public DeferredRendering Rendering { get; } = rendering;

    /// <summary>The run of the current call: the outer attempt's run, then a new one per repository retry.</summary>
    public Guid RunId { get; set; } = template.Id;

    public OutputBuffer Output { get; set; } = output;

    public int Calls { get; set; }

    /// <summary>Why the last call failed inside the repository (when the repository swallows it and retries).</summary>
    public Exception? LastError { get; set; }

    /// <summary><c>Saga Type id: before → after</c>, once the saga's pipe has run.</summary>
    public string? SagaLine { get; set; }
}

/// <summary>On a saga's message pipe (inside the repository): see <see cref="SagaAttemptSlot"/>.</summary>
internal sealed class TaskSagaRunFilter<TSaga, TMessage>(TaskLoggingServices services) : IFilter<SagaConsumeContext<TSaga, TMessage>>
    where TSaga : class, ISaga
    where TMessage : class
{
    public async Task Send(SagaConsumeContext<TSaga, TMessage> context, IPipe<SagaConsumeContext<TSaga, TMessage>> next)
    {
        var slot = SagaAttemptSlot.Current;
        if (slot is null)
        {
            await next.Send(context).ConfigureAwait(false);
            return;
        }

        slot.Calls++;
        if (slot.Calls == 1)
        {
            // Past the saga's concurrency limit, if any (its run then begins here).
            if (ConsumerSlotWait.Current is { } wait && string.Equals(wait.ConsumerType, slot.Template.ConsumerType, StringComparison.Ordinal))
            {
                wait.Begin();
            }
        }

        IDisposable? frame = null;
        if (slot.Calls > 1)
        {
            // The repository called the saga again within one attempt: the previous call's changes were not saved.
            var now = services.Since(slot.Template.Start, slot.Started);
            var why = slot.LastError is { } error
                ? services.ErrorText(error)
                : "The saga repository ran this event again: the previous attempt's changes were not saved.";
            services.Recorder.Enqueue(new RunFinished(slot.RunId, slot.Template.TaskId, TaskRunState.Retried, now, why, Text(slot.Output), now));
            var run = Copy(slot.Template, now);
            slot.RunId = run.Id;
            slot.Output = new OutputBuffer(services.Options.Redaction.MaxBodyLength);
            slot.LastError = null;
            services.Recorder.Enqueue(new RunStarted(run, slot.Seed, false, slot.Rendering));
            frame = JobLogScope.Push(new AmbientFrame(AmbientKind.TaskRun, run.Id, JobLogScope.Current) { Output = slot.Output });
        }

        var before = SagaState.Read(context.Saga);
        try
        {
            await next.Send(context).ConfigureAwait(false);
            var after = SagaState.Read(context.Saga);
            slot.SagaLine = $"Saga {TaskLoggingServices.ShortName(typeof(TSaga))} {context.Saga.CorrelationId}: {before ?? "(new)"} → {after ?? "(none)"}"
                + (context.IsCompleted ? " (completed)" : "");
        }
        catch (Exception ex)
        {
            slot.LastError = ex;
            slot.SagaLine = $"Saga {TaskLoggingServices.ShortName(typeof(TSaga))} {context.Saga.CorrelationId}: {before ?? "(new)"}";
            throw;
        }
        finally
        {
            frame?.Dispose();
        }
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope(SlotFilterTypes.Saga);

    private static RunPayload Copy(RunPayload template, DateTime start) => new()
    {
        Id = NewId.NextSequentialGuid(),
        TaskId = template.TaskId,
        Name = template.Name,
        QueueName = template.QueueName,
        ConsumerType = template.ConsumerType,
        Start = start,
        Redelivered = template.Redelivered,
        Host = template.Host,
        HostInstanceId = template.HostInstanceId,
        WaitingTime = template.WaitingTime,
    };

    private string? Text(OutputBuffer output) => output.Snapshot() is { } text ? services.Redactor.Bound(text) : null;
}

/// <summary>Reads a saga instance's current state: a state machine's <c>CurrentState</c> (string, State or int).</summary>
internal static class SagaState
{
    private static readonly ConcurrentDictionary<Type, PropertyInfo?> s_properties = new();

    public static string? Read(object? saga)
    {
        if (saga is null || s_properties.GetOrAdd(saga.GetType(), Find) is not { } property)
        {
            return null;
        }

        return property.GetValue(saga) switch
        {
            null or "" => null,
            State state => state.Name,
            string name => name,
            int index => "state #" + index,
            var other => other.ToString(),
        };
    }

    private static PropertyInfo? Find(Type type) =>
        type.GetProperty("CurrentState", BindingFlags.Public | BindingFlags.Instance)
        ?? type.GetProperties(BindingFlags.Public | BindingFlags.Instance).FirstOrDefault(p => typeof(State).IsAssignableFrom(p.PropertyType));
}
