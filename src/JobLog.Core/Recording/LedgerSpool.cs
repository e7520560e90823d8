using System.Text;
using System.Text.Json;
using JobLog.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace JobLog.Recording;

/// <summary>
/// The overflow of the recorder's queue (docs/architecture.md#write-path): records that do not fit in memory while the database is slow or down
/// are appended to a local file, one JSON line each, and replayed in order when the writer has caught up. A file left by
/// a process that stopped before the replay is replayed by the next one. The directory and every file are checked by
/// <see cref="SpoolFiles"/>: this user's, writable by nobody else, never a symbolic link. Not thread-safe: the recorder serialises appends
/// under its enqueue lock, and only the writer reads.
/// </summary>
internal sealed class LedgerSpool : IDisposable
{
    private readonly long _maxBytes;
    private readonly string _directory;
    private readonly string _ledger;
    private readonly Lock _gate = new();

    // The file, open for reading and appending from the first append (or the first read of a file left by a stopped
    // process) until it is replayed: reads go through it, so a file deleted under the process (an operator, a
    // temporary-file cleaner) can still be read back and written again at its path (session 23, CheckFile).
    private FileStream? _file;
    private SpoolFiles.Identity? _identity;
    private long _length;
    private long _replayed;
    private long _pendingEnd;
    private FileStream? _lock;
    private readonly ILogger _logger;
    private bool _appendFailed;

    public LedgerSpool(string path, long maxBytes, ILogger? logger = null, string? ledger = null)
    {
        Path = path;
        _maxBytes = maxBytes;
        _logger = logger ?? NullLogger.Instance;
        _length = SpoolFiles.SizeOf(path);
        _directory = System.IO.Path.GetDirectoryName(path)!;
        _ledger = ledger ?? System.IO.Path.GetFileName(path);
    }

    /// <summary>The file's path (another slot's after <see cref="CheckFile"/> found it deleted and its slot taken).</summary>
    public string Path { get; private set; }

    /// <summary>Told when the file was found deleted and written again: the new path, and the bytes written there.</summary>
    public Action<string, long>? WrittenAgain { get; set; }

    /// <summary>The error that made the last append fail (null when it fit, or when the file was only full).</summary>
    public Exception? AppendFailure { get; private set; }

    /// <summary>Bytes appended and not yet replayed.</summary>
    public long PendingBytes => Volatile.Read(ref _length) - Volatile.Read(ref _replayed);

    /// <summary>
    /// A spool file's name for a ledger: per ledger (its database, <c>LedgerRecorder.LedgerName</c>), so two ledgers never
    /// share one, and per slot, so two processes on one machine writing to the same ledger never share one either.
    /// </summary>
    public static string FileFor(string directory, string ledger, int slot = 0)
    {
        return System.IO.Path.Combine(directory, $"joblog-{SpoolFiles.NameOf(ledger)}-{slot}.spool.jsonl");
    }

    private const int Slots = 16;

    /// <summary>
    /// True when a stopped process left spooled records for this ledger (checked at start, without claiming a slot), also
    /// in files named after <paramref name="formerly"/> (the connection string, as versions before session 21 named them).
    /// </summary>
    public static bool AnyLeftOver(string directory, string ledger, string? formerly = null) =>
        PathsOf(directory, ledger, formerly).Any(SpoolFiles.AnythingAt);

    /// <summary>The slots' files of <paramref name="ledger"/>, then those of its former name that hold records.</summary>
    private static IEnumerable<string> PathsOf(string directory, string ledger, string? formerly)
    {
        var paths = Enumerable.Range(0, Slots).Select(slot => FileFor(directory, ledger, slot));
        return formerly is null || formerly == ledger
            ? paths
            : paths.Concat(Enumerable.Range(0, Slots).Select(slot => FileFor(directory, formerly, slot)).Where(SpoolFiles.AnythingAt));
    }

    /// <summary>
    /// The first spool slot of this ledger that no other live process holds (an exclusive lock on a companion file,
    /// held until <see cref="Dispose"/>). A file a stopped process left in that slot is replayed by its new owner; a slot
    /// whose file is not this user's regular file is skipped with a logged error. Null when the directory is refused
    /// (logged), cannot be used or every slot is taken: the overflow is then dropped and counted.
    /// </summary>
    /// <remarks>
    /// With <c>adopt</c>, the files stopped processes left in the other free slots are taken too (<see cref="AdoptLeftOvers"/>):
    /// at start only, never at a first overflow, where the copy would hold the enqueue lock.
    /// </remarks>
    public static LedgerSpool? Claim(string directory, string ledger, long maxBytes, ILogger logger, string? formerly = null, bool adopt = false)
    {
        if (SpoolFiles.CheckDirectory(directory, create: true) is { } refusal)
        {
            Log.SpoolDirectoryRefused(logger, directory, refusal);
            return null;
        }

        // A slot a stopped process left records in comes first (one named by an earlier version too); then the first free one.
        foreach (var path in PathsOf(directory, ledger, formerly).OrderByDescending(SpoolFiles.AnythingAt))
        {
            try
            {
                var held = SpoolFiles.Open(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                try
                {
                    // The spool file itself is checked before anything of it is read or replayed.
                    if (SpoolFiles.AnythingAt(path))
                    {
                        SpoolFiles.Open(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete).Dispose();
                    }
                }
                catch
                {
                    held.Dispose();
                    throw;
                }

                var claimed = path;
                if (formerly is not null && !path.StartsWith(FileFor(directory, ledger)[..^"0.spool.jsonl".Length], StringComparison.Ordinal)
                    && TakeUnderTheLedgersName(directory, ledger, path) is var (renamed, renamedLock))
                {
                    held.Dispose();
                    (claimed, held) = (renamed, renamedLock);
                }

                if (adopt)
                {
                    AdoptLeftOvers(directory, ledger, formerly, claimed, logger);
                }

                return new LedgerSpool(claimed, maxBytes, logger, ledger) { _lock = held };
            }
            catch (SpoolFileRefusedException ex)
            {
                Log.SpoolFileRefused(logger, ex.Path, ex.Reason);
            }
            catch (IOException)
            {
                // Held by another process: the next slot.
            }
            catch (UnauthorizedAccessException ex)
            {
                Log.SpoolAppendFailed(logger, ex, path);
                return null;
            }
        }

        return null;
    }

    /// <summary>
    /// Appends to <paramref name="claimed"/> (this process's slot, locked) the files stopped processes left in the other
    /// slots of the ledger that no live process holds, and deletes them: a process replays one spool file, so without this
    /// the left-overs of a second dead process waited for yet another process to start (session 23). A crash in between
    /// leaves a record in both files: replayed twice, which the ledger's upserts make harmless. A file that cannot be
    /// taken (held, refused, unreadable) is left where it is, for the next start.
    /// </summary>
    private static void AdoptLeftOvers(string directory, string ledger, string? formerly, string claimed, ILogger logger)
    {
        foreach (var other in PathsOf(directory, ledger, formerly).Where(p => p != claimed && SpoolFiles.AnythingAt(p)).ToList())
        {
            FileStream? held = null;
            try
            {
                held = SpoolFiles.Open(other + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                byte[] content;
                using (var left = SpoolFiles.Open(other, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
                {
                    content = new byte[left.Length];
                    left.ReadExactly(content);
                }

                using (var into = SpoolFiles.Open(claimed, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete))
                {
                    // A line the crash cut in either file stays a line of its own (skipped and counted at the replay).
                    if (into.Length > 0)
                    {
                        into.Position = into.Length - 1;
                        if (into.ReadByte() != '\n')
                        {
                            into.WriteByte((byte)'\n');
                        }
                    }

                    into.Seek(0, SeekOrigin.End);
                    into.Write(content);
                    if (content.Length > 0 && content[^1] != '\n')
                    {
                        into.WriteByte((byte)'\n');
                    }
                }

                File.Delete(other);
                Log.SpoolAdopted(logger, other, content.Length, claimed);
            }
            catch (SpoolFileRefusedException ex)
            {
                Log.SpoolFileRefused(logger, ex.Path, ex.Reason);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Held by a live process (its own), or unreadable: left for the next start.
            }
            finally
            {
                held?.Dispose();
            }
        }
    }

    /// <summary>
    /// The spool files of stopped processes of this ledger that no live process holds, each with its slot's lock, now held
    /// (the writer of a process that runs on, every 10 s: <c>LedgerRecorder.TakeStoppedProcessesJournals</c>; session 23). This
    /// process's own file is never among them: its lock is held. The caller replays a file's records
    /// (<see cref="ReadStopped"/>, in parts of at most a journal segment's size: before session 24 it read the whole file,
    /// and a file larger than a segment waited for the next process to start), then deletes it and lets the lock go.
    /// </summary>
    public static List<(string Path, FileStream Lock)> TakeStopped(string directory, string ledger, string? formerly)
    {
        var taken = new List<(string, FileStream)>();
        foreach (var path in PathsOf(directory, ledger, formerly).Where(SpoolFiles.AnythingAt).ToList())
        {
            if (TryTake(path) is not { } held)
            {
                continue;
            }

            if (SpoolFiles.AnythingAt(path))
            {
                taken.Add((path, held));
            }
            else
            {
                held.Dispose();
            }
        }

        return taken;
    }

    /// <summary>
    /// The records of a stopped process's spool file <see cref="TakeStopped"/> took, from <paramref name="offset"/>: the whole
    /// lines in the next <paramref name="maxBytes"/> (all of a longer line); a line that cannot be read is counted.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="offset">Where to start: 0, then what <paramref name="next"/> said.</param>
    /// <param name="maxBytes">About how much to read: the writer holds a part in memory until it is committed.</param>
    /// <param name="unreadable">Lines that could not be read (the last one cut by the crash, at the end).</param>
    /// <param name="next">Where the next part starts; -1 when this part reached the end.</param>
    /// <exception cref="IOException">The file cannot be read (refused: not this user's regular file).</exception>
    public static List<LedgerRecord> ReadStopped(string path, long offset, long maxBytes, out int unreadable, out long next)
    {
        unreadable = 0;
        byte[] content;
        int end;
        using (var file = SpoolFiles.Open(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            var length = file.Length;
            file.Position = Math.Min(offset, length);
            content = new byte[(int)Math.Min(Math.Max(0, length - offset), Math.Max(1, maxBytes))];
            file.ReadExactly(content);
            end = content.Length;
            next = offset + content.Length < length ? offset + content.Length : -1;
            if (next >= 0)
            {
                var last = Array.LastIndexOf(content, (byte)'\n');
                if (last >= 0)
                {
                    end = last + 1;
                    next = offset + end;
                }
                else
                {
                    // One line longer than a part: the rest of the file read whole, as before parts.
                    var rest = new byte[length - offset];
                    content.CopyTo(rest, 0);
                    file.ReadExactly(rest.AsSpan(content.Length));
                    (content, end, next) = (rest, rest.Length, -1);
                }
            }
        }

        var records = new List<LedgerRecord>();
        var line = new List<byte>();
        foreach (var b in content.AsSpan(0, end))
        {
            if (b != (byte)'\n')
            {
                line.Add(b);
                continue;
            }

            if (line.Count > 0 && !TryRead(line, records))
            {
                unreadable++;
            }

            line.Clear();
        }

        if (line.Count > 0)
        {
            // The last line was cut by the crash.
            unreadable++;
        }

        return records;
    }

    /// <summary>
    /// Moves a file an earlier version named after the connection string (<paramref name="former"/>, its slot locked by the
    /// caller) to a free slot of the ledger's name, so that what this process spools later is found by the next process
    /// whatever its connection string. Null when no slot is free or the move fails: the former file is used as it is.
    /// </summary>
    private static (string Path, FileStream Lock)? TakeUnderTheLedgersName(string directory, string ledger, string former)
    {
        for (var slot = 0; slot < Slots; slot++)
        {
            var path = FileFor(directory, ledger, slot);
            FileStream? held = null;
            try
            {
                held = SpoolFiles.Open(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                if (SpoolFiles.AnythingAt(path))
                {
                    held.Dispose();
                    continue;
                }

                File.Move(former, path, overwrite: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or SpoolFileRefusedException)
            {
                // Held by another process, or not movable: the next slot.
                held?.Dispose();
                continue;
            }

            try
            {
                File.Delete(former + ".lock");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Left: an empty lock file of a name nothing uses any more.
            }

            return (path, held);
        }

        return null;
    }

    /// <summary>Appends a record (written through to the operating system); false when the file is at its size limit or cannot be written.</summary>
    public bool TryAppend(LedgerRecord record)
    {
        byte[] json;
        try
        {
            json = JsonSerializer.SerializeToUtf8Bytes(SpoolFormat.ForSpool(record), SpoolJson.Default.LedgerRecord);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException)
        {
            return false;
        }

        // One write per line, newline included: a crash leaves at most one cut line, at the end.
        var line = new byte[json.Length + 1];
        json.CopyTo(line, 0);
        line[^1] = (byte)'\n';
        if (_length + line.Length > _maxBytes)
        {
            return false;
        }

        try
        {
            lock (_gate)
            {
                var file = OpenOrCheck();
                file.Seek(0, SeekOrigin.End);
                file.Write(line);
                file.Flush();
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            AppendFailure = ex;
            if (!_appendFailed)
            {
                _appendFailed = true;
                if (ex is SpoolFileRefusedException refused)
                {
                    Log.SpoolFileRefused(_logger, refused.Path, refused.Reason);
                }
                else
                {
                    Log.SpoolAppendFailed(_logger, ex, Path);
                }
            }

            return false;
        }

        Volatile.Write(ref _length, _length + line.Length);
        return true;
    }

    /// <summary>
    /// Reads up to <paramref name="max"/> records after the last replayed one (a line that cannot be read is skipped and
    /// counted in <paramref name="unreadable"/>). The position moves only with <see cref="MarkReplayed"/>.
    /// </summary>
    /// <exception cref="IOException">The file cannot be read, or is no longer this user's regular file.</exception>
    public void ReadNext(List<LedgerRecord> into, int max, out int unreadable)
    {
        unreadable = 0;
        var end = Volatile.Read(ref _length);
        var position = _replayed;
        var line = new List<byte>();
        var block = new byte[64 * 1024];
        lock (_gate)
        {
            var file = OpenOrCheck();
            var offset = position;
            while (into.Count < max && offset < end)
            {
                var read = RandomAccess.Read(file.SafeFileHandle, block.AsSpan(0, (int)Math.Min(block.Length, end - offset)), offset);
                if (read == 0)
                {
                    break;
                }

                for (var i = 0; i < read && into.Count < max; i++)
                {
                    if (block[i] != (byte)'\n')
                    {
                        line.Add(block[i]);
                        continue;
                    }

                    position = offset + i + 1;
                    if (line.Count > 0 && !TryRead(line, into))
                    {
                        unreadable++;
                    }

                    line.Clear();
                }

                offset += read;
            }

            if (into.Count < max && offset >= end && line.Count > 0)
            {
                // The last line was cut by a crash (no newline before the end).
                unreadable++;
                position = end;
            }
        }

        _pendingEnd = Math.Min(position, end);
    }

    private static bool TryRead(List<byte> line, List<LedgerRecord> into)
    {
        try
        {
            if (JsonSerializer.Deserialize(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(line), SpoolJson.Default.LedgerRecord) is { } record
                && SpoolFormat.IsComplete(record))
            {
                into.Add(record);
                return true;
            }
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException)
        {
            // A line cut by a crash, or of a kind this version does not know: skipped and counted.
        }

        return false;
    }

    /// <summary>
    /// Whether the file is still at its path (the recorder, every second while records wait in it): when it was deleted
    /// (its directory with it), the directory is made again and the whole file written again from the open handle, at its
    /// path or, when another process took its slot meanwhile, in a free one (<see cref="WrittenAgain"/>). From then on a
    /// crash loses nothing of it. Nothing to do before the first append or read.
    /// </summary>
    /// <exception cref="IOException">It cannot be written again (tried again at the next check, append or read).</exception>
    public void CheckFile()
    {
        lock (_gate)
        {
            if (_file is not null)
            {
                OpenOrCheck(orTheDeletedFile: false);
            }
        }
    }

    /// <summary>
    /// Under <c>_gate</c>: the open file, opened now (its directory made when missing) or written again when it was
    /// deleted. When it cannot be written again (a cleaner deleting the directory again meanwhile, a refused directory),
    /// the deleted file's handle, which still holds every record, unless <paramref name="orTheDeletedFile"/> is false:
    /// appends and reads go on with it, and the timer's <see cref="CheckFile"/> tries again (and says why it failed).
    /// </summary>
    private FileStream OpenOrCheck(bool orTheDeletedFile = true)
    {
        if (_file is not null)
        {
            if (!SpoolFiles.StillAt(_identity, Path))
            {
                try
                {
                    WriteAgain(_file);
                }
                catch (Exception ex) when (orTheDeletedFile && ex is IOException or UnauthorizedAccessException)
                {
                    // Giving the spool up here would lose what it holds (session 31): the check tries again in a second.
                }
            }

            return _file;
        }

        if (SpoolFiles.CheckDirectory(_directory, create: true) is { } refusal)
        {
            throw new SpoolFileRefusedException(Path, "its directory is refused: " + refusal);
        }

        if (_lock is not null && !SpoolFiles.StillAt(_lock, Path + ".lock"))
        {
            // The slot's lock file went with a deleted directory: another process may have taken the slot since.
            var (path, held) = TryTake(Path) is { } own ? (Path, own) : FreeSlot();
            _lock.Dispose();
            (_lock, Path) = (held, path);
        }

        _file = SpoolFiles.Open(Path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        _identity = SpoolFiles.IdentityOf(_file);
        if (_file.Length > 0)
        {
            // A line a crash cut at the end of a stopped process's file stays a line of its own, not the start of the next record.
            _file.Position = _file.Length - 1;
            if (_file.ReadByte() != '\n')
            {
                _file.WriteByte((byte)'\n');
                _file.Flush();
                Volatile.Write(ref _length, _file.Length);
            }
        }

        return _file;
    }

    private void WriteAgain(FileStream deleted)
    {
        if (SpoolFiles.CheckDirectory(_directory, create: true) is { } refusal)
        {
            throw new SpoolFileRefusedException(_directory, refusal);
        }

        // The slot's lock file went with the directory: this slot again when it is free, else the first free one without a file.
        var (path, held) = TryTake(Path) is { } own ? (Path, own) : FreeSlot();
        FileStream copy;
        try
        {
            copy = SpoolFiles.Open(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        }
        catch
        {
            held.Dispose();
            throw;
        }

        // What the deleted file holds, not _length: an append may have written its line and not yet counted it.
        var length = RandomAccess.GetLength(deleted.SafeFileHandle);
        try
        {
            var buffer = new byte[64 * 1024];
            for (long offset = 0; offset < length;)
            {
                var read = RandomAccess.Read(deleted.SafeFileHandle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length - offset)), offset);
                if (read == 0)
                {
                    break;
                }

                copy.Write(buffer, 0, read);
                offset += read;
            }

            copy.Flush();
        }
        catch
        {
            copy.Dispose();
            File.Delete(path);
            held.Dispose();
            throw;
        }

        deleted.Dispose();
        _lock?.Dispose();
        (_file, _identity, _lock, Path) = (copy, SpoolFiles.IdentityOf(copy), held, path);
        WrittenAgain?.Invoke(path, length);
    }

    private static FileStream? TryTake(string path)
    {
        try
        {
            return SpoolFiles.Open(path + ".lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private (string Path, FileStream Lock) FreeSlot()
    {
        for (var slot = 0; slot < Slots; slot++)
        {
            var path = FileFor(_directory, _ledger, slot);
            if (TryTake(path) is { } held)
            {
                if (!SpoolFiles.AnythingAt(path))
                {
                    return (path, held);
                }

                held.Dispose();
            }
        }

        throw Directory.Exists(_directory)
            ? new IOException($"JobLog's spool file {Path} was deleted, and every spool slot of this ledger is held by a live process.")
            : new DirectoryNotFoundException($"JobLog's spool file {Path} was deleted, and its directory {_directory} was deleted again while JobLog wrote it again.");
    }

    /// <summary>The records returned by the last <see cref="ReadNext"/> are committed.</summary>
    public void MarkReplayed() => Volatile.Write(ref _replayed, _pendingEnd);

    /// <summary>Deletes the file once everything in it is replayed; the caller holds the lock that appends take.</summary>
    public bool TryFinish()
    {
        if (Volatile.Read(ref _replayed) < Volatile.Read(ref _length))
        {
            return false;
        }

        lock (_gate)
        {
            // A file not written again after its deletion is not at the path any more; the slot's lock went with it,
            // and what is at the path now may be another process's spool file.
            var own = _file is null || SpoolFiles.StillAt(_identity, Path);
            _file?.Dispose();
            _file = null;
            if (own)
            {
                File.Delete(Path);
            }
        }

        _length = 0;
        _replayed = 0;
        _pendingEnd = 0;
        return true;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _file?.Dispose();
            _lock?.Dispose();
        }
    }
}
