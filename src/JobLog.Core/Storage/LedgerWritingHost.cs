using Microsoft.Extensions.Hosting;

namespace JobLog.Storage;

/// <summary>
/// A background service of JobLog's that writes the ledger on its own (the heartbeat, the sweeper, the partition
/// maintenance, the retention): started only when the ledger can be written and <paramref name="enabled"/> says so. Over
/// a ledger opened read-only (a copy, a read-only mount, a dashboard reading another process's ledger) each of its passes
/// would fail with "attempt to write a readonly database" and log it, forever (session 44); the start-up says once what
/// does not run (<see cref="LedgerStartupService"/>).
/// </summary>
internal sealed class LedgerWritingHost(IHostedService inner, JobLogContextFactory contexts, Func<bool>? enabled = null) : IHostedService
{
    private bool _started;

    /// <summary>The service this one starts when the ledger can be written.</summary>
    public IHostedService Inner => inner;

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
