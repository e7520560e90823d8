using System.Collections.Concurrent;
using System.Data.Common;
using System.Globalization;
using Npgsql;
using NpgsqlTypes;

namespace JobLog.Storage.PostgreSql;

/// <summary>
/// PostgreSQL: one round trip per batch (an <see cref="NpgsqlBatch"/>), one statement per kind over arrays
/// (<c>unnest</c>, filled by <see cref="NpgsqlColumnSet"/> from the same column lists as the statements), kept prepared
/// by Npgsql's auto-preparation. On a partitioned ledger (<paramref name="partitioned"/>) the inserts of tasks and runs
/// are <see cref="Partitioning.PartitionedStatements"/>; with its logs partitioned (<paramref name="logsPartitioned"/>),
/// the upserts of requests and commands are <see cref="Partitioning.PartitionedLogStatements"/>.
/// </summary>
internal sealed class NpgsqlExecutor(NpgsqlConnection connection, bool partitioned = false, bool logsPartitioned = false) : SqlExecutor
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

        if (partitioned && plan.Ensured.Count > 0)
        {
            // The consumer's task upsert locks the rows it finds (PartitionedStatements.InsertTasksIfMissing), and the
            // derivation locks its tasks later: two writers whose batches start a run of one task and end a run of another,
            // in opposite orders (two consumers of the same messages), each held one task and waited for the other's, or
            // for a rollup row the other's trigger had taken meanwhile (PostgreSQL aborted one: 40P01). Every task the
            // batch locks is locked first, in id order, and the upserts meet their rows in that order too.
            batch.BatchCommands.Add(LockTasks(TasksLocked(plan)));
            plan.Ensured.Sort(static (a, b) => a.Task.Id.CompareTo(b.Task.Id));
            plan.Dispatched.Sort(static (a, b) => a.Task.Id.CompareTo(b.Task.Id));
        }

        if (plan.Dispatched.Count > 0)
        {
            batch.BatchCommands.Add(NpgsqlColumnSet.Of(LedgerColumns.Task, plan.Dispatched).Command(
                partitioned ? Partitioning.PartitionedStatements.UpsertDispatchedTasks : PostgreSqlStatements.UpsertDispatchedTasks));
        }

        // A consumer's task row is rendered here even when the producer's row exists (then ON CONFLICT drops it):
        // rendering costs microseconds, asking which rows exist first costs a round trip per batch.
        if (plan.Ensured.Count > 0)
        {
            batch.BatchCommands.Add(NpgsqlColumnSet.Of(LedgerColumns.Task, plan.Ensured).Command(
                partitioned ? Partitioning.PartitionedStatements.InsertTasksIfMissing : PostgreSqlStatements.InsertTasksIfMissing));
        }

        if (plan.DispatchFailures.Count > 0)
        {
            // The failure's UPDATE skips a task with stored runs, read on its statement's snapshot: a consumer's writer
            // that inserted a run and locks the task row would commit while the UPDATE waits for the row, and the UPDATE
            // re-checks the row, not the runs. Locked first, the UPDATE is a later statement that sees the run.
            batch.BatchCommands.Add(LockTasks(plan.DispatchFailures.Select(f => f.TaskId).Distinct().ToArray()));
            foreach (var (taskId, error) in plan.DispatchFailures)
            {
                batch.BatchCommands.Add(Command(LedgerSql.TaskDispatchFailed, taskId, error));
            }
        }

        AddRunUpdates(batch, plan);

        if (plan.Runs.Count > 0)
        {
            batch.BatchCommands.Add(NpgsqlColumnSet.Of(LedgerColumns.Run, plan.Runs).Command(
                partitioned ? Partitioning.PartitionedStatements.UpsertRuns : PostgreSqlStatements.UpsertRuns));
        }

        if (plan.Derive.Count > 0)
        {
            var ids = plan.Derive.ToArray();
            batch.BatchCommands.Add(LockTasks(ids));
            var derive = new NpgsqlBatchCommand(
                partitioned ? Partitioning.PartitionedStatements.DeriveTasksIfChanged : PostgreSqlStatements.DeriveTasksIfChanged);
            derive.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid, Value = ids });
            batch.BatchCommands.Add(derive);
        }

        foreach (var (sql, values) in plan.Other.Statements)
        {
            batch.BatchCommands.Add(Command(logsPartitioned ? Partitioning.PartitionedLogStatements.Keyed(sql) : sql, values));
        }

        Phase(0, ref started);
        if (StatementProfile is { } profile && batch.BatchCommands.Count > 0)
        {
            await ProfileAsync(batch, profile, cancellationToken).ConfigureAwait(false);
        }
        else if (batch.BatchCommands.Count > 0)
        {
            try
            {
                await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (PostgresException ex) when (ServerPreparation.IsLost(ex))
            {
                // The writer logs this, reopens (without preparing) and writes the batch again; the idle pooled
                // connections that hold this pool's prepared statements are closed.
                ServerPreparation.TurnOff(connection.ConnectionString);
                NpgsqlConnection.ClearPool(connection);
                throw new InvalidOperationException(ServerPreparation.LostMessage, ex);
            }
        }

        Phase(3, ref started);
    }

    public override ValueTask DisposeAsync() => connection.DisposeAsync();

    /// <summary>
    /// The tasks <paramref name="plan"/> locks: its dispatches' and consumers' task rows, its failed dispatches and the tasks
    /// it derives, in id order (the order of <see cref="Guid.CompareTo(Guid)"/> is PostgreSQL's order of uuid).
    /// </summary>
    private static Guid[] TasksLocked(LedgerPlan plan)
    {
        var ids = new HashSet<Guid>(plan.Derive);
        ids.UnionWith(plan.Ensured.Select(e => e.Task.Id));
        ids.UnionWith(plan.Dispatched.Select(d => d.Task.Id));
        ids.UnionWith(plan.DispatchFailures.Select(f => f.TaskId));
        var sorted = ids.ToArray();
        Array.Sort(sorted);
        return sorted;
    }

    /// <summary><see cref="PostgreSqlStatements.LockTasks"/> of <paramref name="ids"/>.</summary>
    private static NpgsqlBatchCommand LockTasks(Guid[] ids)
    {
        var lockTasks = new NpgsqlBatchCommand(PostgreSqlStatements.LockTasks);
        lockTasks.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Uuid, Value = ids });
        return lockTasks;
    }

    /// <summary>The batch statement by statement in one transaction (<see cref="SqlExecutor.StatementProfile"/>).</summary>
    private async Task ProfileAsync(NpgsqlBatch batch, Action<string> profile, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        profile("BEGIN");
        foreach (var statement in batch.BatchCommands.ToList<NpgsqlBatchCommand>())
        {
            await using var one = new NpgsqlBatch(connection, transaction) { Timeout = batch.Timeout };
            batch.BatchCommands.Remove(statement);
            var shipped = statement.CommandText;
            statement.CommandText = StatementRewrite?.Invoke(shipped) ?? shipped;
            one.BatchCommands.Add(statement);
            await one.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            profile(shipped);
        }

        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        profile("COMMIT");
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
                var (sql, columns) = LedgerSql.RunUpdate(u.Kind);
                batch.BatchCommands.Add(Command(sql, LedgerColumn.Values(columns, u)));
            }

            return;
        }

        var finished = new HashSet<Guid>();
        var finishes = new NpgsqlColumnSet(NpgsqlColumnSet.Types(LedgerColumns.RunFinish), 0);
        var retryTimed = new HashSet<Guid>();
        var retries = new NpgsqlColumnSet(NpgsqlColumnSet.Types(LedgerColumns.RunNextRetry), 0);
        var failed = new HashSet<Guid>();
        foreach (var u in plan.RunUpdates)
        {
            switch (u.Kind)
            {
                case RunUpdateKind.Finish when finished.Add(u.RunId):
                    finishes.Add(LedgerColumns.RunFinish, u);
                    break;
                case RunUpdateKind.NextRetry when retryTimed.Add(u.RunId):
                    retries.Add(LedgerColumns.RunNextRetry, u);
                    break;
                case RunUpdateKind.FailForGood:
                    failed.Add(u.RunId);
                    break;
            }
        }

        if (finished.Count > 0)
        {
            batch.BatchCommands.Add(finishes.Command(PostgreSqlStatements.FinishRuns));
        }

        if (retryTimed.Count > 0)
        {
            batch.BatchCommands.Add(retries.Command(PostgreSqlStatements.SetNextRetries));
        }

        if (failed.Count > 0)
        {
            var command = new NpgsqlBatchCommand(PostgreSqlStatements.FailRunsForGood);
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

    private static NpgsqlBatchCommand Command(string sql, params object?[] values)
    {
        // Positional parameters skip Npgsql's SQL rewriting.
        var command = new NpgsqlBatchCommand(s_positional.GetOrAdd(sql, s => Placeholder().Replace(
            s, m => "$" + (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) + 1).ToString(CultureInfo.InvariantCulture))));
        foreach (var value in values)
        {
            command.Parameters.Add(PostgreSqlLedgerDatabase.Parameter(PostgreSqlLedgerDatabase.Instance.ToDb(value)));
        }

        return command;
    }
}
