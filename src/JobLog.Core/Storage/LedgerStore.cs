using JobLog.Recording;
using JobLog.Redaction;

namespace JobLog.Storage;

/// <summary>
/// Turns a batch of records into a <see cref="LedgerPlan"/> and commits it in one transaction (DESIGN §4).
/// Start and finish of the same run in one batch coalesce into one INSERT; a task row inserted by this batch carries
/// the state derived from this batch's runs; every touched task is derived again at the end (a no-op write when the
/// stored state is already right).
/// </summary>
/// <remarks>
/// The plan executes in phases: task rows, dispatch failures, updates of runs from earlier batches (in record order),
/// run inserts, derivation, then commands and requests. This gives the same rows as executing the records one by one:
/// a run inserted by this batch never needs an update (its later records fold into the insert), a run from an earlier
/// batch is only touched by the update phase, and a broker redelivery expires this batch's earlier ACTIVE runs in
/// memory and the stored ones before the new run is inserted.
/// </remarks>
internal sealed class LedgerStore(SqlDialect dialect)
{
    private static readonly string[] s_commandColumns =
        ["Id", "Name", "Input", "ExecutedFromCommandLine", "Start", "Stop", "Output", "IsSuccessful", "ErrorMessage", "ExitCode", "Host"];

    private static readonly string[] s_requestColumns =
    [
        "Id", "Host", "Method", "Path", "Queries", "IsSecure", "Slug", "RequestTimestamp", "RequestHeaders", "RequestBody",
        "ResponseTimestamp", "ResponseCode", "ResponseHeaders", "ResponseBody", "Status", "ErrorDescription", "ExceptionName",
    ];

    private static readonly string s_upsertCommand = GenericUpsert(LedgerModel.Commands, s_commandColumns, "\"IsSuccessful\" IS NULL");

    private static readonly string s_upsertInput = GenericUpsert(
        LedgerModel.InputRequests, [.. s_requestColumns, "UserId", "Ip", "Type"], "\"Status\" = 0");

    private static readonly string s_upsertOutput = GenericUpsert(
        LedgerModel.OutputRequests, [.. s_requestColumns, "InputRequestId"], "\"Status\" = 0");

    private static readonly string s_insertRelated =
        "INSERT INTO \"" + LedgerModel.RelatedObjects + "\" (\"Id\", \"OutputRequestId\", \"CommandLogId\", \"TaskRunLogId\", \"ContentType\", \"ObjectId\") " +
        "VALUES (@p0, @p1, @p2, @p3, @p4, @p5) ON CONFLICT (\"Id\") DO NOTHING";

    private static readonly string s_setExtraData =
        "UPDATE \"" + LedgerModel.Tasks + "\" SET \"ExtraData\" = @p1 WHERE \"Id\" = @p0";

    public SqlDialect Dialect => dialect;

    /// <summary>Plans <paramref name="records"/>. The records are not changed (a failed batch is planned again).</summary>
    public LedgerPlan Plan(IReadOnlyList<LedgerRecord> records)
    {
        // Sized for the usual mix (a dispatch, a start and a finish per message) so that a batch does not regrow them.
        var capacity = records.Count / 2;
        var plan = new LedgerPlan(dialect, capacity);
        var runs = new Dictionary<Guid, RunRow>(capacity);
        var ordinals = new Dictionary<(Guid TaskId, string Consumer), int>(capacity);
        var dispatched = new Dictionary<Guid, int>(capacity);
        var ensured = new Dictionary<Guid, int>(capacity);
        var touched = new HashSet<Guid>(capacity);

        foreach (var record in records)
        {
            switch (record)
            {
                case TaskDispatched d:
                    if (dispatched.TryGetValue(d.Task.Id, out var at))
                    {
                        // Executed one by one, the last dispatch's producer fields would win.
                        plan.Dispatched[at] = new TaskRow(d.Task);
                    }
                    else
                    {
                        dispatched[d.Task.Id] = plan.Dispatched.Count;
                        plan.Dispatched.Add(new TaskRow(d.Task));
                    }

                    break;
                case TaskDispatchFailed f:
                    plan.DispatchFailures.Add((f.TaskId, f.Error));
                    break;
                case RunStarted s:
                    Touch(s.Run.TaskId);
                    if (!ensured.ContainsKey(s.TaskSeed.Id))
                    {
                        ensured[s.TaskSeed.Id] = plan.Ensured.Count;
                        plan.Ensured.Add(new TaskRow(s.TaskSeed) { Rendering = s.Rendering });
                    }

                    if (s.ExpireOrphans)
                    {
                        plan.HasOrphanExpiry = true;
                        plan.RunUpdates.Add(new RunUpdate(RunUpdateKind.ExpireOrphans, s.Run.Id, TaskRunState.Expired, s.Run.Start, null, null, null,
                            s.Run.TaskId, s.Run.ConsumerType));
                        foreach (var earlier in plan.Runs)
                        {
                            if (earlier.Run.TaskId == s.Run.TaskId && earlier.Run.State == TaskRunState.Active && earlier.Run.Id != s.Run.Id
                                && string.Equals(earlier.Run.ConsumerType, s.Run.ConsumerType, StringComparison.Ordinal))
                            {
                                earlier.Run.State = TaskRunState.Expired;
                                earlier.Run.Stop = s.Run.Start;
                                earlier.Run.ErrorMessage = LedgerStatements.OrphanedMessage;
                            }
                        }
                    }

                    if (runs.TryGetValue(s.Run.Id, out var again))
                    {
                        // The same run started twice: the second insert only finishes a run that is still ACTIVE.
                        if (again.Run.State == TaskRunState.Active && s.Run.State != TaskRunState.Active)
                        {
                            Fold(again.Run, s.Run.State, s.Run.Stop, s.Run.ErrorMessage, s.Run.Output, s.Run.EstimatedTimeOfNextRetry);
                        }
                    }
                    else
                    {
                        var key = (s.Run.TaskId, s.Run.ConsumerType);
                        ordinals.TryGetValue(key, out var ordinal);
                        ordinals[key] = ordinal + 1;
                        var row = new RunRow(Copy(s.Run), ordinal, s.Rendering is not null && s.Run.Input is null);
                        runs[row.Run.Id] = row;
                        plan.Runs.Add(row);
                    }

                    break;
                case RunFinished f:
                    Touch(f.TaskId);
                    if (runs.TryGetValue(f.RunId, out var pending) && pending.Run.State == TaskRunState.Active)
                    {
                        Fold(pending.Run, f.State, f.Stop, f.ErrorMessage, f.Output, f.NextRetry);
                    }
                    else
                    {
                        plan.RunUpdates.Add(new RunUpdate(RunUpdateKind.Finish, f.RunId, f.State, f.Stop, f.ErrorMessage, f.Output, f.NextRetry, f.TaskId, null));
                    }

                    break;
                case RunFailedForGood c:
                    Touch(c.TaskId);
                    if (runs.TryGetValue(c.RunId, out var retried) && retried.Run.State == TaskRunState.Retried)
                    {
                        retried.Run.State = TaskRunState.Failed;
                        retried.Run.EstimatedTimeOfNextRetry = null;
                    }
                    else
                    {
                        plan.RunUpdates.Add(new RunUpdate(RunUpdateKind.FailForGood, c.RunId, TaskRunState.Failed, null, null, null, null, c.TaskId, null));
                    }

                    break;
                case RunNextRetryKnown n:
                    if (runs.TryGetValue(n.RunId, out var next) && next.Run.State == TaskRunState.Retried)
                    {
                        next.Run.EstimatedTimeOfNextRetry ??= n.NextRetry;
                    }
                    else
                    {
                        plan.RunUpdates.Add(new RunUpdate(RunUpdateKind.NextRetry, n.RunId, TaskRunState.Retried, null, null, null, n.NextRetry, Guid.Empty, null));
                    }

                    break;
                case TaskExtraDataSet x:
                    plan.Other.Add(s_setExtraData, x.TaskId, x.ExtraData);
                    break;
                case CommandRecorded c:
                    var cmd = c.Command;
                    plan.Other.Add(
                        s_upsertCommand, cmd.Id, cmd.Name, cmd.Input, cmd.ExecutedFromCommandLine, cmd.Start, cmd.Stop, cmd.Output,
                        cmd.IsSuccessful, cmd.ErrorMessage, cmd.ExitCode, cmd.Host);
                    break;
                case InputRequestRecorded i:
                    var input = i.Request;
                    plan.Other.Add(s_upsertInput, [.. RequestValues(input), input.UserId, input.Ip, input.Type]);
                    break;
                case OutputRequestRecorded o:
                    var output = o.Request;
                    plan.Other.Add(s_upsertOutput, [.. RequestValues(output), output.InputRequestId]);
                    foreach (var related in output.RelatedObjects)
                    {
                        plan.Other.Add(s_insertRelated, related.Id, output.Id, related.CommandLogId, related.TaskRunLogId, related.ContentType, related.ObjectId);
                    }

                    break;
                default:
                    throw new InvalidOperationException($"Unknown ledger record {record.GetType().Name}.");
            }
        }

        // A task dispatched by this batch needs no consumer-side row.
        if (dispatched.Count > 0 && plan.Ensured.Count > 0)
        {
            plan.Ensured.RemoveAll(e => dispatched.ContainsKey(e.Task.Id));
        }

        DeriveInserted(plan);
        plan.Derive.AddRange(touched);
        return plan;

        void Touch(Guid taskId) => touched.Add(taskId);
    }

    /// <summary>Writes <paramref name="plan"/> in one transaction.</summary>
    public Task CommitAsync(SqlExecutor executor, LedgerPlan plan, TimeSpan timeout, CancellationToken cancellationToken) =>
        executor.CommitAsync(plan, timeout, cancellationToken);

    /// <summary>
    /// A task row inserted by this batch has no runs stored yet, so its state is the derivation over this batch's runs
    /// (<see cref="LedgerStatements.DeriveTask"/>, computed here). When the row already existed the insert does nothing
    /// to the state and the derivation at the end sets it.
    /// </summary>
    private static void DeriveInserted(LedgerPlan plan)
    {
        if (plan.Runs.Count == 0)
        {
            return;
        }

        var byTask = new Dictionary<Guid, List<RunRow>>();
        foreach (var row in plan.Runs)
        {
            if (!byTask.TryGetValue(row.Run.TaskId, out var list))
            {
                list = [];
                byTask[row.Run.TaskId] = list;
            }

            list.Add(row);
        }

        Apply(plan.Dispatched);
        Apply(plan.Ensured);

        void Apply(List<TaskRow> rows)
        {
            for (var i = 0; i < rows.Count; i++)
            {
                if (byTask.TryGetValue(rows[i].Task.Id, out var taskRuns))
                {
                    rows[i] = Derive(rows[i].Task, taskRuns) with { Rendering = rows[i].Rendering };
                }
            }
        }
    }

    /// <summary>The C# twin of <see cref="LedgerStatements.DeriveTask"/> for a task whose only runs are <paramref name="runs"/>.</summary>
    internal static TaskRow Derive(TaskPayload task, List<RunRow> runs)
    {
        // The latest run of each consumer is its highest ordinal (with no stored runs, Retries = ordinal).
        var latest = new Dictionary<string, TaskRunLog>(StringComparer.Ordinal);
        var ordinals = new Dictionary<string, int>(StringComparer.Ordinal);
        DateTime? start = null;
        foreach (var row in runs)
        {
            if (!ordinals.TryGetValue(row.Run.ConsumerType, out var best) || row.Ordinal > best)
            {
                ordinals[row.Run.ConsumerType] = row.Ordinal;
                latest[row.Run.ConsumerType] = row.Run;
            }

            if (start is null || row.Run.Start < start)
            {
                start = row.Run.Start;
            }
        }

        var rank = 6;
        DateTime? stop = null;
        var allStopped = true;
        foreach (var run in latest.Values)
        {
            rank = Math.Min(rank, run.State switch
            {
                TaskRunState.Active => 1,
                TaskRunState.Retried => 2,
                TaskRunState.Failed => 3,
                TaskRunState.Expired => 4,
                TaskRunState.Cancelled => 5,
                _ => 6,
            });
            if (run.Stop is { } s)
            {
                stop = stop is null || s > stop ? s : stop;
            }
            else
            {
                allStopped = false;
            }
        }

        var state = rank switch
        {
            1 => TaskState.Active,
            2 => TaskState.Retried,
            3 => TaskState.Failed,
            4 => TaskState.Expired,
            5 => TaskState.Cancelled,
            _ => TaskState.Succeeded,
        };
        return new TaskRow(task, state, start, allStopped ? stop : null);
    }

    private static void Fold(TaskRunLog run, TaskRunState state, DateTime? stop, string? error, string? output, DateTime? nextRetry)
    {
        run.State = state;
        run.Stop = stop;
        run.ErrorMessage = error;
        run.Output = output;
        run.EstimatedTimeOfNextRetry = nextRetry;
    }

    private static object?[] RequestValues(RequestPayload r) =>
    [
        r.Id, r.Host, r.Method, r.Path, r.Queries, r.IsSecure, r.Slug, r.RequestTimestamp, r.RequestHeaders, r.RequestBody,
        r.ResponseTimestamp, r.ResponseCode, r.ResponseHeaders, r.ResponseBody, r.Status, r.ErrorDescription, r.ExceptionName,
    ];

    private static TaskRunLog Copy(RunPayload r) => new()
    {
        Id = r.Id, TaskId = r.TaskId, Name = r.Name, QueueName = r.QueueName, ConsumerType = r.ConsumerType, Input = r.Input,
        TaskArgs = r.TaskArgs, TaskKwargs = r.TaskKwargs, Start = r.Start, Stop = r.Stop, State = r.State,
        ErrorMessage = r.ErrorMessage, Output = r.Output, EstimatedTimeOfNextRetry = r.EstimatedTimeOfNextRetry,
        WaitingTime = r.WaitingTime, Redelivered = r.Redelivered, Host = r.Host,
    };

    private static string GenericUpsert(string table, string[] columns, string unfinishedGuard)
    {
        var cols = string.Join(", ", columns.Select(c => $"\"{c}\""));
        var values = string.Join(", ", columns.Select((_, i) => $"@p{i}"));
        var updates = string.Join(", ", columns.Skip(1).Select(c => $"\"{c}\" = excluded.\"{c}\""));
        return $"INSERT INTO \"{table}\" ({cols}) VALUES ({values}) ON CONFLICT (\"Id\") DO UPDATE SET {updates} " +
               $"WHERE \"{table}\".{unfinishedGuard}";
    }
}

/// <summary>What one batch writes, by phase (see <see cref="LedgerStore"/>).</summary>
internal sealed class LedgerPlan(SqlDialect dialect, int capacity = 0)
{
    /// <summary>Tasks dispatched by this batch (one row per id, the last dispatch's fields), with their derived state.</summary>
    public List<TaskRow> Dispatched { get; } = new(capacity);

    /// <summary>Tasks a run of this batch needs, inserted when missing (not dispatched by this batch).</summary>
    public List<TaskRow> Ensured { get; } = new(capacity);

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
    public SqlBatch Other { get; } = new(dialect);

    public int Statements => Dispatched.Count + Ensured.Count + DispatchFailures.Count + RunUpdates.Count + Runs.Count + Derive.Count + Other.Count;
}

/// <summary>A task row to insert, with its state as derived from this batch's runs.</summary>
internal readonly record struct TaskRow(TaskPayload Task, TaskState State, DateTime? Start, DateTime? Stop)
{
    public TaskRow(TaskPayload task)
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
    public bool InputFromTask { get; } = inputFromTask;
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

/// <summary>Writes the write path's rows column by column into a sink (a prepared SQLite statement, or PostgreSQL arrays).</summary>
internal interface IRowSink
{
    void Guid(Guid value);

    void Guid(Guid? value);

    void Text(string? value);

    void Time(DateTime value);

    void Time(DateTime? value);

    void Int(int value);

    void Bool(bool value);

    void Real(double? value);
}

/// <summary>The rows of <see cref="LedgerStatements.TaskColumns"/> and <see cref="LedgerStatements.RunColumns"/>, in column order.</summary>
internal static class LedgerRows
{
    public static void Task<TSink>(ref TSink sink, in TaskRow row)
        where TSink : struct, IRowSink
    {
        var t = row.Task;
        sink.Guid(t.Id);
        sink.Text(t.Name);
        sink.Text(t.QueueName);
        if (row.RendersLazily)
        {
            var rendered = row.Rendering!.Value;
            sink.Text(rendered.Input);
            sink.Text(rendered.TaskArgs);
            sink.Text(rendered.TaskKwargs);
        }
        else
        {
            sink.Text(t.Input);
            sink.Text(t.TaskArgs);
            sink.Text(t.TaskKwargs);
        }

        sink.Time(t.DispatchedAt);
        sink.Time(t.EstimatedTimeOfFirstArrival);
        sink.Time(t.Expires);
        sink.Time(t.Stale);
        sink.Bool(false);
        sink.Int((int)row.State);
        sink.Time(row.Start);
        sink.Time(row.Stop);
        sink.Guid(t.ParentRunId);
        sink.Guid(t.CorrelationId);
        sink.Guid(t.ConversationId);
        sink.Text(t.TraceId);
        sink.Text(t.SourceAddress);
        sink.Text(t.Host);
        sink.Text(t.Release);
        sink.Text(t.Slug);
        sink.Text(t.ExtraData);
        sink.Bool(t.IsInternal);
        sink.Guid(t.InputRequestId);
    }

    public static void Run<TSink>(ref TSink sink, RunRow row, bool withOrdinal)
        where TSink : struct, IRowSink
    {
        var r = row.Run;
        sink.Guid(r.Id);
        sink.Guid(r.TaskId);
        sink.Text(r.Name);
        sink.Text(r.QueueName);
        sink.Text(r.ConsumerType);
        sink.Text(r.Input);
        sink.Text(r.TaskArgs);
        sink.Text(r.TaskKwargs);
        sink.Time(r.Start);
        sink.Time(r.Stop);
        sink.Int((int)r.State);
        sink.Text(r.ErrorMessage);
        sink.Text(r.Output);
        sink.Time(r.EstimatedTimeOfNextRetry);
        sink.Real(r.WaitingTime);
        sink.Bool(r.Redelivered);
        sink.Text(r.Host);
        sink.Bool(row.InputFromTask);
        if (withOrdinal)
        {
            sink.Int(row.Ordinal);
        }
    }
}
