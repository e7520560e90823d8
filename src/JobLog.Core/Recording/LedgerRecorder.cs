using System.Threading.Channels;
using JobLog.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.Recording;

/// <summary>
/// The one door to the ledger (DESIGN §4). Integrations enqueue records; a single writer commits them in batches.
/// <see cref="WaitCommittedAsync"/> implements group commit: every waiter is released by the commit that holds its record.
/// </summary>
internal sealed class LedgerRecorder
{
    private readonly Channel<LedgerRecord> _channel;
    private readonly JobLogOptions _options;
    private readonly JobLogMetrics _metrics;
    private readonly ILogger<LedgerRecorder> _logger;
    private readonly TimeProvider _time;
    private readonly Lock _enqueueLock = new();
    private long _enqueued;
    private long _committed;
    private long _dropped;
    private int _backlog;
    private volatile bool _failing;
    private TaskCompletionSource _commitSignal = NewSignal();

    public LedgerRecorder(IOptions<JobLogOptions> options, JobLogMetrics metrics, ILogger<LedgerRecorder> logger, TimeProvider time)
    {
        _options = options.Value;
        _metrics = metrics;
        _logger = logger;
        _time = time;
        _channel = Channel.CreateBounded<LedgerRecord>(new BoundedChannelOptions(_options.QueueCapacity)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait,
            AllowSynchronousContinuations = false,
        });
        metrics.ObserveBacklog(() => Volatile.Read(ref _backlog));
    }

    public JobLogOptions Options => _options;

    /// <summary>True while the writer cannot reach the database: the business path then does not wait.</summary>
    public bool IsFailing => _failing;

    public int Backlog => Volatile.Read(ref _backlog);

    public long Dropped => Interlocked.Read(ref _dropped);

    internal ChannelReader<LedgerRecord> Reader => _channel.Reader;

    /// <summary>Hands a record to the writer. Never blocks; returns the record's sequence number, or 0 when it was not queued.</summary>
    public long Enqueue(LedgerRecord record)
    {
        _metrics.Recorded(record);
        lock (_enqueueLock)
        {
            var sequence = _enqueued + 1;
            record.Sequence = sequence;
            if (_channel.Writer.TryWrite(record))
            {
                _enqueued = sequence;
                Interlocked.Increment(ref _backlog);
                return sequence;
            }
        }

        var dropped = Interlocked.Increment(ref _dropped);
        _metrics.RecordsDropped.Add(1);
        if (dropped == 1 || dropped % 10_000 == 0)
        {
            Log.QueueFull(_logger, _options.QueueCapacity, record.GetType().Name, dropped);
        }

        return 0;
    }

    /// <summary>
    /// In <see cref="LedgerDurability.Acknowledged"/> mode, waits until the record with <paramref name="sequence"/> is
    /// committed, at most <see cref="JobLogOptions.AcknowledgeTimeout"/>, and not at all while the database is failing.
    /// Never throws because of the ledger.
    /// </summary>
    public ValueTask WaitCommittedAsync(long sequence, CancellationToken cancellationToken = default)
    {
        if (_options.Durability != LedgerDurability.Acknowledged || sequence <= 0 || _failing
            || Interlocked.Read(ref _committed) >= sequence)
        {
            return ValueTask.CompletedTask;
        }

        return new ValueTask(WaitSlowAsync(sequence, _options.AcknowledgeTimeout, stopWhenFailing: true, cancellationToken));
    }

    /// <summary>Waits until everything enqueued so far is committed (tests, shutdown, CLI).</summary>
    public async Task<bool> FlushAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var target = Interlocked.Read(ref _enqueued);
        await WaitSlowAsync(target, timeout, stopWhenFailing: false, cancellationToken).ConfigureAwait(false);
        return Interlocked.Read(ref _committed) >= target;
    }

    internal void Committed(IReadOnlyList<LedgerRecord> batch)
    {
        if (batch.Count == 0)
        {
            return;
        }

        Interlocked.Add(ref _backlog, -batch.Count);
        var last = batch[^1].Sequence;
        if (last > Interlocked.Read(ref _committed))
        {
            Interlocked.Exchange(ref _committed, last);
        }

        Interlocked.Exchange(ref _commitSignal, NewSignal()).TrySetResult();
    }

    internal void SetFailing(bool failing)
    {
        _failing = failing;
        if (failing)
        {
            // Release the waiters: the business path does not wait for a database that is down.
            Interlocked.Exchange(ref _commitSignal, NewSignal()).TrySetResult();
        }
    }

    private async Task WaitSlowAsync(long sequence, TimeSpan timeout, bool stopWhenFailing, CancellationToken cancellationToken)
    {
        var deadline = _time.GetTimestamp() + (long)(timeout.TotalSeconds * _time.TimestampFrequency);
        while (Interlocked.Read(ref _committed) < sequence && !(stopWhenFailing && _failing))
        {
            var signal = Volatile.Read(ref _commitSignal);
            if (Interlocked.Read(ref _committed) >= sequence)
            {
                return;
            }

            var remaining = _time.GetElapsedTime(_time.GetTimestamp(), deadline);
            if (_time.GetTimestamp() >= deadline)
            {
                return;
            }

            try
            {
                await signal.Task.WaitAsync(remaining, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                return;
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
