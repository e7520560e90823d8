using JobLog.Storage.PostgreSql;

namespace JobLog.Storage.Partitioning;

/// <summary>
/// The write path's inserts on a partitioned PostgreSQL ledger (<see cref="LedgerPartitioning"/>): the same statements as
/// <see cref="PostgreSqlStatements"/>, with the partition key computed in the statement from the task's id
/// (<see cref="PartitionDay.Function"/>) and in the conflict target, so the publisher's and the consumer's upserts of one
/// task meet on one row. The run insert's reads of its task and of the earlier runs name the key too, so PostgreSQL
/// prunes them to the task's partition at run time. The updates by id need no change (they find the row in any partition).
/// </summary>
internal static class PartitionedStatements
{
    private const string T = LedgerSql.T;
    private const string R = LedgerSql.R;
    private const string Key = "\"" + PartitionDay.Column + "\"";
    private const string Conflict = "ON CONFLICT (\"Id\", " + Key + ")";

    public static readonly string UpsertDispatchedTasks =
        $"INSERT INTO {T} ({LedgerSql.ColumnList(LedgerColumns.Task)}, {Key}) SELECT u.*, {PartitionDay.Function}(u.\"Id\") FROM {PostgreSqlStatements.Unnest(LedgerColumns.Task)} " +
        $"{Conflict} DO UPDATE SET {PostgreSqlStatements.ProducerFieldsFromExcluded}";

    /// <summary>
    /// Inserts the consumer's task rows that are missing, and locks the ones that exist (<c>DO UPDATE … WHERE FALSE</c>
    /// updates nothing and locks the row): with no foreign key, nothing else tells a purge's DELETE of the task that this
    /// transaction is about to insert a run of it. So the purge waits for the writer and sees the run's effect on the task
    /// (ACTIVE, a later stop), or the writer waits for the purge and inserts the task again; no run is left without its task.
    /// </summary>
    public static readonly string InsertTasksIfMissing =
        $"INSERT INTO {T} ({LedgerSql.ColumnList(LedgerColumns.Task)}, {Key}) SELECT u.*, {PartitionDay.Function}(u.\"Id\") FROM {PostgreSqlStatements.Unnest(LedgerColumns.Task)} " +
        $"{Conflict} DO UPDATE SET \"Name\" = EXCLUDED.\"Name\" WHERE FALSE";

    /// <summary>
    /// <see cref="PostgreSqlStatements.DeriveTasksIfChanged"/> with the key in the read of each task's runs, so it is pruned to
    /// the task's partition at run time instead of probing every day's runs.
    /// </summary>
    public static readonly string DeriveTasksIfChanged =
        PostgreSqlStatements.DeriveIfChanged("t.\"Id\" = ANY($1::uuid[])", $"r.\"TaskId\" = t.\"Id\" AND r.{Key} = t.{Key}");

    /// <summary><see cref="PostgreSqlStatements.UpsertRuns"/> with the key: a run lives in its task's partition.</summary>
    public static readonly string UpsertRuns = BuildUpsertRuns();

    private static string BuildUpsertRuns()
    {
        const string day = PartitionDay.Function + "(u.\"TaskId\")";
        var stored = LedgerColumns.Run.Where(c => c.Stored).ToArray();
        var values = stored.Select(c => LedgerColumns.RunInputFromTask.Contains(c.Name)
            ? $"CASE WHEN u.\"InputFromTask\" THEN t.\"{c.Name}\" ELSE u.\"{c.Name}\" END"
            : $"u.\"{c.Name}\"");
        const string runConflict = "ON CONFLICT (\"Id\")";
        if (!OnConflictSql.RunConflict.StartsWith(runConflict, StringComparison.Ordinal))
        {
            throw new InvalidOperationException("The run upsert's conflict target changed: update " + nameof(PartitionedStatements) + ".");
        }

        return $"INSERT INTO {R} ({LedgerSql.ColumnList(stored)}, \"Retries\", {Key}) SELECT {string.Join(", ", values)}, " +
               $"(SELECT COUNT(*) FROM {R} x WHERE x.\"TaskId\" = u.\"TaskId\" AND x.{Key} = {day} AND x.\"ConsumerType\" = u.\"ConsumerType\") + u.\"Ordinal\", {day} " +
               $"FROM {PostgreSqlStatements.Unnest(LedgerColumns.Run)} LEFT JOIN {T} t ON t.\"Id\" = u.\"TaskId\" AND t.{Key} = {day} WHERE TRUE " +
               Conflict + OnConflictSql.RunConflict[runConflict.Length..];
    }
}
