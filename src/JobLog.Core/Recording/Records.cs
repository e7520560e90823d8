using System.Text.Json.Serialization;
using JobLog.Redaction;

namespace JobLog.Recording;

/// <summary>
/// One event handed by an integration to the recorder: immutable, so the writer and the spool read it as it is, and
/// masking makes a copy (see docs/architecture.md#write-path). Each kind is defined once, here: its payload, and its
/// discriminator in the spool file (<see cref="LedgerSpool"/>). The JSON names are those of the spool's first format,
/// so a file a previous version left is still replayed.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "Kind", UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization)]
[JsonDerivedType(typeof(TaskDispatched), "dispatched")]
[JsonDerivedType(typeof(TaskDispatchFailed), "dispatchFailed")]
[JsonDerivedType(typeof(RunStarted), "runStarted")]
[JsonDerivedType(typeof(RunFinished), "runFinished")]
[JsonDerivedType(typeof(RunFailedForGood), "runFailedForGood")]
[JsonDerivedType(typeof(RunNextRetryKnown), "runNextRetry")]
[JsonDerivedType(typeof(TaskExtraDataSet), "extraData")]
[JsonDerivedType(typeof(TaskEtaSet), "eta")]
[JsonDerivedType(typeof(CommandRecorded), "command")]
[JsonDerivedType(typeof(InputRequestRecorded), "inputRequest")]
[JsonDerivedType(typeof(OutputRequestRecorded), "outputRequest")]
internal abstract record LedgerRecord;

/// <summary>A message was dispatched: insert or complete the task row (producer fields win).</summary>
internal sealed record TaskDispatched(TaskPayload Task) : LedgerRecord;

/// <summary>The broker rejected a dispatch.</summary>
internal sealed record TaskDispatchFailed(Guid TaskId, string Error) : LedgerRecord;

/// <summary>
/// A consume attempt started. Creates the task row if the producer's record has not arrived. When
/// <see cref="ExpireOrphans"/> is set (broker redelivery), ACTIVE runs of the same task and consumer are closed as EXPIRED.
/// The run may already carry its final state when the attempt ended before the record was enqueued.
/// </summary>
/// <remarks>
/// With <see cref="Rendering"/>, the message is not rendered on the consume path: the run's Input, TaskArgs and
/// TaskKwargs (null in <see cref="Run"/>) are the task row's, and the writer renders the message only when the task row
/// is missing and <see cref="TaskSeed"/> must create it. The spool stores the rendering's result instead.
/// </remarks>
internal sealed record RunStarted : LedgerRecord
{
    public RunStarted(RunPayload run, TaskPayload taskSeed, bool expireOrphans, DeferredRendering? rendering)
        : this(run, taskSeed, expireOrphans)
    {
        Rendering = rendering;
    }

    [JsonConstructor]
    public RunStarted(RunPayload run, TaskPayload taskSeed, bool expireOrphans)
    {
        Run = run;
        TaskSeed = taskSeed;
        ExpireOrphans = expireOrphans;
    }

    public RunPayload Run { get; init; }

    [JsonPropertyName("Task")]
    public TaskPayload TaskSeed { get; init; }

    public bool ExpireOrphans { get; init; }

    [JsonIgnore]
    public DeferredRendering? Rendering { get; init; }
}

/// <summary>
/// A message rendered on first use, at most once: shared by a delivery's attempts and consumers, and usually never
/// needed (the producer rendered the message for the task row). Never throws.
/// </summary>
internal sealed class DeferredRendering(object? message, MessageRenderer renderer)
{
    private readonly Lock _lock = new();
    private RenderedMessage? _value;

    public RenderedMessage Value
    {
        get
        {
            lock (_lock)
            {
                return _value ??= Render();
            }
        }
    }

    private RenderedMessage Render()
    {
        try
        {
            return renderer.Stored(renderer.Render(message));
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Rendered off the consume path (the consumer may have changed the message meanwhile): record a marker.
            var marker = $"[not rendered: {ex.GetType().Name}]";
            return new RenderedMessage(marker, "[]", "{}");
        }
    }
}

/// <summary>A consume attempt ended.</summary>
internal sealed record RunFinished(
    Guid RunId,
    Guid TaskId,
    TaskRunState State,
    [property: JsonPropertyName("Time")] DateTime Stop,
    [property: JsonPropertyName("Error")] string? ErrorMessage,
    string? Output,
    DateTime? NextRetry) : LedgerRecord;

/// <summary>
/// A failed attempt first recorded as RETRIED turned out to be the last one (the delivery failed): RETRIED → FAILED.
/// </summary>
internal sealed record RunFailedForGood(Guid RunId, Guid TaskId) : LedgerRecord;

/// <summary>The time of a RETRIED run's next attempt became known (redelivery scheduled, or the next attempt began).</summary>
internal sealed record RunNextRetryKnown(Guid RunId, DateTime NextRetry) : LedgerRecord;

/// <summary>
/// Replaces a task's <see cref="TaskLog.ExtraData"/> (a job's progress), leaving its other fields as they are. A task
/// row that does not exist yet is not created.
/// </summary>
internal sealed record TaskExtraDataSet(Guid TaskId, [property: JsonPropertyName("Output")] string ExtraData) : LedgerRecord;

/// <summary>
/// Replaces a task's <see cref="TaskLog.EstimatedTimeOfFirstArrival"/> (a recurring job's next occurrence), leaving its
/// other fields as they are. A task row that does not exist yet is not created.
/// </summary>
internal sealed record TaskEtaSet(Guid TaskId, DateTime Eta) : LedgerRecord;

/// <summary>A command started or finished: upsert (a finished row is never overwritten by an unfinished one).</summary>
internal sealed record CommandRecorded(CommandPayload Command) : LedgerRecord;

/// <summary>An inbound request started or finished.</summary>
internal sealed record InputRequestRecorded([property: JsonPropertyName("InputRequest")] InputRequestPayload Request) : LedgerRecord;

/// <summary>An outbound request finished, with its related objects.</summary>
internal sealed record OutputRequestRecorded([property: JsonPropertyName("OutputRequest")] OutputRequestPayload Request) : LedgerRecord;
