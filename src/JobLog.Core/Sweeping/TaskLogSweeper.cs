using System.Data.Common;
using JobLog.Internal;
using JobLog.Storage;
using JobLog.Storage.Partitioning;
using JobLog.Storage.PostgreSql;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.Sweeping;

/// <summary>What one sweep did.</summary>
/// <param name="Expired">Tasks set to EXPIRED by this sweeper.</param>
/// <param name="Healed">Tasks whose state was corrected from their last run.</param>
public readonly record struct SweepResult(int Expired, int Healed)
{
    /// <summary>ACTIVE runs closed as EXPIRED because their host stopped sending heartbeats (or stopped and left them).</summary>
    public int HostRuns { get; init; }
}

/// <summary>
/// Expires tasks that went stale (docs/architecture.md#sweeper): every interval, in set-based batches, unfinished tasks whose <c>Stale</c>
/// has passed are healed from their last run when it finished, otherwise set EXPIRED with their ACTIVE runs. Safe to run
/// in several processes: each batch claims its rows (PostgreSQL <c>SKIP LOCKED</c>; SQLite's single writer) and a task is
/// only expired by the statement that finds it unexpired. Each sweep also closes the runs of hosts that are gone
/// (<c>TaskLogSweeper.Hosts.cs</c>).
/// </summary>
internal sealed partial class TaskLogSweeper(
    LedgerSchema schema,
    JobLogContextFactory contexts,
    IOptions<JobLogOptions> options,
    JobLogMetrics metrics,
    TimeProvider time,
    ILogger<TaskLogSweeper> logger,
    LedgerRefusals? refusals = null) : BackgroundService
{
    private readonly LedgerDatabase _database = contexts.Database;
    private int _started;

    /// <summary>When the last sweep finished, and what it did (the dashboard shows it).</summary>
    public (DateTimeOffset At, SweepResult Result)? LastSweep { get; private set; }

    /// <summary>Starts once, however often a host or test harness starts it.</summary>
    public override Task StartAsync(CancellationToken cancellationToken) =>
        Interlocked.Exchange(ref _started, 1) == 0 ? base.StartAsync(cancellationToken) : Task.CompletedTask;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.Sweeper.Interval;
        SweepsAgain = true;
        await schema.EnsureReadyAsync(stoppingToken).ConfigureAwait(false);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (refusals?.MayWrite() != false)
                {
                    await SweepOnceAsync(stoppingToken).ConfigureAwait(false);
                    refusals?.Wrote();
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException && refusals?.Refused(ex) == true)
            {
                // Said once (LedgerRefusals); the passes pause while the ledger refuses writes.
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.SweepFailed(logger, ex, interval);
            }

            await Task.Delay(interval, time, stoppingToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The claim: stale, unfinished tasks, oldest deadline first (@p0 now, @p1 batch size; <paramref name="bounded"/>: from
    /// the deadline @p2 on), with each one's deadline. Its WHERE repeats the partial index's filter word for word, so both
    /// SQLite and PostgreSQL walk <c>IX_JobLogTasks_Unfinished_Stale</c>.
    /// </summary>
    /// <remarks>
    /// The bound is the last deadline the connection's previous batch claimed. On PostgreSQL an expired task's old row
    /// version keeps its entry in that partial index until PostgreSQL knows no snapshot can see it, and while any
    /// transaction on the server is older than the sweep (another database's index build, a report) none is removed or
    /// marked dead, so a claim from the index's start read the heap page of every task the sweep had already expired:
    /// 560 buffers more per 1,000 swept, 24,500 for the 40th batch of the 1 M ledger (docs/scale.md, "Session 12 (pgsweep2)").
    /// </remarks>
    internal static string ClaimStatement(LedgerDatabase database, bool bounded = false) =>
        $"SELECT \"Id\", \"Stale\" FROM \"{LedgerModel.Tasks}\"{database.IndexedBy(LedgerModel.UnfinishedStaleIndex)} WHERE {LedgerModel.UnfinishedStaleFilter} AND \"Stale\" < @p0" +
        $"{(bounded ? " AND \"Stale\" >= @p2" : "")} ORDER BY \"Stale\" LIMIT @p1{database.SkipLocked}";

    /// <summary>
    /// One sweep over every stale task, in batches of <see cref="SweeperOptions.BatchSize"/>. On PostgreSQL, when the first
    /// batch is full (more is stale than one batch), <see cref="SweeperOptions.Parallelism"/> connections sweep the rest at
    /// once: each batch claims its rows with <c>SKIP LOCKED</c>, so the connections take disjoint batches, and each one's
    /// row writes (a new version of each task through every index of the tasks) run on a server core of their own.
    /// </summary>
    public async Task<SweepResult> SweepOnceAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await SweepAllAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Npgsql.PostgresException ex) when (ServerPreparation.IsLost(ex) && ServerPreparation.TurnOff(contexts.ConnectionString))
        {
            // A pooler lost a statement Npgsql kept prepared (ServerPreparation): once more, on a connection that prepares
            // nothing. The batches committed before it stay committed.
            Log.PreparationLost(logger, ex);
            return await SweepAllAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<SweepResult> SweepAllAsync(CancellationToken cancellationToken)
    {
        var batchSize = options.Value.Sweeper.BatchSize;
        var total = new SweepResult(0, 0);
        await using var executor = await _database.OpenAsync(contexts.ConnectionString, cancellationToken, prepare: true, pooled: false).ConfigureAwait(false);
        await _database.RefreshStatisticsAsync(executor.Connection, cancellationToken).ConfigureAwait(false);
        var postgres = executor.Connection is Npgsql.NpgsqlConnection;
        var partitioned = postgres && await LedgerPartitioning.IsPartitionedAsync(executor.Connection, cancellationToken).ConfigureAwait(false);
        var (claimed, first, last) = await SweepBatchAsync(executor.Connection, batchSize, partitioned, null, cancellationToken).ConfigureAwait(false);
        total = Add(total, first);
        if (claimed == batchSize)
        {
            var others = postgres ? options.Value.Sweeper.Parallelism - 1 : 0;
            var workers = new List<Task<SweepResult>> { SweepBatchesAsync(executor.Connection, batchSize, partitioned, last, cancellationToken) };
            for (var i = 0; i < others; i++)
            {
                workers.Add(SweepOnOwnConnectionAsync(batchSize, partitioned, last, cancellationToken));
            }

            foreach (var result in await Task.WhenAll(workers).ConfigureAwait(false))
            {
                total = Add(total, result);
            }
        }

        total = total with { HostRuns = await SweepHostsAsync(executor.Connection, cancellationToken).ConfigureAwait(false) };
        LastSweep = (time.GetUtcNow(), total);
        if (total.Expired + total.Healed > 0)
        {
            Log.SweepDone(logger, total.Expired, total.Healed);
        }

        return total;
    }

    private static SweepResult Add(SweepResult a, SweepResult b) => new(a.Expired + b.Expired, a.Healed + b.Healed);

    /// <summary>
    /// Batches on <paramref name="connection"/> until one claims less than a full batch, each claiming from the last deadline
    /// the one before claimed (<see cref="ClaimStatement"/>). What lies before it was claimed by a batch that committed, or
    /// skipped as locked by a batch of another connection, which expires it or, rolled back, claims it again from its own
    /// bound; a task locked by a writer at its claim waits for the next sweep.
    /// </summary>
    private async Task<SweepResult> SweepBatchesAsync(DbConnection connection, int batchSize, bool partitioned, DateTime? from, CancellationToken ct)
    {
        var total = new SweepResult(0, 0);
        var deadlocks = 0;
        while (true)
        {
            int claimed;
            SweepResult result;
            DateTime? last;
            try
            {
                (claimed, result, last) = await SweepBatchAsync(connection, batchSize, partitioned, from, ct).ConfigureAwait(false);
            }
            catch (Npgsql.PostgresException ex) when (ex.SqlState == Npgsql.PostgresErrorCodes.DeadlockDetected && ++deadlocks <= 3)
            {
                // Batches running at once meet on the rollup rows their triggers update; the batch was rolled back: again.
                continue;
            }

            total = Add(total, result);
            from = last ?? from;
            if (claimed < batchSize)
            {
                return total;
            }
        }
    }

    private async Task<SweepResult> SweepOnOwnConnectionAsync(int batchSize, bool partitioned, DateTime? from, CancellationToken ct)
    {
        await using var executor = await _database.OpenAsync(contexts.ConnectionString, ct, prepare: true, pooled: false).ConfigureAwait(false);
        return await SweepBatchesAsync(executor.Connection, batchSize, partitioned, from, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Derives each claimed task (id list @p0) from its runs (<see cref="LedgerSql.DerivedColumns"/>) and writes it once
    /// (@p1 now): healed when its last run finished, otherwise EXPIRED and marked stale. A claimed task always changes
    /// (its derived state is either final or unfinished and then expired), so every claimed row is returned;
    /// <c>IsSetAsStale</c> tells the expired from the healed. The rows are found by id only: the claim's transaction holds
    /// them (SQLite's write lock, PostgreSQL's <c>FOR UPDATE</c>), and a state condition here let SQLite's planner read
    /// every unfinished task through the state index for each batch. The id list, not the claim as a subquery, keeps
    /// PostgreSQL's join to the tasks on their primary key (a LIMIT parameter's estimate can turn it into a table scan).
    /// On PostgreSQL the same statement closes the expired tasks' ACTIVE runs (<see cref="ExpireRuns"/>); SQLite's
    /// batch runs <see cref="RunsStatement"/> after it.
    /// </summary>
    internal static string SweepStatement(LedgerDatabase database)
    {
        static string Of(string sql) => sql.Replace("@p0", "t.\"Id\"", StringComparison.Ordinal);
        var derived = database.Provider == LedgerProvider.PostgreSql
            ? $"{PostgreSqlDerivation.Columns} FROM {T} t CROSS JOIN LATERAL ({PostgreSqlDerivation.Runs("r.\"TaskId\" = t.\"Id\"")}) x"
            : $"{Of(LedgerSql.DerivedState)} AS dstate, {Of(LedgerSql.DerivedStart)} AS dstart, {Of(LedgerSql.DerivedStop)} AS dstop FROM {T} t";
        var update =
            $"UPDATE {T} SET \"IsSetAsStale\" = d.dstate IN (1, 2, 5), \"State\" = CASE WHEN d.dstate IN (1, 2, 5) THEN 6 ELSE d.dstate END, " +
            $"\"Start\" = d.dstart, \"Stop\" = CASE WHEN d.dstate IN (1, 2, 5) THEN @p1 ELSE d.dstop END " +
            $"FROM d WHERE {T}.\"Id\" = d.did RETURNING {T}.\"Id\", {T}.\"Name\", {T}.\"State\", {T}.\"IsSetAsStale\"";
        var claimed = $"WITH d AS MATERIALIZED (SELECT t.\"Id\" AS did, {derived} WHERE {database.InIdList("t.\"Id\"", "@p0")}) ";
        return database.Provider == LedgerProvider.PostgreSql
            ? claimed + $", u AS ({update}), {ExpireRuns("")} SELECT \"Id\", \"Name\", \"State\", \"IsSetAsStale\" FROM u"
            : claimed + update;
    }

    /// <summary>
    /// PostgreSQL's sweep statement closes the ACTIVE runs of the tasks it expires itself (<c>u</c>, the tasks' update, as
    /// a CTE; <paramref name="sameDay"/> the runs' condition of a partitioned ledger): one statement and round trip a
    /// batch, not two, and the rollup rows the tasks' triggers lock (every batch writes the same counts rows) are held
    /// until the statement's commit, not through a second statement while the other connections' batches wait on them.
    /// On the 1 M ledger, four connections, the spread backlog's sweep took 22.8 s against 25.0 s (medians of five pairs;
    /// docs/scale.md, "Session 16 (maint10m)").
    /// </summary>
    private static string ExpireRuns(string sameDay) =>
        $"e AS (UPDATE {R} r SET \"State\" = 5, \"Stop\" = @p1, \"ErrorMessage\" = '{StaleRunError}' FROM u " +
        $"WHERE u.\"IsSetAsStale\" AND r.\"TaskId\" = u.\"Id\" AND r.\"State\" = 1{sameDay})";

    private const string T = "\"" + LedgerModel.Tasks + "\"";

    /// <summary>The error text of the ACTIVE runs the sweeper closes with their task (SQLite keeps it out of the search index: <see cref="Storage.Sqlite.SqliteSearch.Swept"/>).</summary>
    internal const string StaleRunError = "Expired: the task went stale before this run finished.";

    /// <summary>
    /// On a partitioned ledger (<see cref="LedgerPartitioning"/>), the sweep's statements name the claimed tasks' partition
    /// days, so each statement reads and writes only those partitions, and each read of a task's runs only its day's
    /// partition. The days are <paramref name="days"/> scalar parameters (@p2, @p3, …: <c>= ANY(ARRAY[@p2, @p3])</c>), not
    /// one array parameter: PostgreSQL prunes partitions when the generic plan (the one Npgsql's prepared statement runs)
    /// starts only by scalar parameters, so <c>= ANY(@p2)</c> with an array probed every partition's index for each claimed
    /// id (17 partitions at 1 M tasks over 10 days, more with every day kept; docs/scale.md, "Session 10 (pgsweep)").
    /// The expired tasks' ACTIVE runs are closed in the same statement, in their day's partition (<see cref="ExpireRuns"/>).
    /// The tasks' update names the claimed ids itself, not only through its join to <c>d</c>: a batch of a spread backlog
    /// spans days, and its custom plan (the first ones a connection runs) then hashed every task of those days to join them
    /// to the batch (300,000 for 1,000 claimed over three days of a 1 M ledger, 0.5 s of the batch's 1.5 s); with the ids
    /// it reads each day's tasks by their key, as <c>d</c> does (docs/scale.md, "Session 29 (scale)").
    /// </summary>
    internal static string PartitionedSweepStatement(LedgerDatabase database, int days)
    {
        const string key = "\"" + PartitionDay.Column + "\"";
        var inDays = DayList(days);
        return
            $"WITH d AS MATERIALIZED (SELECT t.\"Id\" AS did, t.{key} AS dday, {PostgreSqlDerivation.Columns} " +
            $"FROM {T} t CROSS JOIN LATERAL ({PostgreSqlDerivation.Runs($"r.\"TaskId\" = t.\"Id\" AND r.{key} = t.{key}")}) x WHERE {database.InIdList("t.\"Id\"", "@p0")} AND t.{key} {inDays}), " +
            $"u AS (UPDATE {T} SET \"IsSetAsStale\" = d.dstate IN (1, 2, 5), \"State\" = CASE WHEN d.dstate IN (1, 2, 5) THEN 6 ELSE d.dstate END, " +
            $"\"Start\" = d.dstart, \"Stop\" = CASE WHEN d.dstate IN (1, 2, 5) THEN @p1 ELSE d.dstop END " +
            $"FROM d WHERE {database.InIdList($"{T}.\"Id\"", "@p0")} AND {T}.\"Id\" = d.did AND {T}.{key} = d.dday AND {T}.{key} {inDays} " +
            $"RETURNING {T}.\"Id\", {T}.\"Name\", {T}.\"State\", {T}.\"IsSetAsStale\", {T}.{key}), " +
            $"{ExpireRuns($" AND r.{key} = u.{key} AND r.{key} {inDays}")} SELECT \"Id\", \"Name\", \"State\", \"IsSetAsStale\" FROM u";
    }

    /// <summary>SQLite's expiry of the ACTIVE runs of the expired tasks (@p0 their ids, @p1 now), after the sweep statement.</summary>
    internal static string RunsStatement(LedgerDatabase database) =>
        $"UPDATE {R} SET \"State\" = 5, \"Stop\" = @p1, \"ErrorMessage\" = '{StaleRunError}' WHERE \"State\" = 1 AND {database.InIdList("\"TaskId\"", "@p0")}";

    private static string DayList(int days) => "= ANY(ARRAY[" + string.Join(", ", Enumerable.Range(2, days).Select(i => "@p" + i.ToString(System.Globalization.CultureInfo.InvariantCulture))) + "])";

    private const string R = "\"" + LedgerModel.Runs + "\"";

    private async Task<(int Claimed, SweepResult Result, DateTime? Last)> SweepBatchAsync(
        DbConnection connection, int batchSize, bool partitioned, DateTime? from, CancellationToken ct)
    {
        var now = time.GetUtcNow().UtcDateTime;
        var started = time.GetTimestamp();
        await using var transaction = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);

        // 1. Claim a batch of stale, unfinished tasks, oldest deadline first (partitioned: with each one's partition day).
        var claimed = new List<(Guid Id, int Day)>(batchSize);
        DateTime? last = null;
        var claim = ClaimStatement(_database, bounded: from is not null);
        if (partitioned)
        {
            claim = claim.Replace("SELECT \"Id\", \"Stale\"", $"SELECT \"Id\", \"Stale\", \"{PartitionDay.Column}\"", StringComparison.Ordinal);
        }

        await using (var select = from is { } bound ? Command(connection, transaction, claim, now, batchSize, bound) : Command(connection, transaction, claim, now, batchSize))
        {
            await using var reader = await select.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                claimed.Add((_database.ReadGuid(reader, 0), partitioned ? reader.GetInt32(2) : 0));
                last = _database.ReadUtc(reader, 1);
            }
        }

        // 2. Heal or expire each: one statement, each task written once. One statement for the whole batch, not one per
        // day: its triggers lock the rollup rows of all its tasks at once, in key order, which keeps concurrent batches
        // from deadlocking on them (one statement per day did, at once, on the 1 M ledger).
        var healed = 0;
        var expired = new List<(Guid Id, string Name)>();
        var days = claimed.Select(c => c.Day).Distinct().Order().Cast<object?>().ToArray();
        if (claimed.Count > 0)
        {
            var ids = _database.IdList(claimed.Select(c => c.Id).ToList());
            await using var sweep = partitioned
                ? Command(connection, transaction, PartitionedSweepStatement(_database, days.Length), [ids, now, .. days])
                : Command(connection, transaction, SweepStatement(_database), ids, now);
            await using var reader = await sweep.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                if (reader.GetBoolean(3))
                {
                    expired.Add((_database.ReadGuid(reader, 0), reader.GetString(1)));
                }
                else if ((TaskState)reader.GetInt32(2) is TaskState.Succeeded or TaskState.Failed)
                {
                    healed++;
                }
            }
        }

        // 3. The ACTIVE runs of the expired tasks end with them (on PostgreSQL in the sweep statement, ExpireRuns).
        if (expired.Count > 0 && _database.Provider != LedgerProvider.PostgreSql)
        {
            await using var runs = Command(connection, transaction, RunsStatement(_database), _database.IdList(expired.Select(e => e.Id).ToList()), now);
            await runs.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        await transaction.CommitAsync(ct).ConfigureAwait(false);
        metrics.SweepBatchDuration.Record(time.GetElapsedTime(started).TotalSeconds);
        LogExpired(expired);

        metrics.TasksExpired.Add(expired.Count);
        return (claimed.Count, new SweepResult(expired.Count, healed), last);
    }

    /// <summary>
    /// One warning a batch, with the expired tasks counted by name (the ten most frequent), and each task at Debug: a
    /// backlog of 100,000 is a hundred lines, not 100,000 (their ids are in the ledger: the dashboard's EXPIRED tasks).
    /// </summary>
    private void LogExpired(List<(Guid Id, string Name)> expired)
    {
        if (expired.Count == 0)
        {
            return;
        }

        if (logger.IsEnabled(LogLevel.Warning))
        {
            var names = expired.CountBy(e => e.Name, StringComparer.Ordinal)
                .OrderByDescending(n => n.Value).ThenBy(n => n.Key, StringComparer.Ordinal).ToList();
            var shown = string.Join(", ", names.Take(10).Select(n => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{LogValue.Visible(n.Key)} × {n.Value}")));
            Log.TasksExpired(logger, expired.Count, names.Count > 10 ? $"{shown} and {names.Count - 10} more names" : shown);
        }

        if (logger.IsEnabled(LogLevel.Debug))
        {
            foreach (var (id, name) in expired)
            {
                Log.TaskExpired(logger, LogValue.Visible(name), id);
            }
        }
    }

    private DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, params object?[] values) =>
        _database.Command(connection, transaction, sql, values);
}
