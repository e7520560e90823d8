using System.CommandLine;
using System.Globalization;
using JobLog.Failures;
using JobLog.Maintenance;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Worker.Cli;

/// <summary>
/// <c>retry</c> and <c>resolve</c>: act on failed tasks through <see cref="IFailureActions"/>. The CLI has no bus: a
/// retry is recorded in the ledger and the running worker's retry sender sends it; the progress bar follows it.
/// </summary>
internal static class FailureCommands
{
    public static IEnumerable<Command> All(CliContext context) => [Retry(context), Resolve(context)];

    private static Command Retry(CliContext context)
    {
        var ids = new Argument<string[]>("task-id") { Description = "The failed tasks to retry.", Arity = ArgumentArity.OneOrMore };
        var by = new Option<string>("--by") { Description = "Who asks (kept with the action).", DefaultValueFactory = _ => Environment.UserName };
        var noWait = new Option<bool>("--no-wait") { Description = "Record the retry and exit; do not follow its progress." };
        var command = new Command(
            "retry",
            "Send the kept messages of failed tasks back to their queues (a running worker sends them). " + NothingTaken + " (none queued, or none sent).")
        {
            ids, by, noWait,
        };
        command.SetAction((parse, ct) => context.WithLedgerAsync("retry", async session =>
        {
            var taskIds = TaskIds(parse.GetValue(ids));
            var requestedBy = RequestedBy(parse.GetValue(by));
            await session.Maintenance.MigrateAsync(ct);
            var actions = session.Services.GetRequiredService<IFailureActions>();
            var receipt = await actions.RetryAsync(new FailureActionRequest(taskIds, requestedBy) { Selection = "cli" }, ct);
            await context.Console.SafeOut.WriteLineAsync($"retry {receipt.RequestId}: {receipt.Accepted} queued, {receipt.Skipped} skipped");
            await PrintSkippedAsync(context, session, receipt, ct);
            if (receipt.Accepted == 0 || parse.GetValue(noWait))
            {
                return receipt.Accepted == 0 ? NothingTakenExit : 0;
            }

            var progress = await context.Console.WithProgressAsync(
                p => $"{p.Step}: {p.Total} retries…",
                async report =>
                {
                    while (true)
                    {
                        var p = await actions.GetRetryProgressAsync(receipt.RequestId, ct) ?? throw new InvalidOperationException("The retry request is gone.");
                        report.Report(new MaintenanceProgress("retry", p.Sent + p.Skipped + p.Failed, p.Total, p.Completed));
                        if (p.Completed)
                        {
                            return p;
                        }

                        await Task.Delay(TimeSpan.FromMilliseconds(250), ct);
                    }
                });
            await context.Console.SafeOut.WriteLineAsync($"sent {progress.Sent}, skipped {progress.Skipped}, failed {progress.Failed}");
            return progress.Failed > 0 ? 1 : progress.Sent == 0 ? NothingTakenExit : 0;
        }, ct));
        return command;
    }

    private static Command Resolve(CliContext context)
    {
        var ids = new Argument<string[]>("task-id") { Description = "The failed tasks to resolve.", Arity = ArgumentArity.OneOrMore };
        var by = new Option<string>("--by") { Description = "Who asks (kept with the action).", DefaultValueFactory = _ => Environment.UserName };
        var note = new Option<string?>("--note") { Description = "Why (kept with the action)." };
        var archive = new Option<bool>("--archive") { Description = "Archive instead of resolve." };
        var delete = new Option<bool>("--delete-kept") { Description = "Also delete the kept messages (they can no longer be retried)." };
        var command = new Command("resolve", "Mark failed tasks resolved (or archived), with an optional note. " + NothingTaken + ".")
        {
            ids, by, note, archive, delete,
        };
        command.SetAction((parse, ct) => context.WithLedgerAsync("resolve", async session =>
        {
            var taskIds = TaskIds(parse.GetValue(ids));
            var requestedBy = RequestedBy(parse.GetValue(by));
            var limit = new JobLog.AspNetCore.Dashboard.JobLogDashboardActionsOptions().MaxNoteLength;
            if (parse.GetValue(note) is { Length: var length } && length > limit)
            {
                throw new CliUsageException($"--note: at most {limit} characters (the dashboard's limit); this one has {length}.");
            }

            await session.Maintenance.MigrateAsync(ct);
            var request = new FailureActionRequest(taskIds, requestedBy) { Note = parse.GetValue(note), Selection = "cli" };
            var resolution = parse.GetValue(archive) ? FailureResolution.Archived : FailureResolution.Resolved;
            var receipt = await session.Services.GetRequiredService<IFailureActions>().ResolveAsync(request, resolution, ct);
            await context.Console.SafeOut.WriteLineAsync($"{resolution.ToString().ToLowerInvariant()} {receipt.Accepted}, skipped {receipt.Skipped}");
            await PrintSkippedAsync(context, session, receipt, ct);
            var took = receipt.Accepted;
            if (parse.GetValue(delete))
            {
                var deleted = await session.Services.GetRequiredService<IKeptMessageActions>().DeleteKeptMessagesAsync(request, ct);
                await context.Console.SafeOut.WriteLineAsync($"deleted the kept messages of {deleted.Accepted} tasks");
                took += deleted.Accepted;
            }

            return took == 0 ? NothingTakenExit : 0;
        }, ct));
        return command;
    }

    /// <summary>Each task the action refused, with the reason recorded on its item (the first <see cref="MaxSkippedShown"/>).</summary>
    private static async Task PrintSkippedAsync(CliContext context, LedgerSession session, FailureActionReceipt receipt, CancellationToken ct)
    {
        if (receipt.Skipped == 0)
        {
            return;
        }

        await using var scope = session.Services.CreateAsyncScope();
        var skipped = await scope.ServiceProvider.GetRequiredService<JobLogDbContext>().FailureActionItems.AsNoTracking()
            .Where(i => i.ActionId == receipt.RequestId && i.State == FailureActionItemState.Refused)
            .OrderBy(i => i.TaskId).Take(MaxSkippedShown).Select(i => new { i.TaskId, i.Reason }).ToListAsync(ct);
        foreach (var item in skipped)
        {
            await context.Console.SafeOut.WriteLineAsync($"skipped {item.TaskId}: {item.Reason}");
        }

        if (receipt.Skipped > skipped.Count)
        {
            await context.Console.SafeOut.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"… and {receipt.Skipped - skipped.Count:N0} more skipped"));
        }
    }

    private const int MaxSkippedShown = 50;

    /// <summary>
    /// The exit code when the action took none of the tasks (each skipped, with its reason printed): a script can tell
    /// "nothing done" from success (0), a failed send (1) and a command line it cannot read (2). The action is recorded all the same.
    /// </summary>
    private const int NothingTakenExit = 3;

    private const string NothingTaken = "Exit code 3 when every task is skipped";

    /// <summary>
    /// Who asks, kept with the action: a blank <c>--by</c> is a usage error (exit 2), as the action refuses an action by
    /// no one (it threw an ArgumentException naming its parameter, exit 1).
    /// </summary>
    private static string RequestedBy(string? by) =>
        string.IsNullOrWhiteSpace(by) ? throw new CliUsageException("--by must name who asks (default: the user's name).") : by;

    /// <summary>
    /// The task ids, each one read strictly: a value that is not a task id is a usage error (exit 2) before anything is
    /// recorded (System.CommandLine read it as an empty id, and the action ran on it).
    /// </summary>
    private static Guid[] TaskIds(string[]? values)
    {
        var ids = new List<Guid>();
        foreach (var value in values ?? [])
        {
            ids.Add(Guid.TryParse(value, out var id) && id != Guid.Empty
                ? id
                : throw new CliUsageException($"'{CliUsageException.Shown(value)}' is not a task id, e.g. 0b9f6f3e-5d1c-4c4e-9a55-2b0f2f3c1a77."));
        }

        return ids.Count is 0 ? throw new CliUsageException("Give at least one task id.")
            : ids.Count > FailureActionRequest.MaxTasks ? throw new CliUsageException(string.Create(CultureInfo.InvariantCulture, $"Give at most {FailureActionRequest.MaxTasks:N0} task ids at once, not {ids.Count:N0}."))
            : [.. ids];
    }
}
