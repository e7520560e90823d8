using System.Diagnostics;
using JobLog.Internal;
using JobLog.Redaction;
using JobLog.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace JobLog.Recording;

/// <summary>
/// The single writer: drains the recorder's queue, commits batches, retries with backoff while the database is down
/// (keeping the records), and drains what is left on shutdown.
/// </summary>
internal sealed class LedgerWriter(
    LedgerRecorder recorder,
    LedgerStore store,
    LedgerSchema schema,
    JobLogMetrics metrics,
    TimeProvider time,
    ILogger<LedgerWriter> logger,
    Redactor redactor) : BackgroundService
{
    private readonly RecordMasking _masking = new(redactor);
    private readonly List<LedgerRecord> _batch = [];
    private readonly JobLogOptions _options = recorder.Options;
    private SqlExecutor? _executor;
    private int _attempt;
    private int _started;
    private bool _batchFromSpool;

    /// <summary>Starts once: MassTransit's test harness starts every hosted service again after the host did.</summary>
    public override Task StartAsync(CancellationToken cancellationToken) =>
        Interlocked.Exchange(ref _started, 1) == 0 ? base.StartAsync(cancellationToken) : Task.CompletedTask;

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);

        // Flush on shutdown: what is queued is written unless the database is down past the host's shutdown timeout.
        using var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        drain.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            while (_batch.Count > 0 || recorder.Reader.TryPeek(out _) || recorder.HasSpooled)
            {
                await WriteNextBatchAsync(drain.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            Log.LostOnShutdown(logger, _batch.Count + recorder.Backlog);
        }
        finally
        {
            if (_executor is not null)
            {
                await _executor.DisposeAsync().ConfigureAwait(false);
                _executor = null;
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await schema.EnsureReadyAsync(stoppingToken).ConfigureAwait(false);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                if (_batch.Count == 0 && !recorder.HasSpooled && !await recorder.Reader.WaitToReadAsync(stoppingToken).ConfigureAwait(false))
                {
                    return;
                }

                if (_options.Durability == LedgerDurability.Buffered && recorder.Backlog < _options.MaxBatchSize)
                {
                    await Task.Delay(_options.FlushInterval, time, stoppingToken).ConfigureAwait(false);
                }

                await WriteNextBatchAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // StopAsync drains the rest.
        }
    }

    /// <summary>One iteration: takes up to a batch of records and commits them, retrying until the database accepts them.</summary>
    /// <returns>The number of records committed.</returns>
    internal async Task<int> WriteNextBatchAsync(CancellationToken cancellationToken)
    {
        while (!_batchFromSpool && _batch.Count < _options.MaxBatchSize && recorder.Reader.TryRead(out var record))
        {
            _batch.Add(record);
        }

        if (_batch.Count == 0)
        {
            // The queue is empty: the spool's records, if any, are next (they are newer than anything queued before).
            recorder.TakeSpooled(_batch, _options.MaxBatchSize);
            _batchFromSpool = _batch.Count > 0;
        }

        if (_batch.Count == 0)
        {
            return 0;
        }

        // The redaction policy's choke point: every text is masked here, off the business path, before any row is written.
        foreach (var record in _batch)
        {
            _masking.Apply(record);
        }

        while (true)
        {
            try
            {
                var started = time.GetTimestamp();
                await CommitAsync(_batch, cancellationToken).ConfigureAwait(false);
                metrics.CommitDuration.Record(time.GetElapsedTime(started).TotalSeconds);
                break;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Log.BatchFailed(logger, ex, _batch.Count);
                await ResetExecutorAsync().ConfigureAwait(false);
                if (await IsReachableAsync(cancellationToken).ConfigureAwait(false)
                    && await CommitOneByOneAsync(cancellationToken).ConfigureAwait(false))
                {
                    // The database was up, so the batch itself was bad: stored record by record, the rejected dropped.
                    break;
                }

                _attempt++;
                recorder.SetFailing(true);
                var delay = Backoff(_attempt);
                Log.WriteFailed(logger, ex, _batch.Count + recorder.Backlog, _attempt, delay);
                await Task.Delay(delay, time, cancellationToken).ConfigureAwait(false);
            }
        }

        var count = _batch.Count;
        if (_attempt > 0)
        {
            Log.WriteRecovered(logger, count);
            _attempt = 0;
            recorder.SetFailing(false);
        }

        metrics.RecordsWritten.Add(count);
        metrics.BatchSize.Record(count);
        recorder.Committed(_batch);
        _batch.Clear();
        if (_batchFromSpool)
        {
            _batchFromSpool = false;
            recorder.SpoolReplayed();
        }

        return count;
    }

    private async Task CommitAsync(IReadOnlyList<LedgerRecord> records, CancellationToken cancellationToken)
    {
        _executor ??= await SqlExecutor.OpenAsync(
            store.Dialect, schema.ConnectionString, cancellationToken, _options.CommandTimeout,
            asynchronousCommit: _options.Durability == LedgerDurability.Buffered).ConfigureAwait(false);
        var plan = store.Plan(records);
        await store.CommitAsync(_executor, plan, _options.CommandTimeout, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Commits the batch record by record; drops a record only when the database is reachable right after it failed.</summary>
    /// <returns>False when the database became unreachable (the records not yet written stay in the batch).</returns>
    private async Task<bool> CommitOneByOneAsync(CancellationToken cancellationToken)
    {
        var remaining = new List<LedgerRecord>(_batch);
        var written = new List<LedgerRecord>();
        foreach (var record in remaining)
        {
            try
            {
                await CommitAsync([record], cancellationToken).ConfigureAwait(false);
                written.Add(record);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                await ResetExecutorAsync().ConfigureAwait(false);
                if (!await IsReachableAsync(cancellationToken).ConfigureAwait(false))
                {
                    recorder.Committed(written);
                    _batch.RemoveAll(written.Contains);
                    return false;
                }

                // Rejected for what it holds (a text the database refuses): its row is written with markers instead.
                if (RecordMasking.Degrade(record) is { } degraded && await TryCommitAsync(degraded, cancellationToken).ConfigureAwait(false))
                {
                    Log.RecordDegraded(logger, ex, record.GetType().Name);
                    written.Add(record);
                    continue;
                }

                metrics.RecordsDropped.Add(1);
                Log.RecordRejected(logger, ex, record.GetType().Name);
            }
        }

        return true;
    }

    private async Task<bool> TryCommitAsync(LedgerRecord record, CancellationToken cancellationToken)
    {
        try
        {
            await CommitAsync([record], cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.DegradedRecordRefused(logger, ex, record.GetType().Name);
            metrics.RecordingFailed("writer.degraded");
            await ResetExecutorAsync().ConfigureAwait(false);
            return false;
        }
    }

    private async Task<bool> IsReachableAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var executor = await SqlExecutor.OpenAsync(store.Dialect, schema.ConnectionString, cancellationToken, _options.CommandTimeout).ConfigureAwait(false);
            await using var command = executor.Connection.CreateCommand();
            // A write probe: a locked SQLite file or a read-only PostgreSQL must count as unreachable.
            command.CommandText = store.Dialect.Provider == LedgerProvider.Sqlite
                ? "BEGIN IMMEDIATE; ROLLBACK;"
                : "BEGIN; SELECT pg_is_in_recovery() = FALSE AND current_setting('transaction_read_only') = 'off'; ROLLBACK;";
            var writable = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
            return writable is null or true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return false;
        }
    }

    private async Task ResetExecutorAsync()
    {
        if (_executor is not null)
        {
            try
            {
                await _executor.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.ExecutorResetFailed(logger, ex);
                metrics.RecordingFailed("writer.reset");
            }

            _executor = null;
        }
    }

    private TimeSpan Backoff(int attempt)
    {
        var ms = Math.Min(_options.MaxRetryDelay.TotalMilliseconds, 100 * Math.Pow(2, Math.Min(attempt - 1, 16)));
        return TimeSpan.FromMilliseconds(ms);
    }
}
