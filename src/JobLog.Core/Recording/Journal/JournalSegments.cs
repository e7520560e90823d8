using System.Globalization;

namespace JobLog.Recording.Journal;

/// <summary>
/// The local write-ahead journal's files (docs/architecture.md#write-path): an append-only sequence of segment files,
/// one record per line, in one slot of this ledger that this process holds (an exclusive lock on the slot's lock file).
/// A segment is closed at <see cref="SegmentBytes"/>, and deleted once every record in it is committed to the database
/// (<see cref="Checkpoint"/>); what a stopped process left is read back by the next one (<see cref="TakeLeftOvers"/>).
/// Files are checked by <see cref="SpoolFiles"/>: this user's regular files, in a directory nobody else can write.
/// </summary>
/// <remarks>
/// Appends come from one thread (the journal's), checkpoints from the writer's: both take <c>_lock</c> briefly. A write
/// is handed to the operating system before <see cref="Append"/> returns, so it survives the process being killed; it
/// survives the machine's crash only with <c>flushToDisk</c> (fsync per append).
/// Every segment stays open until its records are committed (the closed ones too): its shared lock tells another
/// process that it is not a left-over, even when this slot's lock file was deleted, and its content can be written
/// again when the files were deleted under it (<see cref="Append"/>; session 22). Up to <see cref="OpenSegments"/> closed
/// segments (and as many left-overs) only: one descriptor per 16 MiB journaled during an outage, without bound, ran a
/// process under a low descriptor limit out of them (session 24); the others are kept by their path.
/// </remarks>
internal sealed class JournalSegments : IDisposable
{
    /// <summary>Slots per ledger: processes on one machine writing to one ledger each hold one.</summary>
    public const int Slots = 16;

    /// <summary>
    /// How many closed segments not yet committed keep their open handle, and how many left-overs taken: 1 GiB of 16 MiB
    /// segments. Beyond, a segment is kept by its path (read back by it; lost if deleted under this process: told).
    /// </summary>
    public const int OpenSegments = 64;

    private readonly Lock _lock = new();
    private readonly string _ledger;
    private readonly string? _formerLedger;
    private readonly bool _flushToDisk;
    private string _prefix;
    private FileStream _slotLock;
    private Queue<(string Path, long LastSequence, FileStream? File, long Length)> _closed = new();
    private int _closedOpen;
    // Other slots' locks, taken with their left-overs: each is let go once its last left-over is committed (a process that
    // runs for long takes stopped processes' segments again and again: session 23), or at Dispose.
    private readonly Dictionary<string, FileStream> _adoptedLocks = [];

    // Left-overs taken from stopped processes, by the path they were taken at: where the file is now (written again in this
    // slot when the directory was deleted under it) and its open handle, until the recorder has replayed it (session 23).
    private readonly Dictionary<string, (string Path, FileStream? File)> _leftOvers = [];
    private FileStream? _active;
    private SpoolFiles.Identity? _activeIdentity;
    private string? _activePath;
    private long _activeLast;
    private long _activeLength;
    private long _next;

    private JournalSegments(string directory, string ledger, string? formerLedger, int slot, FileStream slotLock, long segmentBytes, bool flushToDisk)
    {
        Directory = directory;
        _ledger = ledger;
        _formerLedger = formerLedger;
        _prefix = Prefix(ledger, slot);
        _slotLock = slotLock;
        SegmentBytes = segmentBytes;
        _flushToDisk = flushToDisk;
    }

    public string Directory { get; }

    public long SegmentBytes { get; }

    /// <summary>
    /// Told when the journal's files were found gone: the directory, how many segments were written again, and how many
    /// could not be (kept by their path only, beyond <see cref="OpenSegments"/>).
    /// </summary>
    public Action<string, int, int>? Lost { get; set; }

    /// <summary>Bytes in segments not yet deleted (this process's own; left-overs are not counted).</summary>
    public long Bytes { get; private set; }

    /// <summary>
    /// Claims the first free slot of this ledger in <paramref name="directory"/>, preferring one a stopped process left
    /// segments in. Null when every slot is held by a live process.
    /// </summary>
    /// <exception cref="IOException">No slot, and the directory refuses a new file (a read-only file system): the reason.</exception>
    /// <param name="directory">The journal's directory.</param>
    /// <param name="ledger">What the files are named after: the ledger's database (<c>LedgerRecorder.LedgerName</c>).</param>
    /// <param name="segmentBytes">A segment's size.</param>
    /// <param name="flushToDisk">Whether each append waits for the disk.</param>
    /// <param name="formerly">
    /// What versions before session 21 named the files after (the connection string): their left-overs are taken too.
    /// </param>
    /// <exception cref="SpoolFileRefusedException">The directory or a file in it is not safe to use.</exception>
    public static JournalSegments? Claim(string directory, string ledger, long segmentBytes, bool flushToDisk, string? formerly = null)
    {
        if (SpoolFiles.CheckDirectory(directory, create: true) is { } refusal)
        {
            throw new SpoolFileRefusedException(directory, refusal);
        }

        var former = formerly is null || formerly == ledger ? null : Hash(formerly);
        ledger = Hash(ledger);
        var found = SegmentsOf(directory, ledger);
        var order = Enumerable.Range(0, Slots).OrderByDescending(slot => found.Contains(Prefix(ledger, slot)));
        foreach (var slot in order)
        {
            if (TryLock(directory, Prefix(ledger, slot)) is { } held)
            {
                var segments = new JournalSegments(directory, ledger, former, slot, held, segmentBytes, flushToDisk);
                segments._next = SegmentsOf(directory, ledger)[segments._prefix].Select(s => s.Number).DefaultIfEmpty(0).Max() + 1;
                return segments;
            }
        }

        // No slot: each is held by a live process, or the directory takes no file at all (its file system remounted
        // read-only after an error): then that is the reason given, not live processes (session 26).
        using (new FileStream(Path.Combine(directory, $".probe-{Environment.ProcessId}"), FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
        {
            return null;
        }
    }

    /// <summary>
    /// The segments a stopped process left in this slot and in any other slot of the ledger that no live process holds
    /// (under the ledger's former name too), oldest first, except those taken before. Called at start, and again while
    /// this process runs (<c>LedgerRecorder.TakeStoppedProcessesJournals</c>): a process that dies while others run has its
    /// segments replayed by them, not only by the next process to start. Another slot stays locked until its last
    /// left-over is deleted by <see cref="ForgetLeftOver"/> once its records are committed.
    /// </summary>
    public IReadOnlyList<string> TakeLeftOvers()
    {
        lock (_lock)
        {
            var found = new List<string>();
            string[] ledgers = _formerLedger is null ? [_ledger] : [_ledger, _formerLedger];
            foreach (var ledger in ledgers)
            {
                TakeLeftOversOf(ledger, found);
            }

            // Held open until replayed: a left-over deleted under this process (its directory with it) is still read, and
            // written again in this slot like this process's own segments (WriteAgain). The shared lock also tells
            // another process starting meanwhile that they are taken.
            var open = _leftOvers.Values.Count(l => l.File is not null);
            foreach (var path in found)
            {
                FileStream? file = null;
                try
                {
                    // Not beyond OpenSegments (the class's remarks): the others are read by their path.
                    file = open < OpenSegments ? SpoolFiles.Open(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete) : null;
                    open += file is null ? 0 : 1;
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // Refused or unreadable: ReadLeftOver opens it by its path and says why.
                }

                _leftOvers[path] = (path, file);
            }

            return found;
        }
    }

    /// <summary>
    /// Under <c>_lock</c>: adds to <paramref name="found"/> the left-overs of <paramref name="ledger"/>'s slots, from one
    /// listing of the directory (the directory is shared by every ledger of the user on the machine; a listing per slot cost
    /// the writer 5 % of a core every 10 s once it held thousands of lock files: session 26).
    /// </summary>
    private void TakeLeftOversOf(string ledger, List<string> found)
    {
        var all = SegmentsOf(Directory, ledger);
        for (var slot = 0; slot < Slots; slot++)
        {
            var prefix = Prefix(ledger, slot);
            var segments = all[prefix].ToList();
            if (prefix == _prefix)
            {
                found.AddRange(segments.Where(s => s.Path != _activePath && !_closed.Any(c => c.Path == s.Path) && !Taken(s.Path) && !AppendedTo(s.Path)).Select(s => s.Path));
            }
            else if (_adoptedLocks.ContainsKey(prefix))
            {
                // Adopted before, its left-overs not all committed yet: a segment of it is new only when its dead owner's
                // was not listed then (a listing that raced the owner's last append before it died).
                found.AddRange(segments.Where(s => !Taken(s.Path) && !AppendedTo(s.Path)).Select(s => s.Path));
            }
            else if (segments.Count > 0 && TryLock(Directory, prefix) is { } held)
            {
                var taken = SegmentsOf(Directory, ledger)[prefix].Where(s => !Taken(s.Path) && !AppendedTo(s.Path)).Select(s => s.Path).ToList();
                if (taken.Count == 0)
                {
                    held.Dispose();
                    continue;
                }

                _adoptedLocks[prefix] = held;
                found.AddRange(taken);
            }
        }
    }

    /// <summary>Under <c>_lock</c>: whether a segment was taken as a left-over before (at its path, or written again at another).</summary>
    private bool Taken(string path) => _leftOvers.ContainsKey(path) || _leftOvers.Values.Any(l => l.Path == path);

    /// <summary>Reads a segment's lines; a line cut by a crash (no newline at the end) is counted in <paramref name="cut"/>.</summary>
    public static List<byte[]> Read(string path, out int cut)
    {
        cut = 0;
        using var stream = SpoolFiles.Open(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return Split(bytes, out cut);
    }

    private static List<byte[]> Split(ReadOnlySpan<byte> bytes, out int cut)
    {
        cut = 0;
        var lines = new List<byte[]>();
        var start = 0;
        for (var i = 0; i < bytes.Length; i++)
        {
            if (bytes[i] == (byte)'\n')
            {
                if (i > start)
                {
                    lines.Add(bytes[start..i].ToArray());
                }

                start = i + 1;
            }
        }

        if (start < bytes.Length)
        {
            cut = 1;
        }

        return lines;
    }

    /// <summary>Deletes a left-over segment whose records are committed.</summary>
    public static void Forget(string path) => File.Delete(path);

    /// <summary>
    /// Reads a left-over <see cref="TakeLeftOvers"/> returned, through the handle taken then (so also when its file was
    /// deleted since); a line cut by a crash is counted in <paramref name="cut"/>.
    /// </summary>
    public List<byte[]> ReadLeftOver(string path, out int cut)
    {
        lock (_lock)
        {
            if (!_leftOvers.TryGetValue(path, out var leftOver) || leftOver.File is not { } file)
            {
                return Read(leftOver.Path ?? path, out cut);
            }

            var bytes = new byte[RandomAccess.GetLength(file.SafeFileHandle)];
            var read = 0;
            while (read < bytes.Length && RandomAccess.Read(file.SafeFileHandle, bytes.AsSpan(read), read) is var n and > 0)
            {
                read += n;
            }

            return Split(bytes.AsSpan(0, read), out cut);
        }
    }

    /// <summary>Deletes a left-over <see cref="TakeLeftOvers"/> returned (where it is now) once its records are committed.</summary>
    public void ForgetLeftOver(string path)
    {
        lock (_lock)
        {
            if (!_leftOvers.Remove(path, out var leftOver))
            {
                File.Delete(path);
                return;
            }

            leftOver.File?.Dispose();
            File.Delete(leftOver.Path);
            var prefix = PrefixOf(path);
            if (_adoptedLocks.TryGetValue(prefix, out var held) && !_leftOvers.Keys.Any(p => PrefixOf(p) == prefix))
            {
                // Its last left-over is committed: the slot is free for a process that starts.
                _adoptedLocks.Remove(prefix);
                held.Dispose();
            }
        }
    }

    /// <summary>The slot prefix of a segment's path (<c>joblog-{ledger}-{slot}</c>, before the segment's number).</summary>
    private static string PrefixOf(string path)
    {
        var name = Path.GetFileName(path);
        var dot = name.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? name : name[..dot];
    }

    /// <summary>
    /// Appends <paramref name="lines"/> (each ending in a newline) holding records up to <paramref name="lastSequence"/>,
    /// in one write; returns once the operating system has them (and the disk, with flush to disk).
    /// </summary>
    /// <remarks>
    /// First, whether the open segment is still at its path (one <c>statx</c>; the directory when none is open): when the
    /// files were deleted under it (an operator, a cleaner), the directory and the slot's lock are made again, and every
    /// segment not yet committed is written again from the open handles (<see cref="WriteAgain"/>): what was acknowledged
    /// from them survives a crash again, this append's records included.
    /// </remarks>
    /// <exception cref="IOException">The disk refused (full, or failing); nothing of this append is counted as journaled.</exception>
    public void Append(ReadOnlySpan<byte> lines, long lastSequence)
    {
        lock (_lock)
        {
            if (_active is not null ? !SpoolFiles.StillAt(_activeIdentity, _activePath!) : AnyGone())
            {
                WriteAgain();
            }

            if (_active is null)
            {
                // Once a segment: a slot whose lock file a cleaner deleted looks free to the next process to start.
                if (!SpoolFiles.StillAt(_slotLock, SlotLockPath))
                {
                    TakeASlotAgain();
                }

                _activePath = SegmentPath(Directory, _prefix, _next++);
                _active = SpoolFiles.Open(_activePath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete);
                _activeIdentity = SpoolFiles.IdentityOf(_active);
                _activeLength = 0;
            }

            try
            {
                _active.Write(lines);
                if (_flushToDisk)
                {
                    _active.Flush(flushToDisk: true);
                }
            }
            catch (IOException)
            {
                if (_activeLength == 0)
                {
                    // Nothing of it was counted: deleted rather than kept open (a full disk refuses group after group).
                    Discard();
                    throw;
                }

                // A partial line may be at the end: the segment is closed here, so the next append starts a new one and
                // a replay counts the cut line instead of merging it with the next record.
                Close(_activeLast);
                throw;
            }

            _activeLength += lines.Length;
            Bytes += lines.Length;
            _activeLast = lastSequence;
            if (_activeLength >= SegmentBytes)
            {
                Close(lastSequence);
            }
        }
    }

    /// <summary>
    /// Between appends (the journal's thread, idle): the same check as at the start of <see cref="Append"/>, so that files
    /// deleted under an idle journal are written again without waiting for the next record. Nothing to do when every
    /// record is committed.
    /// </summary>
    /// <exception cref="IOException">They cannot be written again (tried again at the next check or append).</exception>
    public void CheckFiles()
    {
        lock (_lock)
        {
            if ((_active is not null && !SpoolFiles.StillAt(_activeIdentity, _activePath!)) || AnyGone())
            {
                WriteAgain();
            }
        }
    }

    /// <summary>
    /// Under <c>_lock</c>: whether a closed segment or a left-over being replayed is no longer at its path (one <c>statx</c>
    /// each), or, with none, the directory is gone. Not only the directory: another part of JobLog (the spool) may have made
    /// it again already.
    /// </summary>
    private bool AnyGone()
    {
        if (_closed.Count == 0 && _leftOvers.Count == 0)
        {
            return !System.IO.Directory.Exists(Directory);
        }

        return _closed.Any(c => c.File is { } file ? !SpoolFiles.StillAt(file, c.Path) : !File.Exists(c.Path))
            || _leftOvers.Values.Any(l => l.File is { } file && !SpoolFiles.StillAt(file, l.Path));
    }

    /// <summary>Every record up to <paramref name="committed"/> is in the database: the segments holding only such records are deleted.</summary>
    public void Checkpoint(long committed)
    {
        lock (_lock)
        {
            if (_active is not null && _activeLast <= committed)
            {
                Close(_activeLast);
            }

            while (_closed.TryPeek(out var segment) && segment.LastSequence <= committed)
            {
                _closed.Dequeue();
                Bytes -= segment.Length;
                if (segment.File is { } file)
                {
                    file.Dispose();
                    _closedOpen--;
                }

                File.Delete(segment.Path);
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _active?.Dispose();
            _active = null;
            foreach (var segment in _closed)
            {
                segment.File?.Dispose();
            }

            foreach (var held in _adoptedLocks.Values)
            {
                held.Dispose();
            }

            _adoptedLocks.Clear();

            foreach (var leftOver in _leftOvers.Values)
            {
                leftOver.File?.Dispose();
            }

            _slotLock.Dispose();
        }
    }

    private void Close(long lastSequence)
    {
        // Kept open until its records are committed (the class's remarks).
        if (_active is not null && _activePath is not null)
        {
            var length = _active.Length;
            if (_closedOpen < OpenSegments)
            {
                _closed.Enqueue((_activePath, lastSequence, _active, length));
                _closedOpen++;
            }
            else
            {
                _active.Dispose();
                _closed.Enqueue((_activePath, lastSequence, null, length));
            }
        }

        _active = null;
        _activePath = null;
    }

    private void Discard()
    {
        _active?.Dispose();
        if (_activePath is not null)
        {
            File.Delete(_activePath);
        }

        _active = null;
        _activePath = null;
    }

    /// <summary>
    /// The journal's files were deleted under it: makes the directory again (checked as at start), takes a slot's lock again
    /// (its own, or the first free one), and writes every segment not yet committed whose file is gone into a new one, from
    /// its open handle, in order. Told to <see cref="Lost"/>.
    /// </summary>
    /// <exception cref="IOException">The directory cannot be made again, or every slot is held: the append is refused, and tried again next time.</exception>
    private void WriteAgain()
    {
        if (SpoolFiles.CheckDirectory(Directory, create: true) is { } refusal)
        {
            throw new SpoolFileRefusedException(Directory, refusal);
        }

        if (!SpoolFiles.StillAt(_slotLock, SlotLockPath))
        {
            TakeASlotAgain();
        }

        var written = 0;
        var lost = 0;
        var closed = new Queue<(string Path, long LastSequence, FileStream? File, long Length)>();
        foreach (var segment in _closed)
        {
            if (segment.File is null)
            {
                if (File.Exists(segment.Path))
                {
                    closed.Enqueue(segment);
                }
                else
                {
                    // Kept by its path only (beyond OpenSegments): nothing to write it again from.
                    Bytes -= segment.Length;
                    lost++;
                }

                continue;
            }

            if (SpoolFiles.StillAt(segment.File, segment.Path))
            {
                closed.Enqueue(segment);
                continue;
            }

            var (path, copy) = Copy(segment.File);
            segment.File.Dispose();
            closed.Enqueue((path, segment.LastSequence, copy, segment.Length));
            written++;
        }

        _closed = closed;
        foreach (var (taken, leftOver) in _leftOvers.ToList())
        {
            if (leftOver.File is { } file && !SpoolFiles.StillAt(file, leftOver.Path))
            {
                // Its records are not this process's sequences: the copy is not checkpointed, only deleted by ForgetLeftOver.
                var (path, copy) = Copy(file);
                file.Dispose();
                _leftOvers[taken] = (path, copy);
                written++;
            }
        }

        if (_active is not null && !SpoolFiles.StillAt(_active, _activePath!))
        {
            var (path, copy) = Copy(_active);
            _active.Dispose();
            (_active, _activePath, _activeIdentity) = (copy, path, SpoolFiles.IdentityOf(copy));
            written++;
        }

        Lost?.Invoke(Directory, written, lost);
    }

    private string SlotLockPath => Path.Combine(Directory, _prefix + ".journal.lock");

    /// <summary>
    /// This slot's lock file is gone (deleted, or its directory): locks it again, or, when another process took it
    /// meanwhile, the first free slot; new segments go there (those not yet committed stay where they are, open).
    /// </summary>
    /// <exception cref="IOException">Every slot is held: the append is refused, and tried again at the next segment.</exception>
    private void TakeASlotAgain()
    {
        var prefix = _prefix;
        var held = TryLock(Directory, prefix);
        for (var slot = 0; held is null && slot < Slots; slot++)
        {
            prefix = Prefix(_ledger, slot);
            held = TryLock(Directory, prefix);
        }

        if (held is null)
        {
            throw new IOException($"JobLog's journal slot lock {SlotLockPath} was deleted, and every journal slot of this ledger is held by a live process.");
        }

        _slotLock.Dispose();
        (_prefix, _slotLock) = (prefix, held);
        _next = Math.Max(_next, SegmentsOf(Directory, _ledger)[_prefix].Select(s => s.Number).DefaultIfEmpty(0).Max() + 1);
    }

    /// <summary>A new segment of this slot with <paramref name="segment"/>'s whole content (read through its open handle), open at its end.</summary>
    private (string Path, FileStream File) Copy(FileStream segment)
    {
        var path = SegmentPath(Directory, _prefix, _next++);
        var copy = SpoolFiles.Open(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete);
        try
        {
            var end = segment.Position;
            segment.Position = 0;
            segment.CopyTo(copy);
            segment.Position = end;
            if (_flushToDisk)
            {
                copy.Flush(flushToDisk: true);
            }
        }
        catch
        {
            copy.Dispose();
            File.Delete(path);
            throw;
        }

        return (path, copy);
    }

    private static string Hash(string ledger) => SpoolFiles.NameOf(ledger);

    private static string Prefix(string ledger, int slot) => $"joblog-{ledger}-{slot}";

    private static string SegmentPath(string directory, string prefix, long number) =>
        Path.Combine(directory, $"{prefix}.{number.ToString("D10", CultureInfo.InvariantCulture)}.journal");

    /// <summary>
    /// True when a live process still has <paramref name="path"/> open to append to (the open segment holds a shared
    /// lock): its slot's lock file was deleted under it (a temporary-file cleaner), so the slot looked free. The segment
    /// stays its owner's; replayed and deleted here, what the owner appends next would be in no file.
    /// </summary>
    private static bool AppendedTo(string path)
    {
        try
        {
            SpoolFiles.Open(path, FileMode.Open, FileAccess.Read, FileShare.None).Dispose();
            return false;
        }
        catch (SpoolFileRefusedException)
        {
            // Not this user's regular file: the replay refuses it, and says so.
            return false;
        }
        catch (IOException) when (File.Exists(path))
        {
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static FileStream? TryLock(string directory, string prefix)
    {
        try
        {
            return SpoolFiles.Open(Path.Combine(directory, prefix + ".journal.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            // Held by another live process, or refused (SpoolFileRefusedException): the slot is skipped.
            return null;
        }
    }

    /// <summary>
    /// Whether <paramref name="exception"/> says that the file system takes no write (EROFS): ext4 remounted read-only
    /// after an error, a read-only mount. Its segments can still be read.
    /// </summary>
    public static bool IsReadOnly(Exception exception) => exception is IOException { HResult: ReadOnlyFileSystem } and not SpoolFileRefusedException;

    // EROFS on Linux and macOS: .NET gives an IOException the errno as its HResult when no other exception fits.
    private const int ReadOnlyFileSystem = 30;

    /// <summary>
    /// Every segment of <paramref name="ledger"/> (under its former name too) in <paramref name="directory"/>, each slot's
    /// oldest first, without taking a slot: on a read-only directory no process can lock a slot, nor append to a segment.
    /// </summary>
    public static List<string> ListReadOnly(string directory, string ledger, string? formerly = null)
    {
        var found = new List<string>();
        foreach (var name in Names(ledger, formerly))
        {
            found.AddRange(SegmentsOf(directory, name).SelectMany(slot => slot.Select(s => s.Path)));
        }

        return found;
    }

    private static string[] Names(string ledger, string? formerly) =>
        formerly is null || formerly == ledger ? [Hash(ledger)] : [Hash(ledger), Hash(formerly)];

    /// <summary>
    /// How many segments of <paramref name="ledger"/> (under its former name too) lie in <paramref name="directory"/> in
    /// slots that no live process holds: records a stopped process journaled and no writer has committed yet. A slot whose
    /// lock cannot be taken (a live process's, or a directory that takes no file) is not counted.
    /// </summary>
    public static int CountLeftOvers(string directory, string ledger, string? formerly = null)
    {
        if (!System.IO.Directory.Exists(directory))
        {
            return 0;
        }

        var left = 0;
        foreach (var name in Names(ledger, formerly))
        {
            foreach (var slot in SegmentsOf(directory, name))
            {
                try
                {
                    using var held = TryLock(directory, slot.Key);
                    left += held is null ? 0 : slot.Count();
                }
                catch (UnauthorizedAccessException)
                {
                    // Not counted: no process can take it either, and the replay that read it said so.
                }
            }
        }

        return left;
    }

    /// <summary>How many times this process listed a journal directory (for the tests).</summary>
    internal static long Listings => Interlocked.Read(ref _listings);

    private static long _listings;

    /// <summary>The segments of every slot of <paramref name="ledger"/>, by slot prefix, oldest first: one listing of the directory.</summary>
    private static ILookup<string, (string Path, long Number)> SegmentsOf(string directory, string ledger)
    {
        Interlocked.Increment(ref _listings);
        var found = new List<(string Prefix, string Path, long Number)>();
        foreach (var path in System.IO.Directory.EnumerateFiles(directory, $"joblog-{ledger}-*.journal"))
        {
            // joblog-{ledger}-{slot}.{number}.journal
            var name = Path.GetFileName(path.AsSpan())[..^".journal".Length];
            var dot = name.LastIndexOf('.');
            if (dot > 0 && long.TryParse(name[(dot + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            {
                found.Add((name[..dot].ToString(), path, n));
            }
        }

        return found.OrderBy(s => s.Number).ToLookup(s => s.Prefix, s => (s.Path, s.Number));
    }
}
