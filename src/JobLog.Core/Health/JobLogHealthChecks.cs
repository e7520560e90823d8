using JobLog.Internal;
using JobLog.Recording;
using JobLog.Storage;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace JobLog.Health;

/// <summary>Options of <c>AddJobLogHealthChecks</c>; validated at start-up.</summary>
public sealed class JobLogHealthCheckOptions
{
    /// <summary>Records waiting to be written above which the writer reports Degraded. Default 10,000; not negative.</summary>
    [NotNegative]
    public int DegradedBacklog { get; set; } = 10_000;

    /// <summary>How long the database probe may take before it counts as unhealthy. Default 5 s; must be positive.</summary>
    [Positive]
    [AtMostDays(30)]
    public TimeSpan DatabaseTimeout { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>Fails start-up on health check options out of range (generated from the attributes on <see cref="JobLogHealthCheckOptions"/>).</summary>
[OptionsValidator]
internal sealed partial class JobLogHealthCheckOptionsValidator : IValidateOptions<JobLogHealthCheckOptions>;

/// <summary>
/// The writer: Unhealthy while it cannot reach the database or write to it (records are kept and retried; the description
/// and the data's <c>lastError</c> give the last attempt's error, session 32) or its ledger was deleted and is
/// not there again, Degraded when its backlog passes <see cref="JobLogHealthCheckOptions.DegradedBacklog"/>, while records
/// go to the spool file, or when records were dropped or the ledger was deleted and made again since the previous check.
/// </summary>
internal sealed class LedgerWriterHealthCheck(LedgerRecorder recorder, IOptions<JobLogHealthCheckOptions> options) : IHealthCheck
{
    private long _droppedSeen;
    private long _movesSeen;

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var backlog = recorder.Backlog;
        var dropped = recorder.Dropped;
        var newlyDropped = dropped - Interlocked.Exchange(ref _droppedSeen, dropped);
        var moves = recorder.LedgerMoves;
        var newlyMoved = moves - Interlocked.Exchange(ref _movesSeen, moves);
        var data = new Dictionary<string, object>
        {
            ["backlog"] = backlog,
            ["dropped"] = dropped,
            ["failing"] = recorder.IsFailing,
            ["spooling"] = recorder.IsSpooling,
            ["ledgerMoved"] = moves,
        };
        var status = context.Registration.FailureStatus;
        HealthCheckResult result;
        if (recorder.LedgerMissing is { } ledger)
        {
            result = new HealthCheckResult(
                status,
                $"The ledger {ledger} was deleted or replaced while the writer had it open, and MigrateOnStartup is off: {backlog} records wait (journaled) until a migrated ledger is at its path again.",
                data: data);
        }
        else if (recorder.IsFailing)
        {
            // The database's own check answers Healthy when it refuses only writes (its disk full): the error says which.
            var why = recorder.LastFailure;
            if (why is not null)
            {
                data["lastError"] = why;
            }

            result = new HealthCheckResult(
                status,
                why is null
                    ? $"The ledger writer cannot reach the database; {backlog} records are waiting."
                    : $"The ledger writer cannot reach the database or write to it ({why}); {backlog} records are waiting.",
                data: data);
        }
        else if (newlyMoved > 0)
        {
            result = HealthCheckResult.Degraded(
                "The ledger was deleted or replaced while the writer had it open: JobLog made it again at its path and wrote there what it had committed into the deleted file since; what was in that file before is gone with it.",
                data: data);
        }
        else if (newlyDropped > 0)
        {
            result = HealthCheckResult.Degraded($"The ledger writer dropped {newlyDropped} records since the last check.", data: data);
        }
        else if (recorder.IsSpooling)
        {
            result = HealthCheckResult.Degraded(
                $"The ledger writer is behind: its queue overflowed to the spool file; {backlog} records are queued.", data: data);
        }
        else if (backlog > options.Value.DegradedBacklog)
        {
            result = HealthCheckResult.Degraded($"The ledger writer is behind: {backlog} records are waiting.", data: data);
        }
        else
        {
            result = HealthCheckResult.Healthy($"{backlog} records waiting.", data);
        }

        return Task.FromResult(result);
    }
}

/// <summary>The ledger's database answers a trivial query within <see cref="JobLogHealthCheckOptions.DatabaseTimeout"/>.</summary>
internal sealed class LedgerDatabaseHealthCheck(JobLogContextFactory contexts, IOptions<JobLogHealthCheckOptions> options) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.Value.DatabaseTimeout);
        try
        {
            await using var connection = contexts.Database.CreateConnection(contexts.ConnectionString);
            try
            {
                await connection.OpenAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (contexts.Database.RefusedSessionSettings(contexts.ConnectionString, ex))
            {
                // A pooler refused JobLog's startup settings: a connection without them.
                await using var again = contexts.Database.CreateConnection(contexts.ConnectionString);
                await again.OpenAsync(timeout.Token).ConfigureAwait(false);
                return await AnswersAsync(again, timeout.Token).ConfigureAwait(false);
            }

            return await AnswersAsync(connection, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"The {contexts.Provider} ledger does not answer: {ex.Message}", ex);
        }
    }

    private async Task<HealthCheckResult> AnswersAsync(System.Data.Common.DbConnection connection, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1";
        command.CommandTimeout = (int)Math.Max(1, Math.Ceiling(options.Value.DatabaseTimeout.TotalSeconds));
        await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return HealthCheckResult.Healthy($"The {contexts.Provider} ledger answers.");
    }
}
