using JobLog.Internal;
using Microsoft.Extensions.Options;

namespace JobLog.Retention;

/// <summary>The four kinds of ledger rows that retention and <c>purge</c> handle separately.</summary>
public enum LedgerKind
{
    /// <summary>Tasks with their runs.</summary>
    Tasks = 1,

    /// <summary>Inbound HTTP requests.</summary>
    InputRequests = 2,

    /// <summary>Outbound HTTP requests with their related objects.</summary>
    OutputRequests = 3,

    /// <summary>Console commands.</summary>
    Commands = 4,
}

/// <summary>How long finished rows of one kind are kept. Null keeps them forever. Unfinished rows are never deleted.</summary>
public sealed class RetentionPeriod
{
    /// <summary>
    /// Successes: SUCCEEDED tasks, requests with status DEBUG or INFO (below 400), successful commands.
    /// Counted from the row's end (<c>Stop</c> or <c>ResponseTimestamp</c>). Positive or null.
    /// </summary>
    [Positive(ErrorMessage = "{0} must be positive (null keeps rows forever).")]
    public TimeSpan? Succeeded { get; set; }

    /// <summary>Failures: FAILED and EXPIRED tasks, requests with status WARNING, ERROR or CRITICAL, failed commands. Positive or null.</summary>
    [Positive(ErrorMessage = "{0} must be positive (null keeps rows forever).")]
    public TimeSpan? Failed { get; set; }
}

/// <summary>
/// Options of <c>services.AddJobLogRetention(...)</c>. Retention is off until that call; once on, its defaults keep
/// successes 30 days and failures 90 days for every kind.
/// </summary>
public sealed class JobLogRetentionOptions
{
    /// <summary>Time between two retention passes. Default 1 hour; must be positive.</summary>
    [Positive]
    [AtMostDays(30)]
    public TimeSpan Interval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Rows deleted per statement (and per transaction). Default 1,000; 1 to 100,000 (a larger batch is one transaction holding every candidate, not a faster purge).</summary>
    [Between(1, 100_000)]
    public int BatchSize { get; set; } = 1000;

    /// <summary>When set, deleted rows are first written to a gzip JSON Lines file in this directory (restorable with the CLI's <c>restore</c>). Default null.</summary>
    public string? BackupDirectory { get; set; }

    /// <summary>
    /// Kept failed messages of resolved failures (resolved, archived, or retried with success): deleted once older than
    /// this, before anything else. Default 7 days; null keeps them as long as their task. Positive or null.
    /// </summary>
    [Positive]
    public TimeSpan? KeptMessages { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// Also delete the kept messages of unresolved failures older than <see cref="KeptMessages"/> (they can then no
    /// longer be retried). Default false: an open failure keeps its message as long as its task.
    /// </summary>
    public bool PurgeUnresolvedKeptMessages { get; set; }

    /// <summary>Tasks and their runs. Default: successes 30 days, failures 90 days.</summary>
    [ValidateObjectMembers]
    public RetentionPeriod Tasks { get; } = Default();

    /// <summary>Inbound requests. Default: successes 30 days, failures 90 days.</summary>
    [ValidateObjectMembers]
    public RetentionPeriod InputRequests { get; } = Default();

    /// <summary>Outbound requests. Default: successes 30 days, failures 90 days.</summary>
    [ValidateObjectMembers]
    public RetentionPeriod OutputRequests { get; } = Default();

    /// <summary>Commands. Default: successes 30 days, failures 90 days.</summary>
    [ValidateObjectMembers]
    public RetentionPeriod Commands { get; } = Default();

    /// <summary>The period of one kind.</summary>
    public RetentionPeriod For(LedgerKind kind) => kind switch
    {
        LedgerKind.Tasks => Tasks,
        LedgerKind.InputRequests => InputRequests,
        LedgerKind.OutputRequests => OutputRequests,
        LedgerKind.Commands => Commands,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown ledger kind."),
    };

    private static RetentionPeriod Default() => new() { Succeeded = TimeSpan.FromDays(30), Failed = TimeSpan.FromDays(90) };
}

/// <summary>Fails start-up on retention options that cannot work (generated from the attributes on <see cref="JobLogRetentionOptions"/>).</summary>
[OptionsValidator]
internal sealed partial class JobLogRetentionOptionsValidator : IValidateOptions<JobLogRetentionOptions>;
