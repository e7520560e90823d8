using JobLog.Retention;
using JobLog.Storage;

namespace JobLog.Worker.Cli;

/// <summary><c>purge</c> and <c>restore</c>: delete finished ledger rows by age, with an optional backup that restores them.</summary>
internal static class PurgeCommand
{
    public const string Usage = """
          purge --type KINDS --older-than AGE [--failed-older-than AGE|never] [--backup DIR] [--batch-size N] [--dry-run]
                                     Delete finished rows older than AGE (90s, 15m, 12h, 30d, 2w). KINDS: tasks, input-requests,
                                     output-requests, commands (comma-separated) or all. Failures (FAILED/EXPIRED tasks, 4xx/5xx
                                     requests, failed commands) use --failed-older-than when given, so they can be kept longer.
                                     Unfinished rows are never deleted. --backup writes the deleted rows to DIR as gzip JSON Lines.
          restore FILE               Put the rows of a purge backup back into the ledger (rows already there are skipped).
        """;

    private static readonly string[] s_valued = ["type", "older-than", "failed-older-than", "backup", "batch-size"];
    private static readonly string[] s_flags = ["dry-run"];

    public static Task<int> PurgeAsync(string[] args, TextWriter output) =>
        CliUsageException.GuardAsync(() => PurgeAsyncCore(args, output));

    private static async Task<int> PurgeAsyncCore(string[] args, TextWriter output)
    {
        var options = CliOptions.Parse(args, s_valued, s_flags);
        if (options.Positional.Count > 0)
        {
            throw new CliUsageException($"purge takes no argument '{options.Positional[0]}'.");
        }

        var kinds = Kinds(options.Get("type") ?? throw new CliUsageException("purge needs --type tasks|input-requests|output-requests|commands|all."));
        var succeededAge = Age(options.Get("older-than"), "older-than");
        var failedText = options.Get("failed-older-than");
        var failedAge = failedText is null ? succeededAge : string.Equals(failedText, "never", StringComparison.OrdinalIgnoreCase) ? null : Age(failedText, "failed-older-than");
        if (succeededAge is null && failedAge is null)
        {
            throw new CliUsageException("purge needs --older-than AGE (and/or --failed-older-than AGE).");
        }

        var batchSize = 1000;
        if (options.Get("batch-size") is { } b && (!int.TryParse(b, out batchSize) || batchSize < 1))
        {
            throw new CliUsageException("--batch-size must be a positive number.");
        }

        await using var provider = Cli.LedgerOnly([.. options.Settings]);
        await provider.GetRequiredService<LedgerSchema>().TryMigrateAsync(CancellationToken.None);
        var now = provider.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime;
        var purger = provider.GetRequiredService<LedgerPurger>();
        var dryRun = options.Has("dry-run");
        foreach (var kind in kinds)
        {
            var result = await purger.PurgeAsync(
                new PurgeRequest(kind, now - succeededAge, now - failedAge, batchSize, dryRun ? null : options.Get("backup"), dryRun),
                CancellationToken.None);
            var verb = dryRun ? "would delete" : "deleted";
            await output.WriteLineAsync($"{LedgerPurger.KindName(kind)}: {verb} {result.Deleted} ({result.Succeeded} successes, {result.Failed} failures)"
                + (result.BackupFile is null ? "" : $"; backup {result.BackupFile}"));
        }

        return 0;
    }

    public static Task<int> RestoreAsync(string[] args, TextWriter output) =>
        CliUsageException.GuardAsync(() => RestoreAsyncCore(args, output));

    private static async Task<int> RestoreAsyncCore(string[] args, TextWriter output)
    {
        var options = CliOptions.Parse(args, ["batch-size"], []);
        if (options.Positional.Count != 1)
        {
            throw new CliUsageException("restore needs one backup file.");
        }

        var file = options.Positional[0];
        if (!File.Exists(file))
        {
            throw new CliUsageException($"no such file: {file}");
        }

        await using var provider = Cli.LedgerOnly([.. options.Settings]);
        var schema = provider.GetRequiredService<LedgerSchema>();
        await schema.TryMigrateAsync(CancellationToken.None);
        var (kind, restored, skipped) = await LedgerBackup.RestoreAsync(
            provider.GetRequiredService<JobLogContextFactory>(), file, int.TryParse(options.Get("batch-size"), out var n) && n > 0 ? n : 500, CancellationToken.None);
        await output.WriteLineAsync($"{LedgerPurger.KindName(kind)}: restored {restored}, skipped {skipped} already in the ledger");
        return 0;
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
            if (!LedgerPurger.TryParseKind(part, out var kind))
            {
                throw new CliUsageException($"--type must be tasks, input-requests, output-requests, commands or all, not '{part}'.");
            }

            kinds.Add(kind);
        }

        return kinds.Distinct().ToList();
    }

    private static TimeSpan? Age(string? text, string option)
    {
        if (text is null)
        {
            return null;
        }

        return DurationText.TryParse(text, out var age)
            ? age
            : throw new CliUsageException($"--{option} must look like 90s, 15m, 12h, 30d or 2w, not '{text}'.");
    }
}
