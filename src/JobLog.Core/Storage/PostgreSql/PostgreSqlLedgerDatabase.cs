using System.Data.Common;
using System.Globalization;
using System.Linq.Expressions;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace JobLog.Storage.PostgreSql;

/// <summary>
/// PostgreSQL behind the <see cref="LedgerDatabase"/> seam: row locks skipped by concurrent claimers
/// (<c>FOR UPDATE SKIP LOCKED</c>), id lists as <c>uuid[]</c>, timestamps as <c>timestamptz</c> whatever the
/// application's Npgsql settings, the write path as one batch over arrays (<see cref="NpgsqlExecutor"/>).
/// </summary>
internal sealed partial class PostgreSqlLedgerDatabase : LedgerDatabase
{
    public static readonly PostgreSqlLedgerDatabase Instance = new();

    private PostgreSqlLedgerDatabase()
    {
    }

    public override LedgerProvider Provider => LedgerProvider.PostgreSql;

    // The server and database (Npgsql's default database is the user's name), and the schema the ledger's tables are in:
    // the search path given (`Search Path`, or `-c search_path=` in `Options`), else the user, whose own schema the
    // default search path ("$user", public) takes first (two applications on one database, each in its user's schema,
    // are two ledgers: review of session 21). Not the password nor the connection's settings.
    public override string Identity(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var searchPath = builder.SearchPath ?? (builder.Options is { } options ? SearchPathOption().Match(options) is { Success: true } m ? m.Groups[1].Value : null : null);
        return string.Create(CultureInfo.InvariantCulture,
            $"postgresql:{builder.Host?.ToLowerInvariant()}:{builder.Port}/{builder.Database ?? builder.Username}/{searchPath ?? "user=" + builder.Username}");
    }

    [GeneratedRegex(@"search_path\s*=\s*('[^']*'|""[^""]*""|\S+)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SearchPathOption();

    public override Func<JobLogDbContext> ContextFactory(string connectionString, bool pooled = true)
    {
        // Per StartupOptions.StateOf: with JobLog's startup settings; without its timeout (the operator set one); without any
        // (a server that refuses them).
        var options = new[] { 0, 1, 2 }
            .Select(_ => new Lazy<DbContextOptions<NpgsqlJobLogDbContext>>(() =>
                NpgsqlJobLogDbContext.Options(pooled ? ForJobLog(connectionString) : Unpooled(ForJobLog(connectionString)))))
            .ToArray();
        return () => new NpgsqlJobLogDbContext(options[StartupOptions.StateOf(connectionString)].Value);
    }

    public override async Task ApplySearchIndexAsync(JobLogDbContext context, bool enabled, CancellationToken cancellationToken)
    {
        var present = await ScalarAsync(context, PostgreSqlSearch.CountPresent, cancellationToken).ConfigureAwait(false);
        var triggers = await ScalarAsync(context, PostgreSqlSearch.CountTriggers, cancellationToken).ConfigureAwait(false);
        var former = await ScalarAsync(context, PostgreSqlSearch.CountFormer, cancellationToken).ConfigureAwait(false);
        if (enabled ? present < PostgreSqlSearch.PresentCount || triggers < PostgreSqlSearch.TriggerCount || former > 0 : present + triggers + former > 0)
        {
            // Without a time limit: at a million tasks filling the side table, building its trigram index or the swept
            // runs' index takes longer than a command's default 30 s, and a start-up that timed out would try again and
            // time out again (helper pgret, session 11).
            var limit = context.Database.GetCommandTimeout();
            context.Database.SetCommandTimeout(0);
            try
            {
                // One transaction: Create locks the tables before it fills the side table, so no write falls between.
                await using var transaction = await context.Database.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await context.Database.ExecuteSqlRawAsync(enabled ? PostgreSqlSearch.Create : PostgreSqlSearch.Drop, cancellationToken).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                context.Database.SetCommandTimeout(limit);
            }
        }

        await ApplyLogSearchIndexAsync(context, enabled, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The request and command lists' trigram indexes (<see cref="PostgreSqlLogSearch"/>): built on a ledger that lacks
    /// them (one filled before session 13, partitioned or not), dropped with the search index off.
    /// </summary>
    private static async Task ApplyLogSearchIndexAsync(JobLogDbContext context, bool enabled, CancellationToken cancellationToken)
    {
        var present = await ScalarAsync(context, PostgreSqlLogSearch.CountPresent, cancellationToken).ConfigureAwait(false);
        if (enabled ? present < LogText.All.Length : present > 0)
        {
            // Without a time limit: the build reads every request of the ledger (2.5 M at 10 M tasks).
            var limit = context.Database.GetCommandTimeout();
            context.Database.SetCommandTimeout(0);
            try
            {
                await context.Database.ExecuteSqlRawAsync(enabled ? PostgreSqlLogSearch.Create : PostgreSqlLogSearch.Drop, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                context.Database.SetCommandTimeout(limit);
            }
        }
    }

    private static Task<int> ScalarAsync(JobLogDbContext context, string sql, CancellationToken cancellationToken) =>
        context.Database.SqlQueryRaw<int>(sql).SingleAsync(cancellationToken);

    public override IQueryable<Guid>? TasksContaining(JobLogDbContext db, string text, string? key, bool byDay = false) => PostgreSqlSearch.TasksContaining(db, text, key, byDay);

    // pg_trgm's trigrams are of words of letters and digits: a text without either has none, and its GIN scan reads every row.
    public override bool IndexServes(string text) => text.Any(char.IsLetterOrDigit);

    public override IQueryable<Guid>? TasksWithErrorContaining(JobLogDbContext db, string text, bool byDay = false) => PostgreSqlSearch.TasksWithErrorContaining(db, text, byDay);

    public override async Task<bool> IsSearchTextPartitionedAsync(JobLogDbContext context, CancellationToken cancellationToken) =>
        await context.Database.SqlQueryRaw<bool>(PostgreSqlSearch.IsPartitioned).SingleAsync(cancellationToken).ConfigureAwait(false);

    // The trigram index is on the log's column (PostgreSqlLogSearch): the key is its only condition, the whole text is
    // checked on the rows it finds in a form no index serves (`|| ''`), as the tasks' search does (PostgreSqlSearch).
    public override Expression<Func<string?, bool>>? KeyedLikeIgnoringCase(string pattern, string keyPattern) =>
        s => EF.Functions.ILike(s!, keyPattern, "\\") && EF.Functions.ILike(s + "", pattern, "\\");

    // EF Core's own lock did not keep processes migrating an empty ledger together apart (PostgreSqlMigrationLock).
    public override Task<IDisposable?> LockMigrationsAsync(string connectionString, TimeProvider time, Microsoft.Extensions.Logging.ILogger logger, CancellationToken cancellationToken) =>
        AgainIfRefusedAsync(connectionString, () => PostgreSqlMigrationLock.TakeAsync(connectionString, Identity(connectionString), cancellationToken));

    public override DbConnection CreateConnection(string connectionString) => new NpgsqlConnection(ForJobLog(connectionString));

    /// <summary>
    /// <paramref name="connectionString"/> with <c>-c idle_in_transaction_session_timeout=</c> in its <c>Options</c>
    /// (<see cref="JobLogOptions.IdleInTransactionTimeout"/>; session 23), unless the timeout is zero or the connection string
    /// sets it itself. The server then ends a JobLog session that sits idle in a transaction that long (a frozen process, a
    /// client cut off by the network: TCP keepalives do not help against the first, and the server's defaults wait two hours
    /// against the second), and its locks go with it. Behind a PgBouncer that ignores startup options it is not applied.
    /// </summary>
    public override string ForSessions(string connectionString, TimeSpan idleInTransactionTimeout)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (idleInTransactionTimeout <= TimeSpan.Zero
            || builder.Options?.Contains("idle_in_transaction_session_timeout", StringComparison.OrdinalIgnoreCase) == true)
        {
            return connectionString;
        }

        var setting = string.Create(CultureInfo.InvariantCulture,
            $"-c idle_in_transaction_session_timeout={Math.Clamp((long)Math.Ceiling(idleInTransactionTimeout.TotalMilliseconds), 1, int.MaxValue)}ms");
        builder.Options = string.IsNullOrWhiteSpace(builder.Options) ? setting : builder.Options + " " + setting;
        return builder.ConnectionString;
    }

    public override string ForReaders(string connectionString, string name, int maxPoolSize)
    {
        // Npgsql keeps a pool per connection string: another Application Name is another pool, and it names the readers'
        // sessions in pg_stat_activity.
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        builder.ApplicationName = string.IsNullOrWhiteSpace(builder.ApplicationName) ? name : $"{builder.ApplicationName} ({name})";
        builder.MaxPoolSize = maxPoolSize;
        builder.MinPoolSize = Math.Min(builder.MinPoolSize, maxPoolSize);
        return builder.ConnectionString;
    }

    /// <summary>
    /// What JobLog's sessions connect with: <see cref="WithoutJit"/>, <see cref="WithTcpKeepalive"/>; JobLog's startup
    /// settings left out for a server that refused them (<see cref="StartupOptions"/>).
    /// </summary>
    internal static string ForJobLog(string connectionString) => StartupOptions.IsRefused(connectionString)
        ? StartupOptions.Without(WithShortIdleLifetime(WithTcpKeepalive(connectionString)))
        : StartupOptions.ForOperatorTimeout(WithShortIdleLifetime(WithTcpKeepalive(WithoutJit(connectionString))));

    /// <summary>How long JobLog's pooled sessions stay idle before Npgsql closes them (<see cref="WithShortIdleLifetime"/>).</summary>
    internal const int IdleLifetimeSeconds = 10;

    /// <summary>
    /// <paramref name="connectionString"/> with Npgsql's <c>Connection Idle Lifetime</c> 10 s (default 300 s) and
    /// <c>Connection Pruning Interval</c> 5 s (default 10 s), unless it sets either itself. The business path's sessions
    /// stay pooled (the scheduler consumer's, which a <c>ScheduleMessage</c> waits on; the failed-message keeper's; the
    /// reads' and the dashboard's): an unpooled open costs a new server process and its authentication, tens of
    /// milliseconds. But a session each kept idle for five minutes after its last use, in a pool no other process can use,
    /// held one more of the server's <c>max_connections</c> per process that scheduled or failed a message or was read
    /// (session 33, <c>IdleSessionsWithBusTests</c>). A pool in use keeps its sessions; one idle for 10 to 15 s closes them.
    /// </summary>
    internal static string WithShortIdleLifetime(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (!builder.Pooling || Sets(connectionString, "ConnectionIdleLifetime") || Sets(connectionString, "ConnectionPruningInterval"))
        {
            return connectionString;
        }

        builder.ConnectionIdleLifetime = IdleLifetimeSeconds;
        builder.ConnectionPruningInterval = IdleLifetimeSeconds / 2;
        return builder.ConnectionString;
    }

    /// <summary>Whether <paramref name="connectionString"/> names <paramref name="keyword"/> (spaces and case ignored, as Npgsql reads it).</summary>
    private static bool Sets(string connectionString, string keyword) =>
        new DbConnectionStringBuilder { ConnectionString = connectionString }.Keys.Cast<string>()
            .Any(k => string.Equals(k.Replace(" ", "", StringComparison.Ordinal), keyword, StringComparison.OrdinalIgnoreCase));

    public override bool RefusedSessionSettings(string connectionString, Exception exception)
    {
        if (!StartupOptions.IsRefusal(exception) || StartupOptions.IsRefused(connectionString))
        {
            return false;
        }

        StartupOptions.Refuse(connectionString);
        return true;
    }

    public override bool TakeRefusedSessionSettingsNotice(string connectionString) => StartupOptions.TakeNotice(connectionString);

    /// <summary>
    /// <paramref name="connectionString"/> with TCP keepalives (a probe after 30 s of silence, then every 10 s), unless it
    /// sets its own. A statement without a time limit (the migrations, the partitioning's DDL) waits for its answer with
    /// nothing to send: when the connection's state was lost on the way (a NAT gateway's or load balancer's idle timeout,
    /// a failover to another machine) and no reset reached JobLog, it waited for ever, and a start-up that was migrating
    /// never finished (session 21, <c>FaultTests.ConnectionLostSilentlyWhileAStartWaitsInItsMigration_TheProcessStarts</c>).
    /// A probe now meets the reset, or no answer, and the statement fails and is tried again. Probes also keep idle
    /// connections alive through such gateways.
    /// </summary>
    internal static string WithTcpKeepalive(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (builder.TcpKeepAlive || builder.TcpKeepAliveTime > 0 || builder.TcpKeepAliveInterval > 0 || IsUnixSocket(builder.Host))
        {
            return connectionString;
        }

        builder.TcpKeepAlive = true;
        builder.TcpKeepAliveTime = 30;
        builder.TcpKeepAliveInterval = 10;
        return builder.ConnectionString;
    }

    /// <summary>
    /// A host that is a Unix-domain socket's directory (Npgsql: an absolute path, or <c>@</c> for the abstract namespace):
    /// no TCP there, and a TCP keepalive option on its socket makes the connection fail ("Operation not supported"): found
    /// in session 23, every JobLog session to a server reached through its socket failed since session 21's keepalives.
    /// </summary>
    private static bool IsUnixSocket(string? host) =>
        host is { Length: > 0 } && !host.Contains(',', StringComparison.Ordinal) && (host[0] == '/' || host[0] == '@');

    /// <summary>
    /// <paramref name="connectionString"/> with PostgreSQL's JIT compilation off for JobLog's sessions (unless the
    /// connection string's <c>Options</c> already set <c>jit</c>). JobLog's statements touch a few rows each, but on a big
    /// or partitioned ledger their estimated cost passes the JIT thresholds: the sweeper's derivation of 1,000 tasks spent
    /// 10.3 of its 10.6 s compiling on a partitioned ledger (docs/scale.md#partitioning).
    /// </summary>
    internal static string WithoutJit(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (builder.Options?.Contains("jit", StringComparison.OrdinalIgnoreCase) == true)
        {
            return connectionString;
        }

        builder.Options = string.IsNullOrWhiteSpace(builder.Options) ? "-c jit=off" : builder.Options + " -c jit=off";
        return builder.ConnectionString;
    }

    public override async Task ApplyPartitioningAsync(JobLogDbContext context, PartitioningOptions options, DateTime now, CancellationToken cancellationToken)
    {
        if (!options.Enabled)
        {
            return;
        }

        var connection = context.Database.GetDbConnection();
        await context.Database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await Partitioning.LedgerPartitioning.ConvertAsync(connection, now, options.DaysAhead, cancellationToken).ConfigureAwait(false);
            await Partitioning.LedgerPartitioning.ConvertLogsAsync(connection, now, options.DaysAhead, cancellationToken).ConfigureAwait(false);
            await Partitioning.LedgerPartitioning.EnsureDayFunctionAsync(connection, cancellationToken).ConfigureAwait(false);
            await Partitioning.LedgerPartitioning.PartitionSearchTextAsync(connection, cancellationToken).ConfigureAwait(false);
            await Partitioning.LedgerPartitioning.EnsureAheadAsync(connection, now, options.DaysAhead, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await context.Database.CloseConnectionAsync().ConfigureAwait(false);
        }
    }

    public override async Task BuildAheadAsync(JobLogDbContext context, DateTime now, TimeSpan succeeded, TimeSpan? failed, CancellationToken cancellationToken)
    {
        await context.Database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var connection = context.Database.GetDbConnection();
            if (await Partitioning.LedgerPartitioning.IsPartitionedAsync(connection, cancellationToken).ConfigureAwait(false))
            {
                await Partitioning.LedgerPartitioning.BuildAheadAsync(connection, now, succeeded, failed, Partitioning.LedgerPartitioning.AheadMargin, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            await context.Database.CloseConnectionAsync().ConfigureAwait(false);
        }
    }

    public override async Task<bool> IsPartitionedAsync(JobLogDbContext context, CancellationToken cancellationToken)
    {
        await context.Database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await Partitioning.LedgerPartitioning.IsPartitionedAsync(context.Database.GetDbConnection(), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await context.Database.CloseConnectionAsync().ConfigureAwait(false);
        }
    }

    public override async Task<bool> IsPartitionedAsync(JobLogDbContext context, Retention.LedgerKind kind, CancellationToken cancellationToken)
    {
        await context.Database.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await Partitioning.LedgerPartitioning.IsPartitionedAsync(context.Database.GetDbConnection(), kind, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await context.Database.CloseConnectionAsync().ConfigureAwait(false);
        }
    }

    public override Task<SqlExecutor> OpenAsync(
        string connectionString, CancellationToken cancellationToken, TimeSpan? busyTimeout = null, bool asynchronousCommit = false, bool prepare = false,
        bool pooled = true) =>
        EndedByCancellationAsync(
            AgainIfRefusedAsync(connectionString, () => OpenOnceAsync(connectionString, cancellationToken, asynchronousCommit, prepare, pooled)), cancellationToken);

    /// <summary>
    /// <paramref name="open"/>, given up when <paramref name="cancellationToken"/> is cancelled. Npgsql does not end an
    /// open's startup exchange at cancellation: against a server that takes the connection and never answers, it waits its
    /// connect <c>Timeout</c> (session 31: a writer's stop waited past its deadline, 60 s). An open given up goes on alone;
    /// what it opens is closed, and its failure is observed.
    /// </summary>
    private static async Task<SqlExecutor> EndedByCancellationAsync(Task<SqlExecutor> open, CancellationToken cancellationToken)
    {
        try
        {
            return await open.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!open.IsCompleted)
        {
            _ = open.ContinueWith(
                static async opened =>
                {
                    if (opened.IsCompletedSuccessfully)
                    {
                        await opened.Result.DisposeAsync().ConfigureAwait(false);
                    }
                    else
                    {
                        _ = opened.Exception;
                    }
                },
                CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
            throw;
        }
    }

    /// <summary>
    /// Connects with <paramref name="open"/>; when a pooler refused JobLog's startup settings (PgBouncerTests), once more
    /// without them, as every connection from now on.
    /// </summary>
    private async Task<T> AgainIfRefusedAsync<T>(string connectionString, Func<Task<T>> open)
    {
        try
        {
            return await open().ConfigureAwait(false);
        }
        catch (Exception ex) when (RefusedSessionSettings(connectionString, ex))
        {
            return await open().ConfigureAwait(false);
        }
    }

    private static async Task<SqlExecutor> OpenOnceAsync(string connectionString, CancellationToken cancellationToken, bool asynchronousCommit, bool prepare, bool pooled)
    {
        // The write path and the sweep run the same few statements every batch: let Npgsql keep them prepared on the
        // server, unless the connection string sets Max Auto Prepare itself or the server lost them once (ServerPreparation).
        var builder = new NpgsqlConnectionStringBuilder(ForJobLog(connectionString));
        if (prepare && !ServerPreparation.SetsAutoPrepare(connectionString) && ServerPreparation.IsOn(connectionString) && builder.MaxAutoPrepare < 32)
        {
            builder.MaxAutoPrepare = 32;
            builder.AutoPrepareMinUsages = 2;
        }

        var connection = new NpgsqlConnection(pooled ? builder.ConnectionString : Unpooled(builder.ConnectionString));
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            if (!StartupOptions.IsRefused(connectionString) && StartupOptions.OperatorSetsTimeout(connectionString) is null && StartupOptions.AddsTimeout(connectionString))
            {
                // Once per server: a timeout the operator set on the database or role is not overridden (StartupOptions).
                await using var look = new NpgsqlCommand(StartupOptions.OperatorTimeoutQuery, connection);
                var sets = await look.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is true;
                StartupOptions.NoteOperatorTimeout(connectionString, sets);
                if (sets)
                {
                    await connection.DisposeAsync().ConfigureAwait(false);
                    return await OpenOnceAsync(connectionString, cancellationToken, asynchronousCommit, prepare, pooled).ConfigureAwait(false);
                }
            }

            if (asynchronousCommit)
            {
                await using var command = connection.CreateCommand();
                command.CommandText = "SET synchronous_commit = off";
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }

            // A ledger converted while this process runs is seen when the writer reopens (after the failed batch).
            return new NpgsqlExecutor(
                connection,
                await Partitioning.LedgerPartitioning.IsPartitionedAsync(connection, cancellationToken).ConfigureAwait(false),
                await Partitioning.LedgerPartitioning.AreLogsPartitionedAsync(connection, cancellationToken).ConfigureAwait(false));
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary><paramref name="connectionString"/> without pooling (nor multiplexing, which needs it): a session closed when its connection is.</summary>
    private static string Unpooled(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, Multiplexing = false }.ConnectionString;

    public override void ReleaseIdleSessions(DbConnection connection)
    {
        if (connection is NpgsqlConnection npgsql)
        {
            NpgsqlConnection.ClearPool(npgsql);
        }
    }

    public override string Clock => "now()";

    // Servers found read-only, by host, port, database and user: the connection strings JobLog's sessions and EF Core's
    // contexts give back differ (JobLog's settings added, the password left out once a session opened).
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> s_readOnly = new(StringComparer.Ordinal);

    private static string ServerKey(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        return string.Join('\n', builder.Host, builder.Port.ToString(CultureInfo.InvariantCulture), builder.Database, builder.Username);
    }

    public override bool IsReadOnly(string connectionString) => s_readOnly.TryGetValue(ServerKey(connectionString), out var readOnly) && readOnly;

    public override bool RefusedAsReadOnly(string connectionString, Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is PostgresException { SqlState: PostgresErrorCodes.ReadOnlySqlTransaction })
            {
                s_readOnly[ServerKey(connectionString)] = true;
                return true;
            }
        }

        return false;
    }

    public override void TakesWrites(string connectionString) => s_readOnly.TryRemove(ServerKey(connectionString), out _);

    public override string WriteProbe =>
        "BEGIN; SELECT pg_is_in_recovery() = FALSE AND current_setting('transaction_read_only') = 'off'; ROLLBACK;";

    // The server's own refusals: classes 08 (connection), 53 (insufficient resources: disk full, out of memory, too many
    // connections), 57 (operator intervention: shutdown, cannot connect now; not 57014, a statement cancelled by its
    // timeout, which the records one by one may pass), 58 (system error: I/O), and 25006 (a read-only transaction).
    public override bool IsWriteRefused(Exception exception) =>
        exception is PostgresException { SqlState: var state } && state != PostgresErrorCodes.QueryCanceled
            && (state.StartsWith("08", StringComparison.Ordinal) || state.StartsWith("53", StringComparison.Ordinal) || state.StartsWith("57", StringComparison.Ordinal)
                || state.StartsWith("58", StringComparison.Ordinal) || state == PostgresErrorCodes.ReadOnlySqlTransaction) ||
        exception.InnerException is { } inner && IsWriteRefused(inner);

    public override bool IsConflict(Exception exception) =>
        exception is PostgresException { SqlState: PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure } ||
        exception.InnerException is { } inner && IsConflict(inner);

    public override bool IsUnanswered(Exception exception) => exception switch
    {
        PostgresException => false,
        TimeoutException => true,
        _ => exception.InnerException is { } inner && IsUnanswered(inner),
    };

    public override bool IsSchemaMissing(Exception exception) =>
        exception is PostgresException { SqlState: PostgresErrorCodes.UndefinedTable } ||
        exception.InnerException is { } inner && IsSchemaMissing(inner);

    public override string SkipLocked => " FOR UPDATE SKIP LOCKED";

    // PostgreSQL's planner has statistics and picks the partial index once the table is big enough to need it.
    public override string IndexedBy(string index) => "";

    public override string InIdList(string column, string parameter) => $"{column} = ANY({parameter})";

    public override object IdList(IReadOnlyCollection<Guid> ids) => ids.ToArray();

    public override string Upsert(UpsertStatement statement) => OnConflictSql.Of(statement);

    public override string DeriveTasks => PostgreSqlStatements.DeriveTasks;

    public override string HostRunsClaim => OpenRuns.Claim;

    public override string HostsToJudge => OpenRuns.Hosts;

    public override string? HostRunsForget => OpenRuns.Forget;

    public override string? ActiveRunsByHost => OpenRuns.ActiveByHost;

    public override string? LockTasks => PostgreSqlStatements.LockTasksOfList;

    public override Expression<Func<string?, bool>> LikeIgnoringCase(string pattern) =>
        s => EF.Functions.ILike(s!, pattern, "\\");

    public override object ToDb(object? value) => value switch
    {
        null => DBNull.Value,
        DateTime d => DateTime.SpecifyKind(d, DateTimeKind.Utc),
        Enum e => Convert.ToInt32(e, CultureInfo.InvariantCulture),
        _ => value,
    };

    /// <remarks>
    /// A timestamp is sent as timestamptz, stated: Npgsql infers timestamp (without time zone) for a DateTime when the
    /// application sets Npgsql.EnableLegacyTimestampBehavior, and PostgreSQL would then shift it by the session's time
    /// zone when comparing it with a timestamptz column.
    /// </remarks>
    public override void AddParameter(DbCommand command, int index, object? value)
    {
        ArgumentNullException.ThrowIfNull(command);
        var p = Parameter(ToDb(value));
        p.ParameterName = "@p" + index.ToString(CultureInfo.InvariantCulture);
        command.Parameters.Add(p);
    }

    /// <summary>A positional parameter of a value <see cref="ToDb"/> converted; timestamps typed timestamptz.</summary>
    public static NpgsqlParameter Parameter(object value) => value is DateTime d
        ? new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.TimestampTz, Value = DateTime.SpecifyKind(d, DateTimeKind.Utc) }
        : new NpgsqlParameter { Value = value };

    // Npgsql's legacy timestamp behaviour (a process-wide switch) reads timestamptz as local time.
    public override DateTime ReadUtc(DbDataReader reader, int ordinal)
    {
        var value = reader.GetDateTime(ordinal);
        return value.Kind == DateTimeKind.Local ? value.ToUniversalTime() : DateTime.SpecifyKind(value, DateTimeKind.Utc);
    }

    public override Guid ReadGuid(DbDataReader reader, int ordinal) => reader.GetGuid(ordinal);
}
