using JobLog.Internal;

namespace JobLog.Recording;

/// <summary>
/// Group commit for the business path: each wait is released once, by the commit that holds its record, by its
/// deadline, or when the database fails. Waiters queue by sequence; deadlines are kept by one timer for all waiters
/// (no timer per wait). See docs/architecture.md#write-path.
/// </summary>
internal sealed class CommitWaiters(JobLogMetrics metrics, TimeProvider time, TimeSpan timeout) : IDisposable
{
    private readonly Lock _lock = new();
    private readonly PriorityQueue<Waiter, long> _bySequence = new();
    private readonly Queue<Waiter> _byDeadline = new();
    private TaskCompletionSource _commitSignal = NewSignal();
    private ITimer? _watchdog;
    private long _committed;
    private volatile bool _failing;

    /// <summary>The highest sequence committed so far.</summary>
    public long Committed => Interlocked.Read(ref _committed);

    /// <summary>True while the writer cannot reach the database: nobody waits then.</summary>
    public bool IsFailing => _failing;

    /// <summary>Completed by the next commit (or outage); a new signal replaces it each time.</summary>
    public Task NextCommit => Volatile.Read(ref _commitSignal).Task;

    /// <summary>Waits until <paramref name="sequence"/> is committed, at most the timeout; completed at once when it is, or while failing.</summary>
    public ValueTask WaitAsync(long sequence, CancellationToken cancellationToken)
    {
        if (_failing || Committed >= sequence)
        {
            return ValueTask.CompletedTask;
        }

        var now = time.GetTimestamp();
        var waiter = new Waiter(now, now + (long)(timeout.TotalSeconds * time.TimestampFrequency));
        lock (_lock)
        {
            // Checked again under the lock: a commit or an outage may have released everyone in between.
            if (_failing || Committed >= sequence)
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

        lock (_lock)
        {
            var committed = Interlocked.Read(ref _committed);
            var now = time.GetTimestamp();
            while (_bySequence.TryPeek(out var waiter, out var sequence) && sequence <= committed)
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

        Signal();
    }

    /// <summary>The database failed (every waiter is released: the business path does not wait for it) or is back.</summary>
    public void SetFailing(bool failing)
    {
        _failing = failing;
        if (failing)
        {
            lock (_lock)
            {
                while (_byDeadline.TryDequeue(out var waiter))
                {
                    waiter.Release();
                }

                _bySequence.Clear();
            }

            Signal();
        }
    }

    public void Dispose() => _watchdog?.Dispose();

    private void Signal() => Interlocked.Exchange(ref _commitSignal, NewSignal()).TrySetResult();

    private TimeSpan WatchdogPeriod => TimeSpan.FromMilliseconds(Math.Clamp(timeout.TotalMilliseconds / 10, 5, 100));

    /// <summary>The watchdog: releases waiters past their deadline; stops itself when nobody waits.</summary>
    private void Expire()
    {
        var now = time.GetTimestamp();
        lock (_lock)
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
