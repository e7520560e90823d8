using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using JobLog.Recording;
using JobLog.Redaction;
using JobLog.Storage;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Retention;

/// <summary>
/// Backups of purged rows: gzip-compressed JSON Lines. The first line is a header
/// (<c>{"format":"joblog-backup","version":1,"kind":"tasks",...}</c>), each further line one row as JobLog's entity
/// (tasks with their <c>Runs</c>, outbound requests with their <c>RelatedObjects</c>), so a restore re-inserts exactly
/// what was deleted.
/// </summary>
internal static class LedgerBackup
{
    public const string Format = "joblog-backup";

    /// <summary>
    /// The longest line a restore reads, in bytes of UTF-8: 256 MiB. A row purge writes is far shorter (every text of it is
    /// cut to <see cref="RedactionOptions.MaxBodyLength"/> or its column; at the defaults a task would need hundreds of runs
    /// whose every text is at its bound and escaped); a longer line is a damaged or hostile file (a small gzip expanding to one
    /// huge line), refused before it is held whole.
    /// </summary>
    public const int MaxLineBytes = 256 * 1024 * 1024;

    /// <summary>Entities as stored: property names as in C#, enums as their stored numbers, navigations back to a parent left out.</summary>
    public static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.General)
    {
        TypeInfoResolver = new DefaultJsonTypeInfoResolver { Modifiers = { LeaveOutBackReferences } },
    };

    public static Type RowType(LedgerKind kind) => kind switch
    {
        LedgerKind.Tasks => typeof(TaskLog),
        LedgerKind.InputRequests => typeof(InputRequestLog),
        LedgerKind.OutputRequests => typeof(OutputRequestLog),
        LedgerKind.Commands => typeof(CommandLog),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown ledger kind."),
    };

    /// <summary>Reads a backup file: its kind and its rows, lazily.</summary>
    /// <exception cref="InvalidDataException">The file is not a JobLog backup.</exception>
    public static async Task<(LedgerKind Kind, IAsyncEnumerable<object> Rows)> OpenAsync(string path, CancellationToken cancellationToken)
    {
        var kind = await ReadHeaderAsync(path, cancellationToken).ConfigureAwait(false);
        return (kind, ReadRowsAsync(path, RowType(kind), null, null, cancellationToken));
    }

    /// <summary>
    /// Inserts the rows of a backup that are not in the ledger; rows already there are skipped. Each row is masked as
    /// the recording path masks what it records (<paramref name="masking"/>): a backup is a file anyone can edit.
    /// </summary>
    /// <returns>Rows inserted and rows skipped.</returns>
    public static async Task<(LedgerKind Kind, int Restored, int Skipped)> RestoreAsync(
        JobLogContextFactory contexts, RecordMasking masking, string path, int batchSize, CancellationToken cancellationToken)
    {
        var kind = await ReadHeaderAsync(path, cancellationToken).ConfigureAwait(false);
        Microsoft.EntityFrameworkCore.Metadata.IModel model;
        await using (var db = contexts.Create())
        {
            model = db.Model;
        }

        // Each row is read and checked against the model before its batch is written: a hand-edited or damaged line
        // is an InvalidDataException that names the file and the line, not a JSON or constraint exception.
        var rows = ReadRowsAsync(path, RowType(kind), model, masking, cancellationToken);
        var restored = 0;
        var skipped = 0;
        var batch = new List<object>(batchSize);
        await foreach (var row in rows.ConfigureAwait(false))
        {
            batch.Add(row);
            if (batch.Count >= batchSize)
            {
                var (r, s) = await InsertAsync(contexts, kind, batch, cancellationToken).ConfigureAwait(false);
                restored += r;
                skipped += s;
                batch.Clear();
            }
        }

        if (batch.Count > 0)
        {
            var (r, s) = await InsertAsync(contexts, kind, batch, cancellationToken).ConfigureAwait(false);
            restored += r;
            skipped += s;
        }

        return (kind, restored, skipped);
    }

    private static async Task<(int Restored, int Skipped)> InsertAsync(
        JobLogContextFactory contexts, LedgerKind kind, List<object> rows, CancellationToken ct)
    {
        await using var db = contexts.Create();
        var ids = rows.Select(IdOf).ToList();
        var existing = kind switch
        {
            LedgerKind.Tasks => await db.TaskLogs.Where(t => ids.Contains(t.Id)).Select(t => t.Id).ToListAsync(ct).ConfigureAwait(false),
            LedgerKind.InputRequests => await db.InputRequestLogs.Where(r => ids.Contains(r.Id)).Select(r => r.Id).ToListAsync(ct).ConfigureAwait(false),
            LedgerKind.OutputRequests => await db.OutputRequestLogs.Where(r => ids.Contains(r.Id)).Select(r => r.Id).ToListAsync(ct).ConfigureAwait(false),
            LedgerKind.Commands => await db.CommandLogs.Where(c => ids.Contains(c.Id)).Select(c => c.Id).ToListAsync(ct).ConfigureAwait(false),
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown ledger kind."),
        };
        var skip = existing.ToHashSet();
        var fresh = rows.Where(r => !skip.Contains(IdOf(r))).ToList();
        if (fresh.Count > 0 && await contexts.Database.IsPartitionedAsync(db, kind, ct).ConfigureAwait(false))
        {
            // The partitioned tables' key is not in the EF model: the rows go in through SQL that computes it.
            await Storage.Partitioning.LedgerPartitioning.RestoreLogsAsync(db, kind, JsonSerializer.Serialize(fresh, JsonOptions), ct).ConfigureAwait(false);
            return (fresh.Count, rows.Count - fresh.Count);
        }

        db.AddRange(fresh);
        await db.SaveChangesAsync(ct).ConfigureAwait(false);
        return (fresh.Count, rows.Count - fresh.Count);
    }

    private static Guid IdOf(object row) => row switch
    {
        TaskLog t => t.Id,
        RequestLogBase r => r.Id,
        CommandLog c => c.Id,
        _ => throw new InvalidDataException("Not a ledger row: " + row.GetType().Name),
    };

    private static async Task<LedgerKind> ReadHeaderAsync(string path, CancellationToken ct)
    {
        using var reader = new BackupLines(path);
        var line = await reader.ReadLineAsync(ct).ConfigureAwait(false) ?? ReadOnlyMemory<byte>.Empty;
        try
        {
            using var header = JsonDocument.Parse(line);
            var root = header.RootElement;
            if (root.GetProperty("format").GetString() != Format || root.GetProperty("version").GetInt32() != 1
                || !LedgerPurger.TryParseKind(root.GetProperty("kind").GetString() ?? "", out var kind))
            {
                throw new InvalidDataException($"{path} is not a JobLog backup (version 1).");
            }

            return kind;
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path} is not a JobLog backup: {ex.Message}", ex);
        }
    }

    private static async IAsyncEnumerable<object> ReadRowsAsync(
        string path, Type type, Microsoft.EntityFrameworkCore.Metadata.IModel? model, RecordMasking? masking,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        using var reader = new BackupLines(path);
        await reader.ReadLineAsync(ct).ConfigureAwait(false);
        while (await reader.ReadLineAsync(ct).ConfigureAwait(false) is { } line)
        {
            var number = reader.Number;
            if (line.Length == 0)
            {
                continue;
            }

            object? row;
            try
            {
                row = JsonSerializer.Deserialize(line.Span, type, JsonOptions);
            }
            catch (JsonException ex)
            {
                throw new InvalidDataException($"{path}, line {number}: not a {type.Name} row: {ex.Message}", ex);
            }

            if (row is null)
            {
                throw new InvalidDataException($"{path}, line {number}: an empty row.");
            }

            // Masked before it is checked: a replacement may make a text longer than its column.
            masking?.ApplyTo(row);
            if (model is not null && Invalid(model, row) is { } problem)
            {
                throw new InvalidDataException($"{path}, line {number}: {problem}");
            }

            yield return row;
        }
    }

    /// <summary>
    /// What the ledger could not store or show: a required value missing, an enum value out of range, a text longer than its
    /// column (PostgreSQL refuses it mid-restore, SQLite would keep it unbounded) (also in child rows). Cleans the row's text
    /// on the way, as the writer cleans what it stores (<see cref="TextBounds.Sanitize"/>: NUL removed, lone surrogates replaced).
    /// </summary>
    private static string? Invalid(Microsoft.EntityFrameworkCore.Metadata.IModel model, object row)
    {
        if (model.FindEntityType(row.GetType()) is not { } entity)
        {
            return $"{row.GetType().Name} is not a ledger row.";
        }

        foreach (var property in entity.GetProperties())
        {
            if (property.PropertyInfo is not { } info)
            {
                continue;
            }

            var value = info.GetValue(row);
            if (value is null && !property.IsNullable)
            {
                return $"a {entity.ClrType.Name} without {property.Name}.";
            }

            if (value is string text)
            {
                var clean = TextBounds.Sanitize(text);
                if (property.GetMaxLength() is { } max && clean.Length > max)
                {
                    return $"a {entity.ClrType.Name} whose {property.Name} is {clean.Length} characters long, more than its {max}.";
                }

                if (!ReferenceEquals(clean, text) && info.CanWrite)
                {
                    info.SetValue(row, clean);
                }
            }

            if (value is Enum e && !Enum.IsDefined(e.GetType(), e))
            {
                return $"a {entity.ClrType.Name} whose {property.Name} is {Convert.ToInt64(e, CultureInfo.InvariantCulture)}, not a {e.GetType().Name}.";
            }
        }

        foreach (var navigation in entity.GetNavigations().Where(n => n.IsCollection && n.PropertyInfo is not null))
        {
            if (navigation.PropertyInfo!.GetValue(row) is System.Collections.IEnumerable children)
            {
                foreach (var child in children)
                {
                    if (child is not null && Invalid(model, child) is { } problem)
                    {
                        return problem;
                    }
                }
            }
        }

        return null;
    }

    /// <summary>
    /// The lines of a backup as UTF-8, each at most <see cref="MaxLineBytes"/> long: a longer one is an
    /// <see cref="InvalidDataException"/> as soon as that many bytes are read without its end, so a file that expands to one
    /// huge line costs the bound, not the line. A line is valid until the next is read.
    /// </summary>
    private sealed class BackupLines(string path) : IDisposable
    {
        private readonly Stream _stream = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        private byte[] _buffer = new byte[64 * 1024];
        private int _start;
        private int _end;
        private bool _ended;

        /// <summary>The number of the line last read, from 1.</summary>
        public int Number { get; private set; }

        public async ValueTask<ReadOnlyMemory<byte>?> ReadLineAsync(CancellationToken ct)
        {
            var searched = 0;
            while (true)
            {
                var at = _buffer.AsSpan(_start + searched, _end - _start - searched).IndexOf((byte)'\n');
                var length = at >= 0 ? searched + at : _end - _start;
                if (length > MaxLineBytes)
                {
                    throw new InvalidDataException(
                        $"{path}, line {Number + 1}: longer than {MaxLineBytes / (1024 * 1024)} MiB, which no row a purge writes is (a damaged or hostile file).");
                }

                if (at >= 0 || _ended)
                {
                    if (at < 0 && length == 0)
                    {
                        return null;
                    }

                    var line = _buffer.AsMemory(_start, length);
                    _start += at >= 0 ? length + 1 : length;
                    Number++;
                    line = line.Span.EndsWith((byte)'\r') ? line[..^1] : line;
                    return Number == 1 && line.Span.StartsWith(Encoding.UTF8.Preamble) ? line[Encoding.UTF8.Preamble.Length..] : line;
                }

                searched = length;
                if (_end == _buffer.Length)
                {
                    // Room for the rest of the line: moved to the front, or a buffer twice as large, at most the bound and
                    // the line's end (past half the bound, that at once: its allocations stay about twice the bound).
                    var buffer = _start > 0 ? _buffer : new byte[2L * _buffer.Length < MaxLineBytes ? 2 * _buffer.Length : MaxLineBytes + 1];
                    _buffer.AsSpan(_start, searched).CopyTo(buffer);
                    (_buffer, _start, _end) = (buffer, 0, searched);
                }

                int read;
                try
                {
                    read = await _stream.ReadAsync(_buffer.AsMemory(_end), ct).ConfigureAwait(false);
                }
                catch (InvalidDataException ex)
                {
                    throw new InvalidDataException($"{path}, line {Number + 1}: not gzip-compressed JSON Lines as purge writes them: {ex.Message}", ex);
                }

                _ended = read == 0;
                _end += read;
            }
        }

        public void Dispose() => _stream.Dispose();
    }

    private static void LeaveOutBackReferences(JsonTypeInfo info)
    {
        if (info.Kind != JsonTypeInfoKind.Object)
        {
            return;
        }

        for (var i = info.Properties.Count - 1; i >= 0; i--)
        {
            var property = info.Properties[i];
            if ((info.Type == typeof(TaskRunLog) && property.Name == nameof(TaskRunLog.Task))
                || (info.Type == typeof(TaskLog) && property.Name == nameof(TaskLog.TaskId)))
            {
                info.Properties.RemoveAt(i);
            }
        }
    }

    internal static string FileName(LedgerKind kind, DateTimeOffset now) =>
        $"joblog-{LedgerPurger.KindName(kind)}-{now.UtcDateTime.ToString("yyyyMMdd'T'HHmmssfff'Z'", CultureInfo.InvariantCulture)}.jsonl.gz";
}

/// <summary>Appends purged rows to a new backup file; every batch is flushed to disk before its delete commits.</summary>
internal sealed class LedgerBackupWriter : IAsyncDisposable
{
    private readonly FileStream _file;
    private readonly GZipStream _gzip;
    private readonly StreamWriter _writer;

    private LedgerBackupWriter(string path, FileStream file)
    {
        Path = path;
        _file = file;
        _gzip = new GZipStream(file, CompressionLevel.Optimal, leaveOpen: true);
        _writer = new StreamWriter(_gzip, new UTF8Encoding(false), 64 * 1024, leaveOpen: true) { NewLine = "\n" };
    }

    public string Path { get; }

    public static LedgerBackupWriter Create(string directory, LedgerKind kind, DateTimeOffset now)
    {
        Directory.CreateDirectory(directory);
        var name = LedgerBackup.FileName(kind, now);
        var path = System.IO.Path.Combine(directory, name);
        for (var i = 2; File.Exists(path); i++)
        {
            path = System.IO.Path.Combine(directory, name.Replace(".jsonl.gz", $"-{i}.jsonl.gz", StringComparison.Ordinal));
        }

        var writer = new LedgerBackupWriter(path, new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read));
        writer._writer.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["format"] = LedgerBackup.Format,
            ["version"] = 1,
            ["kind"] = LedgerPurger.KindName(kind),
            ["createdAt"] = now.UtcDateTime,
        }));
        return writer;
    }

    public async Task WriteAsync(IReadOnlyList<object> rows, CancellationToken cancellationToken)
    {
        foreach (var row in rows)
        {
            await _writer.WriteLineAsync(JsonSerializer.Serialize(row, row.GetType(), LedgerBackup.JsonOptions).AsMemory(), cancellationToken).ConfigureAwait(false);
        }

        await _writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        await _gzip.FlushAsync(cancellationToken).ConfigureAwait(false);
        _file.Flush(flushToDisk: true);
    }

    public async ValueTask DisposeAsync()
    {
        await _writer.DisposeAsync().ConfigureAwait(false);
        await _gzip.DisposeAsync().ConfigureAwait(false);
        _file.Flush(flushToDisk: true);
        await _file.DisposeAsync().ConfigureAwait(false);
    }
}
