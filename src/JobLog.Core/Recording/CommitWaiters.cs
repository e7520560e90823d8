using JobLog.Internal;

namespace JobLog.Recording;

/// <summary>
/// Group commit for the business path: each wait is released once, when its record is durable (<see cref="Durable"/>:
/// committed, or appended to the local journal when that counts), by its deadline, or when nothing can make it durable
/// (the database failing without a usable journal). Waiters queue by sequence; deadlines are kept by one timer for all
/// waiters (no timer per wait). See docs/architecture.md#write-path.
/// </summary>
/// <param name="metrics">Records each wait's duration.</param>
/// <param name="time">The clock.</param>
/// <param name="timeout">The longest wait.</param>
/// <param name="journalSuffices">True in Journaled mode: a journaled record is durable enough even while the database is up.</param>
/// <param name="timedOut">
/// Told how many waits its deadline released before their records were durable: the business path went on with those
/// records in memory only (session 27: silent before).
/// </param>
internal sealed class CommitWaiters(JobLogMetrics metrics, TimeProvider time, TimeSpan timeout, bool journalSuffices = false, Action<int>? timedOut = null) : IDisposable
{
    private readonly Lock _lock = new();
    private readonly PriorityQueue<Waiter, long> _bySequence = new();
    private readonly Queue<Waiter> _byDeadline = new();
    private TaskCompletionSource _commitSignal = NewSignal();
    private ITimer? _watchdog;
    private long _committed;
    private long _journaled;
    private long _refusedUpTo;
    private volatile bool _failing;
    private volatile bool _journalUsable;

    /// <summary>The highest sequence committed so far.</summary>
    public long Committed => Interlocked.Read(ref _committed);

    /// <summary>True while the writer cannot reach the database: nobody waits then.</summary>
    public bool IsFailing => _failing;

    /// <summary>Completed by the next commit (or outage); a new signal replaces it each time.</summary>
    public Task NextCommit => Volatile.Read(ref _commitSignal).Task;

    /// <summary>
    /// The highest sequence durable enough to acknowledge: committed, or journaled when the journal counts (Journaled
    /// mode, or any mode while the database is failing) and appends.
    /// </summary>
    public long Durable
    {
        get
        {
            var committed = Committed;

            // A record the journal refused is durable only once committed: until then, the journal's watermark (which
            // later appends move past it) counts for nobody.
            return _journalUsable && (journalSuffices || _failing) && committed >= Interlocked.Read(ref _refusedUpTo)
                ? Math.Max(committed, Interlocked.Read(ref _journaled))
                : committed;
        }
    }

    /// <summary>Nothing can make a record durable now: the database fails and the journal does not append.</summary>
    private bool Hopeless => _failing && !_journalUsable;

    /// <summary>Waits until <paramref name="sequence"/> is durable, at most the timeout; completed at once when it is, or when nothing can make it so.</summary>
    public ValueTask WaitAsync(long sequence, CancellationToken cancellationToken)
    {
        if (Hopeless || Durable >= sequence)
        {
            return ValueTask.CompletedTask;
        }

        var now = time.GetTimestamp();
        var waiter = new Waiter(now, now + (long)(timeout.TotalSeconds * time.TimestampFrequency));
        lock (_lock)
        {
            // Checked again under the lock: a commit, an append or an outage may have released everyone in between.
            if (Hopeless || Durable >= sequence)
            {
                return ValueTask.CompletedTask;
            }

            _bySequence.Enqueue(waiter, sequence);
            _byDeadline.Enqueue(waiter);
            _watchdog ??= time.CreateTimer(static state => ((CommitWaiters)state!).Expire(), this, WatchdogPeriod, WatchdogPeriod);
        }

        if (cancellationToken.CanBeCanceled)
        {
            waiter.Cancellation = cancellationToken.UnsafeRegister(static state => ((Waiter)state!).TrySetResult(), waiter);
        }

        return new ValueTask(waiter.Task);
    }

    /// <summary>Records up to <paramref name="last"/> are committed: their waiters are released.</summary>
    public void Release(long last)
    {
        if (last > Interlocked.Read(ref _committed))
        {
            Interlocked.Exchange(ref _committed, last);
        }

        ReleaseDurable();
        Signal();
    }

    /// <summary>Records up to <paramref name="last"/> are in the journal (with the operating system).</summary>
    public void Journaled(long last)
    {
        _journalUsable = true;
        if (last > Interlocked.Read(ref _journaled))
        {
            Interlocked.Exchange(ref _journaled, last);
        }

        ReleaseDurable();
    }

    /// <summary>The journal is used from now on (it was opened).</summary>
    public void SetJournalUsable() => _journalUsable = true;

    /// <summary>
    /// The journal could not take records up to <paramref name="upTo"/> (the disk refused, or the journal failed): their
    /// waiters wait for the database, or for nothing while it fails.
    /// </summary>
    public void JournalRefused(long upTo)
    {
        long seen;
        while ((seen = Interlocked.Read(ref _refusedUpTo)) < upTo && Interlocked.CompareExchange(ref _refusedUpTo, upTo, seen) != seen)
        {
        }

        _journalUsable = false;
        if (Hopeless)
        {
            ReleaseAll();
        }
    }

    private void ReleaseDurable()
    {
        lock (_lock)
        {
            var durable = Durable;
            var now = time.GetTimestamp();
            while (_bySequence.TryPeek(out var waiter, out var sequence) && sequence <= durable)
            {
                _bySequence.Dequeue();
                if (waiter.Release())
                {
                    metrics.AcknowledgeWait.Record((double)(now - waiter.Started) / time.TimestampFrequency);
                }
            }

            while (_byDeadline.TryPeek(out var head) && head.Task.IsCompleted)
            {
                _byDeadline.Dequeue();
            }
        }
    }

    /// <summary>
    /// The database failed or is back. While it fails the business path does not wait for it: a journaled record is
    /// enough, and without a usable journal nothing is (every waiter is released).
    /// </summary>
    public void SetFailing(bool failing)
    {
        _failing = failing;
        if (failing)
        {
            if (Hopeless)
            {
                ReleaseAll();
            }
            else
            {
                ReleaseDurable();
            }

            Signal();
        }
    }

    private void ReleaseAll()
    {
        lock (_lock)
        {
            while (_byDeadline.TryDequeue(out var waiter))
            {
                waiter.Release();
            }

            _bySequence.Clear();
        }
    }

    public void Dispose() => _watchdog?.Dispose();

    private void Signal() => Interlocked.Exchange(ref _commitSignal, NewSignal()).TrySetResult();

    private TimeSpan WatchdogPeriod => TimeSpan.FromMilliseconds(Math.Clamp(timeout.TotalMilliseconds / 10, 5, 100));

    /// <summary>The watchdog: releases waiters past their deadline; stops itself when nobody waits.</summary>
    private void Expire()
    {
        var now = time.GetTimestamp();
        var expired = 0;
        lock (_lock)
        {
            while (_byDeadline.TryPeek(out var head) && (head.Task.IsCompleted || head.Deadline <= now))
            {
                _byDeadline.Dequeue();
                expired += head.Release() ? 1 : 0;
            }

            if (_byDeadline.Count == 0)
            {
                // Released waiters may still sit in the sequence queue; they hold nothing but memory.
                _bySequence.Clear();
                _watchdog?.Dispose();
                _watchdog = null;
            }
        }

        if (expired > 0 && timedOut is not null)
        {
            try
            {
                timedOut(expired);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // The telling goes through the application's logging providers; an exception on the timer's thread
                // would end the process. The waits are released; the warning is lost.
            }
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>One business-path wait for a commit.</summary>
    private sealed class Waiter(long started, long deadline) : TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)
    {
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
