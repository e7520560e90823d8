using Polly;
using Polly.Retry;

namespace JobLog.Internal;

/// <summary>
/// JobLog's one backoff policy, for every wait after a failure (the writer's commit, the schema migration, the
/// scheduler's dispatcher): exponential from a first delay, doubled at each attempt, with jitter, never longer than a
/// maximum. Loops retry through Polly's retry strategy (<see cref="Retry"/>); a delay that is stored or slept between
/// rounds instead of retried at once comes from <see cref="Delay"/>. Time comes from the <see cref="TimeProvider"/>
/// given, so tests drive it with a fake clock.
/// </summary>
internal static class Backoff
{
    /// <summary>
    /// A pipeline that retries what <paramref name="handle"/> accepts (given the exception and the execution's
    /// cancellation token), without limit, <paramref name="first"/> then twice
    /// as long each time (with jitter), at most <paramref name="max"/>. <paramref name="onRetry"/> is called before each
    /// wait, with the attempt that failed (from 1) and the delay. Cancellation stops it.
    /// </summary>
    public static ResiliencePipeline Retry(
        TimeProvider time, TimeSpan first, TimeSpan max, Func<Exception, CancellationToken, bool> handle, Action<Exception, int, TimeSpan> onRetry) =>
        new ResiliencePipelineBuilder { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } ex && handle(ex, args.Context.CancellationToken)),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = first < max ? first : max,
                MaxDelay = max,
                MaxRetryAttempts = int.MaxValue,
                OnRetry = args =>
                {
                    onRetry(args.Outcome.Exception!, args.AttemptNumber + 1, args.RetryDelay);
                    return default;
                },
            })
            .Build();

    /// <summary>
    /// The wait after failed attempt <paramref name="attempt"/> (from 1): <paramref name="first"/> doubled at each
    /// attempt, at most <paramref name="max"/>, less a random part of up to a fifth (so that several processes that
    /// failed together do not come back together).
    /// </summary>
    public static TimeSpan Delay(int attempt, TimeSpan first, TimeSpan max)
    {
        var exponential = first.TotalMilliseconds * Math.Pow(2, Math.Clamp(attempt - 1, 0, 30));
        var capped = Math.Min(exponential, max.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(capped * (1 - (Random.Shared.NextDouble() / 5)));
    }
}
