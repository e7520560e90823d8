using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;
using System.Threading.Channels;
using JobLog.Internal;
using Microsoft.Extensions.Logging;

namespace JobLog.Recording.Journal;

/// <summary>
/// The local write-ahead journal (docs/architecture.md#write-path): every record the recorder queues is also appended
/// here, by one thread, in groups (one write per group), masked as the database will hold it (the writer takes the
/// masked record, <see cref="TakeMasked"/>, instead of masking it again). Once a group is with the
/// operating system, <c>journaled</c> is told its last sequence: an acknowledgement that waits for the journal is
/// released then, microseconds after the record was queued, whatever the database is doing. The writer's commits move
/// the <see cref="Checkpoint"/>; what a killed process left is replayed by the next one.
/// </summary>
internal sealed class LedgerJournal : IAsyncDisposable
{
    private const int MaxGroup = 4096;

    /// <summary>How often an idle journal checks that its files are still there (<see cref="JournalSegments.CheckFiles"/>).</summary>
    internal static readonly TimeSpan IdleCheck = TimeSpan.FromSeconds(1);

    // Records as masked for the journal, in the order of sequences, for the writer (one masking per record). Holds no
    // more than the records between the journal and the writer: the writer drops what it took before the journal.
    private readonly ConcurrentQueue<QueuedRecord> _masked = new();

    private readonly Channel<QueuedRecord> _pending = Channel.CreateUnbounded<QueuedRecord>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = false, AllowSynchronousContinuations = false });

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
    }

    private async Task AppendGroupsAsync()
    {
        var buffer = new ArrayBufferWriter<byte>(64 * 1024);
        var scratch = new ArrayBufferWriter<byte>(4 * 1024);
        using var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true });
        var reader = _pending.Reader;
        while (await WaitToReadAsync(reader).ConfigureAwait(false))
        {
            buffer.ResetWrittenCount();
            var last = 0L;
            var count = 0;
            while (count < MaxGroup && reader.TryRead(out var queued))
            {
                try
                {
                    var masked = _forDisk(queued.Record);
                    _masked.Enqueue(new QueuedRecord(masked, queued.Sequence));
                    JournalCodec.Write(writer, buffer, masked, scratch);
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

            if (count == 0)
            {
                continue;
            }

            try
            {
                _segments.Append(buffer.WrittenSpan, last);
                _journaled(last);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                _refusals.Failed(ex, count);
                _refused(last);
                continue;
            }

            if (Interlocked.Read(ref _committed) is var committed && committed >= last)
            {
                // The writer took these records from the queue and committed them before this append (it does not wait
                // for the journal): no later checkpoint may come while the process is idle, and the segment would be
                // left behind, replayed again (harmlessly, twice) by the next start.
                Checkpoint(committed);
            }
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
                _segments.CheckFiles();
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
        _segments.Dispose();
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
