using System.Data.Common;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// SQLite through its C API (SQLitePCLRaw, which Microsoft.Data.Sqlite wraps): statements prepared once, values bound
/// by position without boxing or per-value strings, one step per row. SQLite is in-process: no I/O to await. Each
/// statement is bound from the column list it was generated from (<see cref="SqliteStatements"/>); a value without a
/// parameter, or a parameter without a value, fails the commit.
/// </summary>
internal sealed class SqliteExecutor(SqliteConnection connection) : SqlExecutor
{
    private readonly Dictionary<string, SqlitePrepared> _prepared = new(StringComparer.Ordinal);
    private readonly HashSet<Guid> _inserted = [];

    // Tasks from earlier batches that had no run stored when this batch began: their rowid, the planner's derivation, and
    // their rollup columns as stored.
    private readonly Dictionary<Guid, (long Row, TaskWrite Derived, Stored Before)> _runless = [];

    // Every task row this batch's probes found, by rowid: a run that takes its texts from the row reads it by rowid.
    private readonly Dictionary<Guid, long> _probed = [];
    private readonly Dictionary<(int State, string Name, bool IsInternal), long> _countMoves = [];
    private readonly Dictionary<(string Minute, int State, string Name, bool IsInternal), long> _minuteMoves = [];
    private byte[] _utf8 = new byte[1024];
    private long _lastMinuteTicks;
    private string? _lastMinute;
    private SqliteWriterTriggers? _triggers;
    private SqliteSearchIndexer? _indexer;
    private SqliteLogSearchIndexer? _logIndexer;

    public override DbConnection Connection
    {
        get
        {
            // The writer's batches leave the connection's triggers off (SqliteWriterTriggers); anything else fires them.
            _triggers?.Restore();
            return connection;
        }
    }

    public override async Task CommitAsync(LedgerPlan plan, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var begun = PhaseTicks is null ? 0 : PhaseClock();
        // The batch's own rows skip the per-row triggers; their indexes and rollups are added at the end, in bulk.
        var triggers = _triggers ??= new SqliteWriterTriggers(connection.Handle!);
        triggers.Prepare();
        // BEGIN IMMEDIATE: the write lock is taken (or waited for, up to the busy timeout) before the first statement.
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        triggers.Begin();
        Phase(BeginPhase, ref begun);
        Execute(plan, cancellationToken);
        var started = PhaseTicks is null ? 0 : PhaseClock();
        triggers.Finish();
        // The search index in bulk steps of thousands of rows, not a small FTS5 segment per batch (SqliteSearchIndexer).
        (_indexer ??= new SqliteSearchIndexer(connection.Handle!)).Step();
        (_logIndexer ??= new SqliteLogSearchIndexer(connection.Handle!)).Step();
        Phase(5, ref started);
        // The WAL append and its sync (FULL unless Buffered), and every wal_autocheckpoint pages the checkpoint.
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        Phase(CommitPhase, ref started);
    }

    /// <summary>The slot of <see cref="SqlExecutor.PhaseTicks"/> for the trigger switch and <c>BEGIN IMMEDIATE</c> (benchmark).</summary>
    internal const int BeginPhase = 6;

    /// <summary>The slot of <see cref="SqlExecutor.PhaseTicks"/> for <c>COMMIT</c>: the WAL append, its sync, an autocheckpoint (benchmark).</summary>
    internal const int CommitPhase = 7;

    /// <summary>How many tasks of the last batch were derived from the planner's derivation, without reading their runs (tests).</summary>
    internal int DerivedFromPlan { get; private set; }

    /// <summary>How many runs of the last batch read their task row's texts by the rowid the probe found (tests).</summary>
    internal int RunsReadByRowid { get; private set; }

    /// <summary>Whether the last batch's own rows skipped the per-row triggers (<see cref="SqliteWriterTriggers"/>).</summary>
    internal bool BypassedTriggers => _triggers?.Bypassing ?? false;

    private void Execute(LedgerPlan plan, CancellationToken cancellationToken)
    {
        var started = PhaseTicks is null ? 0 : PhaseClock();
        _inserted.Clear();
        var insertTask = Prepare(SqliteStatements.InsertTaskIfMissing);
        foreach (var row in plan.Dispatched)
        {
            if (InsertTask(insertTask, row) == 0)
            {
                // The consumer side (or an earlier dispatch) created the row: the producer's fields win.
                _triggers?.Capture([row.Task.Id]);
                Write(Prepare(SqliteStatements.UpdateProducerFields), SqliteStatements.ProducerColumns, row);
            }
        }

        _runless.Clear();
        _probed.Clear();
        var probe = plan.Ensured.Count > 0 ? Prepare(SqliteStatements.ProbeTask) : null;
        foreach (var row in plan.Ensured)
        {
            // Usually the producer's row is there: a probe by key costs less than an insert that conflicts, and the
            // consumer's rendering of the message is only needed when the row is missing.
            BindGuid(probe!, 0, row.Task.Id);
            if (!Probe(probe!, out var rowid, out var hasRuns, out var stored))
            {
                InsertTask(insertTask, row);
                continue;
            }

            _probed[row.Task.Id] = rowid;
            if (!hasRuns)
            {
                // The bus's usual case (the dispatch in an earlier batch, its runs in this one): the planner derived the
                // row from this batch's runs, which are all its runs (SQLite has one writer: none can come in between).
                _runless[row.Task.Id] = (rowid, row, stored);
            }
        }

        Phase(0, ref started);
        cancellationToken.ThrowIfCancellationRequested();
        foreach (var (taskId, error) in plan.DispatchFailures)
        {
            var failed = Prepare(LedgerSql.TaskDispatchFailed);
            BindGuid(failed, 0, taskId);
            BindText(failed, 1, error);
            Step(failed);
        }

        foreach (var update in plan.RunUpdates)
        {
            var (sql, columns) = LedgerSql.RunUpdate(update.Kind);
            Write(Prepare(sql), columns, update);
        }

        Phase(1, ref started);
        cancellationToken.ThrowIfCancellationRequested();
        var upsertRun = Prepare(SqliteStatements.UpsertRun);
        SqlitePrepared? byRowid = null;
        RunsReadByRowid = 0;
        foreach (var row in plan.Runs)
        {
            if (row.InputFromTask && _probed.TryGetValue(row.Run.TaskId, out var taskRowid))
            {
                // The bus's usual unheld run: its texts by the probed rowid, not three lookups of the Id index.
                byRowid ??= Prepare(SqliteStatements.UpsertRunByTaskRowid);
                var sink = new Sink(this, byRowid);
                LedgerColumn.WriteRow(SqliteStatements.RunColumns, ref sink, row);
                Check(raw.sqlite3_bind_int64(byRowid.Statement, Index(byRowid, SqliteStatements.RunColumns.Length), taskRowid));
                Step(byRowid);
                RunsReadByRowid++;
                continue;
            }

            Write(upsertRun, SqliteStatements.RunColumns, row);
        }

        Phase(2, ref started);
        cancellationToken.ThrowIfCancellationRequested();
        // The plain derivation: on SQLite a guarded UPDATE … FROM costs more than the row write it saves.
        var derive = Prepare(LedgerSql.DeriveTask);
        var setDerived = _runless.Count > 0 ? Prepare(SqliteStatements.SetDerived) : null;
        // Every UPDATE of a task's state, name, kind or stop captures the row first (SqliteWriterTriggers.CountChanges),
        // except a runless task's: its columns before and after are known here, so its move is counted in memory.
        var moves = _triggers is { CountsMoves: true };
        _triggers?.Capture(plan.Derive.Where(id => !_inserted.Contains(id) && !(moves && _runless.ContainsKey(id))).ToList());
        _countMoves.Clear();
        _minuteMoves.Clear();
        DerivedFromPlan = 0;
        foreach (var taskId in plan.Derive)
        {
            // A row this batch inserted already holds the state of its runs, and it has no others.
            if (_inserted.Contains(taskId))
            {
                continue;
            }

            if (_runless.TryGetValue(taskId, out var runless))
            {
                // The derivation's three reads of the runs are a third of its cost (docs/benchmarks.md, "Session 12 (sqlcpu3)").
                Check(raw.sqlite3_bind_int64(setDerived!.Statement, Index(setDerived, 0), runless.Row));
                BindInt(setDerived, 1, (int)runless.Derived.State);
                BindTime(setDerived, 2, runless.Derived.Start);
                BindTime(setDerived, 3, runless.Derived.Stop);
                Step(setDerived);
                DerivedFromPlan++;
                if (moves)
                {
                    CountMove(runless.Before, runless.Derived);
                }
            }
            else
            {
                BindGuid(derive, 0, taskId);
                Step(derive);
            }
        }

        if (_countMoves.Count > 0)
        {
            _triggers!.Move(_countMoves, _minuteMoves);
        }

        Phase(3, ref started);
        foreach (var (sql, values) in plan.Other.Statements)
        {
            var other = Prepare(sql);
            for (var i = 0; i < values.Length; i++)
            {
                BindObject(other, i, values[i]);
            }

            Step(other);
        }

        Phase(4, ref started);
    }

    private int InsertTask(SqlitePrepared insert, in TaskWrite row)
    {
        var changes = Write(insert, LedgerColumns.Task, row);
        if (changes == 1)
        {
            _inserted.Add(row.Task.Id);
        }

        return changes;
    }

    /// <summary>Binds <paramref name="row"/>'s <paramref name="columns"/> to @p0, @p1, … and runs the statement.</summary>
    private int Write<TRow>(SqlitePrepared statement, LedgerColumn<TRow>[] columns, in TRow row)
    {
        var sink = new Sink(this, statement);
        LedgerColumn.WriteRow(columns, ref sink, row);
        return Step(statement);
    }

    private SqlitePrepared Prepare(string sql)
    {
        if (_prepared.TryGetValue(sql, out var prepared))
        {
            return prepared;
        }

        var handle = connection.Handle!;
        var rc = raw.sqlite3_prepare_v2(handle, sql, out sqlite3_stmt statement);
        SqliteException.ThrowExceptionForRC(rc, handle);
        // The map covers every @pN the SQL names, up to the highest N (SQLite numbers named parameters by first
        // appearance, so its count is not the highest number plus one when a statement names one twice).
        var highest = -1;
        foreach (Match match in Placeholder().Matches(sql))
        {
            highest = Math.Max(highest, int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture));
        }

        var map = new int[highest + 1];
        for (var i = 0; i < map.Length; i++)
        {
            map[i] = raw.sqlite3_bind_parameter_index(statement, "@p" + i.ToString(CultureInfo.InvariantCulture));
        }

        var count = raw.sqlite3_bind_parameter_count(statement);
        var named = new bool[count + 1];
        foreach (var index in map)
        {
            named[index] = true;
        }

        for (var index = 1; index <= count; index++)
        {
            if (!named[index])
            {
                var name = raw.sqlite3_bind_parameter_name(statement, index).utf8_to_string();
                statement.Dispose();
                throw new InvalidOperationException(
                    $"JobLog: parameter {name} of a ledger statement is not named @pN and would never be bound: {sql}");
            }
        }

        prepared = new SqlitePrepared(statement, map, count);
        _prepared[sql] = prepared;
        return prepared;
    }

    /// <summary>Runs a bound statement and resets it; returns the rows it changed.</summary>
    private int Step(SqlitePrepared prepared)
    {
        var handle = connection.Handle!;
        prepared.EnsureAllBound();
        var rc = raw.sqlite3_step(prepared.Statement);
        var changes = rc is raw.SQLITE_DONE or raw.SQLITE_ROW ? raw.sqlite3_changes(handle) : 0;
        raw.sqlite3_reset(prepared.Statement);
        if (rc is not (raw.SQLITE_DONE or raw.SQLITE_ROW))
        {
            SqliteException.ThrowExceptionForRC(rc, handle);
        }

        return changes;
    }

    /// <summary>
    /// The rollup move of <see cref="SqliteStatements.SetDerived"/> (what <c>JobLogTasks_Rollup_Update</c> does): the row
    /// leaves its stored key and minute for the derived ones; a stale-marked row keeps its state and stop.
    /// </summary>
    private void CountMove(in Stored before, in TaskWrite derived)
    {
        var state = before.IsSetAsStale ? (int)TaskState.Expired : (int)derived.State;
        // A stale-marked row keeps its stored stop; otherwise the derived stop, compared as the text it is stored as.
        var stop = before.IsSetAsStale ? null : derived.Stop;
        var stopChanged = !before.IsSetAsStale && !SameStop(stop, before.Stop);
        if (state == before.State && !stopChanged)
        {
            return;
        }

        Add(_countMoves, (before.State, before.Name, before.IsInternal), -1);
        Add(_countMoves, (state, before.Name, before.IsInternal), 1);
        if (before.Stop is not null)
        {
            Add(_minuteMoves, (Minute(before.Stop), before.State, before.Name, before.IsInternal), -1);
        }

        if (before.IsSetAsStale)
        {
            if (before.Stop is { } kept)
            {
                Add(_minuteMoves, (Minute(kept), state, before.Name, before.IsInternal), 1);
            }
        }
        else if (stop is { } time)
        {
            Add(_minuteMoves, (MinuteOf(time), state, before.Name, before.IsInternal), 1);
        }

        static void Add<TKey>(Dictionary<TKey, long> moves, TKey key, long n)
            where TKey : notnull
        {
            moves.TryGetValue(key, out var sum);
            moves[key] = sum + n;
        }

        // substr("Stop", 1, 16) || ':00', as the triggers write the minute.
        static string Minute(string stop) => (stop.Length > 16 ? stop[..16] : stop) + ":00";

        static bool SameStop(DateTime? time, string? stored)
        {
            if (time is not { } t || stored is null)
            {
                return time is null && stored is null;
            }

            Span<byte> text = stackalloc byte[SqliteLedgerDatabase.TimeLength];
            var written = SqliteLedgerDatabase.FormatTime(t, text);
            return Ascii.Equals(text[..written], stored);
        }
    }

    /// <summary>
    /// The rollup minute of a stop (<c>substr("Stop", 1, 16) || ':00'</c> of its stored text): the last one is kept, as a
    /// batch's runs mostly end within the same minute.
    /// </summary>
    private string MinuteOf(DateTime stop)
    {
        var ticks = stop.Ticks - (stop.Ticks % TimeSpan.TicksPerMinute);
        if (ticks != _lastMinuteTicks || _lastMinute is null)
        {
            _lastMinute = new DateTime(ticks).ToString("yyyy'-'MM'-'dd' 'HH':'mm':00'", CultureInfo.InvariantCulture);
            _lastMinuteTicks = ticks;
        }

        return _lastMinute;
    }

    /// <summary>
    /// Runs <see cref="SqliteStatements.ProbeTask"/>: whether the task is stored, its rowid, whether it has a stored run,
    /// and its rollup columns as stored.
    /// </summary>
    private bool Probe(SqlitePrepared prepared, out long rowid, out bool hasRuns, out Stored stored)
    {
        prepared.EnsureAllBound();
        var statement = prepared.Statement;
        var rc = raw.sqlite3_step(statement);
        var found = rc == raw.SQLITE_ROW;
        rowid = found ? raw.sqlite3_column_int64(statement, 0) : 0;
        hasRuns = found && raw.sqlite3_column_int64(statement, 1) != 0;
        stored = found && !hasRuns
            ? new Stored(
                (int)raw.sqlite3_column_int64(statement, 2),
                raw.sqlite3_column_text(statement, 3).utf8_to_string() ?? "",
                raw.sqlite3_column_int64(statement, 4) != 0,
                raw.sqlite3_column_type(statement, 5) == raw.SQLITE_NULL ? null : raw.sqlite3_column_text(statement, 5).utf8_to_string(),
                raw.sqlite3_column_int64(statement, 6) != 0)
            : default;
        raw.sqlite3_reset(statement);
        if (rc is not (raw.SQLITE_DONE or raw.SQLITE_ROW))
        {
            SqliteException.ThrowExceptionForRC(rc, connection.Handle);
        }

        return found;
    }

    /// <summary>The statement's index of @p<paramref name="parameter"/>, marked as bound; throws when the statement does not use it.</summary>
    private static int Index(SqlitePrepared prepared, int parameter)
    {
        var index = parameter < prepared.Map.Length ? prepared.Map[parameter] : 0;
        if (index == 0)
        {
            prepared.Reset();
            throw new InvalidOperationException(
                $"JobLog: a value for @p{parameter.ToString(CultureInfo.InvariantCulture)} was bound to a ledger statement that has no such parameter.");
        }

        prepared.Bound(index);
        return index;
    }

    private void Check(int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(rc, connection.Handle);
        }
    }

    private void BindNull(SqlitePrepared p, int parameter) => Check(raw.sqlite3_bind_null(p.Statement, Index(p, parameter)));

    // EF Core stores a Guid as upper-case TEXT on SQLite (SqliteLedgerDatabase.ToDb).
    private void BindGuid(SqlitePrepared p, int parameter, Guid? value)
    {
        var index = Index(p, parameter);
        if (value is not { } guid)
        {
            Check(raw.sqlite3_bind_null(p.Statement, index));
            return;
        }

        Span<byte> text = stackalloc byte[36];
        guid.TryFormat(text, out _, "D");
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] is >= (byte)'a' and <= (byte)'f')
            {
                text[i] -= 'a' - 'A';
            }
        }

        Check(raw.sqlite3_bind_text(p.Statement, index, text));
    }

    // EF Core stores a DateTime as 'yyyy-MM-dd HH:mm:ss.FFFFFFF' TEXT on SQLite (SqliteLedgerDatabase.ToDb).
    private void BindTime(SqlitePrepared p, int parameter, DateTime? value)
    {
        var index = Index(p, parameter);
        if (value is not { } time)
        {
            Check(raw.sqlite3_bind_null(p.Statement, index));
            return;
        }

        Span<byte> text = stackalloc byte[SqliteLedgerDatabase.TimeLength];
        var written = SqliteLedgerDatabase.FormatTime(time, text);
        Check(raw.sqlite3_bind_text(p.Statement, index, text[..written]));
    }

    private void BindText(SqlitePrepared p, int parameter, string? value)
    {
        var index = Index(p, parameter);
        if (value is null)
        {
            Check(raw.sqlite3_bind_null(p.Statement, index));
            return;
        }

        var max = Encoding.UTF8.GetMaxByteCount(value.Length);
        if (max > _utf8.Length)
        {
            _utf8 = new byte[Math.Max(max, _utf8.Length * 2)];
        }

        var written = Encoding.UTF8.GetBytes(value, _utf8);
        Check(raw.sqlite3_bind_text(p.Statement, index, _utf8.AsSpan(0, written)));
    }

    private void BindInt(SqlitePrepared p, int parameter, long? value)
    {
        var index = Index(p, parameter);
        Check(value is { } v ? raw.sqlite3_bind_int64(p.Statement, index, v) : raw.sqlite3_bind_null(p.Statement, index));
    }

    private void BindReal(SqlitePrepared p, int parameter, double? value)
    {
        var index = Index(p, parameter);
        Check(value is { } v ? raw.sqlite3_bind_double(p.Statement, index, v) : raw.sqlite3_bind_null(p.Statement, index));
    }

    private void BindObject(SqlitePrepared p, int parameter, object value)
    {
        switch (value)
        {
            case DBNull:
                BindNull(p, parameter);
                break;
            case string s:
                BindText(p, parameter, s);
                break;
            case int or long or short or byte:
                BindInt(p, parameter, Convert.ToInt64(value, CultureInfo.InvariantCulture));
                break;
            case double or float or decimal:
                BindReal(p, parameter, Convert.ToDouble(value, CultureInfo.InvariantCulture));
                break;
            case byte[] bytes:
                Check(raw.sqlite3_bind_blob(p.Statement, Index(p, parameter), bytes));
                break;
            default:
                BindText(p, parameter, Convert.ToString(value, CultureInfo.InvariantCulture));
                break;
        }
    }

    public override async ValueTask DisposeAsync()
    {
        foreach (var prepared in _prepared.Values)
        {
            prepared.Statement.Dispose();
        }

        _prepared.Clear();
        _indexer?.Dispose();
        _logIndexer?.Dispose();
        try
        {
            _triggers?.Dispose();
        }
        catch (SqliteException)
        {
            // Its triggers may still be off: the connection must not go back to the pool.
            SqliteConnection.ClearPool(connection);
        }

        await connection.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>A stored task's rollup columns (<c>Stop</c> as its stored text) and stale mark.</summary>
    private readonly record struct Stored(int State, string Name, bool IsInternal, string? Stop, bool IsSetAsStale);

    /// <summary>Binds a row's columns to the statement's parameters @p0, @p1, … in order.</summary>
    private struct Sink(SqliteExecutor executor, SqlitePrepared statement) : IRowSink
    {
        private int _parameter;

        public void Guid(Guid? value) => executor.BindGuid(statement, _parameter++, value);

        public void Text(string? value) => executor.BindText(statement, _parameter++, value);

        public void Time(DateTime? value) => executor.BindTime(statement, _parameter++, value);

        public void Int(int? value) => executor.BindInt(statement, _parameter++, value);

        public void Bool(bool? value) => executor.BindInt(statement, _parameter++, value is { } b ? (b ? 1 : 0) : null);

        public void Real(double? value) => executor.BindReal(statement, _parameter++, value);
    }
}
