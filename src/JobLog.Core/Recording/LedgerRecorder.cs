using System.Threading.Channels;
using JobLog.Internal;
using JobLog.Recording.Journal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.Recording;

/// <summary>
/// The one door to the ledger (docs/architecture.md#write-path). Integrations enqueue records; a single writer commits
/// them in batches. Every queued record is also appended to the local journal (<see cref="LedgerJournal"/>), and
/// records that do not fit in the queue go to the spool file, in order; <see cref="WaitCommittedAsync"/> waits until a
/// record is durable (<see cref="CommitWaiters"/>).
/// </summary>
internal sealed partial class LedgerRecorder : IDisposable, IAsyncDisposable
{
    /// <summary>A journal segment is closed at this size, and deleted once its records are committed.</summary>
    internal const long JournalSegmentBytes = 16 << 20;

    private readonly Channel<QueuedRecord> _channel;
    private readonly JobLogOptions _options;
    private readonly JobLogMetrics _metrics;
    private readonly ILogger<LedgerRecorder> _logger;
    private readonly TimeProvider _time;
    private readonly Lock _enqueueLock = new();
    private long _enqueued;
    private long _dropped;
    private int _backlog;
    private readonly CommitWaiters _waiters;
    private LedgerSpool? _spool;
    private readonly RecordMasking _masking;
    private bool _spoolUnavailable;
    private bool _spooling;
    private long _spooled;
    private readonly LedgerJournal? _journal;
    private readonly SteadyRate _drops;
    private readonly SteadyRate _spoolCheckFailures;
    private readonly SteadyRate _timedOut;
    private readonly ITimer? _spoolCheck;
    private long _flushTarget;
    private long _writtenUpTo;
    private TaskCompletionSource _flushRequested = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public LedgerRecorder(IOptions<JobLogOptions> options, JobLogMetrics metrics, ILogger<LedgerRecorder> logger, TimeProvider time, Redaction.Redactor redactor)
    {
        _masking = new RecordMasking(redactor);
        _options = options.Value;
        _metrics = metrics;
        _logger = logger;
        _time = time;
        _drops = new SteadyRate(time, TimeSpan.FromSeconds(10));
        _spoolCheckFailures = new SteadyRate(time, TimeSpan.FromSeconds(10));
        _timedOut = new SteadyRate(time, TimeSpan.FromSeconds(10));
        _waiters = new CommitWaiters(metrics, time, _options.AcknowledgeTimeout, journalSuffices: _options.Durability == LedgerDurability.Journaled, timedOut: expired =>
        {
            if (_timedOut.Add(expired, out var count))
            {
                Log.AcknowledgedBeforeDurable(_logger, count, _options.AcknowledgeTimeout);
            }
        });
        _channel = Channel.CreateBounded<QueuedRecord>(new BoundedChannelOptions(_options.QueueCapacity)
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
            else
            {
                if (LedgerSpool.AnyLeftOver(directory, LedgerName(connectionString), formerly: connectionString))
                {
                    _spool = ClaimSpool(adopt: true);
                    _spooling = _spool is { PendingBytes: > 0 };
                }

                if (_options.Durability != LedgerDurability.Buffered)
                {
                    _journal = OpenJournal(directory, LedgerName(connectionString), connectionString);
                }
                else
                {
                    _adopter = OpenAdopter(directory, LedgerName(connectionString), connectionString);
                }

                _spoolCheck = _time.CreateTimer(_ => CheckSpool(), null, Journal.LedgerJournal.IdleCheck, Journal.LedgerJournal.IdleCheck);
            }
        }
    }

    /// <summary>
    /// Every second (a timer): while records wait in the spool file, whether it is still at its path; when it was deleted
    /// (an operator, a temporary-file cleaner), it is written again from its open handle (<see cref="LedgerSpool.CheckFile"/>),
    /// so that what was spooled survives a crash again without waiting for the next record (session 23). A failure is
    /// logged at a steady rate and tried again at the next check.
    /// </summary>
    internal void CheckSpool()
    {
        var spool = Volatile.Read(ref _spool);
        if (spool is not { PendingBytes: > 0 })
        {
            return;
        }

        try
        {
            lock (_enqueueLock)
            {
                if (ReferenceEquals(_spool, spool))
                {
                    spool.CheckFile();
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            if (_spoolCheckFailures.Add(1, out _))
            {
                Log.SpoolAppendFailed(_logger, ex, spool.Path);
            }
        }
    }

    public JobLogOptions Options => _options;

    /// <summary>This process's host instance (<see cref="HostLog.InstanceId"/>): every run it records carries it.</summary>
    public Guid InstanceId { get; } = Guid.NewGuid();

    /// <summary>True while the writer cannot reach the database: the business path then does not wait.</summary>
    public bool IsFailing => _waiters.IsFailing;

    public int Backlog => Volatile.Read(ref _backlog);

    /// <summary>The highest sequence up to which every queued record is committed.</summary>
    internal long CommittedUpTo => _waiters.Committed;

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

    internal ChannelReader<QueuedRecord> Reader => _channel.Reader;

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
            _spool ??= ClaimSpool();

            // The writer masks free texts; a record bound for the disk is masked before it gets there.
            if (_spool is not null && _spool.TryAppend(_masking.Apply(record)))
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
            }
        }

        var dropped = Interlocked.Increment(ref _dropped);
        _metrics.RecordsDropped.Add(1);
        if (_drops.Add(1, out var count))
        {
            Log.QueueFull(_logger, _options.QueueCapacity, count, record.GetType().Name, dropped);
        }

        return 0;
    }

    /// <summary>Under the enqueue lock: the record into the in-memory queue, when it has room.</summary>
    private bool TryQueue(LedgerRecord record, long sequence)
    {
        var queued = new QueuedRecord(record, sequence);
        if (!_channel.Writer.TryWrite(queued))
        {
            return false;
        }

        _journal?.Append(queued);
        _enqueued = sequence;
        Interlocked.Increment(ref _backlog);
        return true;
    }

    /// <summary>
    /// Waits until the record with <paramref name="sequence"/> is durable, at most <see cref="JobLogOptions.AcknowledgeTimeout"/>:
    /// in the local journal (<see cref="LedgerDurability.Journaled"/>), or committed (<see cref="LedgerDurability.Committed"/>;
    /// in the journal while the database is down). Without a usable journal, not at all while the database is down;
    /// never in <see cref="LedgerDurability.Buffered"/> mode. Never throws because of the ledger.
    /// </summary>
    public ValueTask WaitCommittedAsync(long sequence, CancellationToken cancellationToken = default)
    {
        if (_options.Durability == LedgerDurability.Buffered || sequence <= 0 || _options.AcknowledgeTimeout <= TimeSpan.Zero)
        {
            return ValueTask.CompletedTask;
        }

        if (_journal is not null && (_options.Durability == LedgerDurability.Journaled || _waiters.IsFailing) && _waiters.Durable < sequence)
        {
            // The journal is what this wait needs: append what is queued now rather than wait for the journal's thread.
            _journal.AppendQueued(sequence);
        }

        return _waiters.WaitAsync(sequence, cancellationToken);
    }

    private readonly List<Action> _beforeStop = [];

    /// <summary>
    /// Runs <paramref name="enqueueOpen"/> when the writer begins to stop, before its last drain: a source holding
    /// records it would otherwise enqueue later (an outbound response still open) enqueues them then.
    /// </summary>
    internal void BeforeStop(Action enqueueOpen)
    {
        lock (_beforeStop)
        {
            _beforeStop.Add(enqueueOpen);
        }
    }

    /// <summary>Called by the writer once, as it stops; a source that fails is logged and the others still run.</summary>
    internal void Stopping()
    {
        Action[] sources;
        lock (_beforeStop)
        {
            sources = [.. _beforeStop];
        }

        foreach (var source in sources)
        {
            try
            {
                source();
            }
            catch (Exception ex)
            {
                Log.BeforeStopFailed(_logger, ex);
            }
        }
    }

    /// <summary>True while a <see cref="FlushAsync"/> waits for records not yet committed: the writer holds nothing back then.</summary>
    internal bool FlushPending => Interlocked.Read(ref _flushTarget) > _waiters.Committed;

    /// <summary>Completed when a <see cref="FlushAsync"/> starts (wakes a writer that holds dispatches back).</summary>
    internal Task FlushRequested => Volatile.Read(ref _flushRequested).Task;

    /// <summary>Waits until everything enqueued so far is committed (tests, shutdown, CLI).</summary>
    public async Task<bool> FlushAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var target = Interlocked.Read(ref _enqueued);
        long seen;
        while ((seen = Interlocked.Read(ref _flushTarget)) < target && Interlocked.CompareExchange(ref _flushTarget, target, seen) != seen)
        {
        }

        Interlocked.Exchange(ref _flushRequested, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        var deadline = _time.GetTimestamp() + (long)(timeout.TotalSeconds * _time.TimestampFrequency);
        while (_waiters.Committed < target)
        {
            var signal = _waiters.NextCommit;
            if (_waiters.Committed >= target)
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
                await signal.WaitAsync(TimeSpan.FromSeconds((double)remaining / _time.TimestampFrequency), _time, cancellationToken)
                    .ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
            {
                break;
            }
        }

        return _waiters.Committed >= target;
    }

    /// <summary>
    /// What this ledger's journal and spool files are named after: its database (<see cref="Storage.LedgerDatabase.Identity"/>),
    /// not the connection string, which a restart may change (a rotated password) without changing the database.
    /// </summary>
    internal string LedgerName(string connectionString) => Storage.LedgerDatabase.For(_options.Provider).Identity(connectionString);

    private LedgerSpool? ClaimSpool(bool adopt = false)
    {
        if (_spoolUnavailable || _options.SpoolDirectory is not { Length: > 0 } directory || _options.ConnectionString is not { } connectionString)
        {
            return null;
        }

        var spool = LedgerSpool.Claim(directory, LedgerName(connectionString), _options.MaxSpoolBytes, _logger, formerly: connectionString, adopt);
        _spoolUnavailable = spool is null;
        if (spool is not null)
        {
            spool.WrittenAgain = (path, bytes) =>
            {
                Log.SpoolWrittenAgain(_logger, path, bytes);

                // The journal is in the same directory, and idle while records go to the spool: it checks its files now
                // rather than at its next idle check, up to a second later (session 23: a kill in that second lost the
                // records queued before the overflow). Never the other way round: the journal's thread must not wait
                // for the enqueue lock that is held here.
                try
                {
                    _journal?.Segments.CheckFiles();
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    Log.JournalUnavailable(_logger, path, ex.Message);
                }
            };
        }

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

    /// <summary>
    /// The writer committed <paramref name="batch"/>: the backlog shrinks, and the waiters and the journal move up to its
    /// last record, or to just before <paramref name="heldFrom"/>, the lowest record the writer holds back (0: none).
    /// </summary>
    internal void Committed(IReadOnlyList<QueuedRecord> batch, long heldFrom = 0)
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

        // The highest record written so far: a held dispatch written alone later is older than records committed
        // before it, and once it is in, they count too (the writer is the only caller).
        last = _writtenUpTo = Math.Max(_writtenUpTo, last);
        if (heldFrom > 0)
        {
            // A held record is not in the database: the journal keeps it, and a flush waits for it.
            last = Math.Min(last, heldFrom - 1);
        }

        if (last > _waiters.Committed)
        {
            _journal?.Checkpoint(last);
        }

        _waiters.Release(last);
    }

    /// <summary>
    /// True when the queued record with <paramref name="sequence"/> is in the journal (appended, with the operating system),
    /// in <see cref="LedgerDurability.Journaled"/> mode: the writer may then hold it back for a while (<see cref="HeldDispatches"/>).
    /// </summary>
    internal bool IsJournaled(long sequence) =>
        _journal is not null && _options.Durability == LedgerDurability.Journaled && _waiters.Durable >= sequence && _waiters.Committed < sequence;

    /// <summary>
    /// True when every record the writer has not committed is on disk: each queued one in the journal (none refused
    /// since the last commit), the others still in the spool or in the journals of stopped processes, which stay for the
    /// next process started on the directory.
    /// </summary>
    internal bool KeptOnDisk => _journal is not null && _waiters.Durable >= Interlocked.Read(ref _enqueued);

    /// <summary>The writer cannot reach the database (waiters are released: the business path does not wait for it), or can again.</summary>
    internal void SetFailing(bool failing)
    {
        TaskCompletionSource? changed = null;
        lock (_failingLock)
        {
            if (failing)
            {
                Interlocked.CompareExchange(ref _failingSince, _time.GetUtcNow().UtcTicks, 0);
            }
            else
            {
                Interlocked.Exchange(ref _failingSince, 0);
            }

            if (_waiters.IsFailing != failing)
            {
                changed = _failingChanged;
                _failingChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            _waiters.SetFailing(failing);
        }

        changed?.TrySetResult();
    }

    private readonly Lock _failingLock = new();
    private TaskCompletionSource _failingChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Completes when the writer begins to fail or recovers after this was read (not at each failed attempt of one outage):
    /// the heartbeat writes the writer's error, or its end, to this host's row at once rather than at its next interval.
    /// </summary>
    internal Task FailingChanged
    {
        get
        {
            lock (_failingLock)
            {
                return _failingChanged.Task;
            }
        }
    }

    /// <summary>
    /// The writer's start-up migration failed with <paramref name="exception"/> (noted for <see cref="LastFailure"/>: the
    /// health check and the dashboard say why, session 33), or, null, the schema is ready after such failures.
    /// </summary>
    internal void StartFailing(Exception? exception)
    {
        if (exception is not null)
        {
            NoteFailure(exception);
        }

        SetFailing(exception is not null);
    }

    private long _failingSince;

    /// <summary>While <see cref="IsFailing"/>, since when (UTC, the first failed attempt of this outage); null otherwise.</summary>
    internal DateTime? FailingSince => IsFailing && Interlocked.Read(ref _failingSince) is var ticks and > 0 ? new DateTime(ticks, DateTimeKind.Utc) : null;

    private volatile string? _lastFailure;

    /// <summary>
    /// While <see cref="IsFailing"/>, why the writer's last attempt failed, in the database's words (its first line,
    /// bounded): a database that answers but refuses the writes (its disk full, read-only) is not an unreachable one
    /// (session 32). Null otherwise.
    /// </summary>
    public string? LastFailure => IsFailing ? _lastFailure : null;

    /// <summary>Notes why the writer's attempt failed (<see cref="LastFailure"/>).</summary>
    internal void NoteFailure(Exception exception) => _lastFailure = LogValue.Brief(exception);

    private string? _ledgerMissing;
    private long _ledgerMoves;

    /// <summary>
    /// The ledger's name while the writer keeps its records because the ledger it had open was deleted or replaced and no
    /// migrated ledger is at its path again (MigrateOnStartup off); null otherwise (for the health check).
    /// </summary>
    internal string? LedgerMissing => Volatile.Read(ref _ledgerMissing);

    /// <summary>How many times the writer found the ledger it had open deleted or replaced (for the health check).</summary>
    internal long LedgerMoves => Interlocked.Read(ref _ledgerMoves);

    /// <summary>The writer found the ledger it had open deleted or replaced; <paramref name="missing"/> while it is not there again.</summary>
    internal void LedgerMoved(string ledger, bool missing)
    {
        Interlocked.Increment(ref _ledgerMoves);
        Volatile.Write(ref _ledgerMissing, missing ? ledger : null);
    }

    /// <summary>The writer committed to a ledger at its path again.</summary>
    internal void LedgerFound() => Volatile.Write(ref _ledgerMissing, null);

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>At the stop: the drops and the released waits that came after their last report (at most every 10 s).</summary>
    private void ReportUnreported()
    {
        if (_drops.TakeUnreported() is > 0 and var dropped)
        {
            Log.DroppedSinceLastReport(_logger, dropped, Interlocked.Read(ref _dropped));
        }

        if (_timedOut.TakeUnreported() is > 0 and var released)
        {
            Log.AcknowledgedBeforeDurable(_logger, released, _options.AcknowledgeTimeout);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_spoolCheck is not null)
        {
            await _spoolCheck.DisposeAsync().ConfigureAwait(false);
        }

        lock (_enqueueLock)
        {
            _spool?.Dispose();
        }

        _waiters.Dispose();
        ReportUnreported();
        LetStoppedSpoolsGo();
        if (_journal is not null)
        {
            // What is committed by now is checkpointed: what is left in the journal is what the next process replays.
            await _journal.DisposeAsync().ConfigureAwait(false);
        }

        _adopter?.Dispose();
    }
}

/// <summary>A record in the recorder's queue, with its position (0 for a record replayed from the spool file).</summary>
internal readonly record struct QueuedRecord(LedgerRecord Record, long Sequence);
