using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;
using System.Threading.Channels;
using JobLog.Internal;
using Microsoft.Extensions.Logging;

namespace JobLog.Recording.Journal;

/// <summary>
/// The local write-ahead journal (docs/architecture.md#write-path): every record the recorder queues is also appended
/// here, in groups (one write per group), masked as the database will hold it (the writer takes the
/// masked record, <see cref="TakeMasked"/>, instead of masking it again). Once a group is with the
/// operating system, <c>journaled</c> is told its last sequence: an acknowledgement that waits for the journal is
/// released then, whatever the database is doing. The writer's commits move the <see cref="Checkpoint"/>; what a
/// killed process left is replayed by the next one.
/// </summary>
/// <remarks>
/// The journal's own loop appends what is queued; a caller about to wait for its record appends what is queued itself
/// (<see cref="AppendQueued"/>) when no append is under way, so its wait does not cost two thread hops (the loop woken,
/// then the waiter's continuation). One append at a time, under <c>_appending</c>, in the order of sequences.
/// </remarks>
internal sealed class LedgerJournal : IAsyncDisposable
{
    private const int MaxGroup = 4096;

    /// <summary>How often an idle journal checks that its files are still there (<see cref="JournalSegments.CheckFiles"/>).</summary>
    internal static readonly TimeSpan IdleCheck = TimeSpan.FromSeconds(1);

    // Records as masked for the journal, in the order of sequences, for the writer (one masking per record). Holds no
    // more than the records between the journal and the writer: the writer drops what it took before the journal.
    private readonly ConcurrentQueue<QueuedRecord> _masked = new();

    // Read under _appending, by the loop or by a caller about to wait (AppendQueued): not a single reader.
    private readonly Channel<QueuedRecord> _pending = Channel.CreateUnbounded<QueuedRecord>(
        new UnboundedChannelOptions { SingleReader = false, SingleWriter = false, AllowSynchronousContinuations = false });

    private readonly Lock _appending = new();
    private readonly ArrayBufferWriter<byte> _buffer = new(64 * 1024);
    private readonly ArrayBufferWriter<byte> _scratch = new(4 * 1024);
    private readonly Utf8JsonWriter _writer;

    // The highest sequence appended or refused, under _appending (read outside it by AppendQueued).
    private long _appended;

    // The loop ended (stopped, or failed: every record refused from then on); a caller's append does nothing then.
    private volatile bool _stopped;

    private readonly JournalSegments _segments;
    private readonly Func<LedgerRecord, LedgerRecord> _forDisk;
    private readonly Action<long> _journaled;
    private readonly JournalRefusals _refusals;
    private readonly Action<long> _refused;
    private readonly TimeProvider _time;
    private readonly Task _loop;

    // The highest sequence the writer committed (Checkpoint), read by the journal's thread after each append.
    private long _committed;

    public LedgerJournal(
        JournalSegments segments,
        Func<LedgerRecord, LedgerRecord> forDisk,
        Action<long> journaled,
        JournalRefusals refusals,
        Action<long> refused,
        TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        _refused = refused;
        _segments = segments;
        _forDisk = forDisk;
        _journaled = journaled;
        _refusals = refusals;
        _writer = new Utf8JsonWriter(_buffer, new JsonWriterOptions { SkipValidation = true });
        _loop = Task.Factory.StartNew(LoopAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    public JournalSegments Segments => _segments;

    /// <summary>Queues a record for the journal (its sequence already assigned). Never blocks.</summary>
    public void Append(QueuedRecord record) => _pending.Writer.TryWrite(record);

    /// <summary>
    /// The record with <paramref name="sequence"/> as this journal masked it (the writer then does not mask it again), or
    /// null when the journal has not masked it (yet, or at all). Called by the writer only, in the order of sequences.
    /// </summary>
    public LedgerRecord? TakeMasked(long sequence)
    {
        // The journal masks in the order of sequences: what is older was taken by the writer before it was masked here.
        while (_masked.TryPeek(out var head) && head.Sequence <= sequence)
        {
            _masked.TryDequeue(out _);
            if (head.Sequence == sequence)
            {
                return head.Record;
            }
        }

        return null;
    }

    /// <summary>Every record up to <paramref name="committed"/> is in the database.</summary>
    public void Checkpoint(long committed)
    {
        // Before the segments' checkpoint: an append that does not see it ran before it, so the checkpoint sees the append.
        InterlockedMax(ref _committed, committed);
        try
        {
            _segments.Checkpoint(committed);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _refusals.Failed(ex, 0);
        }
    }

    /// <summary>
    /// The journal's thread. Records it cannot take are passed to <c>refused</c> with the highest sequence among them:
    /// their acknowledgements then wait for the database. If the loop itself fails, every record from then on is refused.
    /// </summary>
    private async Task LoopAsync()
    {
        try
        {
            await AppendGroupsAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _refusals.Failed(ex, 0);
            _refused(long.MaxValue);
        }
        finally
        {
            _stopped = true;
        }
    }

    private async Task AppendGroupsAsync()
    {
        var reader = _pending.Reader;
        while (await WaitToReadAsync(reader).ConfigureAwait(false))
        {
            lock (_appending)
            {
                AppendGroupsLocked(long.MaxValue);
            }
        }
    }

    /// <summary>
    /// Appends what is queued now, on the caller's thread, unless the record with <paramref name="sequence"/> is in the
    /// journal already (an append under way is waited for: it may have taken it). Called before waiting for that record.
    /// </summary>
    public void AppendQueued(long sequence)
    {
        if (_stopped || Interlocked.Read(ref _appended) >= sequence)
        {
            return;
        }

        lock (_appending)
        {
            if (!_stopped && _appended < sequence)
            {
                // Up to its own record: under a flood the queue never empties, and what comes later is the loop's.
                AppendGroupsLocked(sequence);
            }
        }
    }

    /// <summary>
    /// Under <c>_appending</c>: what is queued, up to the record with <paramref name="upTo"/> (and no further), in groups of
    /// at most <see cref="MaxGroup"/>, one write each.
    /// </summary>
    private void AppendGroupsLocked(long upTo)
    {
        var reader = _pending.Reader;
        var buffer = _buffer;
        var writer = _writer;
        while (_appended < upTo)
        {
            buffer.ResetWrittenCount();
            var last = 0L;
            var count = 0;
            var read = 0;
            var highest = 0L;
            while (read < MaxGroup && highest < upTo && reader.TryRead(out var queued))
            {
                read++;
                highest = queued.Sequence;
                try
                {
                    var masked = _forDisk(queued.Record);
                    _masked.Enqueue(new QueuedRecord(masked, queued.Sequence));
                    JournalCodec.Write(writer, buffer, masked, _scratch);
                    buffer.GetSpan(1)[0] = (byte)'\n';
                    buffer.Advance(1);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // Not journaled: it still reaches the database from memory, and its acknowledgement waits for that.
                    _refusals.Failed(ex, 1);
                    _refused(queued.Sequence);
                    continue;
                }

                last = Math.Max(last, queued.Sequence);
                count++;
            }

            if (read == 0)
            {
                return;
            }

            var appended = count > 0 && TryAppend(buffer.WrittenSpan, last, count);

            // Appended, or refused: either way no later append takes these records.
            Interlocked.Exchange(ref _appended, highest);
            if (appended && Interlocked.Read(ref _committed) is var committed && committed >= last)
            {
                // The writer took these records from the queue and committed them before this append (it does not wait
                // for the journal): no later checkpoint may come while the process is idle, and the segment would be
                // left behind, replayed again (harmlessly, twice) by the next start.
                Checkpoint(committed);
            }
        }
    }

    private bool TryAppend(ReadOnlySpan<byte> lines, long last, int count)
    {
        try
        {
            _segments.Append(lines, last);
            _journaled(last);
            return true;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _refusals.Failed(ex, count);
            _refused(last);
            return false;
        }
    }

    /// <summary>
    /// Waits for records; while none come, checks every <see cref="IdleCheck"/> that the files are still there: records
    /// acknowledged before the journal's directory was deleted are then in a file again within about that time, not only
    /// at the next record (session 22).
    /// </summary>
    private async ValueTask<bool> WaitToReadAsync(ChannelReader<QueuedRecord> reader)
    {
        var next = reader.WaitToReadAsync();
        if (next.IsCompleted)
        {
            return await next.ConfigureAwait(false);
        }

        var waiting = next.AsTask();
        while (true)
        {
            using var idle = new CancellationTokenSource();
            var check = Task.Delay(IdleCheck, _time, idle.Token);
            if (await Task.WhenAny(waiting, check).ConfigureAwait(false) == waiting)
            {
                await idle.CancelAsync().ConfigureAwait(false);
                return await waiting.ConfigureAwait(false);
            }

            try
            {
                lock (_appending)
                {
                    _segments.CheckFiles();
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                _refusals.Failed(ex, 0);
            }
        }
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var seen = Interlocked.Read(ref target);
        while (value > seen && Interlocked.CompareExchange(ref target, value, seen) is var was && was != seen)
        {
            seen = was;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _pending.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
        lock (_appending)
        {
            // A caller's append may still be under way: the segments are closed after it, and none comes later.
            _stopped = true;
            _segments.Dispose();
            _writer.Dispose();
        }

        _refusals.ReportUnreported();
    }
}

/// <summary>
/// Records the journal could not take (disk full, I/O error, not serialisable): counted, and logged at a steady rate
/// (<see cref="SteadyRate"/>: at most one line per 10 s, with the count since the last line), never once per N records.
/// </summary>
internal sealed class JournalRefusals(ILogger logger, TimeProvider time, Action<long> counted)
{
    private readonly SteadyRate _rate = new(time, TimeSpan.FromSeconds(10));
    private long _total;
    private Exception? _last;

    public long Total => Interlocked.Read(ref _total);

    public void Failed(Exception exception, int records)
    {
        counted(records);
        var total = Interlocked.Add(ref _total, records);
        Volatile.Write(ref _last, exception);
        if (_rate.Add(records, out var count))
        {
            Internal.Log.JournalRefused(logger, exception, count, total);
        }
    }

    /// <summary>At the journal's stop: the refusals after the last report, with the last refusal's exception.</summary>
    public void ReportUnreported()
    {
        if (_rate.TakeUnreported() is > 0 and var count && Volatile.Read(ref _last) is { } last)
        {
            Internal.Log.JournalRefused(logger, last, count, Total);
        }
    }
}
