using JobLog.Recording;

namespace JobLog.Storage;

/// <summary>What one batch writes, by phase (see <see cref="LedgerPlanner"/>).</summary>
internal sealed class LedgerPlan(LedgerDatabase database, int capacity = 0)
{
    /// <summary>Tasks dispatched by this batch (one row per id, the last dispatch's fields), with their derived state.</summary>
    public List<TaskWrite> Dispatched { get; } = new(capacity);

    /// <summary>Tasks a run of this batch needs, inserted when missing (not dispatched by this batch).</summary>
    public List<TaskWrite> Ensured { get; } = new(capacity);

    public List<(Guid TaskId, string Error)> DispatchFailures { get; } = [];

    /// <summary>Changes to runs inserted by earlier batches, in record order.</summary>
    public List<RunUpdate> RunUpdates { get; } = [];

    /// <summary>True when <see cref="RunUpdates"/> holds an orphan expiry: then the updates run one by one, in order.</summary>
    public bool HasOrphanExpiry { get; set; }

    /// <summary>Runs started in this batch, with every later record of the same run folded in.</summary>
    public List<RunRow> Runs { get; } = new(capacity);

    /// <summary>Tasks whose runs changed: derived again at the end.</summary>
    public List<Guid> Derive { get; } = new(capacity);

    /// <summary>Commands and requests.</summary>
    public SqlBatch Other { get; } = new(database);

    public int Statements => Dispatched.Count + Ensured.Count + DispatchFailures.Count + RunUpdates.Count + Runs.Count + Derive.Count + Other.Count;
}

/// <summary>
/// A task row the write path inserts (named apart from the read side's <c>JobLog.Querying.TaskRow</c>), with its state as derived
/// from this batch's runs.
/// </summary>
internal readonly record struct TaskWrite(TaskPayload Task, TaskState State, DateTime? Start, DateTime? Stop)
{
    public TaskWrite(TaskPayload task)
        : this(task, TaskState.Waiting, null, null)
    {
    }

    /// <summary>For a consumer's task row: renders Input, TaskArgs and TaskKwargs when the row has to be created.</summary>
    public DeferredRendering? Rendering { get; init; }

    /// <summary>True when Input, TaskArgs and TaskKwargs are rendered only if the row is inserted.</summary>
    public bool RendersLazily => Rendering is not null && Task.Input is null;
}

/// <summary>A run to insert, and its position among this batch's runs of the same task and consumer.</summary>
internal sealed class RunRow(TaskRunLog run, int ordinal, bool inputFromTask = false)
{
    public TaskRunLog Run { get; } = run;

    public int Ordinal { get; } = ordinal;

    /// <summary>Input, TaskArgs and TaskKwargs are the task row's (see <see cref="RunStarted.Rendering"/>).</summary>
    public bool InputFromTask { get; set; } = inputFromTask;
}

internal enum RunUpdateKind
{
    Finish,
    FailForGood,
    NextRetry,
    ExpireOrphans,
}

/// <summary>A change to a stored run. For <see cref="RunUpdateKind.ExpireOrphans"/>, <see cref="RunId"/> is the new run and <see cref="Time"/> its start.</summary>
internal readonly record struct RunUpdate(
    RunUpdateKind Kind,
    Guid RunId,
    TaskRunState State,
    DateTime? Time,
    string? Error,
    string? Output,
    DateTime? NextRetry,
    Guid TaskId,
    string? Consumer);

