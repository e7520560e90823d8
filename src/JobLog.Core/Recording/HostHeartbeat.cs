using JobLog.Internal;
using JobLog.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace JobLog.Recording;

/// <summary>
/// This process's row in <see cref="LedgerModel.Hosts"/> (docs/architecture.md#sweeper): written when the writer starts,
/// refreshed every <see cref="JobLogOptions.HeartbeatInterval"/> with what this process finds stranded
/// (<see cref="StrandedWork"/>; at once when that changes) and its writer's error while it fails (at once when the writer
/// begins to fail or recovers), marked stopped after the writer drained on a graceful
/// stop (it is registered before the writer, so it stops after it), each stamped with the ledger's clock
/// (<see cref="LedgerDatabase.Clock"/>: PostgreSQL's, not this machine's). A failed heartbeat (database down) is logged at
/// debug level and tried again at the next interval; it never reaches the business path.
/// </summary>
internal sealed class HostHeartbeat(
    LedgerRecorder recorder,
    LedgerSchema schema,
    JobLogContextFactory contexts,
    TimeProvider time,
    StrandedWork stranded,
    ILogger<HostHeartbeat> logger) : BackgroundService
{
    private const string H = "\"" + LedgerModel.Hosts + "\"";

    private readonly LedgerDatabase _database = contexts.Database;

    private readonly string _beat = contexts.Database.Upsert(new UpsertStatement(
        H,
        [
            ("InstanceId", "@p0"), ("Name", "@p1"), ("ProcessId", "@p2"), ("Release", "@p3"), ("StartedAt", "@p4"),
            ("LastHeartbeat", contexts.Database.Clock ?? "@p5"), ("Stranded", "@p6"), ("WriterError", "@p7"), ("WriterFailingSince", "@p8"),
        ],
        [("LastHeartbeat", null), ("Stranded", null), ("WriterError", null), ("WriterFailingSince", null)])
    {
        Key = "InstanceId",
    });

    private readonly DateTime _startedAt = time.GetUtcNow().UtcDateTime;
    private int _started;
    private bool _ran;

    /// <summary>Starts once, however often a host or test harness starts it.</summary>
    public override Task StartAsync(CancellationToken cancellationToken) =>
        Interlocked.Exchange(ref _started, 1) == 0 ? base.StartAsync(cancellationToken) : Task.CompletedTask;

    /// <summary>Marks this instance stopped (the writer has drained by now).</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        if (!_ran)
        {
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            var at = _database.Clock ?? "@p1";
            await ExecuteAsync($"UPDATE {H} SET \"StoppedAt\" = {at}, \"LastHeartbeat\" = {at} WHERE \"InstanceId\" = @p0", timeout.Token,
                recorder.InstanceId, time.GetUtcNow().UtcDateTime).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            Log.HeartbeatFailed(logger, ex, recorder.Options.HeartbeatInterval);
        }
    }

    /// <summary>Writes one heartbeat now (creating the row the first time).</summary>
    internal Task BeatAsync(CancellationToken cancellationToken)
    {
        var options = recorder.Options;
        _ran = true;
        // Read once: the writer may recover between the two.
        var (error, since) = (recorder.LastFailure, recorder.FailingSince);
        if (error is not null && error.Length > LedgerModel.WriterErrorLength)
        {
            error = string.Concat(error.AsSpan(0, LedgerModel.WriterErrorLength - 1), "…");
        }

        return ExecuteAsync(_beat, cancellationToken,
            recorder.InstanceId, options.Host, Environment.ProcessId, options.Release, _startedAt, time.GetUtcNow().UtcDateTime, stranded.Text,
            error, error is null ? null : since);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = recorder.Options.HeartbeatInterval;
        if (!recorder.Options.WriteHeartbeat)
        {
            return;
        }

        try
        {
            await schema.EnsureReadyAsync(stoppingToken).ConfigureAwait(false);
            while (!stoppingToken.IsCancellationRequested)
            {
                // Read before the beat, so that a line or a writer's state changed while it is written is written next.
                var (changed, failing) = (stranded.Changed, recorder.FailingChanged);
                try
                {
                    await BeatAsync(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.HeartbeatFailed(logger, ex, interval);
                }

                await NextBeatAsync(interval, changed, failing, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: StopAsync marks the row.
        }
    }

    /// <summary>
    /// Waits for the next interval, or less when a stranded line changes (<see cref="StrandedWork.Changed"/>) or the writer
    /// begins to fail or recovers (<see cref="LedgerRecorder.FailingChanged"/>).
    /// </summary>
    private async Task NextBeatAsync(TimeSpan interval, Task changed, Task failing, CancellationToken stoppingToken)
    {
        // Each wait is cancelled after the first ends, so that none stays attached to a change that may never come.
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        await Task.WhenAny(Task.Delay(interval, time, wait.Token), changed.WaitAsync(wait.Token), failing.WaitAsync(wait.Token)).ConfigureAwait(false);
        await wait.CancelAsync().ConfigureAwait(false);
        stoppingToken.ThrowIfCancellationRequested();
    }

    private async Task ExecuteAsync(string sql, CancellationToken cancellationToken, params object?[] values)
    {
        await using var executor = await _database.OpenAsync(contexts.ConnectionString, cancellationToken, pooled: false).ConfigureAwait(false);
        await using var command = _database.Command(executor.Connection, null, sql, values);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
