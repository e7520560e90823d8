using JobLog.Redaction;

namespace JobLog.Recording;

/// <summary>One event handed by an integration to the recorder. Immutable once enqueued.</summary>
internal abstract class LedgerRecord
{
    /// <summary>Position in the recorder's queue; set when enqueued.</summary>
    public long Sequence { get; set; }

    /// <summary>True once the writer masked its texts (<see cref="RecordMasking"/>): a batch planned again is not masked twice.</summary>
    public bool Masked { get; set; }
}

/// <summary>A message was dispatched: insert or complete the task row (producer fields win).</summary>
internal sealed class TaskDispatched(TaskLog task) : LedgerRecord
{
    public TaskLog Task { get; } = task;
}

/// <summary>The broker rejected a dispatch.</summary>
internal sealed class TaskDispatchFailed(Guid taskId, string error) : LedgerRecord
{
    public Guid TaskId { get; } = taskId;

    public string Error { get; set; } = error;
}

/// <summary>
/// A consume attempt started. Creates the task row if the producer's record has not arrived. When
/// <see cref="ExpireOrphans"/> is set (broker redelivery), ACTIVE runs of the same task and consumer are closed as EXPIRED.
/// The run may already carry its final state when the attempt ended before the record was enqueued.
/// </summary>
/// <remarks>
/// With <see cref="Rendering"/>, the message is not rendered on the consume path: the run's Input, TaskArgs and
/// TaskKwargs (null in <see cref="Run"/>) are the task row's, and the writer renders the message only when the task row
/// is missing and <see cref="TaskSeed"/> must create it.
/// </remarks>
internal sealed class RunStarted(TaskRunLog run, TaskLog taskSeed, bool expireOrphans, DeferredRendering? rendering = null) : LedgerRecord
{
    public TaskRunLog Run { get; } = run;

    public TaskLog TaskSeed { get; } = taskSeed;

    public bool ExpireOrphans { get; } = expireOrphans;

    public DeferredRendering? Rendering { get; } = rendering;
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
internal sealed class RunFinished(
    Guid runId,
    Guid taskId,
    TaskRunState state,
    DateTime stop,
    string? errorMessage,
    string? output,
    DateTime? nextRetry) : LedgerRecord
{
    public Guid RunId { get; } = runId;

    public Guid TaskId { get; } = taskId;

    public TaskRunState State { get; } = state;

    public DateTime Stop { get; } = stop;

    public string? ErrorMessage { get; set; } = errorMessage;

    public string? Output { get; set; } = output;

    public DateTime? NextRetry { get; } = nextRetry;
}

/// <summary>
/// A failed attempt first recorded as RETRIED turned out to be the last one (the delivery failed): RETRIED → FAILED.
/// </summary>
internal sealed class RunFailedForGood(Guid runId, Guid taskId) : LedgerRecord
{
    public Guid RunId { get; } = runId;

    public Guid TaskId { get; } = taskId;
}

/// <summary>The time of a RETRIED run's next attempt became known (redelivery scheduled, or the next attempt began).</summary>
internal sealed class RunNextRetryKnown(Guid runId, DateTime nextRetry) : LedgerRecord
{
    public Guid RunId { get; } = runId;

    public DateTime NextRetry { get; } = nextRetry;
}

/// <summary>
/// Replaces a task's <see cref="TaskLog.ExtraData"/> (a job's progress), leaving its other fields as they are. A task
/// row that does not exist yet is not created.
/// </summary>
internal sealed class TaskExtraDataSet(Guid taskId, string extraData) : LedgerRecord
{
    public Guid TaskId { get; } = taskId;

    public string ExtraData { get; } = extraData;
}

/// <summary>A command started or finished: upsert (a finished row is never overwritten by an unfinished one).</summary>
internal sealed class CommandRecorded(CommandLog command) : LedgerRecord
{
    public CommandLog Command { get; } = command;
}

/// <summary>An inbound request started or finished.</summary>
internal sealed class InputRequestRecorded(InputRequestLog request) : LedgerRecord
{
    public InputRequestLog Request { get; } = request;
}

/// <summary>An outbound request finished, with its related objects.</summary>
internal sealed class OutputRequestRecorded(OutputRequestLog request) : LedgerRecord
{
    public OutputRequestLog Request { get; } = request;
}
