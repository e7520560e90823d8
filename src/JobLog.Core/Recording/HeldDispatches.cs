namespace JobLog.Recording;

/// <summary>
/// The writer's hold on dispatches (docs/architecture.md#write-path), in <see cref="LedgerDurability.Journaled"/> mode: a
/// dispatch whose run is not in its batch, already durable in the journal, is kept out of the batch for a while, so that
/// it meets its run in a later batch and the task row is written once, with its derived state, instead of as WAITING and
/// then again by the derivation. A held dispatch goes back into the first batch that has a record of its task, into
/// any batch once it is older than <c>maxAge</c> (an idle writer wakes for it), and into the next batch when the writer
/// stops or a flush waits; at most <c>capacity</c> are held (newer dispatches are written as before). Dispatches are held
/// only from batches the writer calls busy (<see cref="LedgerWriter.HoldFromBatch"/>): a quiet ledger shows a dispatch
/// at once. The journal keeps a held record until it is committed (<see cref="Lowest"/>).
/// </summary>
internal sealed class HeldDispatches(TimeProvider time, int capacity, TimeSpan maxAge)
{
    private readonly Dictionary<Guid, Held> _byTask = [];

    // In the order of sequences (batches come in that order): the oldest first, for the age limit and the watermark.
    // Entries whose dispatch went back into a batch stay until they reach the head.
    private readonly Queue<Held> _order = new();
    private readonly Dictionary<Guid, int> _references = [];
    private readonly List<QueuedRecord> _released = [];
    private readonly List<QueuedRecord> _kept = [];

    /// <summary>The number of dispatches held.</summary>
    public int Count => _byTask.Count;

    /// <summary>Dispatches written with a record of their task (their run, usually): each one a task row written once.</summary>
    public long Joined { get; private set; }

    /// <summary>Dispatches written alone: their hold was over, or the writer stopped or flushed.</summary>
    public long WrittenAlone { get; private set; }

    /// <summary>Dispatches not held because <c>capacity</c> were.</summary>
    public long NotHeld { get; private set; }

    /// <summary>The lowest sequence held (0 when none): nothing from it on may count as committed.</summary>
    public long Lowest
    {
        get
        {
            while (_order.TryPeek(out var head))
            {
                if (_byTask.TryGetValue(head.TaskId, out var held) && ReferenceEquals(held, head))
                {
                    return head.Record.Sequence;
                }

                _order.Dequeue();
            }

            return 0;
        }
    }

    /// <summary>How long until the oldest held dispatch is due (zero when it is; null when none is held).</summary>
    public TimeSpan? UntilDue
    {
        get
        {
            if (Lowest == 0 || !_order.TryPeek(out var head))
            {
                return null;
            }

            var due = maxAge - time.GetElapsedTime(head.HeldAt);
            return due > TimeSpan.Zero ? due : TimeSpan.Zero;
        }
    }

    /// <summary>
    /// Before <paramref name="batch"/> is committed: the held dispatches it needs, and those past their age (all of them
    /// when <paramref name="hold"/> is false), go back into it, in front and in order; its dispatches without another
    /// record of their task are held, when <paramref name="hold"/> and the journal has them.
    /// </summary>
    /// <param name="batch">Records taken from the queue, in order; changed in place.</param>
    /// <param name="hold">False when no dispatch of this batch is held (the writer is not busy).</param>
    /// <param name="releaseAll">True when nothing may stay held (the writer stops, a flush waits).</param>
    /// <param name="durable">True when the record with that sequence is in the journal.</param>
    public void Sort(List<QueuedRecord> batch, bool hold, bool releaseAll, Func<long, bool> durable)
    {
        hold &= !releaseAll;
        _released.Clear();
        _references.Clear();
        foreach (var queued in batch)
        {
            if (TaskOf(queued.Record) is { } taskId)
            {
                _references[taskId] = _references.GetValueOrDefault(taskId) + 1;
            }
        }

        if (releaseAll)
        {
            ReleaseAll();
        }
        else if (_byTask.Count > 0)
        {
            foreach (var (taskId, count) in _references)
            {
                if (_byTask.Remove(taskId, out var held))
                {
                    Joined++;
                    _released.Add(held.Record);
                    // The batch now holds two records of the task: its own dispatch stays in it too.
                    _references[taskId] = count + 1;
                }
            }

            var oldest = time.GetTimestamp() - (long)(maxAge.TotalSeconds * time.TimestampFrequency);
            while (_order.TryPeek(out var head) && (head.HeldAt <= oldest || !IsHeld(head)))
            {
                _order.Dequeue();
                if (IsHeld(head))
                {
                    _byTask.Remove(head.TaskId);
                    WrittenAlone++;
                    _released.Add(head.Record);
                }
            }
        }

        if (hold)
        {
            var now = time.GetTimestamp();
            _kept.Clear();
            foreach (var queued in batch)
            {
                if (queued is { Record: TaskDispatched d, Sequence: > 0 } && _references[d.Task.Id] == 1 && durable(queued.Sequence))
                {
                    if (_byTask.Count >= capacity)
                    {
                        NotHeld++;
                        _kept.Add(queued);
                        continue;
                    }

                    var held = new Held(d.Task.Id, queued, now);
                    _byTask[d.Task.Id] = held;
                    _order.Enqueue(held);
                }
                else
                {
                    _kept.Add(queued);
                }
            }

            if (_kept.Count != batch.Count)
            {
                batch.Clear();
                batch.AddRange(_kept);
            }
        }

        if (_released.Count > 0)
        {
            // Older than anything in the batch: in front, in their own order (a task's last dispatch wins).
            _released.Sort(static (a, b) => a.Sequence.CompareTo(b.Sequence));
            batch.InsertRange(0, _released);
        }
    }

    /// <summary>Every held dispatch into <paramref name="batch"/>, in front and in order (shutdown).</summary>
    public void ReleaseAll(List<QueuedRecord> batch)
    {
        _released.Clear();
        ReleaseAll();
        _released.Sort(static (a, b) => a.Sequence.CompareTo(b.Sequence));
        batch.InsertRange(0, _released);
    }

    private void ReleaseAll()
    {
        foreach (var held in _byTask.Values)
        {
            _released.Add(held.Record);
        }

        WrittenAlone += _byTask.Count;

        _byTask.Clear();
        _order.Clear();
    }

    private bool IsHeld(Held entry) => _byTask.TryGetValue(entry.TaskId, out var held) && ReferenceEquals(held, entry);

    /// <summary>The task a record writes to, if any (a record of a run names its task, but for its next-retry time, which follows its start).</summary>
    private static Guid? TaskOf(LedgerRecord record) => record switch
    {
        TaskDispatched d => d.Task.Id,
        TaskDispatchFailed f => f.TaskId,
        RunStarted s => s.Run.TaskId,
        RunFinished f => f.TaskId,
        RunFailedForGood f => f.TaskId,
        TaskExtraDataSet x => x.TaskId,
        TaskEtaSet e => e.TaskId,
        _ => null,
    };

    private sealed record Held(Guid TaskId, QueuedRecord Record, long HeldAt);
}
