using JobLog.Http;
using JobLog.Redaction;

namespace JobLog.Recording;

/// <summary>
/// Rows that reach the ledger without being recorded (a restored backup, which anyone can edit or another ledger with
/// other settings wrote) pass the same masking as the records they would have come from: the same fields, the same kind
/// of pass. Masking is idempotent, so a row this ledger backed up comes back as it was.
/// </summary>
internal sealed partial class RecordMasking
{
    /// <summary>Masks a ledger row (and its runs or related rows) in place, as <see cref="Apply"/> masks its record.</summary>
    public void ApplyTo(object row)
    {
        switch (row)
        {
            case TaskLog task:
                // TaskDispatched (Input, TaskArgs, TaskKwargs, ExtraData) and TaskDispatchFailed (ErrorMessage).
                task.Input = Free(task.Input);
                task.TaskArgs = Json(task.TaskArgs);
                task.TaskKwargs = Json(task.TaskKwargs);
                task.ExtraData = Json(task.ExtraData);
                task.ErrorMessage = Free(task.ErrorMessage);
                foreach (var run in task.Runs)
                {
                    ApplyTo(run);
                }

                break;
            case TaskRunLog run:
                // RunStarted and RunFinished.
                run.Input = Free(run.Input);
                run.TaskArgs = Json(run.TaskArgs);
                run.TaskKwargs = Json(run.TaskKwargs);
                run.ErrorMessage = Free(run.ErrorMessage);
                run.Output = Free(run.Output);
                break;
            case RequestLogBase request:
                request.Path = redactor.Stored(request.Path, StoredTextKind.Free, HttpLogFields.MaxPathLength) ?? "";
                request.Queries = Json(request.Queries);
                request.RequestHeaders = Json(request.RequestHeaders);
                request.ResponseHeaders = Json(request.ResponseHeaders);
                request.RequestBody = redactor.Stored(request.RequestBody, StoredTextKind.Body);
                request.ResponseBody = redactor.Stored(request.ResponseBody, StoredTextKind.Body);
                request.ErrorDescription = Free(request.ErrorDescription);
                break;
            case CommandLog command:
                // The command line was masked argument by argument before its record was made (CommandLogger).
                command.Input = Free(Arguments(command.Input));
                command.Output = Free(command.Output);
                command.ErrorMessage = Free(command.ErrorMessage);
                break;
        }
    }

    /// <summary>
    /// A stored command line (<see cref="CommandArguments"/>' output: arguments joined by spaces, those with white space
    /// quoted) masked again argument by argument; the text itself when that hides nothing.
    /// </summary>
    private string? Arguments(string? input)
    {
        if (string.IsNullOrEmpty(input))
        {
            return input;
        }

        var args = CommandArguments.Split(input);
        var masked = redactor.MaskArguments(args);
        return CommandArguments.Split(masked).SequenceEqual(args, StringComparer.Ordinal) ? input : masked;
    }
}
