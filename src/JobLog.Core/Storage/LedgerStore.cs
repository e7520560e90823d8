using System.Data.Common;
using JobLog.Recording;

namespace JobLog.Storage;

/// <summary>
/// Turns a batch of records into statements and commits them in one transaction. Start and finish of the same run
/// in one batch coalesce into one INSERT; each touched task's state is derived once, at the end.
/// </summary>
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

    public SqlDialect Dialect => dialect;

    /// <summary>Adds the statements for <paramref name="records"/> to <paramref name="batch"/>.</summary>
    public void Plan(IReadOnlyList<LedgerRecord> records, SqlBatch batch)
    {
        // Runs inserted by this batch, so that a later finish, correction or retry time folds into the INSERT.
        var pendingRuns = new Dictionary<Guid, TaskRunLog>();
        var touchedTasks = new HashSet<Guid>();
        var dispatched = new HashSet<Guid>();
        var deferred = new List<Action>();

        foreach (var record in records)
        {
            switch (record)
            {
                case TaskDispatched d:
                    deferred.Add(() =>
                    {
                        dispatched.Add(d.Task.Id);
                        AddDispatch(batch, d.Task);
                    });
                    break;
                case TaskDispatchFailed f:
                    deferred.Add(() => batch.Add(LedgerStatements.TaskDispatchFailed, f.TaskId, f.Error));
                    break;
                case RunStarted s:
                    touchedTasks.Add(s.Run.TaskId);
                    var run = Copy(s.Run);
                    pendingRuns[run.Id] = run;
                    deferred.Add(() =>
                    {
                        // The run's foreign key needs its task; skip the statement when this batch already wrote it.
                        if (!dispatched.Contains(s.TaskSeed.Id))
                        {
                            AddEnsureTask(batch, s.TaskSeed);
                            dispatched.Add(s.TaskSeed.Id);
                        }

                        if (s.ExpireOrphans)
                        {
                            batch.Add(LedgerStatements.ExpireOrphanedRuns, run.TaskId, run.ConsumerType, run.Id, run.Start);
                        }

                        AddRun(batch, run);
                    });
                    break;
                case RunFinished f:
                    touchedTasks.Add(f.TaskId);
                    if (pendingRuns.TryGetValue(f.RunId, out var pending) && pending.State == TaskRunState.Active)
                    {
                        pending.State = f.State;
                        pending.Stop = f.Stop;
                        pending.ErrorMessage = f.ErrorMessage;
                        pending.Output = f.Output;
                        pending.EstimatedTimeOfNextRetry = f.NextRetry;
                    }
                    else
                    {
                        deferred.Add(() => batch.Add(LedgerStatements.FinishRun, f.RunId, f.State, f.Stop, f.ErrorMessage, f.Output, f.NextRetry));
                    }

                    break;
                case RunFailedForGood c:
                    touchedTasks.Add(c.TaskId);
                    if (pendingRuns.TryGetValue(c.RunId, out var retried) && retried.State == TaskRunState.Retried)
                    {
                        retried.State = TaskRunState.Failed;
                        retried.EstimatedTimeOfNextRetry = null;
                    }
                    else
                    {
                        deferred.Add(() => batch.Add(LedgerStatements.FailRunForGood, c.RunId));
                    }

                    break;
                case RunNextRetryKnown n:
                    if (pendingRuns.TryGetValue(n.RunId, out var next) && next.State == TaskRunState.Retried)
                    {
                        next.EstimatedTimeOfNextRetry ??= n.NextRetry;
                    }
                    else
                    {
                        deferred.Add(() => batch.Add(LedgerStatements.SetNextRetry, n.RunId, n.NextRetry));
                    }

                    break;
                case CommandRecorded c:
                    var cmd = c.Command;
                    deferred.Add(() => batch.Add(
                        s_upsertCommand, cmd.Id, cmd.Name, cmd.Input, cmd.ExecutedFromCommandLine, cmd.Start, cmd.Stop, cmd.Output,
                        cmd.IsSuccessful, cmd.ErrorMessage, cmd.ExitCode, cmd.Host));
                    break;
                case InputRequestRecorded i:
                    var input = i.Request;
                    deferred.Add(() => batch.Add(s_upsertInput, [.. RequestValues(input), input.UserId, input.Ip, input.Type]));
                    break;
                case OutputRequestRecorded o:
                    var output = o.Request;
                    deferred.Add(() =>
                    {
                        batch.Add(s_upsertOutput, [.. RequestValues(output), output.InputRequestId]);
                        foreach (var related in output.RelatedObjects)
                        {
                            batch.Add(s_insertRelated, related.Id, output.Id, related.CommandLogId, related.TaskRunLogId, related.ContentType, related.ObjectId);
                        }
                    });
                    break;
                default:
                    throw new InvalidOperationException($"Unknown ledger record {record.GetType().Name}.");
            }
        }

        foreach (var action in deferred)
        {
            action();
        }

        foreach (var taskId in touchedTasks)
        {
            batch.Add(LedgerStatements.DeriveTask, taskId);
        }
    }

    public async Task CommitAsync(SqlExecutor executor, SqlBatch batch, TimeSpan timeout, CancellationToken cancellationToken)
    {
        await using DbTransaction transaction = await executor.Connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await executor.ExecuteAsync(batch, transaction, timeout, cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static void AddDispatch(SqlBatch batch, TaskLog t) => batch.Add(
        LedgerStatements.UpsertDispatchedTask,
        t.Id, t.Name, t.QueueName, t.Input, t.TaskArgs, t.TaskKwargs, t.DispatchedAt, t.EstimatedTimeOfFirstArrival, t.Expires,
        t.Stale, t.ParentRunId, t.CorrelationId, t.ConversationId, t.TraceId, t.SourceAddress, t.Host, t.Release, t.Slug, t.ExtraData);

    private static void AddEnsureTask(SqlBatch batch, TaskLog t) => batch.Add(
        LedgerStatements.EnsureTask,
        t.Id, t.Name, t.QueueName, t.Input, t.TaskArgs, t.TaskKwargs, t.DispatchedAt, t.EstimatedTimeOfFirstArrival, t.Expires,
        t.CorrelationId, t.ConversationId, t.SourceAddress);

    private static void AddRun(SqlBatch batch, TaskRunLog r) => batch.Add(
        LedgerStatements.UpsertRun,
        r.Id, r.TaskId, r.Name, r.QueueName, r.ConsumerType, r.Input, r.TaskArgs, r.TaskKwargs, r.Start, r.Stop, r.State,
        r.ErrorMessage, r.Output, r.EstimatedTimeOfNextRetry, r.WaitingTime, r.Redelivered, r.Host);

    private static object?[] RequestValues(RequestLogBase r) =>
    [
        r.Id, r.Host, r.Method, r.Path, r.Queries, r.IsSecure, r.Slug, r.RequestTimestamp, r.RequestHeaders, r.RequestBody,
        r.ResponseTimestamp, r.ResponseCode, r.ResponseHeaders, r.ResponseBody, r.Status, r.ErrorDescription, r.ExceptionName,
    ];

    private static TaskRunLog Copy(TaskRunLog r) => new()
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
