using JobLog.Internal;
using JobLog.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.Retention;

/// <summary>
/// Deletes finished rows past their retention (<see cref="JobLogRetentionOptions"/>) every interval, failures kept as
/// long as their own period says. Registered by <c>AddJobLogRetention</c> only.
/// </summary>
internal sealed class LedgerRetentionService(
    LedgerSchema schema,
    LedgerPurger purger,
    IOptions<JobLogRetentionOptions> options,
    TimeProvider time,
    ILogger<LedgerRetentionService> logger,
    JobLogContextFactory? contexts = null,
    LedgerRefusals? refusals = null) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.Interval;
        await schema.EnsureReadyAsync(stoppingToken).ConfigureAwait(false);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (refusals?.MayWrite() != false)
                {
                    await RunOnceAsync(stoppingToken).ConfigureAwait(false);
                    refusals?.Wrote();
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException && refusals?.Refused(ex) == true)
            {
                // Said once (LedgerRefusals); the passes pause while the ledger refuses writes.
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.RetentionFailed(logger, ex, interval);
            }

            await Task.Delay(interval, time, stoppingToken).ConfigureAwait(false);
        }
    }

    /// <summary>One pass over every kind.</summary>
    public async Task<IReadOnlyList<PurgeResult>> RunOnceAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var now = time.GetUtcNow().UtcDateTime;
        var results = new List<PurgeResult>();
        var kept = contexts is null ? 0 : await KeptMessageRetention.PurgeAsync(contexts, o, now, cancellationToken).ConfigureAwait(false);
        if (kept > 0)
        {
            Log.RetentionPurged(logger, kept, "kept message", 0, kept);
        }

        foreach (var kind in Enum.GetValues<LedgerKind>())
        {
            var period = o.For(kind);
            if (period.Succeeded is null && period.Failed is null)
            {
                continue;
            }

            // A dropped day's files are the partition pass's (or the next pass's) to drop: nothing waits for them.
            var result = await purger.PurgeAsync(
                new PurgeRequest(kind, now - period.Succeeded, now - period.Failed, o.BatchSize, o.BackupDirectory, DetachedLater: true),
                cancellationToken).ConfigureAwait(false);
            if (result.Deleted > 0)
            {
                Log.RetentionPurged(logger, result.Deleted, LedgerPurger.KindName(kind), result.Succeeded, result.Failed);
            }

            results.Add(result);
        }

        return results;
    }
}
