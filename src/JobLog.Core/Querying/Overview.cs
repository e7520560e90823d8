namespace JobLog.Querying;

/// <summary>The overview page and <c>api/overview</c>.</summary>
internal sealed record Overview(
    IReadOnlyList<StateCount> Counts,
    long Total,
    Chart Chart,
    IReadOnlyList<SlowTask> Slowest,
    SweepInfo Sweeper,
    WriterInfo Writer,
    DateTime GeneratedAt);

/// <summary>Tasks in one state.</summary>
internal sealed record StateCount(TaskState State, long Count);

/// <summary>Finished tasks over time, in equal buckets.</summary>
internal sealed record Chart(string Window, DateTime From, DateTime To, int BucketSeconds, IReadOnlyList<ChartBucket> Buckets);

/// <summary>Tasks that finished in one bucket, by outcome.</summary>
internal sealed record ChartBucket(DateTime Start, int Succeeded, int Failed, int Expired)
{
    public int Finished => Succeeded + Failed + Expired;

    /// <summary>(Failed + Expired) / Finished, or null when nothing finished.</summary>
    public double? FailureRate => Finished == 0 ? null : (double)(Failed + Expired) / Finished;
}

/// <summary>Run durations of one task name over the chart's window.</summary>
internal sealed class SlowTask
{
    public string Name { get; set; } = "";

    public long Runs { get; set; }

    public double AverageSeconds { get; set; }

    public double MaxSeconds { get; set; }
}

/// <summary>This process's sweeper.</summary>
internal sealed record SweepInfo(bool Enabled, DateTimeOffset? LastRunAt, int? Expired, int? Healed);

/// <summary>
/// This process's ledger writer: while <paramref name="Failing"/>, its last attempt's error in the database's words (the
/// exception's type and first line, at most 300 characters of it: <see cref="Recording.LedgerRecorder.LastFailure"/>) and
/// since when it fails (UTC); both null otherwise.
/// </summary>
internal sealed record WriterInfo(int Backlog, bool Failing, long Dropped, string? LastError = null, DateTime? FailingSince = null);
