namespace JobLog.Timing;

/// <summary>The computed timing of one dispatch: ETA, expiry and stale deadline (see <c>docs/architecture.md#sweeper</c>).</summary>
internal readonly record struct TaskTimes(DateTime Eta, DateTime? Expires, DateTime? Stale, TimeSpan? TimeToLive);

/// <summary>Resolves ETA, expiry and stale deadline from the per-call, per-type and global options.</summary>
internal static class TaskTiming
{
    /// <param name="dispatched">Dispatch time (UTC).</param>
    /// <param name="call">Per-call options (<c>SetTaskOptions</c>), if any.</param>
    /// <param name="type">Per-type options, if any.</param>
    /// <param name="global">Global options.</param>
    /// <param name="timeToLive">A TimeToLive the caller set directly on the send context.</param>
    /// <param name="delay">A transport delay the caller set directly.</param>
    /// <param name="scheduledTime">The scheduler's exact ETA, when dispatched through a scheduler.</param>
    public static TaskTimes Resolve(
        DateTime dispatched,
        TaskDispatchOptions? call,
        TaskTypeOptions? type,
        JobLogOptions global,
        TimeSpan? timeToLive = null,
        TimeSpan? delay = null,
        DateTime? scheduledTime = null)
    {
        var eta = scheduledTime
            ?? (call?.Countdown is { } countdown ? dispatched + countdown : (DateTime?)null)
            ?? call?.Eta?.UtcDateTime
            ?? (delay is { } d && d > TimeSpan.Zero ? dispatched + d : dispatched);

        var timeLimit = call?.TimeLimit ?? type?.TimeLimit ?? global.DefaultTimeLimit;
        var stale = call?.StaleTimeLimit ?? type?.StaleTimeLimit ?? global.DefaultStaleTimeLimit
            ?? DerivedStaleLimit(timeLimit, type?.MaxQueueWaitingTime ?? global.MaxQueueWaitingTime, type?.RetryDelays);

        var explicitExpires = call?.Expires ?? timeToLive ?? type?.Expires;
        TimeSpan? expires = explicitExpires ?? (stale is { } s && timeLimit is { } t && s > t ? s - t : null);

        // As in the seed, both deadlines count from the dispatch (trigger) time, not from the ETA.
        return new TaskTimes(
            eta,
            expires is { } e ? dispatched + e : null,
            stale is { } st ? dispatched + st : null,
            expires);
    }

    private static TimeSpan? DerivedStaleLimit(TimeSpan? timeLimit, TimeSpan? maxQueueWaitingTime, IReadOnlyList<TimeSpan>? retryDelays)
    {
        if (timeLimit is not { } t || maxQueueWaitingTime is not { } q)
        {
            return null;
        }

        if (retryDelays is { Count: > 0 } delays)
        {
            var sum = delays.Aggregate(TimeSpan.Zero, (a, b) => a + b);
            return ((t + q) * (delays.Count + 1)) + sum;
        }

        return t + q;
    }
}
