using JobLog.Http;
using JobLog.Redaction;

namespace JobLog.Recording;

/// <summary>
/// The choke point of the redaction policy: every free text of a record (exception texts, output, arguments, bodies,
/// headers, rendered messages) passes <see cref="Redactor.Stored"/> once, off the business path, before it reaches a
/// disk: on the journal's thread (which hands the masked record to the writer), else on the writer's. The business path
/// only bounds texts; the patterns cost the journal or the writer, not the caller.
/// </summary>
internal sealed partial class RecordMasking(Redactor redactor)
{
    // Texts this long are remembered with their masking: a message's retries, and the failures of one site, carry the
    // same exception text, which the patterns would read again each time. Masking is a function of the text alone, so
    // the remembered result is exactly what masking would give.
    private const int RememberedLength = 256;

    private readonly Remembered?[] _remembered = new Remembered?[4];
    private int _nextRemembered;

    /// <summary>
    /// <paramref name="record"/> with its texts masked: the record itself when masking changes nothing (the usual case),
    /// else a copy. Records are immutable, so the caller's record is never changed.
    /// </summary>
    public LedgerRecord Apply(LedgerRecord record)
    {
        switch (record)
        {
            case TaskDispatched d:
                var task = Task(d.Task);
                return ReferenceEquals(task, d.Task) ? d : d with { Task = task };
            case TaskDispatchFailed f:
                var error = Free(f.Error) ?? "";
                return ReferenceEquals(error, f.Error) ? f : f with { Error = error };
            case RunStarted s:
                var run = Run(s.Run);
                var seed = Task(s.TaskSeed);
                return ReferenceEquals(run, s.Run) && ReferenceEquals(seed, s.TaskSeed) ? s : s with { Run = run, TaskSeed = seed };
            case RunFinished f:
                var message = Free(f.ErrorMessage);
                var output = Free(f.Output);
                return ReferenceEquals(message, f.ErrorMessage) && ReferenceEquals(output, f.Output) ? f : f with { ErrorMessage = message, Output = output };
            case CommandRecorded c:
                var command = c.Command;
                var input = Free(command.Input);
                var commandOutput = Free(command.Output);
                var commandError = Free(command.ErrorMessage);
                var commandName = Repaired(command.Name)!;
                return ReferenceEquals(input, command.Input) && ReferenceEquals(commandOutput, command.Output) && ReferenceEquals(commandError, command.ErrorMessage)
                    && ReferenceEquals(commandName, command.Name)
                    ? c
                    : c with { Command = command with { Name = commandName, Input = input, Output = commandOutput, ErrorMessage = commandError } };
            case InputRequestRecorded i:
                var inbound = Request(i.Request);
                return ReferenceEquals(inbound, i.Request) ? i : i with { Request = inbound };
            case OutputRequestRecorded o:
                var outbound = Request(o.Request);
                return ReferenceEquals(outbound, o.Request) ? o : o with { Request = outbound };
            default:
                return record;
        }
    }

    /// <summary>
    /// A copy of a record the database rejected, every free text replaced by a marker and every other text repaired,
    /// so that its row (state, codes, times) is still written. Null for records without free text.
    /// </summary>
    public static LedgerRecord? Degrade(LedgerRecord record)
    {
        const string m = Markers.Rejected;
        return record switch
        {
            TaskDispatched d => new TaskDispatched(DegradeTask(d.Task)),
            TaskDispatchFailed f => new TaskDispatchFailed(f.TaskId, m),
            RunStarted s => new RunStarted(DegradeRun(s.Run), DegradeTask(s.TaskSeed), s.ExpireOrphans),
            RunFinished f => f with { ErrorMessage = f.ErrorMessage is null ? null : m, Output = f.Output is null ? null : m },
            CommandRecorded c => new CommandRecorded(c.Command with
            {
                Name = Clean(c.Command.Name, LedgerModel.NameLength), Input = Marker(c.Command.Input), Output = Marker(c.Command.Output),
                ErrorMessage = Marker(c.Command.ErrorMessage), Host = CleanOrNull(c.Command.Host, LedgerModel.NameLength),
            }),
            InputRequestRecorded i => new InputRequestRecorded(DegradeRequest(i.Request) with
            {
                UserId = CleanOrNull(i.Request.UserId, LedgerModel.NameLength), Ip = CleanOrNull(i.Request.Ip, 64),
            }),
            OutputRequestRecorded o => new OutputRequestRecorded(DegradeRequest(o.Request)),
            _ => null,
        };
    }

    private TaskPayload Task(TaskPayload task)
    {
        var input = Free(task.Input);
        var args = Json(task.TaskArgs);
        var kwargs = Json(task.TaskKwargs);
        var extra = Json(task.ExtraData);
        return Same(input, task.Input) && Same(args, task.TaskArgs) && Same(kwargs, task.TaskKwargs) && Same(extra, task.ExtraData)
            ? task
            : task with { Input = input, TaskArgs = args, TaskKwargs = kwargs, ExtraData = extra };
    }

    private RunPayload Run(RunPayload run)
    {
        var input = Free(run.Input);
        var args = Json(run.TaskArgs);
        var kwargs = Json(run.TaskKwargs);
        var error = Free(run.ErrorMessage);
        var output = Free(run.Output);
        return Same(input, run.Input) && Same(args, run.TaskArgs) && Same(kwargs, run.TaskKwargs) && Same(error, run.ErrorMessage) && Same(output, run.Output)
            ? run
            : run with { Input = input, TaskArgs = args, TaskKwargs = kwargs, ErrorMessage = error, Output = output };
    }

    private T Request<T>(T request)
        where T : RequestPayload
    {
        var path = redactor.Stored(request.Path, StoredTextKind.Free, HttpLogFields.MaxPathLength) ?? "";
        var queries = Json(request.Queries);
        var requestHeaders = Json(request.RequestHeaders);
        var responseHeaders = Json(request.ResponseHeaders);
        var requestBody = redactor.Stored(request.RequestBody, StoredTextKind.Body);
        var responseBody = redactor.Stored(request.ResponseBody, StoredTextKind.Body);
        var error = Free(request.ErrorDescription);
        var host = Repaired(request.Host);
        var slug = Repaired(request.Slug);
        var masked = Same(path, request.Path) && Same(queries, request.Queries) && Same(requestHeaders, request.RequestHeaders)
            && Same(responseHeaders, request.ResponseHeaders) && Same(requestBody, request.RequestBody)
            && Same(responseBody, request.ResponseBody) && Same(error, request.ErrorDescription) && Same(host, request.Host) && Same(slug, request.Slug)
            ? request
            : (T)(request with
            {
                Path = path, Queries = queries, RequestHeaders = requestHeaders, ResponseHeaders = responseHeaders,
                RequestBody = requestBody, ResponseBody = responseBody, ErrorDescription = error, Host = host!, Slug = slug,
            });
        if (masked is InputRequestPayload inbound)
        {
            // The user's name is the application's text (Identity.Name): a lone surrogate in it made PostgreSQL refuse the
            // row, and the degraded write hid the request's bodies.
            var user = Repaired(inbound.UserId);
            var ip = Repaired(inbound.Ip);
            if (!Same(user, inbound.UserId) || !Same(ip, inbound.Ip))
            {
                return (T)(RequestPayload)(inbound with { UserId = user, Ip = ip });
            }
        }

        return masked;
    }

    /// <summary>A short text as every database accepts it (<see cref="TextBounds.Sanitize"/>): the same instance when it was.</summary>
    private static string? Repaired(string? text) => text is null ? null : TextBounds.Sanitize(text);

    private static bool Same(string? masked, string? original) => ReferenceEquals(masked, original);

    private string? Free(string? text)
    {
        if (text is null || text.Length < RememberedLength)
        {
            return redactor.Stored(text, StoredTextKind.Free);
        }

        // Records are masked on the journal's thread, the writer's and an enqueueing one: each slot holds an immutable pair.
        for (var i = 0; i < _remembered.Length; i++)
        {
            var remembered = Volatile.Read(ref _remembered[i]);
            if (remembered is not null && remembered.Text.Length == text.Length && string.Equals(remembered.Text, text, StringComparison.Ordinal))
            {
                // Unchanged by masking: this very text, so that the record is not copied.
                return remembered.Masked ?? text;
            }
        }

        var masked = redactor.Stored(text, StoredTextKind.Free);
        var next = (Interlocked.Increment(ref _nextRemembered) & int.MaxValue) % _remembered.Length;
        Volatile.Write(ref _remembered[next], new Remembered(text, ReferenceEquals(masked, text) ? null : masked));
        return masked;
    }

    private string? Json(string? text) => redactor.Stored(text, StoredTextKind.Json);

    /// <summary>A long text and its masking (null: masking left it as it was).</summary>
    private sealed record Remembered(string Text, string? Masked);

    private static TaskPayload DegradeTask(TaskPayload t) => t with
    {
        Name = Clean(t.Name, LedgerModel.NameLength), QueueName = CleanOrNull(t.QueueName, LedgerModel.NameLength), Input = Marker(t.Input),
        TaskArgs = t.TaskArgs is null ? null : "[]", TaskKwargs = t.TaskKwargs is null ? null : "{}", TraceId = CleanOrNull(t.TraceId, 64),
        SourceAddress = CleanOrNull(t.SourceAddress, 2000), Host = CleanOrNull(t.Host, LedgerModel.NameLength),
        Release = CleanOrNull(t.Release, LedgerModel.NameLength), Slug = CleanOrNull(t.Slug, LedgerModel.NameLength), ExtraData = null,
    };

    private static RunPayload DegradeRun(RunPayload r) => r with
    {
        Name = Clean(r.Name, LedgerModel.NameLength), QueueName = CleanOrNull(r.QueueName, LedgerModel.NameLength),
        ConsumerType = Clean(r.ConsumerType, LedgerModel.NameLength), Input = Marker(r.Input), TaskArgs = r.TaskArgs is null ? null : "[]",
        TaskKwargs = r.TaskKwargs is null ? null : "{}", ErrorMessage = Marker(r.ErrorMessage), Output = Marker(r.Output),
        Host = CleanOrNull(r.Host, LedgerModel.NameLength),
    };

    private static T DegradeRequest<T>(T r)
        where T : RequestPayload => (T)(r with
    {
        Host = Clean(r.Host, LedgerModel.NameLength),
        Method = Clean(r.Method, HttpLogFields.MaxMethodLength),
        Path = Clean(r.Path, HttpLogFields.MaxPathLength),
        Queries = r.Queries is null ? null : "{}",
        Slug = CleanOrNull(r.Slug, LedgerModel.NameLength),
        RequestHeaders = r.RequestHeaders is null ? null : "{}",
        RequestBody = Marker(r.RequestBody),
        ResponseHeaders = r.ResponseHeaders is null ? null : "{}",
        ResponseBody = Marker(r.ResponseBody),
        ErrorDescription = Marker(r.ErrorDescription),
        ExceptionName = CleanOrNull(r.ExceptionName, LedgerModel.NameLength),
    });

    private static string? Marker(string? text) => text is null ? null : Markers.Rejected;

    /// <summary>Repaired, without control characters, and within the column's size.</summary>
    private static string Clean(string? text, int max) =>
        TextBounds.Truncate(new string(TextBounds.Sanitize(text ?? "").Where(c => !char.IsControl(c)).ToArray()), max);

    private static string? CleanOrNull(string? text, int max) => text is null ? null : Clean(text, max);
}
