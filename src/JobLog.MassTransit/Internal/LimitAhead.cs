using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// Whether a MassTransit concurrency limit or in-memory retry sits between JobLog's run filter and the point where the
/// consumer or saga is really called (JobLog's slot filter): read once from the rest of the pipe's probe, in the order its
/// filters run. MassTransit adds such limits after JobLog's run filter for a consumer's <c>ConcurrentMessageLimit</c>, a
/// <c>UseConcurrentMessageLimit</c> on a consumer or saga configurator, and a saga's <c>ConcurrentMessageLimit</c>, and such
/// retries for <c>UseMessageRetry</c> on a consumer configurator; none of them is visible when JobLog configures the pipe
/// (they are added by configuration observers called after JobLog's, or after the observers). A partitioner or a rate
/// limit on the consumer's or saga's own pipe (<c>c.UsePartitioner(…)</c>, <c>c.UseRateLimit(…)</c>, configured before
/// JobLog's observer but on the pipe after its run filter) holds a message back the same way and counts as a limit.
/// </summary>
internal static class LimitAhead
{
    /// <summary>MassTransit's concurrency limit filters (<c>ConsumeConcurrencyLimitFilter</c>, <c>ConcurrencyLimitFilter</c>).</summary>
    private const string Limit = "concurrencyLimit";

    /// <summary>MassTransit's filters that also hold a message back until it may go on (<c>PartitionFilter</c>, <c>RateLimitFilter</c>).</summary>
    private static readonly string[] Waits = [Limit, "partition", "rateLimit"];

    /// <summary>MassTransit's retry filter (<c>RetryFilter</c>; the redelivery one adds <c>type: redelivery</c>).</summary>
    private const string Retry = "retry";

    public static bool Before(IProbeSite rest, string slotFilter) => Find(rest, slotFilter).Limit;

    /// <summary>What stands between JobLog's run filter and <paramref name="slotFilter"/>: a concurrency limit, an in-memory retry.</summary>
    public static (bool Limit, bool Retry) Find(IProbeSite rest, string slotFilter)
    {
        var seen = new Seen(slotFilter);
        try
        {
            rest.Probe(new Scope(seen));
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A probe that throws (a custom filter's) tells nothing: the run begins on receipt, as without a limit.
            return (false, false);
        }

        seen.Settle();
        return (seen.LimitFirst, seen.RetryFirst);
    }

    private sealed class Seen(string slotFilter)
    {
        private bool _slot;
        private bool _retry;

        public bool LimitFirst { get; private set; }

        public bool RetryFirst { get; private set; }

        public void Filter(string filterType)
        {
            Settle();
            if (string.Equals(filterType, slotFilter, StringComparison.Ordinal))
            {
                _slot = true;
            }
            else if (!_slot && Array.IndexOf(Waits, filterType) >= 0)
            {
                LimitFirst = true;
            }
            else if (!_slot && string.Equals(filterType, Retry, StringComparison.Ordinal))
            {
                _retry = true;
            }
        }

        /// <summary>The retry filter just probed is a redelivery (<c>UseScheduledRedelivery</c>): each attempt is a delivery of its own.</summary>
        public void Redelivery() => _retry = false;

        public void Settle()
        {
            RetryFirst |= _retry;
            _retry = false;
        }
    }

    /// <summary>A probe context that keeps nothing but the filter types, in the order they are probed.</summary>
    private sealed class Scope(Seen seen) : ProbeContext
    {
        public CancellationToken CancellationToken => CancellationToken.None;

        public void Add(string key, string value)
        {
            if (string.Equals(key, "filterType", StringComparison.Ordinal))
            {
                seen.Filter(value);
            }
            else if (string.Equals(key, "type", StringComparison.Ordinal) && string.Equals(value, "redelivery", StringComparison.Ordinal))
            {
                seen.Redelivery();
            }
        }

        public void Add(string key, object value)
        {
            if (value is string text)
            {
                Add(key, text);
            }
        }

        public void Set(object values)
        {
        }

        public void Set(IEnumerable<KeyValuePair<string, object>> values)
        {
        }

        public ProbeContext CreateScope(string key) => this;
    }
}
