using System.Collections.Concurrent;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// The requests this bus's request clients sent and still wait for, with the response types each accepts (MassTransit's
/// <c>MT-Request-AcceptType</c> header): an answer nothing on the bus endpoint took is then told apart, a type its
/// requester does not accept (the requester is still waiting) from a requester that gave up. Bounded; an entry leaves at
/// its request's first answer received, or once past its expiration when the memory is full. A send costs the same
/// however many requests wait: the memory full, the expired are swept at most once a second, so a bus sending while
/// 10,000 requests wait does not scan them at every send (a request refused meanwhile is only not told apart).
/// </summary>
internal sealed class PendingRequests(TimeProvider time)
{
    private const int Limit = 10_000;

    /// <summary>How long a request without a TimeToLive is remembered, at least.</summary>
    private static readonly TimeSpan s_untimed = TimeSpan.FromHours(1);

    /// <summary>The least time between two sweeps of a full memory.</summary>
    private static readonly TimeSpan s_sweepInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<Guid, Pending> _requests = new();
    private readonly Lock _sweep = new();

    /// <summary>Entries held (kept here: <see cref="ConcurrentDictionary{TKey,TValue}.Count"/> takes every lock).</summary>
    private int _count;

    /// <summary>Ticks of the UTC time before which a full memory is not swept again.</summary>
    private long _nextSweep;

    /// <summary>A request sent by a request client (it names the response types it accepts).</summary>
    public void Sent(SendContext context)
    {
        if (context.RequestId is not { } requestId || !context.Headers.TryGetHeader(MessageHeaders.Request.Accept, out var header))
        {
            return;
        }

        // MassTransit sets the list of the accepted types' URNs; a transport may give it back as text.
        var accepted = header switch
        {
            string text => text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            IEnumerable<string> list => list.ToArray(),
            IEnumerable<object> items => items.Select(i => i?.ToString() ?? "").Where(i => i.Length > 0).ToArray(),
            _ => [],
        };
        if (accepted.Length == 0)
        {
            return;
        }

        Sent(requestId, accepted, context.TimeToLive);
    }

    /// <summary>Request <paramref name="requestId"/>, whose requester accepts <paramref name="accepted"/>, was sent.</summary>
    internal void Sent(Guid requestId, string[] accepted, TimeSpan? timeToLive)
    {
        var now = time.GetUtcNow().UtcDateTime;
        if (Volatile.Read(ref _count) >= Limit && !Swept(now))
        {
            return;
        }

        var pending = new Pending(accepted, now + (timeToLive ?? s_untimed));
        if (_requests.TryAdd(requestId, pending))
        {
            Interlocked.Increment(ref _count);
        }
        else
        {
            _requests[requestId] = pending;
        }
    }

    /// <summary>Its requester received an answer: it waits no more.</summary>
    public void Answered(Guid requestId) => Remove(requestId);

    /// <summary>
    /// The response types of <paramref name="requestId"/>'s requester when it is still waiting and accepts none of
    /// <paramref name="types"/> (the answer's message types); else null.
    /// </summary>
    public string[]? NotAccepting(Guid requestId, IReadOnlyCollection<string> types) =>
        _requests.TryGetValue(requestId, out var pending) && pending.Until >= time.GetUtcNow().UtcDateTime
        && !pending.Accepted.Any(a => types.Contains(a, StringComparer.OrdinalIgnoreCase))
            ? pending.Accepted
            : null;

    /// <summary>
    /// The memory is full: removes the expired unless it did less than a second ago; true when there is room
    /// after.
    /// </summary>
    private bool Swept(DateTime now)
    {
        if (now.Ticks < Volatile.Read(ref _nextSweep) || !_sweep.TryEnter())
        {
            return false;
        }

        try
        {
            foreach (var (id, pending) in _requests)
            {
                if (pending.Until < now)
                {
                    Remove(id);
                }
            }

            Volatile.Write(ref _nextSweep, (now + s_sweepInterval).Ticks);
        }
        finally
        {
            _sweep.Exit();
        }

        return Volatile.Read(ref _count) < Limit;
    }

    private void Remove(Guid requestId)
    {
        if (_requests.TryRemove(requestId, out _))
        {
            Interlocked.Decrement(ref _count);
        }
    }

    private sealed record Pending(string[] Accepted, DateTime Until);
}
