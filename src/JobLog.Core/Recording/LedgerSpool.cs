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
    private FileStream? _append;
    private long _length;
    private long _replayed;
    private long _pendingEnd;
    private FileStream? _lock;
    private readonly ILogger _logger;
    private bool _appendFailed;

    public LedgerSpool(string path, long maxBytes, ILogger? logger = null)
    {
        Path = path;
        _maxBytes = maxBytes;
        _logger = logger ?? NullLogger.Instance;
        _length = SpoolFiles.SizeOf(path);
    }

    public string Path { get; }

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
    public static LedgerSpool? Claim(string directory, string ledger, long maxBytes, ILogger logger, string? formerly = null)
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

                if (formerly is not null && !path.StartsWith(FileFor(directory, ledger)[..^"0.spool.jsonl".Length], StringComparison.Ordinal)
                    && TakeUnderTheLedgersName(directory, ledger, path) is var (renamed, renamedLock))
                {
                    held.Dispose();
                    return new LedgerSpool(renamed, maxBytes, logger) { _lock = renamedLock };
                }

                return new LedgerSpool(path, maxBytes, logger) { _lock = held };
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
            if (_append is null)
            {
                var directory = System.IO.Path.GetDirectoryName(Path)!;
                if (SpoolFiles.CheckDirectory(directory, create: true) is { } refusal)
                {
                    throw new SpoolFileRefusedException(Path, "its directory is refused: " + refusal);
                }

                _append = SpoolFiles.Open(Path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            }

            _append.Write(line);
            _append.Flush();
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
        using var stream = SpoolFiles.Open(Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        stream.Position = _replayed;
        using var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: false);
        var position = _replayed;
        while (into.Count < max && position < end && reader.ReadLine() is { } text)
        {
            position += Encoding.UTF8.GetByteCount(text) + 1;
            if (text.Length == 0)
            {
                continue;
            }

            try
            {
                if (JsonSerializer.Deserialize(text, SpoolJson.Default.LedgerRecord) is { } record && SpoolFormat.IsComplete(record))
                {
                    into.Add(record);
                    continue;
                }
            }
            catch (Exception ex) when (ex is JsonException or NotSupportedException)
            {
                // A line cut by a crash, or of a kind this version does not know: skipped and counted.
            }

            unreadable++;
        }

        _pendingEnd = Math.Min(position, end);
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

        _append?.Dispose();
        _append = null;
        File.Delete(Path);
        _length = 0;
        _replayed = 0;
        _pendingEnd = 0;
        return true;
    }

    public void Dispose()
    {
        _append?.Dispose();
        _lock?.Dispose();
    }
}
