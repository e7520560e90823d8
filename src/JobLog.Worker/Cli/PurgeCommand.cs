using System.CommandLine;
using JobLog.Maintenance;
using JobLog.Retention;

namespace JobLog.Worker.Cli;

/// <summary><c>purge</c> and <c>restore</c>: delete finished ledger rows by age, with an optional backup that restores them.</summary>
internal static class PurgeCommand
{
    /// <summary>Runs <c>purge ARGS</c> writing plain text to <paramref name="output"/>, unrecorded (code calling the command).</summary>
    public static Task<int> PurgeAsync(string[] args, TextWriter output) => Cli.RunAsync(["purge", .. args], CliConsole.Redirected(output), recordCommand: false);

    /// <summary>Runs <c>restore ARGS</c> writing plain text to <paramref name="output"/>, unrecorded (code calling the command).</summary>
    public static Task<int> RestoreAsync(string[] args, TextWriter output) => Cli.RunAsync(["restore", .. args], CliConsole.Redirected(output), recordCommand: false);

    public static Command Purge(CliContext context)
    {
        var type = new Option<string>("--type")
        {
            Description = "What to purge: tasks, input-requests, output-requests, commands (comma-separated) or all.",
            Required = true,
        };
        var olderThan = new Option<string?>("--older-than") { Description = "Delete finished rows older than this: 90s, 15m, 12h, 30d, 2w." };
        var failedOlderThan = new Option<string?>("--failed-older-than")
        {
            Description = "Failures (FAILED/EXPIRED tasks, 4xx/5xx requests, failed commands) older than this, or never; default --older-than.",
        };
        var backup = new Option<string?>("--backup") { Description = "Write the deleted rows to this directory first, as gzip JSON Lines." };
        var batchSize = new Option<string?>("--batch-size") { Description = "Rows per statement and transaction, 1 to 100000 (default 1000)." };
        var dryRun = new Option<bool>("--dry-run") { Description = "Count what would be deleted; delete nothing." };
        var command = new Command("purge", "Delete finished rows older than an age. Unfinished rows are never deleted.")
        {
            type, olderThan, failedOlderThan, backup, batchSize, dryRun,
        };
        command.SetAction((parse, ct) => context.WithLedgerAsync("purge", async session =>
        {
            var kinds = Kinds(parse.GetValue(type)!);
            var succeededAge = Age(parse.GetValue(olderThan), "older-than");
            var failedText = parse.GetValue(failedOlderThan);
            var failedAge = failedText is null ? succeededAge
                : string.Equals(failedText, "never", StringComparison.OrdinalIgnoreCase) ? null : Age(failedText, "failed-older-than");
            if (succeededAge is null && failedAge is null)
            {
                throw new CliUsageException("purge needs --older-than AGE (and/or --failed-older-than AGE).");
            }

            var batch = BatchSize(parse.GetValue(batchSize), 1000);

            var dry = parse.GetValue(dryRun);
            await session.Maintenance.MigrateAsync(ct);
            if (!dry && parse.GetValue(backup) is { } directory)
            {
                // A directory the backup cannot be written to is the user's to fix: say so before anything is deleted.
                try
                {
                    Directory.CreateDirectory(directory);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
                {
                    throw new CliUsageException($"--backup: cannot write to '{directory}': {ex.Message}");
                }
            }

            var now = session.Now;
            var results = await context.Console.WithProgressAsync(
                p => $"{p.Step}: deleting {p.Total} rows…",
                async progress =>
                {
                    var list = new List<LedgerPurgeResult>();
                    foreach (var kind in kinds)
                    {
                        var request = new LedgerPurgeRequest(kind, now - succeededAge, now - failedAge, batch, dry ? null : parse.GetValue(backup), dry);
                        list.Add(await session.Maintenance.PurgeAsync(request, dry ? null : progress, ct));
                    }

                    return list;
                });
            var verb = dry ? "would delete" : "deleted";
            foreach (var result in results)
            {
                await context.Console.SafeOut.WriteLineAsync($"{LedgerMaintenance.KindName(result.Kind)}: {verb} {result.Deleted} ({result.Succeeded} successes, {result.Failed} failures)"
                    + (result.BackupFile is null ? "" : $"; backup {result.BackupFile}"));
            }

            return 0;
        }, ct));
        return command;
    }

    public static Command Restore(CliContext context)
    {
        var file = new Argument<string>("file") { Description = "A backup written by purge --backup (.jsonl.gz)." };
        var batchSize = new Option<string?>("--batch-size") { Description = "Rows per transaction, 1 to 100000 (default 500)." };
        var command = new Command("restore", "Put the rows of a purge backup back into the ledger (rows already there are skipped).") { file, batchSize };
        command.SetAction((parse, ct) => context.WithLedgerAsync("restore", async session =>
        {
            var path = parse.GetValue(file)!;
            if (!File.Exists(path))
            {
                throw new CliUsageException($"no such file: {path}");
            }

            // As purge's: a value it cannot use is said, not replaced by the default.
            var batch = BatchSize(parse.GetValue(batchSize), 500);

            await session.Maintenance.MigrateAsync(ct);
            var result = await context.Console.WithProgressAsync(
                p => $"restoring {p.Step}…",
                progress => session.Maintenance.RestoreAsync(path, batch, progress, ct));
            await context.Console.SafeOut.WriteLineAsync($"{LedgerMaintenance.KindName(result.Kind)}: restored {result.Restored}, skipped {result.Skipped} already in the ledger");
            if (result.EndedEarly is { } why)
            {
                await context.Console.Error.WriteLineAsync("warning: " + TerminalWriter.Escape(why));
            }

            return 0;
        }, ct));
        return command;
    }

    /// <summary>
    /// The most rows a purge's statement and transaction (or a restore's) takes at once: a larger batch is one transaction
    /// holding every candidate (its ids in memory, its locks until the end), not a faster purge.
    /// </summary>
    internal const int MaxBatchSize = 100_000;

    private static int BatchSize(string? text, int byDefault)
    {
        if (text is null)
        {
            return byDefault;
        }

        if (!int.TryParse(text, out var batch) || batch is < 1 or > MaxBatchSize)
        {
            throw new CliUsageException($"--batch-size must be a number from 1 to {MaxBatchSize}.");
        }

        return batch;
    }

    private static List<LedgerKind> Kinds(string text)
    {
        if (string.Equals(text, "all", StringComparison.OrdinalIgnoreCase))
        {
            return [.. Enum.GetValues<LedgerKind>()];
        }

        var kinds = new List<LedgerKind>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!LedgerMaintenance.TryParseKind(part, out var kind))
            {
                throw new CliUsageException($"--type must be tasks, input-requests, output-requests, commands or all, not '{CliUsageException.Shown(part)}'.");
            }

            kinds.Add(kind);
        }

        // "--type ," names no kind: a purge that would do nothing and say nothing is a usage error.
        return kinds.Count > 0 ? kinds.Distinct().ToList() : throw new CliUsageException("--type must name at least one of tasks, input-requests, output-requests, commands or all.");
    }

    private static TimeSpan? Age(string? text, string option)
    {
        if (text is null)
        {
            return null;
        }

        return LedgerMaintenance.TryParseDuration(text, out var age)
            ? age
            : throw new CliUsageException($"--{option} must be a positive age, a number and a unit such as 90s, 15m, 12h, 30d or 2w (at most 100 years), not '{CliUsageException.Shown(text)}'.");
    }
}
