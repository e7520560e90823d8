using JobLog.Http;
using JobLog.Redaction;

namespace JobLog.Recording;

/// <summary>
/// The writer-side choke point of the redaction policy: every free text of a record (exception texts, output,
/// arguments, bodies, headers, rendered messages) passes <see cref="Redactor.Stored"/> once, on the writer's thread,
/// before its row is written. The business path only bounds texts; the patterns cost the writer, not the caller.
/// </summary>
internal sealed class RecordMasking(Redactor redactor)
{
    /// <summary>Masks <paramref name="record"/>'s texts in place, once (the writer owns a record once it is dequeued).</summary>
    public void Apply(LedgerRecord record)
    {
        if (record.Masked)
        {
            return;
        }

        switch (record)
        {
            case TaskDispatched d:
                Task(d.Task);
                break;
            case TaskDispatchFailed f:
                f.Error = Free(f.Error) ?? "";
                break;
            case RunStarted s:
                Run(s.Run);
                Task(s.TaskSeed);
                break;
            case RunFinished f:
                f.ErrorMessage = Free(f.ErrorMessage);
                f.Output = Free(f.Output);
                break;
            case CommandRecorded c:
                var command = c.Command;
                command.Input = Free(command.Input);
                command.Output = Free(command.Output);
                command.ErrorMessage = Free(command.ErrorMessage);
                break;
            case InputRequestRecorded i:
                Request(i.Request);
                break;
            case OutputRequestRecorded o:
                Request(o.Request);
                break;
        }

        record.Masked = true;
    }

    /// <summary>
    /// A copy of a record the database rejected, every free text replaced by a marker and every other text repaired,
    /// so that its row (state, codes, times) is still written. Null for records without free text.
    /// </summary>
    public static LedgerRecord? Degrade(LedgerRecord record)
    {
        const string m = Markers.Rejected;
        LedgerRecord? degraded = record switch
        {
            TaskDispatched d => new TaskDispatched(DegradeTask(d.Task)),
            TaskDispatchFailed f => new TaskDispatchFailed(f.TaskId, m),
            RunStarted s => new RunStarted(DegradeRun(s.Run), DegradeTask(s.TaskSeed), s.ExpireOrphans),
            RunFinished f => new RunFinished(f.RunId, f.TaskId, f.State, f.Stop, f.ErrorMessage is null ? null : m, f.Output is null ? null : m, f.NextRetry),
            CommandRecorded c => new CommandRecorded(new CommandLog
            {
                Id = c.Command.Id, Name = Clean(c.Command.Name, LedgerModel.NameLength), Input = Marker(c.Command.Input), ExecutedFromCommandLine = c.Command.ExecutedFromCommandLine,
                Start = c.Command.Start, Stop = c.Command.Stop, Output = Marker(c.Command.Output), IsSuccessful = c.Command.IsSuccessful,
                ErrorMessage = Marker(c.Command.ErrorMessage), ExitCode = c.Command.ExitCode, Host = CleanOrNull(c.Command.Host, LedgerModel.NameLength),
            }),
            InputRequestRecorded i => new InputRequestRecorded(DegradeRequest(i.Request, new InputRequestLog
            {
                UserId = CleanOrNull(i.Request.UserId, LedgerModel.NameLength), Ip = CleanOrNull(i.Request.Ip, 64), Type = i.Request.Type,
            })),
            OutputRequestRecorded o => new OutputRequestRecorded(DegradeRequest(o.Request, new OutputRequestLog
            {
                InputRequestId = o.Request.InputRequestId, RelatedObjects = o.Request.RelatedObjects,
            })),
            _ => null,
        };
        if (degraded is not null)
        {
            degraded.Sequence = record.Sequence;
            degraded.Masked = true;
        }

        return degraded;
    }

    private void Task(TaskLog task)
    {
        task.Input = Free(task.Input);
        task.TaskArgs = Json(task.TaskArgs);
        task.TaskKwargs = Json(task.TaskKwargs);
        task.ExtraData = Json(task.ExtraData);
    }

    private void Run(TaskRunLog run)
    {
        run.Input = Free(run.Input);
        run.TaskArgs = Json(run.TaskArgs);
        run.TaskKwargs = Json(run.TaskKwargs);
        run.ErrorMessage = Free(run.ErrorMessage);
        run.Output = Free(run.Output);
    }

    private void Request(RequestLogBase request)
    {
        request.Path = redactor.Stored(request.Path, StoredTextKind.Free, HttpLogFields.MaxPathLength) ?? "";
        request.Queries = Json(request.Queries);
        request.RequestHeaders = Json(request.RequestHeaders);
        request.ResponseHeaders = Json(request.ResponseHeaders);
        request.RequestBody = redactor.Stored(request.RequestBody, StoredTextKind.Body);
        request.ResponseBody = redactor.Stored(request.ResponseBody, StoredTextKind.Body);
        request.ErrorDescription = Free(request.ErrorDescription);
    }

    private string? Free(string? text) => redactor.Stored(text, StoredTextKind.Free);

    private string? Json(string? text) => redactor.Stored(text, StoredTextKind.Json);

    private static TaskLog DegradeTask(TaskLog t) => new()
    {
        Id = t.Id, Name = Clean(t.Name, LedgerModel.NameLength), QueueName = CleanOrNull(t.QueueName, LedgerModel.NameLength), Input = Marker(t.Input), TaskArgs = t.TaskArgs is null ? null : "[]",
        TaskKwargs = t.TaskKwargs is null ? null : "{}", DispatchedAt = t.DispatchedAt, EstimatedTimeOfFirstArrival = t.EstimatedTimeOfFirstArrival,
        Expires = t.Expires, Stale = t.Stale, ParentRunId = t.ParentRunId, CorrelationId = t.CorrelationId, ConversationId = t.ConversationId,
        TraceId = CleanOrNull(t.TraceId, 64), SourceAddress = CleanOrNull(t.SourceAddress, 2000), Host = CleanOrNull(t.Host, LedgerModel.NameLength),
        Release = CleanOrNull(t.Release, LedgerModel.NameLength),
        Slug = CleanOrNull(t.Slug, LedgerModel.NameLength), ExtraData = null, State = t.State,
    };

    private static TaskRunLog DegradeRun(TaskRunLog r) => new()
    {
        Id = r.Id, TaskId = r.TaskId, Name = Clean(r.Name, LedgerModel.NameLength), QueueName = CleanOrNull(r.QueueName, LedgerModel.NameLength),
        ConsumerType = Clean(r.ConsumerType, LedgerModel.NameLength),
        Input = Marker(r.Input), TaskArgs = r.TaskArgs is null ? null : "[]", TaskKwargs = r.TaskKwargs is null ? null : "{}", Start = r.Start, Stop = r.Stop,
        State = r.State, ErrorMessage = Marker(r.ErrorMessage), Output = Marker(r.Output), EstimatedTimeOfNextRetry = r.EstimatedTimeOfNextRetry,
        WaitingTime = r.WaitingTime, Redelivered = r.Redelivered, Host = CleanOrNull(r.Host, LedgerModel.NameLength),
    };

    private static T DegradeRequest<T>(RequestLogBase r, T copy)
        where T : RequestLogBase
    {
        copy.Id = r.Id;
        copy.Host = Clean(r.Host, LedgerModel.NameLength);
        copy.Method = Clean(r.Method, HttpLogFields.MaxMethodLength);
        copy.Path = Clean(r.Path, HttpLogFields.MaxPathLength);
        copy.Queries = r.Queries is null ? null : "{}";
        copy.IsSecure = r.IsSecure;
        copy.Slug = CleanOrNull(r.Slug, LedgerModel.NameLength);
        copy.RequestTimestamp = r.RequestTimestamp;
        copy.RequestHeaders = r.RequestHeaders is null ? null : "{}";
        copy.RequestBody = Marker(r.RequestBody);
        copy.ResponseTimestamp = r.ResponseTimestamp;
        copy.ResponseCode = r.ResponseCode;
        copy.ResponseHeaders = r.ResponseHeaders is null ? null : "{}";
        copy.ResponseBody = Marker(r.ResponseBody);
        copy.Status = r.Status;
        copy.ErrorDescription = Marker(r.ErrorDescription);
        copy.ExceptionName = CleanOrNull(r.ExceptionName, LedgerModel.NameLength);
        return copy;
    }

    private static string? Marker(string? text) => text is null ? null : Markers.Rejected;

    /// <summary>Repaired, without control characters, and within the column's size.</summary>
    private static string Clean(string? text, int max) =>
        TextBounds.Truncate(new string(TextBounds.Sanitize(text ?? "").Where(c => !char.IsControl(c)).ToArray()), max);

    private static string? CleanOrNull(string? text, int max) => text is null ? null : Clean(text, max);
}
