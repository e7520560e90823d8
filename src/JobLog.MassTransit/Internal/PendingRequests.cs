using System.Collections.Concurrent;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// The requests this bus's request clients sent and still wait for, with the response types each accepts (MassTransit's
/// <c>MT-Request-AcceptType</c> header): an answer nothing on the bus endpoint took is then told apart, a type its
/// requester does not accept (the requester is still waiting) from a requester that gave up. Bounded; an entry leaves at
/// its request's first answer received, or once past its expiration when the memory is full.
/// </summary>
internal sealed class PendingRequests(TimeProvider time)
{
    private const int Limit = 10_000;

    /// <summary>How long a request without a TimeToLive is remembered, at least.</summary>
    private static readonly TimeSpan s_untimed = TimeSpan.FromHours(1);

    private readonly ConcurrentDictionary<Guid, Pending> _requests = new();

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

        var now = time.GetUtcNow().UtcDateTime;
        if (_requests.Count >= Limit)
        {
            foreach (var (id, pending) in _requests)
            {
                if (pending.Until < now)
                {
                    _requests.TryRemove(id, out _);
                }
            }

            if (_requests.Count >= Limit)
            {
                return;
            }
        }

        _requests[requestId] = new Pending(accepted, now + (context.TimeToLive ?? s_untimed));
    }

    /// <summary>Its requester received an answer: it waits no more.</summary>
    public void Answered(Guid requestId) => _requests.TryRemove(requestId, out _);

    /// <summary>
    /// The response types of <paramref name="requestId"/>'s requester when it is still waiting and accepts none of
    /// <paramref name="types"/> (the answer's message types); else null.
    /// </summary>
    public string[]? NotAccepting(Guid requestId, IReadOnlyCollection<string> types) =>
        _requests.TryGetValue(requestId, out var pending) && pending.Until >= time.GetUtcNow().UtcDateTime
        && !pending.Accepted.Any(a => types.Contains(a, StringComparer.OrdinalIgnoreCase))
            ? pending.Accepted
            : null;

    private sealed record Pending(string[] Accepted, DateTime Until);
}
