using System.Data.Common;
using System.Globalization;
using System.Linq.Expressions;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace JobLog.Storage.Sqlite;

/// <summary>
/// SQLite behind the <see cref="LedgerDatabase"/> seam: one writer (no row locks to skip), GUIDs and timestamps stored
/// as TEXT the way EF Core writes them, id lists as JSON arrays, the write path through SQLite's C API
/// (<see cref="SqliteExecutor"/>).
/// </summary>
internal sealed class SqliteLedgerDatabase : LedgerDatabase
{
    public static readonly SqliteLedgerDatabase Instance = new();

    private SqliteLedgerDatabase()
    {
    }

    public override LedgerProvider Provider => LedgerProvider.Sqlite;

    public override Func<JobLogDbContext> ContextFactory(string connectionString, bool pooled = true)
    {
        var options = SqliteJobLogDbContext.Options(connectionString);
        return () => new SqliteJobLogDbContext(options);
    }

    public override void BeforeMigrate(string connectionString) => SqliteSetup.EnsureDirectory(connectionString);

    // The file's full path; an in-memory database has no other process to replay for.
    public override string Identity(string connectionString) =>
        "sqlite:" + (SqliteSetup.FilePath(connectionString) ?? connectionString);

    public override Task<IDisposable?> LockMigrationsAsync(string connectionString, TimeProvider time, ILogger logger, CancellationToken cancellationToken) =>
        SqliteMigrationLock.TakeAsync(connectionString, time, logger, cancellationToken);

    // WAL lets the dashboard read while the writer commits; the mode is stored in the file.
    public override async Task AfterMigrateAsync(JobLogDbContext context, CancellationToken cancellationToken)
    {
        await context.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken).ConfigureAwait(false);
        await context.Database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await RefreshStatisticsAsync(context.Database.GetDbConnection(), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await context.Database.CloseConnectionAsync().ConfigureAwait(false);
        }
    }

    public override async Task RefreshStatisticsAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = SqliteSetup.Optimize;
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        command.CommandText = SqliteSetup.HasStatistics;
        if (Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), CultureInfo.InvariantCulture) > 0)
        {
            command.CommandText = SqliteSetup.StatisticsFromCounts;
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public override async Task ApplySearchIndexAsync(JobLogDbContext context, bool enabled, CancellationToken cancellationToken)
    {
        var present = await context.Database
            .SqlQueryRaw<int>($"SELECT COUNT(*) AS \"Value\" FROM sqlite_master WHERE type = 'table' AND name = '{SqliteSearch.TaskText}'")
            .SingleAsync(cancellationToken).ConfigureAwait(false) > 0;
        if (!enabled)
        {
            if (present)
            {
                await context.Database.ExecuteSqlRawAsync(SqliteSearch.Drop, cancellationToken).ConfigureAwait(false);
            }

            await ApplyLogSearchIndexAsync(context, enabled: false, cancellationToken).ConfigureAwait(false);
            return;
        }

        var shape = await context.Database.SqlQueryRaw<int>(SqliteSearch.Shape).SingleAsync(cancellationToken).ConfigureAwait(false);
        if (!present || shape < 4)
        {
            // One transaction: no row is inserted between the last INSERT trigger and the watermark, nor an error indexed
            // by the former triggers after the new ones looked.
            await using var transaction = await context.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            if (!present)
            {
                await context.Database.ExecuteSqlRawAsync(SqliteSearch.Create, cancellationToken).ConfigureAwait(false);
            }

            // Each shape takes the steps after it; the last (session 13) rebuilds the runs' index from their distinct texts.
            var upgrade = shape switch
            {
                _ when !present => SqliteSearch.Upgrade,
                0 => SqliteSearch.Upgrade,
                1 => SqliteSearch.Deduplicated + SqliteSearch.Swept + SqliteSearch.Distinct,
                2 => SqliteSearch.Swept + SqliteSearch.Distinct,
                _ => SqliteSearch.Distinct,
            };
            await context.Database.ExecuteSqlRawAsync(upgrade, cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }

        await ApplyLogSearchIndexAsync(context, enabled: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The request and command lists' FTS5 tables (<see cref="SqliteLogSearch"/>): created and filled from the rows on a
    /// ledger that lacks them (one filled before session 13), in one transaction; dropped with the search index off.
    /// </summary>
    private static async Task ApplyLogSearchIndexAsync(JobLogDbContext context, bool enabled, CancellationToken cancellationToken)
    {
        var present = await context.Database.SqlQueryRaw<int>(SqliteLogSearch.Present).SingleAsync(cancellationToken).ConfigureAwait(false) > 0;
        if (present != enabled)
        {
            await using var transaction = await context.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await context.Database.ExecuteSqlRawAsync(enabled ? SqliteLogSearch.Create : SqliteLogSearch.Drop, cancellationToken).ConfigureAwait(false);
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public override DbConnection CreateConnection(string connectionString) => new SqliteConnection(connectionString);

    public override async Task<SqlExecutor> OpenAsync(
        string connectionString, CancellationToken cancellationToken, TimeSpan? busyTimeout = null, bool asynchronousCommit = false, bool prepare = false,
        bool pooled = true)
    {
        if (busyTimeout is { } timeout)
        {
            // Transactions begin IMMEDIATE; that wait is bounded by the connection's default timeout, not the command's.
            connectionString = new SqliteConnectionStringBuilder(connectionString)
            {
                DefaultTimeout = (int)Math.Max(1, Math.Ceiling(timeout.TotalSeconds)),
            }.ConnectionString;
        }

        var connection = new SqliteConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            await SqliteSetup.ConfigureAsync(connection, busyTimeout ?? TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
            if (!asynchronousCommit)
            {
                await SqliteSetup.WaitForTheDiskAsync(connection, cancellationToken).ConfigureAwait(false);
            }

            return new SqliteExecutor(connection) { Opened = connection };
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public override bool HasMoved(SqlExecutor executor) =>
        executor.Opened is SqliteConnection { Handle: { } handle } && SqliteFileMoved.Check(handle);

    // Every pool: the writer's, the contexts' and the heartbeat's connection strings differ (timeouts), and all of them
    // would go on using the moved file. An event of minutes' consequence, not of the hot path.
    public override void ForgetMovedLedger() => SqliteConnection.ClearAllPools();

    public override bool Exists(string connectionString) =>
        SqliteSetup.FilePath(connectionString) is not { } file || File.Exists(file);

    public override bool IsReadOnly(string connectionString) => SqliteSetup.IsReadOnly(connectionString);

    public override string WriteProbe => "BEGIN IMMEDIATE; ROLLBACK;";

    // SQLITE_NOMEM 7, SQLITE_READONLY 8, SQLITE_IOERR 10, SQLITE_CORRUPT 11 is left out (a record cannot cause it, but
    // retrying cannot cure it either), SQLITE_FULL 13, SQLITE_CANTOPEN 14, SQLITE_PROTOCOL 15; the primary code is the low byte.
    public override bool IsWriteRefused(Exception exception) =>
        exception is SqliteException sqlite && (sqlite.SqliteErrorCode & 0xFF) is 7 or 8 or 10 or 13 or 14 or 15 ||
        exception.InnerException is { } inner && IsWriteRefused(inner);

    // SQLITE_ERROR (1) has no finer code for a missing table: its message says it.
    public override bool IsSchemaMissing(Exception exception) =>
        exception is SqliteException { SqliteErrorCode: 1 } sqlite && sqlite.Message.Contains("no such table", StringComparison.Ordinal) ||
        exception.InnerException is { } inner && IsSchemaMissing(inner);

    public override string SkipLocked => "";

    // SQLite's planner, without statistics, may not see a partial index.
    public override string IndexedBy(string index) => $" INDEXED BY \"{index}\"";

    public override string InIdList(string column, string parameter) => $"{column} IN (SELECT value FROM json_each({parameter}))";

    public override object IdList(IReadOnlyCollection<Guid> ids) =>
        "[" + string.Join(',', ids.Select(i => "\"" + i.ToString().ToUpperInvariant() + "\"")) + "]";

    public override string Upsert(UpsertStatement statement) => OnConflictSql.Of(statement);

    public override string DeriveTasks => SqliteStatements.DeriveTasks;

    public override string? LockTasks => null;

    /// <summary>How EF Core stores a <see cref="DateTime"/> on SQLite (TEXT); the writer's own statements bind the same.</summary>
    internal const string TimeFormat = "yyyy-MM-dd HH:mm:ss.FFFFFFF";

    /// <summary>The longest <see cref="TimeFormat"/> text, in bytes.</summary>
    internal const int TimeLength = 27;

    /// <summary>
    /// <paramref name="time"/> as <see cref="TimeFormat"/> writes it with the invariant culture (the fraction without its
    /// trailing zeros, and without the point when it is zero), as UTF-8 into <paramref name="utf8"/> (at least
    /// <see cref="TimeLength"/> bytes); returns the bytes written. The writer binds a time or two per record: .NET's custom
    /// format interprets the pattern each time and cost several times this.
    /// </summary>
    internal static int FormatTime(DateTime time, Span<byte> utf8)
    {
        var (year, month, day) = time;
        var clock = time.TimeOfDay;
        Digits(utf8[..4], year);
        utf8[4] = (byte)'-';
        Digits(utf8.Slice(5, 2), month);
        utf8[7] = (byte)'-';
        Digits(utf8.Slice(8, 2), day);
        utf8[10] = (byte)' ';
        Digits(utf8.Slice(11, 2), clock.Hours);
        utf8[13] = (byte)':';
        Digits(utf8.Slice(14, 2), clock.Minutes);
        utf8[16] = (byte)':';
        Digits(utf8.Slice(17, 2), clock.Seconds);
        var fraction = (int)(time.Ticks % TimeSpan.TicksPerSecond);
        if (fraction == 0)
        {
            return 19;
        }

        var length = 7;
        while (fraction % 10 == 0)
        {
            fraction /= 10;
            length--;
        }

        utf8[19] = (byte)'.';
        Digits(utf8.Slice(20, length), fraction);
        return 20 + length;

        static void Digits(Span<byte> into, int value)
        {
            for (var i = into.Length - 1; i >= 0; i--)
            {
                into[i] = (byte)('0' + (value % 10));
                value /= 10;
            }
        }
    }

    // EF Core stores Guid as upper-case TEXT and DateTime as 'yyyy-MM-dd HH:mm:ss.FFFFFFF' on SQLite.
    public override Expression<Func<string?, bool>> LikeIgnoringCase(string pattern) =>
        s => EF.Functions.Like(s, pattern, "\\");

    // FTS5 trigram tables up to a watermark, LIKE past it (SqliteSearch); LIKE '%…%' over all would read every row.
    public override IQueryable<Guid>? TasksContaining(JobLogDbContext db, string text, string? key, bool byDay = false) => SqliteSearch.TasksContaining(db, text, LedgerSql.LikePattern(text), key);

    // FTS5 trigram tables up to a watermark, LIKE past it and on every row found (SqliteLogSearch).
    public override IQueryable<Guid>? LogContaining(JobLogDbContext db, LogText log, string text, string? key) =>
        SqliteLogSearch.Containing(db, log, text, LedgerSql.LikePattern(text), key);

    public override object ToDb(object? value) => value switch
    {
        null => DBNull.Value,
        Guid g => g.ToString().ToUpperInvariant(),
        DateTime d => d.ToString(TimeFormat, CultureInfo.InvariantCulture),
        Enum e => Convert.ToInt32(e, CultureInfo.InvariantCulture),
        bool b => b ? 1 : 0,
        _ => value,
    };

    public override DateTime ReadUtc(DbDataReader reader, int ordinal)
    {
        if (reader.GetFieldType(ordinal) == typeof(string))
        {
            return DateTime.SpecifyKind(
                DateTime.Parse(reader.GetString(ordinal), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal),
                DateTimeKind.Utc);
        }

        var value = reader.GetDateTime(ordinal);
        return value.Kind == DateTimeKind.Local ? value.ToUniversalTime() : DateTime.SpecifyKind(value, DateTimeKind.Utc);
    }

    public override Guid ReadGuid(DbDataReader reader, int ordinal) =>
        reader.GetFieldType(ordinal) == typeof(Guid) ? reader.GetGuid(ordinal) : Guid.Parse(reader.GetString(ordinal));
}
