using System.Collections.Concurrent;
using JobLog.Failures;

namespace JobLog.Testing;

/// <summary>
/// An <see cref="IFailureActions"/> that records what it was asked; a retry "sends" one more task on each progress poll
/// (after <see cref="PollsPerTask"/> polls per task), so a page can watch it complete.
/// </summary>
public sealed class FakeFailureActions : IFailureActions
{
    private readonly ConcurrentDictionary<Guid, (FailureActionRequest Request, int Polls)> _retries = new();

    public ConcurrentQueue<(string Action, FailureActionRequest Request)> Requests { get; } = new();

    public int PollsPerTask { get; set; } = 1;

    public Task<FailureActionReceipt> RetryAsync(FailureActionRequest request, CancellationToken cancellationToken = default)
    {
        var id = Guid.NewGuid();
        Requests.Enqueue(("retry", request));
        _retries[id] = (request, 0);
        return Task.FromResult(new FailureActionReceipt(id, request.TaskIds.Count, 0));
    }

    public Task<FailureActionReceipt> ResolveAsync(FailureActionRequest request, FailureResolution resolution, CancellationToken cancellationToken = default)
    {
        Requests.Enqueue((resolution.ToString().ToLowerInvariant(), request));
        return Task.FromResult(new FailureActionReceipt(Guid.NewGuid(), request.TaskIds.Count, 0));
    }

    public Task<RetryProgress?> GetRetryProgressAsync(Guid requestId, CancellationToken cancellationToken = default)
    {
        if (!_retries.TryGetValue(requestId, out var retry))
        {
            return Task.FromResult<RetryProgress?>(null);
        }

        var polls = retry.Polls + 1;
        _retries[requestId] = (retry.Request, polls);
        var total = retry.Request.TaskIds.Count;
        var sent = Math.Min(total, polls / Math.Max(PollsPerTask, 1));
        return Task.FromResult<RetryProgress?>(new RetryProgress(requestId, total, sent, 0, 0, sent == total));
    }
}
