using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using JobLog.Recording;
using JobLog.Redaction;
using JobLog.Storage;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Retention;

/// <summary>
/// Backups of purged rows: gzip-compressed JSON Lines. The first line is a header
/// (<c>{"format":"joblog-backup","version":2,"kind":"tasks",...}</c>), each further line one row as JobLog's entity
/// (tasks with their <c>Runs</c>, outbound requests with their <c>RelatedObjects</c>), so a restore re-inserts exactly
/// what was deleted. Version 2 writes a task whose line would pass <see cref="SplitBytes"/> in pieces (<see cref="MarkLine"/>)
/// and ends with a line counting the rows; version 1 (a task a line, no end line) is read too.
/// </summary>
internal static class LedgerBackup
{
    public const string Format = "joblog-backup";

    /// <summary>
    /// The longest line a restore reads, in bytes of UTF-8: 256 MiB. A line purge writes is far shorter (a task's runs past
    /// <see cref="SplitBytes"/> go in lines of their own, and every text is cut to <see cref="RedactionOptions.MaxBodyLength"/>
    /// or its column); a longer line is a damaged or hostile file (a small gzip expanding to one huge line), refused before it
    /// is held whole.
    /// </summary>
    public const int MaxLineBytes = 256 * 1024 * 1024;

    /// <summary>Entities as stored: property names as in C#, enums as their stored numbers, navigations back to a parent left out.</summary>
    public static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.General)
    {
        // A key twice in a line is refused: read with the last value, a row could show one id or name and restore another.
        AllowDuplicateProperties = false,
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

    /// <summary>
    /// Past this many bytes of (worst-case escaped) JSON, a task's runs are written in lines of their own (version 2): a
    /// line stays near it whatever the task holds, so a restore reads any purge's backup back (1 MiB).
    /// </summary>
    public const int SplitBytes = 1024 * 1024;

    /// <summary>The restore's batches stop taking rows past this many bytes of their lines (16 MiB), whatever the batch size.</summary>
    private const long BatchBytes = 16 * 1024 * 1024;

    /// <summary>Reads a backup file: its kind and its rows, lazily (a split task's runs are put back on it).</summary>
    /// <exception cref="InvalidDataException">The file is not a JobLog backup.</exception>
    public static async Task<(LedgerKind Kind, IAsyncEnumerable<object> Rows)> OpenAsync(string path, CancellationToken cancellationToken)
    {
        var (kind, version) = await ReadHeaderAsync(path, cancellationToken).ConfigureAwait(false);
        return (kind, WholeRowsAsync(ReadPiecesAsync(path, kind, version, null, null, MaxLineBytes, cancellationToken)));
    }

    private static async IAsyncEnumerable<object> WholeRowsAsync(IAsyncEnumerable<Piece> pieces)
    {
        TaskLog? split = null;
        await foreach (var piece in pieces.ConfigureAwait(false))
        {
            switch (piece)
            {
                case RowPiece { Split: true, Row: TaskLog task }:
                    split = task;
                    break;
                case RowPiece row:
                    yield return row.Row;
                    break;
                case RunsPiece runs when split is not null:
                    split.Runs.AddRange(runs.Runs);
                    break;
                case SplitEndPiece when split is not null:
                    yield return split;
                    split = null;
                    break;
            }
        }
    }

    /// <summary>
    /// Inserts the rows of a backup that are not in the ledger; rows already there are skipped (a run too, by its id). Each row
    /// is masked as the recording path masks what it records (<paramref name="masking"/>): a backup is a file anyone can edit.
    /// The whole file is read and checked first: a line it cannot read is an <see cref="InvalidDataException"/> naming the
    /// file, the line and why, and nothing is written. A file that ends early (cut inside a line or inside a task's runs,
    /// gzip data that stops being readable, or a version 2 file without its end line: a purge killed while writing, or a
    /// cut copy) is restored up to the last whole row, and <c>EndedEarly</c> says where and why.
    /// </summary>
    /// <returns>Rows inserted and rows skipped (a task counts once, with its runs), and how the file ended early, if it did.</returns>
    public static async Task<(LedgerKind Kind, int Restored, int Skipped, string? EndedEarly)> RestoreAsync(
        JobLogContextFactory contexts, RecordMasking masking, string path, int batchSize, CancellationToken cancellationToken, int maxLineBytes = MaxLineBytes)
    {
        var (kind, version) = await ReadHeaderAsync(path, cancellationToken).ConfigureAwait(false);
        Microsoft.EntityFrameworkCore.Metadata.IModel model;
        await using (var db = contexts.Create())
        {
            model = db.Model;
        }

        // First the whole file, checked row by row (each masked first: a replacement may make a text longer than its
        // column) and line by line (a task's split runs complete): nothing is written from a file with a line it cannot read.
        EndPiece? end = null;
        await foreach (var piece in ReadPiecesAsync(path, kind, version, model, masking, maxLineBytes, cancellationToken).ConfigureAwait(false))
        {
            end = piece as EndPiece ?? end;
        }

        var vouched = end?.WholeThrough ?? 0;
        var restored = 0;
        var skipped = 0;
        // Grown as rows come, not reserved: the batch size is the caller's, and int.MaxValue was an OutOfMemoryException.
        var batch = new List<object>(Math.Min(batchSize, 1024));
        long bytes = 0;
        async Task FlushAsync()
        {
            if (batch.Count > 0)
            {
                var (r, s) = await InsertAsync(contexts, kind, batch, cancellationToken).ConfigureAwait(false);
                restored += r;
                skipped += s;
                batch.Clear();
                bytes = 0;
            }
        }

        await foreach (var piece in ReadPiecesAsync(path, kind, version, model, masking, maxLineBytes, cancellationToken).ConfigureAwait(false))
        {
            if (piece.Line > vouched)
            {
                break;
            }

            switch (piece)
            {
                case RowPiece row:
                    batch.Add(row.Row);
                    bytes += row.Bytes;
                    if (batch.Count >= batchSize || bytes >= BatchBytes)
                    {
                        await FlushAsync().ConfigureAwait(false);
                    }

                    break;
                case RunsPiece runs:
                    // Its task first (in the batch, or already in the ledger).
                    await FlushAsync().ConfigureAwait(false);
                    await InsertRunsAsync(contexts, runs.Runs, cancellationToken).ConfigureAwait(false);
                    break;
            }
        }

        await FlushAsync().ConfigureAwait(false);
        return (kind, restored, skipped, end?.EndedEarly is { } why ? why + $" The {restored + skipped} whole rows before it were restored ({skipped} already in the ledger); nothing from line {vouched + 1} on." : null);
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
        if (kind == LedgerKind.Tasks)
        {
            // A run whose id the ledger holds already (under another task, in a hand-made file) is left out, as a row is.
            var runIds = fresh.SelectMany(r => ((TaskLog)r).Runs).Select(r => r.Id).ToList();
            var runsThere = runIds.Count == 0 ? [] : (await db.TaskRunLogs.Where(r => runIds.Contains(r.Id)).Select(r => r.Id).ToListAsync(ct).ConfigureAwait(false)).ToHashSet();
            foreach (TaskLog task in fresh)
            {
                task.Runs.RemoveAll(r => runsThere.Contains(r.Id));
            }
        }

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

    /// <summary>Inserts a split task's runs that are not in the ledger (by id).</summary>
    private static async Task InsertRunsAsync(JobLogContextFactory contexts, List<TaskRunLog> runs, CancellationToken ct)
    {
        await using var db = contexts.Create();
        var ids = runs.Select(r => r.Id).ToList();
        var there = (await db.TaskRunLogs.Where(r => ids.Contains(r.Id)).Select(r => r.Id).ToListAsync(ct).ConfigureAwait(false)).ToHashSet();
        var fresh = runs.Where(r => !there.Contains(r.Id)).ToList();
        if (fresh.Count == 0)
        {
            return;
        }

        if (await contexts.Database.IsPartitionedAsync(db, LedgerKind.Tasks, ct).ConfigureAwait(false))
        {
            await Storage.Partitioning.LedgerPartitioning.RestoreRunsAsync(db, JsonSerializer.Serialize(fresh, JsonOptions), ct).ConfigureAwait(false);
            return;
        }

        db.AddRange(fresh);
        await db.SaveChangesAsync(ct).ConfigureAwait(false);
    }

    private static Guid IdOf(object row) => row switch
    {
        TaskLog t => t.Id,
        RequestLogBase r => r.Id,
        CommandLog c => c.Id,
        _ => throw new InvalidDataException("Not a ledger row: " + row.GetType().Name),
    };

    private static async Task<(LedgerKind Kind, int Version)> ReadHeaderAsync(string path, CancellationToken ct)
    {
        using var reader = new BackupLines(path);
        var line = await reader.ReadLineAsync(ct).ConfigureAwait(false) ?? ReadOnlyMemory<byte>.Empty;
        try
        {
            using var header = JsonDocument.Parse(line);
            var root = header.RootElement;
            var version = root.GetProperty("version").GetInt32();
            if (root.GetProperty("format").GetString() != Format || version is not (1 or Version)
                || !LedgerPurger.TryParseKind(root.GetProperty("kind").GetString() ?? "", out var kind))
            {
                throw new InvalidDataException($"{path} is not a JobLog backup (version 1 or {Version}).");
            }

            return (kind, version);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path} is not a JobLog backup: {ex.Message}", ex);
        }
    }

    /// <summary>The version purge writes: a task's runs may follow it in lines of their own (<see cref="SplitBytes"/>), and the file ends with a line that says so.</summary>
    public const int Version = 2;

    /// <summary>What a line of a backup holds, read and checked: a whole row, or a piece of a split task.</summary>
    private abstract record Piece(int Line);

    /// <summary>A row (a task, its runs inline unless <paramref name="Split"/>: they follow).</summary>
    private sealed record RowPiece(int Line, object Row, int Bytes, bool Split = false) : Piece(Line);

    private sealed record RunsPiece(int Line, List<TaskRunLog> Runs) : Piece(Line);

    private sealed record SplitEndPiece(int Line) : Piece(Line);

    /// <summary>The file's end: the last line of its last whole row, and why the file ended early, if it did.</summary>
    private sealed record EndPiece(int Line, int WholeThrough, string? EndedEarly) : Piece(Line);

    /// <summary>The lines of a split task and of the file's end (version 2).</summary>
    internal sealed record MarkLine(
        [property: JsonPropertyName(MarkLine.TaskName), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] TaskLog? Task = null,
        [property: JsonPropertyName(MarkLine.RunsOfName), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Guid? RunsOf = null,
        [property: JsonPropertyName("Runs"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] List<TaskRunLog>? Runs = null,
        [property: JsonPropertyName("Count"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Count = null,
        [property: JsonPropertyName(MarkLine.EndName), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? EndOfBackup = null,
        [property: JsonPropertyName("Rows"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? Rows = null)
    {
        public const string TaskName = "SplitTask";
        public const string RunsOfName = "RunsOf";
        public const string EndName = "EndOfBackup";
    }

    /// <summary>
    /// Reads and checks every line of a backup after its header: each row against the model (see <see cref="Invalid"/>),
    /// masked first when <paramref name="masking"/> is given; a split task's lines in order and complete (its runs' count);
    /// the end line last. A line it cannot read is an <see cref="InvalidDataException"/> with the file, the line and why,
    /// unless it is the file's last and cut short (no line feed): then, as when the gzip data stops being readable or the
    /// file stops inside a split task or without its end line, the last piece says so (<see cref="EndPiece"/>).
    /// </summary>
    private static async IAsyncEnumerable<Piece> ReadPiecesAsync(
        string path, LedgerKind kind, int version, Microsoft.EntityFrameworkCore.Metadata.IModel? model, RecordMasking? masking, int maxLineBytes,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        var type = RowType(kind);
        using var reader = new BackupLines(path, maxLineBytes);
        await reader.ReadLineAsync(ct).ConfigureAwait(false);
        var whole = 1;
        long rows = 0;
        (TaskLog Task, int Line, int Runs)? split = null;
        var ended = false;
        string? early = null;
        while (true)
        {
            ReadOnlyMemory<byte>? read;
            try
            {
                read = await reader.ReadLineAsync(ct).ConfigureAwait(false);
            }
            catch (InvalidDataException ex) when (ex.InnerException is InvalidDataException)
            {
                early = ex.Message;
                break;
            }

            if (read is not { } line)
            {
                break;
            }

            var number = reader.Number;
            if (line.IsEmpty)
            {
                continue;
            }

            if (ended)
            {
                throw new InvalidDataException($"{path}, line {number}: a line after the backup's end line.");
            }

            string? mark;
            MarkLine? marked = null;
            object? row = null;
            try
            {
                mark = FirstProperty(line.Span);
                if (version >= Version && mark is MarkLine.TaskName or MarkLine.RunsOfName or MarkLine.EndName)
                {
                    marked = JsonSerializer.Deserialize<MarkLine>(line.Span, JsonOptions);
                }
                else
                {
                    row = JsonSerializer.Deserialize(line.Span, type, JsonOptions);
                }
            }
            catch (JsonException ex)
            {
                if (!reader.LastLineEnded)
                {
                    early = $"{path}, line {number}: the file ends inside this line (a cut file).";
                    break;
                }

                throw new InvalidDataException($"{path}, line {number}: not a {type.Name} row: {ex.Message}", ex);
            }

            if (marked is not null)
            {
                if (marked.Task is { } task)
                {
                    if (split is not null)
                    {
                        throw new InvalidDataException($"{path}, line {number}: task {split.Value.Task.Id}'s runs (from line {split.Value.Line}) end without their count.");
                    }

                    Check(path, number, model, masking, task);
                    split = (task, number, task.Runs.Count);
                    rows++;
                    yield return new RowPiece(number, task, line.Length, Split: true);
                }
                else if (marked.RunsOf is { } of && split is { } open && open.Task.Id == of && (marked.Runs is null) != (marked.Count is null))
                {
                    if (marked.Runs is { } runs)
                    {
                        foreach (var run in runs)
                        {
                            run.TaskId = of;
                            Check(path, number, model, masking, run);
                        }

                        split = open with { Runs = open.Runs + runs.Count };
                        yield return new RunsPiece(number, runs);
                    }
                    else if (marked.Count != open.Runs)
                    {
                        throw new InvalidDataException($"{path}, line {number}: task {of} has {marked.Count} runs by its count, but {open.Runs} in the file (from line {open.Line}).");
                    }
                    else
                    {
                        split = null;
                        whole = number;
                        yield return new SplitEndPiece(number);
                    }
                }
                else if (marked.EndOfBackup == true && split is null)
                {
                    if (marked.Rows != rows)
                    {
                        throw new InvalidDataException($"{path}, line {number}: the end line counts {marked.Rows} rows, but the file holds {rows}.");
                    }

                    ended = true;
                    whole = number;
                }
                else
                {
                    throw new InvalidDataException(split is { } open2
                        ? $"{path}, line {number}: not the next line of task {open2.Task.Id}'s runs (from line {open2.Line})."
                        : $"{path}, line {number}: a line of a split task's runs or of the file's end out of place.");
                }

                continue;
            }

            if (row is null)
            {
                throw new InvalidDataException($"{path}, line {number}: an empty row.");
            }

            if (split is { } unfinished)
            {
                throw new InvalidDataException($"{path}, line {number}: task {unfinished.Task.Id}'s runs (from line {unfinished.Line}) end without their count.");
            }

            if (row is TaskLog owner)
            {
                // A run is its task's: a TaskId of another task (a hand-made file) would hang it under a row the file does not hold.
                foreach (var run in owner.Runs)
                {
                    run.TaskId = owner.Id;
                }
            }

            Check(path, number, model, masking, row);
            rows++;
            whole = number;
            yield return new RowPiece(number, row, line.Length);
        }

        early ??= split is { } cut
            ? $"{path}, line {reader.Number + 1}: the file ends inside task {cut.Task.Id}'s runs ({cut.Runs} read from line {cut.Line} on): a cut file, or a purge stopped while writing it (which had not deleted that task)."
            : version >= Version && !ended
                ? $"{path}, line {reader.Number + 1}: the file ends without its end line: a purge stopped while writing it (which had not deleted what it had not written), or a cut file."
                : null;
        yield return new EndPiece(reader.Number + 1, whole, early);
    }

    private static void Check(string path, int number, Microsoft.EntityFrameworkCore.Metadata.IModel? model, RecordMasking? masking, object row)
    {
        // Masked before it is checked: a replacement may make a text longer than its column.
        masking?.ApplyTo(row);
        if (model is not null && Invalid(model, row) is { } problem)
        {
            throw new InvalidDataException($"{path}, line {number}: {problem}");
        }
    }

    /// <summary>The name of a line's first property, or null when it is not an object that starts with one.</summary>
    private static string? FirstProperty(ReadOnlySpan<byte> line)
    {
        var reader = new Utf8JsonReader(line);
        return reader.Read() && reader.TokenType == JsonTokenType.StartObject && reader.Read() && reader.TokenType == JsonTokenType.PropertyName
            ? reader.GetString()
            : null;
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
            if (property.IsPrimaryKey() && value is Guid id && id == Guid.Empty)
            {
                // A line without its id ({} or a foreign object) would otherwise be a row whose every value is a default.
                return $"a {entity.ClrType.Name} without {property.Name}.";
            }

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
    private sealed class BackupLines(string path, int maxLineBytes = MaxLineBytes) : IDisposable
    {
        private readonly Stream _stream = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        private byte[] _buffer = new byte[64 * 1024];
        private int _start;
        private int _end;
        private bool _ended;

        /// <summary>The number of the line last read, from 1.</summary>
        public int Number { get; private set; }

        /// <summary>Whether the line last read ended with a line feed (the file's last line may be cut short).</summary>
        public bool LastLineEnded { get; private set; }

        public async ValueTask<ReadOnlyMemory<byte>?> ReadLineAsync(CancellationToken ct)
        {
            var searched = 0;
            while (true)
            {
                var at = _buffer.AsSpan(_start + searched, _end - _start - searched).IndexOf((byte)'\n');
                var length = at >= 0 ? searched + at : _end - _start;
                if (length > maxLineBytes)
                {
                    throw new InvalidDataException(
                        $"{path}, line {Number + 1}: longer than {maxLineBytes / (1024 * 1024)} MiB, which no row a purge writes is (a damaged or hostile file).");
                }

                if (at >= 0 || _ended)
                {
                    if (at < 0 && length == 0)
                    {
                        return null;
                    }

                    var line = _buffer.AsMemory(_start, length);
                    LastLineEnded = at >= 0;
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
                    var buffer = _start > 0 ? _buffer : new byte[2L * _buffer.Length < maxLineBytes ? 2 * _buffer.Length : maxLineBytes + 1];
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

/// <summary>
/// Appends purged rows to a new backup file; every batch is flushed to disk before its delete commits. A task whose runs
/// would make its line longer than <see cref="LedgerBackup.SplitBytes"/> is written as a <c>SplitTask</c> line, its runs in
/// <c>RunsOf</c> lines of at most that size, and a line with their count; the file ends with a line counting its rows.
/// </summary>
internal sealed class LedgerBackupWriter : IAsyncDisposable
{
    private readonly FileStream _file;
    private readonly GZipStream _gzip;
    private readonly StreamWriter _writer;
    private readonly List<TaskRunLog> _runs = [];
    private long _rows;
    private bool _broken;

    // The task whose runs are being written, their count and the bytes of JSON its line (or its runs' line) would take at most.
    private TaskLog? _task;
    private int _count;
    private long _bytes;
    private bool _split;

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
            ["version"] = LedgerBackup.Version,
            ["kind"] = LedgerPurger.KindName(kind),
            ["createdAt"] = now.UtcDateTime,
        }));
        return writer;
    }

    /// <summary>Writes rows whose lines are bounded by their texts (requests, commands): one a line.</summary>
    public async Task WriteAsync(IReadOnlyList<object> rows, CancellationToken cancellationToken)
    {
        _broken = true;
        foreach (var row in rows)
        {
            await WriteLineAsync(row, row.GetType(), cancellationToken).ConfigureAwait(false);
            _rows++;
        }

        await FlushAsync(cancellationToken).ConfigureAwait(false);
        _broken = false;
    }

    /// <summary>
    /// Writes tasks with their runs, read one at a time from <paramref name="runs"/> (ordered by their task): a task's runs
    /// are held only up to <see cref="LedgerBackup.SplitBytes"/>, so a task with any number of runs costs that much memory.
    /// </summary>
    public async Task WriteTasksAsync(IReadOnlyList<TaskLog> tasks, IAsyncEnumerable<TaskRunLog> runs, CancellationToken cancellationToken)
    {
        _broken = true;
        var waiting = tasks.ToDictionary(t => t.Id);
        await foreach (var run in runs.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            if (_task?.Id != run.TaskId)
            {
                await EndTaskAsync(cancellationToken).ConfigureAwait(false);
                if (!waiting.Remove(run.TaskId, out var task))
                {
                    continue;
                }

                (_task, _count, _bytes, _split) = (task, 0, Estimate(task), false);
            }

            var size = Estimate(run);
            _count++;
            if (!_split && _bytes + size > LedgerBackup.SplitBytes)
            {
                // Past the bound: the task alone, then its runs in lines of their own.
                _split = true;
                _bytes -= Estimate(_task!);
                await WriteLineAsync(new LedgerBackup.MarkLine(Task: _task), typeof(LedgerBackup.MarkLine), cancellationToken).ConfigureAwait(false);
            }

            if (_split && _runs.Count > 0 && _bytes + size > LedgerBackup.SplitBytes)
            {
                await WriteRunsAsync(cancellationToken).ConfigureAwait(false);
            }

            _runs.Add(run);
            _bytes += size;
        }

        await EndTaskAsync(cancellationToken).ConfigureAwait(false);
        foreach (var task in tasks.Where(t => waiting.ContainsKey(t.Id)))
        {
            await WriteLineAsync(task, typeof(TaskLog), cancellationToken).ConfigureAwait(false);
            _rows++;
        }

        await FlushAsync(cancellationToken).ConfigureAwait(false);
        _broken = false;
    }

    private async Task EndTaskAsync(CancellationToken ct)
    {
        if (_task is not { } task)
        {
            return;
        }

        if (_split)
        {
            await WriteRunsAsync(ct).ConfigureAwait(false);
            await WriteLineAsync(new LedgerBackup.MarkLine(RunsOf: task.Id, Count: _count), typeof(LedgerBackup.MarkLine), ct).ConfigureAwait(false);
        }
        else
        {
            task.Runs = [.. _runs];
            await WriteLineAsync(task, typeof(TaskLog), ct).ConfigureAwait(false);
            task.Runs = [];
        }

        _runs.Clear();
        _rows++;
        _task = null;
    }

    private async Task WriteRunsAsync(CancellationToken ct)
    {
        if (_runs.Count > 0)
        {
            await WriteLineAsync(new LedgerBackup.MarkLine(RunsOf: _task!.Id, Runs: _runs), typeof(LedgerBackup.MarkLine), ct).ConfigureAwait(false);
            _runs.Clear();
        }

        _bytes = 64;
    }

    private Task WriteLineAsync(object value, Type type, CancellationToken ct) =>
        _writer.WriteLineAsync(JsonSerializer.Serialize(value, type, LedgerBackup.JsonOptions).AsMemory(), ct);

    /// <summary>The most bytes a row's line can take: every character of its texts escaped (six bytes), and the rest.</summary>
    private static long Estimate(TaskLog task) => 2048 + (6L * (
        Length(task.Name) + Length(task.QueueName) + Length(task.Input) + Length(task.TaskArgs) + Length(task.TaskKwargs)
        + Length(task.ErrorMessage) + Length(task.ExtraData) + Length(task.SourceAddress) + Length(task.Host) + Length(task.Release)
        + Length(task.Slug) + Length(task.TraceId)));

    private static long Estimate(TaskRunLog run) => 1024 + (6L * (
        Length(run.Name) + Length(run.QueueName) + Length(run.ConsumerType) + Length(run.Input) + Length(run.TaskArgs)
        + Length(run.TaskKwargs) + Length(run.ErrorMessage) + Length(run.Output) + Length(run.Host)));

    private static int Length(string? text) => text?.Length ?? 0;

    private async Task FlushAsync(CancellationToken ct)
    {
        await _writer.FlushAsync(ct).ConfigureAwait(false);
        await _gzip.FlushAsync(ct).ConfigureAwait(false);
        _file.Flush(flushToDisk: true);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_broken)
        {
            // Only after every row was written whole: a file without this line ends early (restore says so).
            await WriteLineAsync(new LedgerBackup.MarkLine(EndOfBackup: true, Rows: _rows), typeof(LedgerBackup.MarkLine), CancellationToken.None).ConfigureAwait(false);
        }

        await _writer.DisposeAsync().ConfigureAwait(false);
        await _gzip.DisposeAsync().ConfigureAwait(false);
        _file.Flush(flushToDisk: true);
        await _file.DisposeAsync().ConfigureAwait(false);
    }
}
