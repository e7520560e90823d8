using JobLog.Internal;
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
    ILogger<LedgerPartitionService> logger) : BackgroundService
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
                await RunOnceAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.PartitionMaintenanceFailed(logger, ex, Interval);
            }
        }
    }

    /// <summary>One pass: converts the ledger if it is not yet partitioned, then creates the missing partitions ahead.</summary>
    public async Task RunOnceAsync(CancellationToken cancellationToken)
    {
        // A session of its own, closed when done: a pooled one stayed idle for minutes after each hourly pass (session 33).
        var db = await contexts.OpenUnpooledAsync(cancellationToken).ConfigureAwait(false);
        await using var _ = db.ConfigureAwait(false);
        await contexts.Database.ApplyPartitioningAsync(db, options.Value.Partitioning, time.GetUtcNow().UtcDateTime, cancellationToken).ConfigureAwait(false);
    }
}
