using Microsoft.Extensions.Hosting;

namespace JobLog.Storage;

/// <summary>
/// A background service of JobLog's that writes the ledger on its own (the heartbeat, the sweeper, the partition
/// maintenance, the retention): started only when the ledger can be written and <paramref name="enabled"/> says so. Over
/// a ledger opened read-only (a copy, a read-only mount, a dashboard reading another process's ledger) each of its passes
/// would fail with "attempt to write a readonly database" and log it, forever (session 44); the start-up says once what
/// does not run (<see cref="LedgerStartupService"/>). Generic in the service it starts: <c>AddHostedService</c> adds a
/// hosted service once per implementation type (<c>TryAddEnumerable</c>), so one non-generic type for all of them kept
/// the first (the heartbeat) and dropped the sweeper, the partition maintenance and the retention (found by the
/// clean-clone CI run of 0e564e2: <c>PurgeCommandTests.AddJobLogRetention_RunsAsAHostedService</c>).
/// </summary>
internal sealed class LedgerWritingHost<TService>(TService inner, JobLogContextFactory contexts, Func<bool>? enabled = null) : IHostedService
    where TService : IHostedService
{
    private bool _started;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (contexts.ReadOnly || enabled?.Invoke() == false)
        {
            return Task.CompletedTask;
        }

        _started = true;
        return inner.StartAsync(cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => _started ? inner.StopAsync(cancellationToken) : Task.CompletedTask;
}
