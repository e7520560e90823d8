using System.Buffers;
using System.Collections.Concurrent;
using System.Data.Common;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;
using SQLitePCL;

namespace JobLog.Storage;

/// <summary>An ordered list of parameterised statements (the write path's rare kinds: commands, requests).</summary>
/// <remarks>SQL is written with <c>@p0</c>, <c>@p1</c>, … placeholders; values are converted by the dialect.</remarks>
internal sealed class SqlBatch(SqlDialect dialect)
{
    private readonly List<(string Sql, object[] Values)> _statements = [];

    public int Count => _statements.Count;

    public void Add(string sql, params object?[] values)
    {
        var converted = new object[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            converted[i] = dialect.ToDb(values[i]);
        }

        _statements.Add((sql, converted));
    }

    public void Clear() => _statements.Clear();

    internal IReadOnlyList<(string Sql, object[] Values)> Statements => _statements;
}

/// <summary>Executes <see cref="LedgerPlan"/>s on one open connection, keeping its statements prepared.</summary>
internal abstract partial class SqlExecutor : IAsyncDisposable
{
    public abstract DbConnection Connection { get; }

    /// <summary>Time spent per phase of <see cref="CommitAsync"/>, when a benchmark asks for it (ticks of <see cref="PhaseClock"/>).</summary>
    internal long[]? PhaseTicks { get; set; }

    /// <summary>The clock of <see cref="PhaseTicks"/>; a benchmark may use the thread's CPU time. Default: the stopwatch.</summary>
    internal Func<long> PhaseClock { get; set; } = System.Diagnostics.Stopwatch.GetTimestamp;

    /// <summary>Writes <paramref name="plan"/> in one transaction: all of it or, on an exception, none of it.</summary>
    public abstract Task CommitAsync(LedgerPlan plan, TimeSpan timeout, CancellationToken cancellationToken);

    public abstract ValueTask DisposeAsync();

    /// <param name="dialect">The ledger's database.</param>
    /// <param name="connectionString">The ledger's connection string.</param>
    /// <param name="cancellationToken">Cancels opening.</param>
    /// <param name="busyTimeout">How long a SQLite statement waits for a lock. Default 5 s.</param>
    /// <param name="asynchronousCommit">
    /// PostgreSQL: commit without waiting for the WAL flush (<c>synchronous_commit = off</c>), for
    /// <see cref="LedgerDurability.Buffered"/>, whose records a crash may lose anyway.
    /// </param>
    public static async Task<SqlExecutor> OpenAsync(
        SqlDialect dialect, string connectionString, CancellationToken cancellationToken, TimeSpan? busyTimeout = null, bool asynchronousCommit = false)
    {
        if (dialect.Provider == LedgerProvider.Sqlite && busyTimeout is { } timeout)
        {
            // Transactions begin IMMEDIATE; that wait is bounded by the connection's default timeout, not the command's.
            connectionString = new SqliteConnectionStringBuilder(connectionString)
            {
                DefaultTimeout = (int)Math.Max(1, Math.Ceiling(timeout.TotalSeconds)),
            }.ConnectionString;
        }
        else if (dialect.Provider == LedgerProvider.PostgreSql)
        {
            // The write path runs the same few statements every batch: let Npgsql keep them prepared on the server.
            var builder = new NpgsqlConnectionStringBuilder(connectionString);
            if (builder.MaxAutoPrepare < 32)
            {
                builder.MaxAutoPrepare = 32;
                builder.AutoPrepareMinUsages = 2;
            }

            connectionString = builder.ConnectionString;
        }

        var connection = dialect.CreateConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            if (connection is SqliteConnection sqlite)
            {
                await SqliteSetup.ConfigureAsync(sqlite, busyTimeout ?? TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
                return new SqliteExecutor(sqlite);
            }

            if (asynchronousCommit)
            {
                await using var command = connection.CreateCommand();
                command.CommandText = "SET synchronous_commit = off";
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            return new NpgsqlExecutor((NpgsqlConnection)connection);
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private protected void Phase(int phase, ref long started)
    {
        if (PhaseTicks is { } ticks)
        {
            var now = PhaseClock();
            ticks[phase] += now - started;
            started = now;
        }
    }

    [GeneratedRegex(@"@p(\d+)")]
    private static partial Regex Placeholder();

    /// <summary>
    /// SQLite through its C API (SQLitePCLRaw, which Microsoft.Data.Sqlite wraps): statements prepared once, values
    /// bound by position without boxing or per-value strings, one step per row. SQLite is in-process: no I/O to await.
    /// </summary>
    private sealed class SqliteExecutor(SqliteConnection connection) : SqlExecutor
    {
        private readonly Dictionary<string, Prepared> _prepared = new(StringComparer.Ordinal);
        private readonly HashSet<Guid> _inserted = [];
        private byte[] _utf8 = new byte[1024];

        public override DbConnection Connection => connection;

        public override async Task CommitAsync(LedgerPlan plan, TimeSpan timeout, CancellationToken cancellationToken)
        {
            // BEGIN IMMEDIATE: the write lock is taken (or waited for, up to the busy timeout) before the first statement.
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            Execute(plan, cancellationToken);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        private void Execute(LedgerPlan plan, CancellationToken cancellationToken)
        {
            var started = PhaseTicks is null ? 0 : PhaseClock();
            _inserted.Clear();
            var insertTask = Prepare(LedgerStatements.InsertTaskIfMissing);
            foreach (var row in plan.Dispatched)
            {
                if (InsertTask(insertTask, row) == 0)
                {
                    // The consumer side (or an earlier dispatch) created the row: the producer's fields win.
                    var update = Prepare(LedgerStatements.UpdateProducerFields);
                    var sink = new Sink(this, update);
                    LedgerRows.Task(ref sink, row);
                    Step(update);
                }
            }

            var exists = plan.Ensured.Count > 0 ? Prepare(LedgerStatements.TaskExists) : null;
            foreach (var row in plan.Ensured)
            {
                // Usually the producer's row is there: a probe by key costs less than an insert that conflicts, and the
                // consumer's rendering of the message is only needed when the row is missing.
                BindGuid(exists!, 0, row.Task.Id);
                if (!Exists(exists!))
                {
                    InsertTask(insertTask, row);
                }
            }

            Phase(0, ref started);
            cancellationToken.ThrowIfCancellationRequested();
            foreach (var (taskId, error) in plan.DispatchFailures)
            {
                var failed = Prepare(LedgerStatements.TaskDispatchFailed);
                BindGuid(failed, 0, taskId);
                BindText(failed, 1, error);
                Step(failed);
            }

            foreach (var update in plan.RunUpdates)
            {
                Update(update);
            }

            Phase(1, ref started);
            cancellationToken.ThrowIfCancellationRequested();
            var upsertRun = Prepare(LedgerStatements.UpsertRun);
            foreach (var row in plan.Runs)
            {
                var sink = new Sink(this, upsertRun);
                LedgerRows.Run(ref sink, row, withOrdinal: false);
                Step(upsertRun);
            }

            Phase(2, ref started);
            cancellationToken.ThrowIfCancellationRequested();
            // The plain derivation: on SQLite a guarded UPDATE … FROM costs more than the row write it saves.
            var derive = Prepare(LedgerStatements.DeriveTask);
            foreach (var taskId in plan.Derive)
            {
                // A row this batch inserted already holds the state of its runs, and it has no others.
                if (!_inserted.Contains(taskId))
                {
                    BindGuid(derive, 0, taskId);
                    Step(derive);
                }
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

        private int InsertTask(Prepared insert, in TaskRow row)
        {
            var sink = new Sink(this, insert);
            LedgerRows.Task(ref sink, row);
            var changes = Step(insert);
            if (changes == 1)
            {
                _inserted.Add(row.Task.Id);
            }

            return changes;
        }

        private void Update(in RunUpdate update)
        {
            Prepared statement;
            switch (update.Kind)
            {
                case RunUpdateKind.Finish:
                    statement = Prepare(LedgerStatements.FinishRun);
                    BindGuid(statement, 0, update.RunId);
                    BindInt(statement, 1, (int)update.State);
                    BindTime(statement, 2, update.Time);
                    BindText(statement, 3, update.Error);
                    BindText(statement, 4, update.Output);
                    BindTime(statement, 5, update.NextRetry);
                    break;
                case RunUpdateKind.FailForGood:
                    statement = Prepare(LedgerStatements.FailRunForGood);
                    BindGuid(statement, 0, update.RunId);
                    break;
                case RunUpdateKind.NextRetry:
                    statement = Prepare(LedgerStatements.SetNextRetry);
                    BindGuid(statement, 0, update.RunId);
                    BindTime(statement, 1, update.NextRetry);
                    break;
                default:
                    statement = Prepare(LedgerStatements.ExpireOrphanedRuns);
                    BindGuid(statement, 0, update.TaskId);
                    BindText(statement, 1, update.Consumer);
                    BindGuid(statement, 2, update.RunId);
                    BindTime(statement, 3, update.Time);
                    break;
            }

            Step(statement);
        }

        private Prepared Prepare(string sql)
        {
            if (_prepared.TryGetValue(sql, out var prepared))
            {
                return prepared;
            }

            var handle = connection.Handle!;
            var rc = raw.sqlite3_prepare_v2(handle, sql, out sqlite3_stmt statement);
            SqliteException.ThrowExceptionForRC(rc, handle);
            // Sized by the highest @pN, not the number of distinct parameters: a statement may use some of a row's
            // parameters only (the producer-field update skips the derived columns), and a shorter map would leave the
            // higher ones unbound (NULL).
            var map = new int[Math.Max(raw.sqlite3_bind_parameter_count(statement), HighestParameter(sql) + 1)];
            for (var i = 0; i < map.Length; i++)
            {
                // Parameter numbers by name: @pN may appear several times and out of order.
                map[i] = raw.sqlite3_bind_parameter_index(statement, "@p" + i.ToString(CultureInfo.InvariantCulture));
            }

            prepared = new Prepared(statement, map);
            _prepared[sql] = prepared;
            return prepared;
        }

        /// <summary>Runs a bound statement and resets it; returns the rows it changed.</summary>
        private int Step(Prepared prepared)
        {
            var handle = connection.Handle!;
            var rc = raw.sqlite3_step(prepared.Statement);
            var changes = rc is raw.SQLITE_DONE or raw.SQLITE_ROW ? raw.sqlite3_changes(handle) : 0;
            raw.sqlite3_reset(prepared.Statement);
            if (rc is not (raw.SQLITE_DONE or raw.SQLITE_ROW))
            {
                SqliteException.ThrowExceptionForRC(rc, handle);
            }

            return changes;
        }

        private bool Exists(Prepared prepared)
        {
            var rc = raw.sqlite3_step(prepared.Statement);
            raw.sqlite3_reset(prepared.Statement);
            if (rc is not (raw.SQLITE_DONE or raw.SQLITE_ROW))
            {
                SqliteException.ThrowExceptionForRC(rc, connection.Handle);
            }

            return rc == raw.SQLITE_ROW;
        }

        private static int HighestParameter(string sql)
        {
            var highest = -1;
            foreach (System.Text.RegularExpressions.Match match in System.Text.RegularExpressions.Regex.Matches(sql, @"@p(\d+)"))
            {
                highest = Math.Max(highest, int.Parse(match.Groups[1].ValueSpan, CultureInfo.InvariantCulture));
            }

            return highest;
        }

        private static int Index(Prepared prepared, int parameter) =>
            parameter < prepared.Map.Length ? prepared.Map[parameter] : 0;

        private void Check(int rc)
        {
            if (rc != raw.SQLITE_OK)
            {
                SqliteException.ThrowExceptionForRC(rc, connection.Handle);
            }
        }

        private void BindNull(Prepared p, int parameter)
        {
            var index = Index(p, parameter);
            if (index > 0)
            {
                Check(raw.sqlite3_bind_null(p.Statement, index));
            }
        }

        // EF Core stores a Guid as upper-case TEXT on SQLite (SqliteDialect.ToDb).
        private void BindGuid(Prepared p, int parameter, Guid value)
        {
            var index = Index(p, parameter);
            if (index == 0)
            {
                return;
            }

            Span<byte> text = stackalloc byte[36];
            value.TryFormat(text, out _, "D");
            for (var i = 0; i < text.Length; i++)
            {
                if (text[i] is >= (byte)'a' and <= (byte)'f')
                {
                    text[i] -= 'a' - 'A';
                }
            }

            Check(raw.sqlite3_bind_text(p.Statement, index, text));
        }

        // EF Core stores a DateTime as 'yyyy-MM-dd HH:mm:ss.FFFFFFF' TEXT on SQLite (SqliteDialect.ToDb).
        private void BindTime(Prepared p, int parameter, DateTime? value)
        {
            var index = Index(p, parameter);
            if (index == 0)
            {
                return;
            }

            if (value is not { } time)
            {
                Check(raw.sqlite3_bind_null(p.Statement, index));
                return;
            }

            Span<byte> text = stackalloc byte[32];
            time.TryFormat(text, out var written, "yyyy-MM-dd HH:mm:ss.FFFFFFF", CultureInfo.InvariantCulture);
            Check(raw.sqlite3_bind_text(p.Statement, index, text[..written]));
        }

        private void BindText(Prepared p, int parameter, string? value)
        {
            var index = Index(p, parameter);
            if (index == 0)
            {
                return;
            }

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

        private void BindInt(Prepared p, int parameter, long value)
        {
            var index = Index(p, parameter);
            if (index > 0)
            {
                Check(raw.sqlite3_bind_int64(p.Statement, index, value));
            }
        }

        private void BindReal(Prepared p, int parameter, double? value)
        {
            var index = Index(p, parameter);
            if (index > 0)
            {
                Check(value is { } v ? raw.sqlite3_bind_double(p.Statement, index, v) : raw.sqlite3_bind_null(p.Statement, index));
            }
        }

        private void BindObject(Prepared p, int parameter, object value)
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
                    var index = Index(p, parameter);
                    if (index > 0)
                    {
                        Check(raw.sqlite3_bind_blob(p.Statement, index, bytes));
                    }

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
            await connection.DisposeAsync().ConfigureAwait(false);
        }

        private sealed class Prepared(sqlite3_stmt statement, int[] map)
        {
            public sqlite3_stmt Statement { get; } = statement;

            public int[] Map { get; } = map;
        }

        /// <summary>Binds a row's columns to the statement's parameters @p0, @p1, … in order.</summary>
        private struct Sink(SqliteExecutor executor, Prepared statement) : IRowSink
        {
            private int _parameter;

            public void Guid(Guid value) => executor.BindGuid(statement, _parameter++, value);

            public void Guid(Guid? value)
            {
                if (value is { } g)
                {
                    executor.BindGuid(statement, _parameter++, g);
                }
                else
                {
                    executor.BindNull(statement, _parameter++);
                }
            }

            public void Text(string? value) => executor.BindText(statement, _parameter++, value);

            public void Time(DateTime value) => executor.BindTime(statement, _parameter++, value);

            public void Time(DateTime? value) => executor.BindTime(statement, _parameter++, value);

            public void Int(int value) => executor.BindInt(statement, _parameter++, value);

            public void Bool(bool value) => executor.BindInt(statement, _parameter++, value ? 1 : 0);

            public void Real(double? value) => executor.BindReal(statement, _parameter++, value);
        }
    }

    /// <summary>
    /// PostgreSQL: one round trip per batch (an <see cref="NpgsqlBatch"/>), one statement per kind over arrays
    /// (<c>unnest</c>), kept prepared by Npgsql's auto-preparation.
    /// </summary>
    private sealed class NpgsqlExecutor(NpgsqlConnection connection) : SqlExecutor
    {
        private static readonly ConcurrentDictionary<string, string> s_positional = new(StringComparer.Ordinal);

        public override DbConnection Connection => connection;

        /// <remarks>
        /// No explicit transaction: a batch outside one runs in PostgreSQL's implicit transaction (everything up to the
        /// protocol's Sync commits together or not at all), so BEGIN, the statements and COMMIT cost one round trip.
        /// </remarks>
        public override async Task CommitAsync(LedgerPlan plan, TimeSpan timeout, CancellationToken cancellationToken)
        {
            var started = PhaseTicks is null ? 0 : PhaseClock();
            await using var batch = new NpgsqlBatch(connection)
            {
                Timeout = (int)Math.Max(1, timeout.TotalSeconds),
            };

            if (plan.Dispatched.Count > 0)
            {
                batch.BatchCommands.Add(Rows(LedgerStatements.PgUpsertDispatchedTasks, LedgerStatements.TaskColumns, plan.Dispatched));
            }

            // A consumer's task row is rendered here even when the producer's row exists (then ON CONFLICT drops it):
            // rendering costs microseconds, asking which rows exist first costs a round trip per batch.
            var ensured = plan.Ensured;
            if (ensured.Count > 0)
            {
                batch.BatchCommands.Add(Rows(LedgerStatements.PgInsertTasksIfMissing, LedgerStatements.TaskColumns, ensured));
            }

            foreach (var (taskId, error) in plan.DispatchFailures)
            {
                batch.BatchCommands.Add(Command(LedgerStatements.TaskDispatchFailed, taskId, error));
            }

            AddRunUpdates(batch, plan);

            if (plan.Runs.Count > 0)
            {
                var columns = new ColumnSet(LedgerStatements.RunColumns, plan.Runs.Count);
                foreach (var row in plan.Runs)
                {
                    var sink = new ColumnSink(columns);
                    LedgerRows.Run(ref sink, row, withOrdinal: true);
                }

                batch.BatchCommands.Add(columns.Command(LedgerStatements.PgUpsertRuns));
            }

            if (plan.Derive.Count > 0)
            {
                var derive = new NpgsqlBatchCommand(LedgerStatements.PgDeriveTasksIfChanged);
                derive.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid, Value = plan.Derive.ToArray() });
                batch.BatchCommands.Add(derive);
            }

            foreach (var (sql, values) in plan.Other.Statements)
            {
                batch.BatchCommands.Add(Command(sql, values));
            }

            Phase(0, ref started);
            if (batch.BatchCommands.Count > 0)
            {
                await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            Phase(3, ref started);
        }

        /// <summary>
        /// Updates of stored runs. In the usual order (finish, then next-retry time, then failed for good, per run) they
        /// run as one statement per kind, keeping the first record of each kind per run (the later ones would find the
        /// run already changed). Any other order, or an orphan expiry, runs them one by one as recorded.
        /// </summary>
        private static void AddRunUpdates(NpgsqlBatch batch, LedgerPlan plan)
        {
            if (plan.RunUpdates.Count == 0)
            {
                return;
            }

            var inOrder = !plan.HasOrphanExpiry;
            var seen = new Dictionary<Guid, RunUpdateKind>();
            foreach (var update in plan.RunUpdates)
            {
                if (seen.TryGetValue(update.RunId, out var last) && Rank(update.Kind) < Rank(last))
                {
                    inOrder = false;
                    break;
                }

                seen[update.RunId] = update.Kind;
            }

            if (!inOrder)
            {
                foreach (var u in plan.RunUpdates)
                {
                    batch.BatchCommands.Add(u.Kind switch
                    {
                        RunUpdateKind.Finish => Command(LedgerStatements.FinishRun, u.RunId, (int)u.State, u.Time, u.Error, u.Output, u.NextRetry),
                        RunUpdateKind.FailForGood => Command(LedgerStatements.FailRunForGood, u.RunId),
                        RunUpdateKind.NextRetry => Command(LedgerStatements.SetNextRetry, u.RunId, u.NextRetry),
                        _ => Command(LedgerStatements.ExpireOrphanedRuns, u.TaskId, u.Consumer, u.RunId, u.Time),
                    });
                }

                return;
            }

            var finished = new HashSet<Guid>();
            var finishes = new ColumnSet([new("Id", "uuid"), new("State", "integer"), new("Stop", "timestamptz"), new("ErrorMessage", "text"), new("Output", "text"), new("Next", "timestamptz")], 0);
            var retryTimed = new HashSet<Guid>();
            var retries = new ColumnSet([new("Id", "uuid"), new("Next", "timestamptz")], 0);
            var failed = new HashSet<Guid>();
            foreach (var u in plan.RunUpdates)
            {
                switch (u.Kind)
                {
                    case RunUpdateKind.Finish when finished.Add(u.RunId):
                        var f = new ColumnSink(finishes);
                        f.Guid(u.RunId);
                        f.Int((int)u.State);
                        f.Time(u.Time);
                        f.Text(u.Error);
                        f.Text(u.Output);
                        f.Time(u.NextRetry);
                        break;
                    case RunUpdateKind.NextRetry when retryTimed.Add(u.RunId):
                        var n = new ColumnSink(retries);
                        n.Guid(u.RunId);
                        n.Time(u.NextRetry);
                        break;
                    case RunUpdateKind.FailForGood:
                        failed.Add(u.RunId);
                        break;
                }
            }

            if (finished.Count > 0)
            {
                batch.BatchCommands.Add(finishes.Command(LedgerStatements.PgFinishRuns));
            }

            if (retryTimed.Count > 0)
            {
                batch.BatchCommands.Add(retries.Command(LedgerStatements.PgSetNextRetries));
            }

            if (failed.Count > 0)
            {
                var command = new NpgsqlBatchCommand(LedgerStatements.PgFailRunsForGood);
                command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid, Value = failed.ToArray() });
                batch.BatchCommands.Add(command);
            }

            static int Rank(RunUpdateKind kind) => kind switch
            {
                RunUpdateKind.Finish => 0,
                RunUpdateKind.NextRetry => 1,
                _ => 2,
            };
        }

        private static NpgsqlBatchCommand Rows(string sql, LedgerColumn[] columns, List<TaskRow> rows)
        {
            var set = new ColumnSet(columns, rows.Count);
            foreach (var row in rows)
            {
                var sink = new ColumnSink(set);
                LedgerRows.Task(ref sink, row);
            }

            return set.Command(sql);
        }

        private static NpgsqlBatchCommand Command(string sql, params object?[] values)
        {
            // Positional parameters skip Npgsql's SQL rewriting.
            var command = new NpgsqlBatchCommand(s_positional.GetOrAdd(sql, s => Placeholder().Replace(
                s, m => "$" + (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) + 1).ToString(CultureInfo.InvariantCulture))));
            foreach (var value in values)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = PostgresValue(value) });
            }

            return command;
        }

        private static object PostgresValue(object? value) => value switch
        {
            null => DBNull.Value,
            DateTime d => DateTime.SpecifyKind(d, DateTimeKind.Utc),
            _ => value,
        };

        public override ValueTask DisposeAsync() => connection.DisposeAsync();

        /// <summary>Column arrays for one <c>unnest</c> statement.</summary>
        private sealed class ColumnSet
        {
            private readonly LedgerColumn[] _columns;
            private readonly System.Collections.IList[] _lists;

            public ColumnSet(LedgerColumn[] columns, int capacity)
            {
                _columns = columns;
                _lists = new System.Collections.IList[columns.Length];
                for (var i = 0; i < columns.Length; i++)
                {
                    _lists[i] = columns[i].PgType switch
                    {
                        "uuid" => new List<Guid?>(capacity),
                        "timestamptz" => new List<DateTime?>(capacity),
                        "integer" => new List<int>(capacity),
                        "boolean" => new List<bool>(capacity),
                        "double precision" => new List<double?>(capacity),
                        _ => new List<string?>(capacity),
                    };
                }
            }

            public List<T> List<T>(int column) => (List<T>)_lists[column];

            public NpgsqlBatchCommand Command(string sql)
            {
                var command = new NpgsqlBatchCommand(sql);
                for (var i = 0; i < _columns.Length; i++)
                {
                    var (type, value) = _columns[i].PgType switch
                    {
                        "uuid" => (NpgsqlDbType.Uuid, (object)List<Guid?>(i).ToArray()),
                        "timestamptz" => (NpgsqlDbType.TimestampTz, List<DateTime?>(i).ToArray()),
                        "integer" => (NpgsqlDbType.Integer, List<int>(i).ToArray()),
                        "boolean" => (NpgsqlDbType.Boolean, List<bool>(i).ToArray()),
                        "double precision" => (NpgsqlDbType.Double, List<double?>(i).ToArray()),
                        _ => (NpgsqlDbType.Text, List<string?>(i).ToArray()),
                    };
                    command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | type, Value = value });
                }

                return command;
            }
        }

        /// <summary>Appends a row's columns to the column arrays, in order.</summary>
        private struct ColumnSink(ColumnSet set) : IRowSink
        {
            private int _column;

            public void Guid(Guid value) => set.List<Guid?>(_column++).Add(value);

            public void Guid(Guid? value) => set.List<Guid?>(_column++).Add(value);

            public void Text(string? value) => set.List<string?>(_column++).Add(value);

            public void Time(DateTime value) => set.List<DateTime?>(_column++).Add(DateTime.SpecifyKind(value, DateTimeKind.Utc));

            public void Time(DateTime? value) =>
                set.List<DateTime?>(_column++).Add(value is { } v ? DateTime.SpecifyKind(v, DateTimeKind.Utc) : null);

            public void Int(int value) => set.List<int>(_column++).Add(value);

            public void Bool(bool value) => set.List<bool>(_column++).Add(value);

            public void Real(double? value) => set.List<double?>(_column++).Add(value);
        }
    }
}

/// <summary>SQLite connection settings JobLog relies on.</summary>
internal static class SqliteSetup
{
    public static async Task ConfigureAsync(SqliteConnection connection, TimeSpan busyTimeout, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        // The busy timeout first: any other statement may already wait for a lock. NORMAL sync is durable in WAL mode
        // against process crashes (the schema switches the file to WAL once).
        // The write path touches index pages all over a large file (keys are GUIDs): a page cache of up to 64 MiB
        // instead of SQLite's 2 MiB saves most re-reads, and checkpointing every 10,000 pages instead of 1,000 writes a
        // hot page back (and syncs the file) ten times less often. The WAL file is cut back to 64 MiB after a checkpoint.
        // PRAGMA optimize (as SQLite advises for every long-lived connection) keeps the planner's statistics: without
        // them the sweeper's set-based statements pick the State index over the primary key and scan the table per
        // batch (a 1,000,000-task ledger: 93 s per sweep instead of 7). analysis_limit bounds its cost.
        command.CommandText = "PRAGMA busy_timeout=" +
            ((int)busyTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture) +
            "; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; PRAGMA wal_autocheckpoint=10000; PRAGMA journal_size_limit=67108864;" +
            " PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002;";
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
