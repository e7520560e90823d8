using JobLog.Recording;

namespace JobLog.Storage;

/// <summary>
/// Turns a batch of records into a <see cref="LedgerPlan"/>, which the database's <see cref="SqlExecutor"/> commits in
/// one transaction (docs/architecture.md#write-path).
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
internal sealed class LedgerPlanner(LedgerDatabase database)
{
    private readonly string _upsertCommand = database.Upsert(
        UpsertStatement.Of(LedgerModel.Commands, LedgerColumns.Command, update: true, $"\"{LedgerModel.Commands}\".\"IsSuccessful\" IS NULL"));

    private readonly string _upsertInput = database.Upsert(
        UpsertStatement.Of(LedgerModel.InputRequests, LedgerColumns.InputRequest, update: true, $"\"{LedgerModel.InputRequests}\".\"Status\" = 0"));

    private readonly string _upsertOutput = database.Upsert(
        UpsertStatement.Of(LedgerModel.OutputRequests, LedgerColumns.OutputRequest, update: true, $"\"{LedgerModel.OutputRequests}\".\"Status\" = 0"));

    private readonly string _insertRelated = database.Upsert(UpsertStatement.Of(LedgerModel.RelatedObjects, LedgerColumns.RelatedObject, update: false));

    private Scratch? _scratch;

    /// <summary>The database the plans are for.</summary>
    public LedgerDatabase Database => database;

    /// <summary>Plans <paramref name="records"/>. The records are not changed (a failed batch is planned again).</summary>
    public LedgerPlan Plan(IReadOnlyList<LedgerRecord> records)
    {
        // Sized for the usual mix (a dispatch, a start and a finish per message) so that a batch does not regrow them.
        var capacity = records.Count / 2;
        var plan = new LedgerPlan(database, capacity);

        // The batch's indexes are kept for the next batch (one writer plans one batch at a time; a concurrent call makes its own).
        var scratch = Interlocked.Exchange(ref _scratch, null) ?? new Scratch();
        try
        {
            PlanInto(plan, records, scratch.Ready(capacity));
        }
        finally
        {
            if (capacity <= Scratch.KeptCapacity)
            {
                scratch.Clear();
                Volatile.Write(ref _scratch, scratch);
            }
        }

        return plan;
    }

    private void PlanInto(LedgerPlan plan, IReadOnlyList<LedgerRecord> records, Scratch scratch)
    {
        var runs = scratch.Runs;
        var ordinals = scratch.Ordinals;
        var dispatched = scratch.Dispatched;
        var ensured = scratch.Ensured;
        var touched = scratch.Touched;

        foreach (var record in records)
        {
            switch (record)
            {
                case TaskDispatched d:
                    if (plan.DispatchFailures.Count > 0)
                    {
                        // Executed one by one, this dispatch would drop an earlier failed one's error (LedgerSql.ClearDispatchError).
                        RemoveDispatchFailures(plan.DispatchFailures, d.Task.Id);
                    }

                    if (dispatched.TryGetValue(d.Task.Id, out var at))
                    {
                        // Executed one by one, the last dispatch's producer fields would win.
                        plan.Dispatched[at] = new TaskWrite(d.Task);
                    }
                    else
                    {
                        dispatched[d.Task.Id] = plan.Dispatched.Count;
                        plan.Dispatched.Add(new TaskWrite(d.Task));
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
                        plan.Ensured.Add(new TaskWrite(s.TaskSeed) { Rendering = s.Rendering });
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
                                earlier.Run.ErrorMessage = LedgerSql.OrphanedMessage;
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
                    plan.Other.Add(LedgerSql.SetExtraData, LedgerColumn.Values(LedgerColumns.TaskExtraData, new ExtraDataRow(x.TaskId, x.ExtraData)));
                    break;
                case TaskEtaSet e:
                    plan.Other.Add(LedgerSql.SetEta, LedgerColumn.Values(LedgerColumns.TaskEta, new EtaRow(e.TaskId, e.Eta)));
                    break;
                case CommandRecorded c:
                    plan.Other.Add(_upsertCommand, LedgerColumn.Values(LedgerColumns.Command, c.Command));
                    break;
                case InputRequestRecorded i:
                    plan.Other.Add(_upsertInput, LedgerColumn.Values(LedgerColumns.InputRequest, i.Request));
                    break;
                case OutputRequestRecorded o:
                    var output = o.Request;
                    plan.Other.Add(_upsertOutput, LedgerColumn.Values(LedgerColumns.OutputRequest, output));
                    foreach (var related in output.RelatedObjects)
                    {
                        plan.Other.Add(_insertRelated, LedgerColumn.Values(LedgerColumns.RelatedObject, new RelatedObjectRow(output.Id, related)));
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

        if (dispatched.Count > 0 && database.Provider == LedgerProvider.Sqlite)
        {
            TakeInputFromDispatches(plan, dispatched);
        }

        if (plan.DispatchFailures.Count > 0 && touched.Count > 0)
        {
            // A run of the task in this batch, before or after its failed dispatch: the broker delivered the message
            // (LedgerSql.TaskDispatchFailed), and a task row this batch inserts is not derived again.
            plan.DispatchFailures.RemoveAll(f => touched.Contains(f.TaskId));
        }

        LedgerDerivation.DeriveInserted(plan);
        plan.Derive.AddRange(touched);

        void Touch(Guid taskId) => touched.Add(taskId);
    }

    // Not a lambda: a closure over the dispatch would be allocated for every record of the batch.
    private static void RemoveDispatchFailures(List<(Guid TaskId, string Error)> failures, Guid taskId)
    {
        for (var i = failures.Count - 1; i >= 0; i--)
        {
            if (failures[i].TaskId == taskId)
            {
                failures.RemoveAt(i);
            }
        }
    }

    /// <summary>Writes <paramref name="plan"/> in one transaction.</summary>
    public Task CommitAsync(SqlExecutor executor, LedgerPlan plan, TimeSpan timeout, CancellationToken cancellationToken) =>
        executor.CommitAsync(plan, timeout, cancellationToken);

    /// <summary>
    /// A run that takes Input, TaskArgs and TaskKwargs from its task row (<see cref="RunRow.InputFromTask"/>) gets them
    /// from its task's dispatch when this batch writes that dispatch: the task phase, before the runs, leaves exactly the
    /// dispatch's values in the row (inserted, or the producer's fields over a row that was there). On SQLite the insert
    /// then binds them instead of reading the task row once per column (three key lookups per run).
    /// </summary>
    private static void TakeInputFromDispatches(LedgerPlan plan, Dictionary<Guid, int> dispatched)
    {
        foreach (var row in plan.Runs)
        {
            if (row.InputFromTask && dispatched.TryGetValue(row.Run.TaskId, out var at))
            {
                var task = plan.Dispatched[at].Task;
                row.Run.Input = task.Input;
                row.Run.TaskArgs = task.TaskArgs;
                row.Run.TaskKwargs = task.TaskKwargs;
                row.InputFromTask = false;
            }
        }
    }

    private static void Fold(TaskRunLog run, TaskRunState state, DateTime? stop, string? error, string? output, DateTime? nextRetry)
    {
        run.State = state;
        run.Stop = stop;
        run.ErrorMessage = error;
        run.Output = output;
        run.EstimatedTimeOfNextRetry = nextRetry;
    }

    private static TaskRunLog Copy(RunPayload r) => new()
    {
        Id = r.Id, TaskId = r.TaskId, Name = r.Name, QueueName = r.QueueName, ConsumerType = r.ConsumerType, Input = r.Input,
        TaskArgs = r.TaskArgs, TaskKwargs = r.TaskKwargs, Start = r.Start, Stop = r.Stop, State = r.State,
        ErrorMessage = r.ErrorMessage, Output = r.Output, EstimatedTimeOfNextRetry = r.EstimatedTimeOfNextRetry,
        WaitingTime = r.WaitingTime, Redelivered = r.Redelivered, Host = r.Host, HostInstanceId = r.HostInstanceId,
        JobRetryAttempt = r.JobRetryAttempt,
    };

    /// <summary>
    /// A batch's indexes of its runs, dispatches and touched tasks: cleared and kept between batches rather than allocated
    /// for each (~0.3 KB a message on the bus, docs/benchmarks.md "Session 37 (perf)"), unless a batch was larger than
    /// <see cref="KeptCapacity"/> (a replay at start), whose indexes are left to the collector.
    /// </summary>
    private sealed class Scratch
    {
        public const int KeptCapacity = 16_384;

        public Dictionary<Guid, RunRow> Runs { get; } = [];

        public Dictionary<(Guid TaskId, string Consumer), int> Ordinals { get; } = [];

        public Dictionary<Guid, int> Dispatched { get; } = [];

        public Dictionary<Guid, int> Ensured { get; } = [];

        public HashSet<Guid> Touched { get; } = [];

        public Scratch Ready(int capacity)
        {
            Runs.EnsureCapacity(capacity);
            Ordinals.EnsureCapacity(capacity);
            Dispatched.EnsureCapacity(capacity);
            Ensured.EnsureCapacity(capacity);
            Touched.EnsureCapacity(capacity);
            return this;
        }

        public void Clear()
        {
            Runs.Clear();
            Ordinals.Clear();
            Dispatched.Clear();
            Ensured.Clear();
            Touched.Clear();
        }
    }
}
