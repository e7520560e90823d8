using JobLog.Internal;
using JobLog.Recording.Journal;

namespace JobLog.Recording;

/// <summary>The recorder's journal: opened at start, told of commits, and the segments stopped processes left.</summary>
internal sealed partial class LedgerRecorder
{
    // Journal segments (SpoolLock null) and spool files (their slot's lock held) that stopped processes left, to replay.
    private readonly Queue<(string Path, FileStream? SpoolLock)> _journalLeftOvers = new();
    private readonly Queue<LedgerRecord> _leftOverRecords = new();
    private string? _leftOverFile;
    private FileStream? _leftOverSpoolLock;
    // Where the next part of the stopped process's spool file being replayed starts (_leftOverFile); -1 when it was read to its end.
    private long _leftOverSpoolNext = -1;
    private SteadyRate? _leftOversLost;
    private long _leftOversLostTotal;

    // The journal's directory is read-only: the left-overs replayed from it stay (ReplayReadOnly).
    private bool _journalReadOnly;

    /// <summary>True while journal segments left by stopped processes wait to be replayed (before anything queued now).</summary>
    internal bool HasJournalLeftOvers => _leftOverRecords.Count > 0 || _journalLeftOvers.Count > 0 || _leftOverSpoolNext >= 0;

    /// <summary>The journal of this process, and the segments stopped processes left; null when it cannot be used (logged).</summary>
    /// <param name="directory">The journal's directory.</param>
    /// <param name="ledger">The ledger's name (<see cref="LedgerName"/>).</param>
    /// <param name="connectionString">What versions before session 21 named the files after: their left-overs are replayed too.</param>
    private LedgerJournal? OpenJournal(string directory, string ledger, string connectionString)
    {
        try
        {
            if (JournalSegments.Claim(directory, ledger, JournalSegmentBytes, _options.FlushJournalToDisk, formerly: connectionString) is not { } segments)
            {
                Log.JournalUnavailable(_logger, directory, "every journal slot of this ledger is held by a live process");
                return null;
            }

            segments.Lost = (lost, written, gone) =>
            {
                Log.JournalFilesLost(_logger, lost, written);
                if (gone > 0)
                {
                    Log.JournalSegmentsGone(_logger, lost, gone, JournalSegments.OpenSegments);
                }
            };
            ReadOnlyReplays.Forget(directory);
            foreach (var path in segments.TakeLeftOvers())
            {
                _journalLeftOvers.Enqueue((path, null));
            }

            var refusals = new JournalRefusals(_logger, _time, _metrics.JournalRefused.Add);
            _waiters.SetJournalUsable();
            return new LedgerJournal(segments, _masking.Apply, _waiters.Journaled, refusals, _waiters.JournalRefused, _time);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.JournalUnavailable(_logger, directory, ex.Message);
            if (JournalSegments.IsReadOnly(ex))
            {
                ReplayReadOnly(directory, ledger, connectionString, ex.Message);
            }

            return null;
        }
    }

    /// <summary>
    /// The journal's directory takes no file (its file system read-only after an error): no slot can be locked, so no
    /// process adopts the segments stopped processes left there, and before session 28 their records waited, unsaid, for
    /// a writable directory. They are replayed now, from every slot (no process can append to them), and kept; those a
    /// start on this machine replayed already are left out (<see cref="ReadOnlyReplays"/>).
    /// </summary>
    private void ReplayReadOnly(string directory, string ledger, string connectionString, string reason)
    {
        try
        {
            var (segments, replayed) = ReadOnlyReplays.LeaveOutReplayed(directory, JournalSegments.ListReadOnly(directory, ledger, connectionString));
            foreach (var path in segments)
            {
                _journalLeftOvers.Enqueue((path, null));
            }

            _journalReadOnly = true;
            if (segments.Count + replayed > 0)
            {
                Log.JournalReadOnlyReplayed(_logger, directory, reason, segments.Count, replayed);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.JournalUnavailable(_logger, directory, ex.Message);
        }
    }

    // A Buffered process journals nothing, but holds a slot to take the segments killed processes of its ledger left (session 24).
    private JournalSegments? _adopter;

    /// <summary>The segments this process takes stopped processes' left-overs with: its journal's, or the Buffered process's slot.</summary>
    private JournalSegments? Segments => _journal?.Segments ?? _adopter;

    /// <summary>
    /// <see cref="LedgerDurability.Buffered"/>: a slot of the journal's directory, only to take (at start, then every
    /// <see cref="StoppedJournalsEvery"/>) the segments killed processes of the ledger left. Before session 24 such a process
    /// never took them: what they acknowledged waited for a journaled process to start on the machine. Null when the
    /// directory cannot be used or every slot is held (logged at debug level: this process journals nothing itself).
    /// </summary>
    private JournalSegments? OpenAdopter(string directory, string ledger, string connectionString)
    {
        try
        {
            if (JournalSegments.Claim(directory, ledger, JournalSegmentBytes, flushToDisk: false, formerly: connectionString) is not { } segments)
            {
                return null;
            }

            ReadOnlyReplays.Forget(directory);
            foreach (var path in segments.TakeLeftOvers())
            {
                _journalLeftOvers.Enqueue((path, null));
            }

            return segments;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.JournalUnavailable(_logger, directory, ex.Message);
            if (JournalSegments.IsReadOnly(ex))
            {
                ReplayReadOnly(directory, ledger, connectionString, ex.Message);
            }

            return null;
        }
    }

    /// <summary>Whether this process looks for stopped processes' journal segments (it journals, or holds a slot for them when Buffered).</summary>
    internal bool TakesStoppedJournals => Segments is not null;

    /// <summary>How often a running process looks for the journal segments of processes that stopped since it started.</summary>
    internal static readonly TimeSpan StoppedJournalsEvery = TimeSpan.FromSeconds(10);

    private long _stoppedJournalsLooked = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>
    /// The writer, every <see cref="StoppedJournalsEvery"/>: the segments of processes of this ledger that stopped (killed)
    /// while this one runs, queued to be replayed like those found at start. Without it, what such a process acknowledged
    /// waited in its journal for the next process to start on this machine, for ever when none did (a replica scaled down,
    /// a worker killed and not restarted) (session 23). A process that starts again meanwhile takes another slot.
    /// </summary>
    internal void TakeStoppedProcessesJournals()
    {
        if (Segments is not { } segments
            || System.Diagnostics.Stopwatch.GetElapsedTime(_stoppedJournalsLooked) < StoppedJournalsEvery)
        {
            return;
        }

        _stoppedJournalsLooked = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            foreach (var path in segments.TakeLeftOvers())
            {
                _journalLeftOvers.Enqueue((path, null));
            }

            // Then what it spooled when its queue was full (newer than what it journaled); acknowledged too, not journaled. Read
            // in parts of a segment's size (TakeJournalLeftOvers), whatever the file's size.
            if (_options.ConnectionString is { } connectionString)
            {
                foreach (var (path, held) in LedgerSpool.TakeStopped(segments.Directory, LedgerName(connectionString), connectionString))
                {
                    _journalLeftOvers.Enqueue((path, held));
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The directory refused a listing (deleted, say: the journal makes it again at its next check); tried again later.
            Log.JournalUnavailable(_logger, segments.Directory, ex.Message);
        }
    }

    /// <summary>
    /// The writer: the queued record with <paramref name="sequence"/> as the journal masked it, or null when the journal did
    /// not (the writer masks it then).
    /// </summary>
    internal LedgerRecord? MaskedByJournal(long sequence) => sequence > 0 ? _journal?.TakeMasked(sequence) : null;

    /// <summary>
    /// The writer, before its queue: the next records of the journal segments stopped processes left, oldest first. An
    /// unreadable line (cut by the crash) is skipped and counted. A segment is deleted by
    /// <see cref="JournalLeftOversReplayed"/> once all its records are committed.
    /// </summary>
    internal void TakeJournalLeftOvers(List<LedgerRecord> into, int max)
    {
        while (_leftOverRecords.Count == 0 && (_leftOverSpoolNext >= 0 || _journalLeftOvers.Count > 0))
        {
            // The next part of the spool file being replayed (its lock held), else the next left-over.
            var leftOver = _leftOverSpoolNext >= 0 && _leftOverFile is { } partly && _leftOverSpoolLock is { } partlyLock
                ? (Path: partly, SpoolLock: (FileStream?)partlyLock)
                : _journalLeftOvers.Dequeue();
            var path = leftOver.Path;
            try
            {
                int unreadable;
                if (leftOver.SpoolLock is { } spoolLock)
                {
                    _leftOverSpoolLock = spoolLock;
                    var from = Math.Max(0, _leftOverSpoolNext);
                    _leftOverSpoolNext = -1;
                    foreach (var record in LedgerSpool.ReadStopped(path, from, JournalSegmentBytes, out unreadable, out _leftOverSpoolNext))
                    {
                        _leftOverRecords.Enqueue(record);
                    }
                }
                else
                {
                    var lines = Segments is { } segments ? segments.ReadLeftOver(path, out unreadable) : JournalSegments.Read(path, out unreadable);
                    foreach (var line in lines)
                    {
                        if (JournalCodec.Read(line) is { } record)
                        {
                            _leftOverRecords.Enqueue(record);
                        }
                        else
                        {
                            unreadable++;
                        }
                    }
                }

                if (unreadable > 0)
                {
                    Interlocked.Add(ref _dropped, unreadable);
                    _metrics.RecordsDropped.Add(unreadable);
                    Log.SpoolUnreadable(_logger, unreadable, path);
                }

                _leftOverFile = path;
                JournalLeftOversReplayed();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A stopped process's spool file that cannot be read stays where it is, its slot free, for the next start.
                _leftOverSpoolLock?.Dispose();
                _leftOverSpoolLock = null;
                _leftOverSpoolNext = -1;
                _leftOverFile = null;

                // Gone before it was taken (deleted between the listing and the open at start), or refused: counted, and
                // logged at a steady rate. Once taken, a left-over is held open and survives its deletion (session 23).
                _metrics.JournalLeftOversLost.Add(1);
                var total = Interlocked.Increment(ref _leftOversLostTotal);
                if ((_leftOversLost ??= new SteadyRate(_time, TimeSpan.FromSeconds(10))).Add(1, out var count))
                {
                    Log.JournalLeftOversLost(_logger, count, total, path, ex.Message);
                }
            }
        }

        while (into.Count < max && _leftOverRecords.TryDequeue(out var next))
        {
            into.Add(next);
        }
    }

    /// <summary>At dispose: the stopped processes' spool files taken and not replayed are left for the next start, their slots free.</summary>
    private void LetStoppedSpoolsGo()
    {
        _leftOverSpoolLock?.Dispose();
        _leftOverSpoolLock = null;
        _leftOverSpoolNext = -1;
        foreach (var (_, held) in _journalLeftOvers)
        {
            held?.Dispose();
        }
    }

    /// <summary>The records of the last <see cref="TakeJournalLeftOvers"/> are committed: a fully replayed segment is deleted.</summary>
    internal void JournalLeftOversReplayed()
    {
        if (_leftOverRecords.Count > 0 || _leftOverSpoolNext >= 0 || _leftOverFile is not { } path)
        {
            return;
        }

        if (_journalReadOnly && _leftOverSpoolLock is null)
        {
            // Kept (it cannot be deleted), and noted: the next start leaves it out.
            try
            {
                ReadOnlyReplays.Note(path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Log.JournalUnavailable(_logger, ReadOnlyReplays.NoteOf(Path.GetDirectoryName(path) ?? "."), ex.Message);
            }

            _leftOverFile = null;
            return;
        }

        try
        {
            if (_leftOverSpoolLock is not null)
            {
                File.Delete(path);
            }
            else if (Segments is { } segments)
            {
                segments.ForgetLeftOver(path);
            }
            else
            {
                JournalSegments.Forget(path);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.JournalUnavailable(_logger, path, ex.Message);
        }
        finally
        {
            // A stopped process's spool slot is free again once its file is gone.
            _leftOverSpoolLock?.Dispose();
            _leftOverSpoolLock = null;
        }

        _leftOverFile = null;
    }
}
