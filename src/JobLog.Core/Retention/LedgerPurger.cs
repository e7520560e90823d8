using System.Globalization;
using JobLog.Internal;
using JobLog.Storage;
using JobLog.Storage.Partitioning;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Logging;

namespace JobLog.Retention;

/// <summary>What to delete of one kind. A null cutoff keeps that outcome.</summary>
/// <param name="Kind">The log kind.</param>
/// <param name="SucceededBefore">Successes that ended before this (UTC) are deleted.</param>
/// <param name="FailedBefore">Failures that ended before this (UTC) are deleted.</param>
/// <param name="BatchSize">Rows per statement and transaction.</param>
/// <param name="BackupDirectory">Where the deleted rows are written first (gzip JSON Lines), or null.</param>
/// <param name="DryRun">Count only.</param>
/// <param name="DetachedLater">A partitioned ledger's last dropped day's partitions are left detached, for the partition pass
/// or the next purge to drop (the retention's pass: <see cref="LedgerPartitioning.DropExpiredAsync"/>).</param>
internal sealed record PurgeRequest(
    LedgerKind Kind,
    DateTime? SucceededBefore,
    DateTime? FailedBefore,
    int BatchSize = 1000,
    string? BackupDirectory = null,
    bool DryRun = false,
    bool DetachedLater = false);

/// <summary>What a purge deleted (or, for a dry run, would delete).</summary>
internal sealed record PurgeResult(LedgerKind Kind, int Succeeded, int Failed, string? BackupFile)
{
    public int Deleted => Succeeded + Failed;
}

/// <summary>
/// Deletes finished ledger rows older than a cutoff, successes and failures separately, in set-based batches (one
/// transaction per batch: select a batch of ids by the indexed end time, optionally back the rows up, delete them).
/// Unfinished rows (no <c>Stop</c> / <c>ResponseTimestamp</c>, or a task still WAITING, ACTIVE or RETRIED) are never
/// deleted, and a task is checked again by its DELETE (a late run may have made it ACTIVE since the batch's read). Safe to run in several processes: a row deleted twice is deleted once.
/// </summary>
internal sealed class LedgerPurger(JobLogContextFactory contexts, JobLogMetrics metrics, TimeProvider time, ILogger<LedgerPurger>? logger = null)
{
    /// <summary>For tests: runs inside each batch's transaction, after its rows are read (and backed up) and before they are deleted.</summary>
    internal Func<IReadOnlyList<Guid>, CancellationToken, Task>? BetweenReadAndDelete { get; set; }

    /// <summary>For the bench: told how long a purge's partition drops took (<see cref="DropDaysAsync"/>), before its batched purge.</summary>
    internal Action<TimeSpan>? DaysDropped { get; set; }

    public async Task<PurgeResult> PurgeAsync(PurgeRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.BatchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(request), "BatchSize must be at least 1.");
        }

        LedgerBackupWriter? backup = null;
        try
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var (succeeded, failed) = await DropDaysAsync(request, cancellationToken).ConfigureAwait(false);
            DaysDropped?.Invoke(System.Diagnostics.Stopwatch.GetElapsedTime(started));
            succeeded += request.SucceededBefore is { } s
                ? await PurgeOutcomeAsync(request, successes: true, s, () => backup ??= NewBackup(request), cancellationToken).ConfigureAwait(false)
                : 0;
            failed += request.FailedBefore is { } f
                ? await PurgeOutcomeAsync(request, successes: false, f, () => backup ??= NewBackup(request), cancellationToken).ConfigureAwait(false)
                : 0;
            if (!request.DryRun && succeeded + failed > 0)
            {
                metrics.RowsPurged.Add(succeeded + failed, new KeyValuePair<string, object?>("joblog.kind", KindName(request.Kind)));
            }

            return new PurgeResult(request.Kind, succeeded, failed, backup?.Path);
        }
        finally
        {
            if (backup is not null)
            {
                await backup.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>The CLI's and the options' name of a kind: <c>tasks</c>, <c>input-requests</c>, <c>output-requests</c>, <c>commands</c>.</summary>
    public static string KindName(LedgerKind kind) => kind switch
    {
        LedgerKind.Tasks => "tasks",
        LedgerKind.InputRequests => "input-requests",
        LedgerKind.OutputRequests => "output-requests",
        LedgerKind.Commands => "commands",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown ledger kind."),
    };

    public static bool TryParseKind(string text, out LedgerKind kind)
    {
        foreach (var candidate in Enum.GetValues<LedgerKind>())
        {
            if (string.Equals(KindName(candidate), text, StringComparison.OrdinalIgnoreCase)
                || string.Equals(candidate.ToString(), text, StringComparison.OrdinalIgnoreCase))
            {
                kind = candidate;
                return true;
            }
        }

        kind = default;
        return false;
    }

    /// <summary>
    /// On a partitioned ledger (PostgreSQL, docs/scale.md#partitioning), tasks first lose whole days older than the success
    /// cutoff (<see cref="LedgerPartitioning.DropExpiredAsync"/>: what must stay is moved out first), and so do requests and
    /// commands (<see cref="LedgerPartitioning.DropExpiredLogsAsync"/>); the batched purge then takes what is left. Not
    /// with a backup (the batched purge writes every deleted row first) nor a dry run.
    /// </summary>
    private async Task<(int Succeeded, int Failed)> DropDaysAsync(PurgeRequest request, CancellationToken ct)
    {
        if (request.SucceededBefore is not { } before || request.DryRun || request.BackupDirectory is not null)
        {
            return (0, 0);
        }

        await using var db = contexts.Create();
        if (!await contexts.Database.IsPartitionedAsync(db, request.Kind, ct).ConfigureAwait(false))
        {
            return (0, 0);
        }

        await db.Database.OpenConnectionAsync(ct).ConfigureAwait(false);
        if (request.Kind != LedgerKind.Tasks)
        {
            var logs = await LedgerPartitioning.DropExpiredLogsAsync(
                db.Database.GetDbConnection(), request.Kind, DateTime.SpecifyKind(before, DateTimeKind.Utc),
                request.FailedBefore is { } failed ? DateTime.SpecifyKind(failed, DateTimeKind.Utc) : null, ct).ConfigureAwait(false);
            return (logs.Succeeded, logs.Failed);
        }

        var dropped = await LedgerPartitioning.DropExpiredAsync(
            db.Database.GetDbConnection(), DateTime.SpecifyKind(before, DateTimeKind.Utc),
            request.FailedBefore is { } f ? DateTime.SpecifyKind(f, DateTimeKind.Utc) : null, ct, logger,
            locked => metrics.DayDropLockDuration.Record(locked.TotalSeconds), detachedLater: request.DetachedLater).ConfigureAwait(false);
        return (dropped.Succeeded, dropped.Failed);
    }

    private LedgerBackupWriter NewBackup(PurgeRequest request) =>
        LedgerBackupWriter.Create(request.BackupDirectory!, request.Kind, time.GetUtcNow());

    private async Task<int> PurgeOutcomeAsync(
        PurgeRequest request, bool successes, DateTime before, Func<LedgerBackupWriter> backup, CancellationToken ct)
    {
        before = DateTime.SpecifyKind(before, DateTimeKind.Utc);
        await using var db = contexts.Create();
        if (request.DryRun)
        {
            return await Candidates(db, request.Kind, successes, before).CountAsync(ct).ConfigureAwait(false);
        }

        // A partitioned ledger's deletes name the batch's days (DeleteTasksAsync).
        var partitioned = request.Kind == LedgerKind.Tasks && db.Database.IsNpgsql() && await contexts.Database.IsPartitionedAsync(db, request.Kind, ct).ConfigureAwait(false);
        var total = 0;
        while (true)
        {
            await using var transaction = await db.Database.BeginTransactionAsync(ct).ConfigureAwait(false);
            var selected = await Candidates(db, request.Kind, successes, before).Take(request.BatchSize).ToListAsync(ct).ConfigureAwait(false);
            if (selected.Count == 0)
            {
                await transaction.CommitAsync(ct).ConfigureAwait(false);
                return total;
            }

            var ids = request.BackupDirectory is not null && request.Kind == LedgerKind.Tasks && db.Database.IsNpgsql()
                ? await LockTasksAsync(db, selected, successes, before, ct).ConfigureAwait(false)
                : selected;
            if (request.BackupDirectory is not null && ids.Count > 0)
            {
                // The rows reach the disk before their delete commits: a crash in between leaves them in both places.
                if (request.Kind == LedgerKind.Tasks)
                {
                    // The tasks, then their runs one at a time: a task with any number of runs is never held whole.
                    var tasks = await db.TaskLogs.AsNoTracking().Where(t => ids.Contains(t.Id)).ToListAsync(ct).ConfigureAwait(false);
                    var runs = db.TaskRunLogs.AsNoTracking().Where(r => ids.Contains(r.TaskId)).OrderBy(r => r.TaskId).ThenBy(r => r.Id).AsAsyncEnumerable();
                    await backup().WriteTasksAsync(tasks, runs, ct).ConfigureAwait(false);
                }
                else
                {
                    await backup().WriteAsync(await LoadAsync(db, request.Kind, ids, ct).ConfigureAwait(false), ct).ConfigureAwait(false);
                }
            }

            if (BetweenReadAndDelete is { } hook)
            {
                await hook(ids, ct).ConfigureAwait(false);
            }

            total += ids.Count == 0 ? 0 : request.Kind == LedgerKind.Tasks
                ? await DeleteTasksAsync(db, ids, successes, before, partitioned, ct).ConfigureAwait(false)
                : await DeleteAsync(db, request.Kind, ids, ct).ConfigureAwait(false);
            await transaction.CommitAsync(ct).ConfigureAwait(false);
            db.ChangeTracker.Clear();
            if (selected.Count < request.BatchSize)
            {
                return total;
            }
        }
    }

    /// <summary>
    /// PostgreSQL, with a backup: locks the batch's task rows (<c>FOR UPDATE</c>) before their rows are read, and keeps the
    /// ones that are still deletable. Under READ COMMITTED a run committed between the batch's read and its delete (a late
    /// redelivery of a finished task) was deleted (by <c>TaskId</c>, and by the cascade) without being in the file. A run's
    /// insert checks its foreign key with a <c>FOR KEY SHARE</c> lock on its task's row, so now it either committed before
    /// the lock (and is read), or waits for the batch's commit and then recreates the task (the writer's upsert) or is
    /// refused by the key. SQLite needs none: a batch is one <c>BEGIN IMMEDIATE</c> transaction, no other writer commits in it.
    /// </summary>
    private static async Task<List<Guid>> LockTasksAsync(JobLogDbContext db, List<Guid> selected, bool successes, DateTime before, CancellationToken ct)
    {
        await db.Database.ExecuteSqlRawAsync(
            $"SELECT 1 FROM \"{LedgerModel.Tasks}\" WHERE \"Id\" = ANY(@ids) ORDER BY \"Id\" FOR UPDATE",
            [new Npgsql.NpgsqlParameter("ids", NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Uuid) { Value = selected.ToArray() }],
            ct).ConfigureAwait(false);
        return await Candidates(db, LedgerKind.Tasks, successes, before).Where(id => selected.Contains(id)).ToListAsync(ct).ConfigureAwait(false);
    }

    internal static IQueryable<Guid> Candidates(JobLogDbContext db, LedgerKind kind, bool successes, DateTime before)
    {
        switch (kind)
        {
            case LedgerKind.Tasks:
                var tasks = db.TaskLogs.Where(t => t.Stop != null && t.Stop < before);
                tasks = successes
                    ? tasks.Where(t => t.State == TaskState.Succeeded)
                    : tasks.Where(t => t.State == TaskState.Failed || t.State == TaskState.Expired);
                // Oldest dispatched first, on the (State, DispatchedAt) index the planner picks for the state anyway: ordered
                // by Stop, SQLite sorted every SUCCEEDED task for each batch (591 tasks/s at 1 million; docs/scale.md).
                return tasks.OrderBy(t => t.DispatchedAt).Select(t => t.Id);
            case LedgerKind.InputRequests:
                var inputs = db.InputRequestLogs.Where(r => r.ResponseTimestamp != null && r.ResponseTimestamp < before);
                inputs = successes
                    ? inputs.Where(r => r.Status == RequestLogStatus.Debug || r.Status == RequestLogStatus.Info)
                    : inputs.Where(r => r.Status == RequestLogStatus.Warning || r.Status == RequestLogStatus.Error || r.Status == RequestLogStatus.Critical);
                return inputs.OrderBy(r => r.ResponseTimestamp).Select(r => r.Id);
            case LedgerKind.OutputRequests:
                var outputs = db.OutputRequestLogs.Where(r => r.ResponseTimestamp != null && r.ResponseTimestamp < before);
                outputs = successes
                    ? outputs.Where(r => r.Status == RequestLogStatus.Debug || r.Status == RequestLogStatus.Info)
                    : outputs.Where(r => r.Status == RequestLogStatus.Warning || r.Status == RequestLogStatus.Error || r.Status == RequestLogStatus.Critical);
                return outputs.OrderBy(r => r.ResponseTimestamp).Select(r => r.Id);
            case LedgerKind.Commands:
                var commands = db.CommandLogs.Where(c => c.Stop != null && c.Stop < before);
                commands = successes
                    ? commands.Where(c => c.IsSuccessful == true)
                    : commands.Where(c => c.IsSuccessful != true);
                return commands.OrderBy(c => c.Stop).Select(c => c.Id);
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown ledger kind.");
        }
    }

    private static async Task<IReadOnlyList<object>> LoadAsync(JobLogDbContext db, LedgerKind kind, List<Guid> ids, CancellationToken ct) => kind switch
    {
        LedgerKind.InputRequests => await db.InputRequestLogs.AsNoTracking().Where(r => ids.Contains(r.Id)).ToListAsync(ct).ConfigureAwait(false),
        LedgerKind.OutputRequests => await db.OutputRequestLogs.AsNoTracking().Include(r => r.RelatedObjects).Where(r => ids.Contains(r.Id)).ToListAsync(ct).ConfigureAwait(false),
        LedgerKind.Commands => await db.CommandLogs.AsNoTracking().Where(c => ids.Contains(c.Id)).ToListAsync(ct).ConfigureAwait(false),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown ledger kind."),
    };

    /// <summary>
    /// Deletes those of the batch's tasks that are still deletable when the DELETE reaches them, then the runs of the tasks
    /// it deleted. The batch was read under READ COMMITTED: a late run (a redelivery of a finished task) committed since then
    /// made its task ACTIVE or gave it a later <c>Stop</c>, and the guard in the DELETE itself keeps that task, its runs
    /// with it. A writer that inserted a run and has not committed holds a lock on the task row (the run's foreign key; on a
    /// partitioned ledger, the writer's <see cref="PartitionedStatements.InsertTasksIfMissing"/>), so the DELETE waits for it
    /// and checks the guard on what it committed; a writer that comes after the DELETE waits for the batch and recreates
    /// the task. Runs go by the ids the DELETE returned, in a later statement that sees every run committed before it. On a
    /// partitioned ledger (<paramref name="partitioned"/>) both statements also name the ids' days, the partition key derived
    /// from the id (<see cref="PartitionDay.Of(Guid)"/>): PostgreSQL then plans, locks and probes only those days'
    /// partitions, not every day's, so a long transaction on another day's partition does not hold the purge up (the
    /// statements themselves gained little: per batch ~6 to 4 ms and ~24 to 18 ms at load 6-9, docs/scale.md "Session 37 (scale)").
    /// </summary>
    private static async Task<int> DeleteTasksAsync(JobLogDbContext db, List<Guid> ids, bool successes, DateTime before, bool partitioned, CancellationToken ct)
    {
        if (!db.Database.IsNpgsql())
        {
            // SQLite: the batch is one BEGIN IMMEDIATE transaction, so no writer commits inside it; the guard is the same.
            var deletable = Candidates(db, LedgerKind.Tasks, successes, before).Where(id => ids.Contains(id));
            await db.TaskRunLogs.Where(r => deletable.Contains(r.TaskId)).ExecuteDeleteAsync(ct).ConfigureAwait(false);
            return await db.TaskLogs.Where(t => deletable.Contains(t.Id)).ExecuteDeleteAsync(ct).ConfigureAwait(false);
        }

        int[] states = successes ? [(int)TaskState.Succeeded] : [(int)TaskState.Failed, (int)TaskState.Expired];
        var connection = (Npgsql.NpgsqlConnection)db.Database.GetDbConnection();
        var transaction = (Npgsql.NpgsqlTransaction?)db.Database.CurrentTransaction?.GetDbTransaction();
        var deleted = new List<Guid>(ids.Count);
        string Days(int parameter) => partitioned ? string.Create(CultureInfo.InvariantCulture, $" AND \"{PartitionDay.Column}\" = ANY(${parameter})") : "";
        await using (var tasks = new Npgsql.NpgsqlCommand(
            $"DELETE FROM \"{LedgerModel.Tasks}\" WHERE \"Id\" = ANY($1) AND \"Stop\" < $2 AND \"State\" = ANY($3){Days(4)} RETURNING \"Id\"",
            connection, transaction))
        {
            tasks.Parameters.Add(new Npgsql.NpgsqlParameter<Guid[]> { TypedValue = [.. ids] });
            tasks.Parameters.Add(new Npgsql.NpgsqlParameter<DateTime> { TypedValue = before });
            tasks.Parameters.Add(new Npgsql.NpgsqlParameter<int[]> { TypedValue = states });
            if (partitioned)
            {
                tasks.Parameters.Add(new Npgsql.NpgsqlParameter<int[]> { TypedValue = [.. ids.Select(PartitionDay.Of).Distinct()] });
            }

            await using var reader = await tasks.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                deleted.Add(reader.GetGuid(0));
            }
        }

        if (deleted.Count > 0)
        {
            // A plain ledger's foreign key has deleted them already (cascade); a partitioned one has no foreign key.
            await using var runs = new Npgsql.NpgsqlCommand(
                $"DELETE FROM \"{LedgerModel.Runs}\" WHERE \"TaskId\" = ANY($1){Days(2)}", connection, transaction);
            runs.Parameters.Add(new Npgsql.NpgsqlParameter<Guid[]> { TypedValue = [.. deleted] });
            if (partitioned)
            {
                runs.Parameters.Add(new Npgsql.NpgsqlParameter<int[]> { TypedValue = [.. deleted.Select(PartitionDay.Of).Distinct()] });
            }

            await runs.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }

        return deleted.Count;
    }

    private static async Task<int> DeleteAsync(JobLogDbContext db, LedgerKind kind, List<Guid> ids, CancellationToken ct)
    {
        switch (kind)
        {
            case LedgerKind.InputRequests:
                return await db.InputRequestLogs.Where(r => ids.Contains(r.Id)).ExecuteDeleteAsync(ct).ConfigureAwait(false);
            case LedgerKind.OutputRequests:
                await db.OutputRequestRelatedObjects.Where(o => ids.Contains(o.OutputRequestId)).ExecuteDeleteAsync(ct).ConfigureAwait(false);
                return await db.OutputRequestLogs.Where(r => ids.Contains(r.Id)).ExecuteDeleteAsync(ct).ConfigureAwait(false);
            case LedgerKind.Commands:
                return await db.CommandLogs.Where(c => ids.Contains(c.Id)).ExecuteDeleteAsync(ct).ConfigureAwait(false);
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown ledger kind.");
        }
    }
}
