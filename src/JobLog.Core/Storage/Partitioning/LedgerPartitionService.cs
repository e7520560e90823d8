using JobLog.Internal;
using JobLog.Retention;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.Storage.Partitioning;

/// <summary>
/// Keeps the day partitions of a partitioned ledger <see cref="PartitioningOptions.DaysAhead"/> days ahead
/// (<see cref="LedgerPartitioning.EnsureAheadAsync"/>), every <see cref="Interval"/>; start-up did the first pass (and the
/// conversion) with the migrations. Does nothing unless <see cref="PartitioningOptions.Enabled"/>.
/// </summary>
internal sealed class LedgerPartitionService(
    LedgerSchema schema,
    JobLogContextFactory contexts,
    IOptions<JobLogOptions> options,
    TimeProvider time,
    ILogger<LedgerPartitionService> logger,
    IServiceProvider services,
    LedgerRefusals? refusals = null) : BackgroundService
{
    /// <summary>Time between two passes: an hour (a day is created <see cref="PartitioningOptions.DaysAhead"/> days before it is needed).</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.Partitioning.Enabled)
        {
            return;
        }

        await schema.EnsureReadyAsync(stoppingToken).ConfigureAwait(false);
        while (!stoppingToken.IsCancellationRequested)
        {
            await Task.Delay(Interval, time, stoppingToken).ConfigureAwait(false);
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
                Log.PartitionMaintenanceFailed(logger, ex, Interval);
            }
        }
    }

    /// <summary>
    /// One pass: converts the ledger if it is not yet partitioned, then creates the missing partitions ahead, and, with the
    /// retention on, builds the next day to drop's kept rows ahead of its drop.
    /// </summary>
    public async Task RunOnceAsync(CancellationToken cancellationToken)
    {
        // A session of its own, closed when done: a pooled one stayed idle for minutes after each hourly pass (session 33).
        var db = await contexts.OpenUnpooledAsync(cancellationToken).ConfigureAwait(false);
        await using var _ = db.ConfigureAwait(false);
        var now = time.GetUtcNow().UtcDateTime;
        await contexts.Database.ApplyPartitioningAsync(db, options.Value.Partitioning, now, cancellationToken).ConfigureAwait(false);

        // With the retention on (AddJobLogRetention) and tasks' successes deleted: the kept rows of the next day to drop, built
        // ahead of its drop (docs/scale.md "Session 36 (scale)").
        if (services.GetService<LedgerRetentionService>() is not null
            && services.GetService<IOptions<JobLogRetentionOptions>>()?.Value.Tasks is { Succeeded: { } succeeded } period)
        {
            await contexts.Database.BuildAheadAsync(db, now, succeeded, period.Failed, cancellationToken).ConfigureAwait(false);
        }
    }
}
