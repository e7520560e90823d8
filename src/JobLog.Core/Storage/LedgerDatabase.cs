using System.Data.Common;
using System.Globalization;
using System.Linq.Expressions;
using JobLog.Storage.PostgreSql;
using JobLog.Storage.Sqlite;
using Microsoft.Extensions.Logging;

namespace JobLog.Storage;

/// <summary>
/// The seam between JobLog and a database: everything the writer, the sweeper, the scheduler's store, the schema, the
/// health check and the retention jobs need that differs between databases. One implementation per database folder
/// (<c>Storage/Sqlite</c>, <c>Storage/PostgreSql</c>); nothing outside those folders asks which database it is. What
/// each member is for, and what a new database has to write: docs/storage.md.
/// </summary>
internal abstract class LedgerDatabase
{
    private static readonly LedgerDatabase[] s_databases = [SqliteLedgerDatabase.Instance, PostgreSqlLedgerDatabase.Instance];

    /// <summary>Which of <see cref="LedgerProvider"/> this database is (for options and log messages).</summary>
    public abstract LedgerProvider Provider { get; }

    /// <summary>The database <see cref="JobLogOptions"/> chose.</summary>
    /// <exception cref="InvalidOperationException">No database was chosen.</exception>
    public static LedgerDatabase For(LedgerProvider provider)
    {
        foreach (var database in s_databases)
        {
            if (database.Provider == provider)
            {
                return database;
            }
        }

        throw new InvalidOperationException("JobLog has no database: call AddJobLog(o => o.UseSqlite(...)) or o.UseNpgsql(...).");
    }

    // ---- Schema: the EF Core context that carries this database's migrations ----

    /// <summary>
    /// The database <paramref name="connectionString"/> reaches, as a stable text. The local journal's and spool's files
    /// are named after it, so that the next process on the same database replays what a killed one left even when its
    /// connection string differs in credentials, pooling or timeouts (a rotated password, dynamic credentials).
    /// </summary>
    public abstract string Identity(string connectionString);

    /// <summary>Creates contexts on <paramref name="connectionString"/>: the provider's subclass of <see cref="JobLogDbContext"/>.</summary>
    /// <param name="connectionString">The ledger's connection string.</param>
    /// <param name="pooled">
    /// PostgreSQL: false for the contexts of a periodic poll (the retry sender's): their sessions are closed when the
    /// connection closes, not kept idle in a pool (see <see cref="OpenAsync"/>'s <c>pooled</c>; session 32).
    /// </param>
    public abstract Func<JobLogDbContext> ContextFactory(string connectionString, bool pooled = true);

    /// <summary>Before the migrations run (SQLite: creates the file's directory).</summary>
    public virtual void BeforeMigrate(string connectionString)
    {
    }

    /// <summary>
    /// Before the migrations run, after <see cref="BeforeMigrate"/>: waits until no other process migrates, where EF Core's
    /// own lock does not survive its holder's death (SQLite: <see cref="Sqlite.SqliteMigrationLock"/>) or does not keep
    /// processes apart (PostgreSQL: <see cref="PostgreSql.PostgreSqlMigrationLock"/>); disposed after the migrations. Null
    /// when EF Core's lock is enough.
    /// </summary>
    public virtual Task<IDisposable?> LockMigrationsAsync(string connectionString, TimeProvider time, ILogger logger, CancellationToken cancellationToken) =>
        Task.FromResult<IDisposable?>(null);

    /// <summary>After the migrations ran (SQLite: switches the file to WAL).</summary>
    public virtual Task AfterMigrateAsync(JobLogDbContext context, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// PostgreSQL: closes the idle sessions of <paramref name="connection"/>'s pool (the start-up's probe and migration
    /// leave theirs there, idle for Npgsql's <c>Connection Idle Lifetime</c>, 5 min, where no other process can use them;
    /// session 31). Sessions in use are closed when they are given back.
    /// </summary>
    public virtual void ReleaseIdleSessions(DbConnection connection)
    {
    }

    /// <summary>
    /// Brings the planner's statistics up to date where the database does not do it itself (SQLite: <c>PRAGMA optimize</c>,
    /// see <see cref="Sqlite.SqliteSetup.Optimize"/>; PostgreSQL's autovacuum analyzes). The sweeper calls it before a sweep.
    /// </summary>
    public virtual Task RefreshStatisticsAsync(DbConnection connection, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// After the migrations: keeps or drops the task search's text index (<see cref="JobLogOptions.SearchIndex"/>;
    /// the migration created it, so turning it on again rebuilds it from the rows).
    /// </summary>
    public virtual Task ApplySearchIndexAsync(JobLogDbContext context, bool enabled, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// After the migrations: when <see cref="PartitioningOptions.Enabled"/>, converts the ledger to daily partitions (once)
    /// and creates the partitions ahead (PostgreSQL; docs/scale.md#partitioning). Nothing elsewhere.
    /// </summary>
    public virtual Task ApplyPartitioningAsync(JobLogDbContext context, PartitioningOptions options, DateTime now, CancellationToken cancellationToken) =>
        Task.CompletedTask;

    /// <summary>
    /// The hourly partition pass's share of the retention: builds ahead the kept rows of the days whose drop is due within a
    /// margin, for tasks kept <paramref name="succeeded"/> (failures <paramref name="failed"/>) (PostgreSQL partitioned,
    /// <c>LedgerPartitioning.BuildAheadAsync</c>). Nothing elsewhere.
    /// </summary>
    public virtual Task BuildAheadAsync(JobLogDbContext context, DateTime now, TimeSpan succeeded, TimeSpan? failed, CancellationToken cancellationToken) =>
        Task.CompletedTask;

    /// <summary>Whether the ledger's tasks and runs are partitioned by day (retention then drops days). False on SQLite.</summary>
    public virtual Task<bool> IsPartitionedAsync(JobLogDbContext context, CancellationToken cancellationToken) => Task.FromResult(false);

    /// <summary>Whether the ledger's rows of <paramref name="kind"/> are partitioned by day (retention then drops days). False on SQLite.</summary>
    public virtual Task<bool> IsPartitionedAsync(JobLogDbContext context, Retention.LedgerKind kind, CancellationToken cancellationToken) => Task.FromResult(false);

    // ---- Connections ----

    /// <summary>A new, closed connection (the health check's probe).</summary>
    public abstract DbConnection CreateConnection(string connectionString);

    /// <summary>
    /// Whether opening a connection of <paramref name="connectionString"/> failed with <paramref name="exception"/> because the
    /// server (a pooler) refused JobLog's session settings (PostgreSQL: the <c>options</c> startup parameter, PgBouncer); the
    /// connections made from now on leave them out, and opening again may succeed. False otherwise, and when they were
    /// left out already.
    /// </summary>
    public virtual bool RefusedSessionSettings(string connectionString, Exception exception) => false;

    /// <summary>True once after the server of <paramref name="connectionString"/> refused JobLog's session settings: for the one warning.</summary>
    public virtual bool TakeRefusedSessionSettingsNotice(string connectionString) => false;

    /// <summary>
    /// The connection string JobLog's own sessions use: <paramref name="connectionString"/> with the session settings that
    /// protect the other processes from one that vanished mid-transaction (<see cref="JobLogOptions.IdleInTransactionTimeout"/>).
    /// Unchanged where the database has no such setting.
    /// </summary>
    public virtual string ForSessions(string connectionString, TimeSpan idleInTransactionTimeout) => connectionString;

    /// <summary>
    /// The connection string of a reader that must not take the connections JobLog's writer and services use (the dashboard):
    /// on PostgreSQL a pool of its own of at most <paramref name="maxPoolSize"/> connections, told apart from the ledger's
    /// by its <c>Application Name</c> (<paramref name="name"/>, after the application's own); unchanged elsewhere (a SQLite
    /// reader holds no connection the writer waits for).
    /// </summary>
    public virtual string ForReaders(string connectionString, string name, int maxPoolSize) => connectionString;

    /// <summary>Opens a connection set up for JobLog's writes, and the executor of <see cref="LedgerPlan"/>s on it.</summary>
    /// <param name="connectionString">The ledger's connection string.</param>
    /// <param name="cancellationToken">Cancels opening.</param>
    /// <param name="busyTimeout">How long a statement waits for a lock (SQLite). Default 5 s.</param>
    /// <param name="asynchronousCommit">
    /// Commit without waiting for the log flush (PostgreSQL <c>synchronous_commit = off</c>, SQLite
    /// <c>synchronous = NORMAL</c>), for <see cref="LedgerDurability.Buffered"/>, whose records a crash may lose anyway.
    /// Otherwise a commit waits until the disk has it, on both databases (PostgreSQL's default, SQLite
    /// <c>synchronous = FULL</c>): a committed record survives the machine's crash, and a journal segment is deleted
    /// only after that.
    /// </param>
    /// <param name="prepare">
    /// PostgreSQL: let Npgsql keep the statements it runs often prepared on the server (the writer's and the sweeper's
    /// batches), unless the connection string sets <c>Max Auto Prepare</c> itself or a pooler lost one
    /// (<see cref="PostgreSql.ServerPreparation"/>). The heartbeat and the scheduler prepare nothing: a pooler that
    /// loses prepared statements must never stop them.
    /// </param>
    /// <param name="pooled">
    /// PostgreSQL: false for a session used now and then (the heartbeat's, the sweeper's, the writer's probe, the
    /// scheduler's polls): it is closed when disposed, not kept idle in a pool where no other process can use it. With a
    /// small <c>max_connections</c>, each process's idle sessions left a writer, a starting process or an operator's look
    /// refused for minutes (sessions 31 and 32). An unpooled open costs a new server process and its authentication
    /// (70 to 120 ms measured on a loaded 2-core machine, against 0.3 ms for a statement on a pooled session): not for
    /// a path a message waits on.
    /// </param>
    public abstract Task<SqlExecutor> OpenAsync(
        string connectionString, CancellationToken cancellationToken, TimeSpan? busyTimeout = null, bool asynchronousCommit = false, bool prepare = false,
        bool pooled = true);

    /// <summary>
    /// True when the ledger <paramref name="executor"/> writes to is no longer the one its connection string names: its
    /// file deleted or replaced at its path while the connection had it open (SQLite, <see cref="Sqlite.SqliteFileMoved"/>).
    /// Its commits then go into a file no one will read: the writer must not count them as committed (session 22). False
    /// where a connection cannot outlive its database so (PostgreSQL). Leaves the executor's connection as it is.
    /// </summary>
    public virtual bool HasMoved(SqlExecutor executor) => false;

    /// <summary>
    /// After <see cref="HasMoved"/>: closes the connections kept open to the moved ledger, so that the next ones open the
    /// ledger at its path (SQLite: every connection pool; the connections in use are closed when they are given back).
    /// </summary>
    public virtual void ForgetMovedLedger()
    {
    }

    /// <summary>
    /// Whether a ledger is at <paramref name="connectionString"/>'s place, so that opening it creates nothing (SQLite: its
    /// file exists; opening a missing one makes an empty file). True where opening never creates a database (PostgreSQL).
    /// </summary>
    public virtual bool Exists(string connectionString) => true;

    /// <summary>
    /// Whether <paramref name="connectionString"/> opens the ledger read-only (SQLite: <c>Mode=ReadOnly</c>, or a
    /// <c>file:</c> URI's <c>mode=ro</c> or <c>immutable=1</c>; PostgreSQL: a server that refused a write
    /// so, <see cref="RefusedAsReadOnly"/>): JobLog then checks the schema instead of migrating it and writes nothing when it reads.
    /// </summary>
    public virtual bool IsReadOnly(string connectionString) => false;

    /// <summary>
    /// True when <paramref name="exception"/> is the database's refusal of a write because it takes none (PostgreSQL's
    /// 25006: a hot standby, a database or role with <c>default_transaction_read_only</c>), which the connection string
    /// could not say: <see cref="IsReadOnly"/> says it from then on. False for SQLite (its connection string says it).
    /// </summary>
    public virtual bool RefusedAsReadOnly(string connectionString, Exception exception) => false;

    /// <summary>
    /// After a write succeeded on a ledger <see cref="RefusedAsReadOnly"/> had found read-only (a primary read-only for a
    /// while, a standby promoted): <see cref="IsReadOnly"/> is false again. Nothing where the connection string says it.
    /// </summary>
    public virtual void TakesWrites(string connectionString)
    {
    }

    /// <summary>
    /// A statement that fails, or returns false, unless the database accepts writes now (the writer's reachability
    /// probe: a locked SQLite file or a read-only PostgreSQL counts as unreachable).
    /// </summary>
    public abstract string WriteProbe { get; }

    /// <summary>
    /// True when <paramref name="exception"/> says the database never answered: a connect or a read that timed out (a host
    /// that drops packets). A probe of it would wait as long again. False where every failure is an answer (SQLite's file).
    /// </summary>
    public virtual bool IsUnanswered(Exception exception) => false;

    /// <summary>
    /// True when <paramref name="exception"/> says a ledger table does not exist: the database was dropped and made again
    /// empty (a restore under way, a DBA's mistake) or the file replaced. The writer then migrates again and keeps its
    /// records, instead of taking the failure for a record's fault and dropping them.
    /// </summary>
    public abstract bool IsSchemaMissing(Exception exception);

    /// <summary>
    /// True when <paramref name="exception"/> says the database cannot write now, whatever the record (its disk full, an
    /// I/O error, a read-only file or server, out of memory or connections): the write probe may still pass (SQLite's
    /// <c>BEGIN IMMEDIATE</c> writes nothing; a full disk does not make PostgreSQL read-only), so the writer keeps the
    /// batch and tries again, instead of taking the failure for the records' fault and dropping them one by one.
    /// </summary>
    public abstract bool IsWriteRefused(Exception exception);

    /// <summary>
    /// True when <paramref name="exception"/> says the server rolled the batch back to break a deadlock with another
    /// transaction (another process's writer, a sweep): nothing in the batch was wrong and it is written again, whole.
    /// False where writers never meet so (SQLite's one writer at a time).
    /// </summary>
    public virtual bool IsConflict(Exception exception) => false;

    // ---- SQL fragments of the set-based statements (sweeper, scheduler) ----

    /// <summary>Appended to a row-selecting subquery so concurrent claimers skip each other's rows (empty when the database has one writer).</summary>
    public abstract string SkipLocked { get; }

    /// <summary>After a table name: the index the statement must use (empty when the planner finds it unaided).</summary>
    public abstract string IndexedBy(string index);

    /// <summary>A <c>WHERE</c> fragment: <paramref name="column"/> is one of the ids in the id-list parameter <paramref name="parameter"/> (see <see cref="IdList"/>).</summary>
    public abstract string InIdList(string column, string parameter);

    /// <summary>The value of an id-list parameter.</summary>
    public abstract object IdList(IReadOnlyCollection<Guid> ids);

    /// <summary><paramref name="statement"/> in this database's syntax.</summary>
    public abstract string Upsert(UpsertStatement statement);

    /// <summary>
    /// The host pass's claim of a gone host instance's ACTIVE runs (<c>@p0</c> the instance, <c>@p1</c> the batch size):
    /// their "Id" and "TaskId". SQLite reads its partial index of ACTIVE runs by host.
    /// </summary>
    public virtual string HostRunsClaim =>
        $"SELECT \"Id\", \"TaskId\" FROM \"{LedgerModel.Runs}\" WHERE \"HostInstanceId\" = @p0 AND \"State\" = 1 LIMIT @p1{SkipLocked}";

    /// <summary>
    /// The host pass's read of the host instances it must judge: those with ACTIVE runs ("InstanceId", "Name", "ProcessId",
    /// "LastHeartbeat", "StoppedAt"). A host with none has nothing to close, however long it has been stopped or dead, so
    /// the rows read follow the open runs, not the week of instances the table keeps. SQLite reads its partial index of
    /// ACTIVE runs by host (the subquery repeats the index's filter word for word), then each host by its key.
    /// </summary>
    public virtual string HostsToJudge =>
        $"SELECT \"InstanceId\", \"Name\", \"ProcessId\", \"LastHeartbeat\", \"StoppedAt\" FROM \"{LedgerModel.Hosts}\" " +
        $"WHERE \"InstanceId\" IN (SELECT \"HostInstanceId\" FROM \"{LedgerModel.Runs}\" WHERE \"State\" = 1 AND \"HostInstanceId\" IS NOT NULL)";

    /// <summary>Forgets what the host pass no longer needs of a gone host instance (<c>@p0</c>) after its runs are closed; null when nothing.</summary>
    public virtual string? HostRunsForget => null;

    /// <summary>The number of ACTIVE runs of each host instance ("Id", "Count"), or null to count them through the model.</summary>
    public virtual string? ActiveRunsByHost => null;

    /// <summary>The task-state derivation (<see cref="LedgerSql.DeriveTask"/>) of every task in the id-list parameter <c>@p0</c>.</summary>
    public abstract string DeriveTasks { get; }

    /// <summary>
    /// Locks the tasks in the id-list parameter <c>@p0</c> (in id order) before a derivation that did not claim them, so
    /// that it waits for another transaction ending runs of the same tasks and then sees their ends; null when the
    /// database has one writer.
    /// </summary>
    public abstract string? LockTasks { get; }

    // ---- Reading (Core/Querying) ----

    /// <summary>
    /// A case-insensitive <c>LIKE</c> of <paramref name="pattern"/> (escape character <c>\</c>) as an EF Core predicate on
    /// a text column (PostgreSQL: <c>ILIKE</c>; SQLite's <c>LIKE</c> ignores ASCII case).
    /// </summary>
    public abstract Expression<Func<string?, bool>> LikeIgnoringCase(string pattern);

    /// <summary>
    /// The ids of the tasks whose Input or TaskKwargs, or one of whose runs' ErrorMessage, contains
    /// <paramref name="text"/> (at least three characters), case-insensitively, answered from this database's own text
    /// index (SQLite: FTS5 trigram tables). Null when <see cref="LikeIgnoringCase"/> over those columns is already
    /// answered from an index. See docs/search.md.
    /// </summary>
    /// <param name="db">The context the query is composed on.</param>
    /// <param name="text">The searched text.</param>
    /// <param name="key">
    /// The text's distinctive part (<c>TaskSearch.Key</c>), or null: where the index reads a posting list per trigram
    /// (PostgreSQL), only the key is looked up and the whole text is checked on the rows found.
    /// </param>
    /// <param name="byDay">
    /// The search's table is partitioned by the tasks' day (<see cref="IsSearchTextPartitionedAsync"/>, so the ledger is):
    /// the runs read by task are read in the task's day only.
    /// </param>
    public virtual IQueryable<Guid>? TasksContaining(JobLogDbContext db, string text, string? key, bool byDay = false) => null;

    /// <summary>
    /// Whether this database's text index narrows a search for <paramref name="text"/> (three characters or more) at all:
    /// false for a text of which it indexes nothing (PostgreSQL's <c>pg_trgm</c> takes trigrams of letters and digits only,
    /// so <c>((((</c> would read the whole text table; SQLite's FTS5 trigrams take any character). Such a text is searched
    /// in the rows newest first, under the read budget (docs/search.md, "The read budget").
    /// </summary>
    public virtual bool IndexServes(string text) => true;

    /// <summary>
    /// The ids of the tasks with a run whose <c>ErrorMessage</c> contains <paramref name="text"/> (case-insensitive), as a
    /// query to correlate with one task at a time (the search's newest-rows step), from a table that is cheaper to probe
    /// by task than the runs; null to read the runs. Only with the search index on. See docs/search.md.
    /// </summary>
    /// <param name="db">The context the query is composed on.</param>
    /// <param name="text">The searched text.</param>
    /// <param name="byDay">
    /// The table is partitioned by the tasks' day (<see cref="IsSearchTextPartitionedAsync"/>): the query also gives each
    /// row's day, for <see cref="Partitioning.PartitionPruning.DayOf"/> to name in the correlation.
    /// </param>
    public virtual IQueryable<Guid>? TasksWithErrorContaining(JobLogDbContext db, string text, bool byDay = false) => null;

    /// <summary>
    /// Whether the search's own table (<see cref="TasksWithErrorContaining"/>) is partitioned by the tasks' day (a
    /// partitioned PostgreSQL ledger since session 14; false elsewhere).
    /// </summary>
    public virtual Task<bool> IsSearchTextPartitionedAsync(JobLogDbContext context, CancellationToken cancellationToken) => Task.FromResult(false);

    /// <summary>
    /// The ids of the rows of <paramref name="log"/> whose searched column contains <paramref name="text"/> (at least
    /// three characters), with the rows <see cref="LikeIgnoringCase"/> would find, answered from this database's own text
    /// index (SQLite: FTS5 trigram tables); null when the index is not there, or the database indexes the column itself
    /// (<see cref="KeyedLikeIgnoringCase"/>). See docs/search.md, "Requests and commands".
    /// </summary>
    /// <param name="db">The context the query is composed on.</param>
    /// <param name="log">The log and its column.</param>
    /// <param name="text">The searched text.</param>
    /// <param name="key">The text's distinctive part (<c>TaskSearch.Key</c>), looked up in the index, or null.</param>
    public virtual IQueryable<Guid>? LogContaining(JobLogDbContext db, LogText log, string text, string? key) => null;

    /// <summary>
    /// <see cref="LikeIgnoringCase"/> of <paramref name="pattern"/> where a trigram index of the column serves it, asking
    /// the index for <paramref name="keyPattern"/> (the text's key) only and checking the whole pattern on the rows found
    /// (PostgreSQL: a GIN scan reads the whole posting list of every trigram of its pattern); null where the database
    /// has no index on the column.
    /// </summary>
    public virtual Expression<Func<string?, bool>>? KeyedLikeIgnoringCase(string pattern, string keyPattern) => null;

    // ---- Values ----

    /// <summary>Converts a CLR value to what the database stores for the EF model's mapping.</summary>
    public abstract object ToDb(object? value);

    /// <summary>Adds <paramref name="value"/> (converted by <see cref="ToDb"/>) to <paramref name="command"/> as <c>@p</c><paramref name="index"/>.</summary>
    public virtual void AddParameter(DbCommand command, int index, object? value)
    {
        var p = command.CreateParameter();
        p.ParameterName = "@p" + index.ToString(CultureInfo.InvariantCulture);
        p.Value = ToDb(value);
        command.Parameters.Add(p);
    }

    /// <summary>Reads a stored timestamp as UTC.</summary>
    public abstract DateTime ReadUtc(DbDataReader reader, int ordinal);

    /// <summary>
    /// SQL for the database's clock (PostgreSQL: <c>now()</c>), or null where the processes' own clocks are the ledger's
    /// (SQLite: one machine's file). Hosts stamp their heartbeats with it, and the host pass and the hosts list judge them
    /// by it: every host is then on one clock, and a host whose wall clock is off is neither swept as gone nor shown dead.
    /// </summary>
    public virtual string? Clock => null;

    /// <summary>The ledger's "now" (UTC): <see cref="Clock"/> read on <paramref name="connection"/> (open), else <paramref name="processNow"/>.</summary>
    public async Task<DateTime> NowAsync(DbConnection connection, DateTime processNow, CancellationToken cancellationToken)
    {
        if (Clock is not { } clock)
        {
            return processNow;
        }

        await using var command = Command(connection, null, "SELECT " + clock);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return ReadUtc(reader, 0);
    }

    /// <summary>Reads a stored id.</summary>
    public abstract Guid ReadGuid(DbDataReader reader, int ordinal);

    /// <summary>A command of <paramref name="sql"/> with <paramref name="values"/> as <c>@p0</c>, <c>@p1</c>, ….</summary>
    public DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, params object?[] values)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(values);
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        for (var i = 0; i < values.Length; i++)
        {
            AddParameter(command, i, values[i]);
        }

        return command;
    }
}
