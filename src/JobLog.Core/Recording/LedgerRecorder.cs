using System.Threading.Channels;
using JobLog.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.Recording;

/// <summary>
/// The one door to the ledger (DESIGN §4). Integrations enqueue records; a single writer commits them in batches.
/// <see cref="WaitCommittedAsync"/> implements group commit: every waiter is released by the commit that holds its record.
/// </summary>
internal sealed class LedgerRecorder : IDisposable
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
    private readonly Lock _waitLock = new();
    private readonly PriorityQueue<Waiter, long> _bySequence = new();
    private readonly Queue<Waiter> _byDeadline = new();
    private ITimer? _watchdog;
    private LedgerSpool? _spool;
    private readonly RecordMasking _masking;
    private bool _spoolUnavailable;
    private bool _spooling;
    private long _spooled;

    public LedgerRecorder(IOptions<JobLogOptions> options, JobLogMetrics metrics, ILogger<LedgerRecorder> logger, TimeProvider time, Redaction.Redactor redactor)
    {
        _masking = new RecordMasking(redactor);
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
        // A slot is claimed at the first overflow, or now when a stopped process left records: they are older than
        // anything queued from now on, so everything goes after them.
        // A directory someone else could have planted records in is refused now, loudly, and never used.
        if (_options.SpoolDirectory is { Length: > 0 } directory && _options.ConnectionString is { } connectionString)
        {
            if (SpoolFiles.CheckDirectory(directory, create: false) is { } refusal)
            {
                Log.SpoolDirectoryRefused(_logger, directory, refusal);
                _spoolUnavailable = true;
            }
            else if (LedgerSpool.AnyLeftOver(directory, connectionString))
            {
                _spool = ClaimSpool();
                _spooling = _spool is { PendingBytes: > 0 };
            }
        }
    }

    public JobLogOptions Options => _options;

    /// <summary>True while the writer cannot reach the database: the business path then does not wait.</summary>
    public bool IsFailing => _failing;

    public int Backlog => Volatile.Read(ref _backlog);

    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Records written to the spool file since start (they reach the ledger when the writer has caught up).</summary>
    public long Spooled => Interlocked.Read(ref _spooled);

    /// <summary>True when spooled records wait to be replayed.</summary>
    /// <remarks>Read by the writer without the lock; the spool is created under it, by an enqueueing thread.</remarks>
    internal bool HasSpooled => Volatile.Read(ref _spool) is { PendingBytes: > 0 };

    /// <summary>True while records go to the spool file instead of the queue (until the writer has replayed it).</summary>
    public bool IsSpooling
    {
        get
        {
            lock (_enqueueLock)
            {
                return _spooling;
            }
        }
    }

    internal ChannelReader<LedgerRecord> Reader => _channel.Reader;

    /// <summary>
    /// Hands a record to the writer. Never blocks; returns the record's sequence number, or 0 when it was not queued
    /// (spooled to disk, or dropped): nobody waits for such a record.
    /// </summary>
    public long Enqueue(LedgerRecord record)
    {
        _metrics.Recorded(record);
        lock (_enqueueLock)
        {
            var sequence = _enqueued + 1;
            if (!_spooling && TryQueue(record, sequence))
            {
                return sequence;
            }

            // The queue is full (or older records wait in the spool: order is kept, so everything goes there until the
            // writer has replayed it).
            record.Sequence = 0;
            _spool ??= ClaimSpool();
            if (_spool is not null)
            {
                // The writer masks free texts; a record bound for the disk is masked before it gets there.
                _masking.Apply(record);
            }

            if (_spool is not null && _spool.TryAppend(record))
            {
                if (!_spooling)
                {
                    _spooling = true;
                    Log.Spooling(_logger, _options.QueueCapacity, _spool.Path);
                }

                Interlocked.Increment(ref _spooled);
                _metrics.RecordsSpooled.Add(1);
                return 0;
            }

            // The spool failed (not merely full): given up, and the record tries the queue.
            if (_spool is { AppendFailure: { } failure } failed)
            {
                GiveUpSpoolLocked(failed, failure);
                if (TryQueue(record, sequence))
                {
                    return sequence;
                }

                record.Sequence = 0;
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

    /// <summary>Under the enqueue lock: the record into the in-memory queue, when it has room.</summary>
    private bool TryQueue(LedgerRecord record, long sequence)
    {
        record.Sequence = sequence;
        if (!_channel.Writer.TryWrite(record))
        {
            return false;
        }

        _enqueued = sequence;
        Interlocked.Increment(ref _backlog);
        return true;
    }

    /// <summary>
    /// In <see cref="LedgerDurability.Acknowledged"/> mode, waits until the record with <paramref name="sequence"/> is
    /// committed, at most <see cref="JobLogOptions.AcknowledgeTimeout"/>, and not at all while the database is failing.
    /// Never throws because of the ledger.
    /// </summary>
    /// <remarks>
    /// Waiters queue by sequence and each is released once, by the commit that holds its record; deadlines are kept by
    /// one timer for all waiters (no timer per wait).
    /// </remarks>
    public ValueTask WaitCommittedAsync(long sequence, CancellationToken cancellationToken = default)
    {
        if (_options.Durability != LedgerDurability.Acknowledged || sequence <= 0 || _failing
            || Interlocked.Read(ref _committed) >= sequence || _options.AcknowledgeTimeout <= TimeSpan.Zero)
        {
            return ValueTask.CompletedTask;
        }

        var now = _time.GetTimestamp();
        var waiter = new Waiter(sequence, now, now + (long)(_options.AcknowledgeTimeout.TotalSeconds * _time.TimestampFrequency));
        lock (_waitLock)
        {
            // Checked again under the lock: a commit or an outage may have released everyone in between.
            if (_failing || Interlocked.Read(ref _committed) >= sequence)
            {
                return ValueTask.CompletedTask;
            }

            _bySequence.Enqueue(waiter, sequence);
            _byDeadline.Enqueue(waiter);
            _watchdog ??= _time.CreateTimer(static state => ((LedgerRecorder)state!).Expire(), this, WatchdogPeriod, WatchdogPeriod);
        }

        if (cancellationToken.CanBeCanceled)
        {
            waiter.Cancellation = cancellationToken.UnsafeRegister(static state => ((Waiter)state!).TrySetResult(), waiter);
        }

        return new ValueTask(waiter.Task);
    }

    /// <summary>Waits until everything enqueued so far is committed (tests, shutdown, CLI).</summary>
    public async Task<bool> FlushAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var target = Interlocked.Read(ref _enqueued);
        var deadline = _time.GetTimestamp() + (long)(timeout.TotalSeconds * _time.TimestampFrequency);
        while (Interlocked.Read(ref _committed) < target)
        {
            var signal = Volatile.Read(ref _commitSignal);
            if (Interlocked.Read(ref _committed) >= target)
            {
                break;
            }

            var remaining = deadline - _time.GetTimestamp();
            if (remaining <= 0)
            {
                break;
            }

            try
            {
                await signal.Task.WaitAsync(TimeSpan.FromSeconds((double)remaining / _time.TimestampFrequency), _time, cancellationToken)
                    .ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
            {
                break;
            }
        }

        return Interlocked.Read(ref _committed) >= target;
    }

    private LedgerSpool? ClaimSpool()
    {
        if (_spoolUnavailable || _options.SpoolDirectory is not { Length: > 0 } directory || _options.ConnectionString is not { } connectionString)
        {
            return null;
        }

        var spool = LedgerSpool.Claim(directory, connectionString, _options.MaxSpoolBytes, _logger);
        _spoolUnavailable = spool is null;
        return spool;
    }

    /// <summary>
    /// The writer, when its queue is empty: the next spooled records, oldest first (none when nothing is spooled).
    /// Their position in the file moves with <see cref="SpoolReplayed"/>, after their commit.
    /// </summary>
    internal void TakeSpooled(List<LedgerRecord> into, int max)
    {
        var spool = Volatile.Read(ref _spool);
        if (spool is null || spool.PendingBytes <= 0)
        {
            return;
        }

        int unreadable;
        try
        {
            spool.ReadNext(into, max, out unreadable);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            into.Clear();
            GiveUpSpool(spool, ex);
            return;
        }

        if (unreadable > 0)
        {
            Interlocked.Add(ref _dropped, unreadable);
            _metrics.RecordsDropped.Add(unreadable);
            Log.SpoolUnreadable(_logger, unreadable, spool.Path);
        }

        if (into.Count == 0)
        {
            // Only unreadable lines: skipped for good.
            SpoolReplayed();
        }
    }

    /// <summary>The records of the last <see cref="TakeSpooled"/> are committed; once the file is replayed, records queue again.</summary>
    internal void SpoolReplayed()
    {
        var spool = Volatile.Read(ref _spool);
        if (spool is null)
        {
            return;
        }

        spool.MarkReplayed();
        try
        {
            lock (_enqueueLock)
            {
                if (_spooling && spool.TryFinish())
                {
                    _spooling = false;
                    Log.SpoolReplayed(_logger, Interlocked.Read(ref _spooled));
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            GiveUpSpool(spool, ex);
        }
    }

    /// <summary>
    /// An I/O error in the spool: logged, the spool is not used again by this process and records queue in memory.
    /// Never stops the host.
    /// </summary>
    private void GiveUpSpool(LedgerSpool spool, Exception exception)
    {
        lock (_enqueueLock)
        {
            GiveUpSpoolLocked(spool, exception);
        }
    }

    private void GiveUpSpoolLocked(LedgerSpool spool, Exception exception)
    {
        if (!ReferenceEquals(_spool, spool))
        {
            return;
        }

        Log.SpoolFailed(_logger, exception, spool.Path, spool.PendingBytes);
        Volatile.Write(ref _spool, null);
        _spoolUnavailable = true;
        _spooling = false;
        spool.Dispose();
    }

    internal void Committed(IReadOnlyList<LedgerRecord> batch)
    {
        if (batch.Count == 0)
        {
            return;
        }

        // Spooled records (sequence 0) were never counted in the backlog.
        var queued = 0;
        var last = 0L;
        foreach (var record in batch)
        {
            if (record.Sequence > 0)
            {
                queued++;
                last = Math.Max(last, record.Sequence);
            }
        }

        Interlocked.Add(ref _backlog, -queued);
        if (last > Interlocked.Read(ref _committed))
        {
            Interlocked.Exchange(ref _committed, last);
        }

        lock (_waitLock)
        {
            var committed = Interlocked.Read(ref _committed);
            var now = _time.GetTimestamp();
            while (_bySequence.TryPeek(out var waiter, out var sequence) && sequence <= committed)
            {
                _bySequence.Dequeue();
                if (waiter.Release())
                {
                    _metrics.AcknowledgeWait.Record((double)(now - waiter.Started) / _time.TimestampFrequency);
                }
            }

            while (_byDeadline.TryPeek(out var head) && head.Task.IsCompleted)
            {
                _byDeadline.Dequeue();
            }
        }

        Interlocked.Exchange(ref _commitSignal, NewSignal()).TrySetResult();
    }

    internal void SetFailing(bool failing)
    {
        _failing = failing;
        if (failing)
        {
            // Release the waiters: the business path does not wait for a database that is down.
            ReleaseAll();
            Interlocked.Exchange(ref _commitSignal, NewSignal()).TrySetResult();
        }
    }

    private TimeSpan WatchdogPeriod =>
        TimeSpan.FromMilliseconds(Math.Clamp(_options.AcknowledgeTimeout.TotalMilliseconds / 10, 5, 100));

    /// <summary>The watchdog: releases waiters past their deadline; stops itself when nobody waits.</summary>
    private void Expire()
    {
        var now = _time.GetTimestamp();
        lock (_waitLock)
        {
            while (_byDeadline.TryPeek(out var head) && (head.Task.IsCompleted || head.Deadline <= now))
            {
                _byDeadline.Dequeue();
                head.Release();
            }

            if (_byDeadline.Count == 0)
            {
                // Released waiters may still sit in the sequence queue; they hold nothing but memory.
                _bySequence.Clear();
                _watchdog?.Dispose();
                _watchdog = null;
            }
        }
    }

    private void ReleaseAll()
    {
        lock (_waitLock)
        {
            while (_byDeadline.TryDequeue(out var waiter))
            {
                waiter.Release();
            }

            _bySequence.Clear();
        }
    }

    public void Dispose()
    {
        lock (_enqueueLock)
        {
            _spool?.Dispose();
        }

        _watchdog?.Dispose();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>One business-path wait for a commit.</summary>
    private sealed class Waiter(long sequence, long started, long deadline) : TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public long Sequence { get; } = sequence;

        public long Started { get; } = started;

        public long Deadline { get; } = deadline;

        public CancellationTokenRegistration Cancellation { get; set; }

        /// <returns>True when this call released the waiter (false: released before, by a deadline or a cancellation).</returns>
        public bool Release()
        {
            if (!TrySetResult())
            {
                return false;
            }

            Cancellation.Dispose();
            return true;
        }
    }
}
