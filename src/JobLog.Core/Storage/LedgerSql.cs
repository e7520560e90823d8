namespace JobLog.Storage;

/// <summary>
/// The write path's SQL that every database shares: plain <c>UPDATE</c>s of one row with <c>@pN</c> parameters, and the
/// task-state derivation. What differs per database (inserts, upserts, statements over many rows) is in each database's
/// folder (<c>Storage/Sqlite</c>, <c>Storage/PostgreSql</c>); all of it is generated from <see cref="LedgerColumns"/>.
/// </summary>
internal static class LedgerSql
{
    /// <summary><c>%text%</c> for <c>LIKE … ESCAPE '\'</c>, with the user's <c>%</c>, <c>_</c> and <c>\</c> taken literally.</summary>
    public static string LikePattern(string text) =>
        "%" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("%", "\\%", StringComparison.Ordinal)
            .Replace("_", "\\_", StringComparison.Ordinal) + "%";

    /// <summary>The quoted task table.</summary>
    public const string T = "\"" + LedgerModel.Tasks + "\"";

    /// <summary>The quoted run table.</summary>
    public const string R = "\"" + LedgerModel.Runs + "\"";

    public const string OrphanedMessage = "Orphaned: the message was redelivered by the broker before this attempt finished.";

    /// <summary>How the sweeper's host pass begins the error of a run it expired (<c>TaskLogSweeper.HostReason</c>).</summary>
    public const string HostExpiredPrefix = "Expired: host ";

    /// <summary>
    /// A failed dispatch's error on its task, unless a run of the task is stored: the broker delivered a send its caller
    /// cancelled (a resource alarm held the frames), and the sender's writer committed after the consumer's.
    /// </summary>
    public const string TaskDispatchFailed =
        "UPDATE " + T + " SET \"ErrorMessage\" = @p1 WHERE \"Id\" = @p0 AND NOT EXISTS (SELECT 1 FROM " + R + " r WHERE r.\"TaskId\" = @p0)";

    /// <summary>
    /// The SET item with which a task dispatched again (an application's retry of a send, the same MessageId) drops the
    /// error of an earlier failed dispatch (<see cref="TaskDispatchFailed"/>): a send cancelled by its caller may have
    /// reached the broker anyway, and the retry is what the task's row tells. A stale-marked task keeps its reason. The
    /// derivation sets it too (<see cref="DerivedColumns"/>): a run of the task means the broker delivered it.
    /// </summary>
    public const string ClearDispatchError = "\"ErrorMessage\" = CASE WHEN " + T + ".\"IsSetAsStale\" THEN " + T + ".\"ErrorMessage\" END";

    /// <summary>Sets a task's extra data (<see cref="LedgerColumns.TaskExtraData"/>).</summary>
    public static readonly string SetExtraData = UpdateByKey(T, LedgerColumns.TaskExtraData, "");

    /// <summary>Sets a task's ETA (<see cref="LedgerColumns.TaskEta"/>).</summary>
    public static readonly string SetEta = UpdateByKey(T, LedgerColumns.TaskEta, "");

    /// <summary>A final state is never overwritten: only an open run finishes (<see cref="LedgerColumns.RunFinish"/>, <see cref="Finishable"/>).</summary>
    public static readonly string FinishRun = UpdateByKey(R, LedgerColumns.RunFinish, " AND " + Finishable(R));

    /// <summary>
    /// Whether a run's end may still be written: it is ACTIVE, or the sweeper's host pass expired it. That expiry is a
    /// guess (the host missed its heartbeats: a GC pause or a database hiccup looks like a crash), and a real end that
    /// arrives after it is what happened: the run takes it and the task is derived from it (a failure is FAILED, not
    /// EXPIRED). Every other final state, the host pass's own included once a real end replaced it, is kept.
    /// </summary>
    /// <param name="run">The run table or its alias, quoted.</param>
    public static string Finishable(string run) =>
        $"({run}.\"State\" = 1 OR ({run}.\"State\" = 5 AND {run}.\"ErrorMessage\" LIKE '{HostExpiredPrefix}%'))";

    /// <summary>A RETRIED run learns its next retry once (<see cref="LedgerColumns.RunNextRetry"/>).</summary>
    public static readonly string SetNextRetry =
        UpdateByKey(R, LedgerColumns.RunNextRetry, " AND \"State\" = 4 AND \"EstimatedTimeOfNextRetry\" IS NULL");

    /// <summary>A RETRIED run fails for good (<see cref="LedgerColumns.RunFailForGood"/>).</summary>
    public const string FailRunForGood =
        "UPDATE " + R + " SET \"State\" = 3, \"EstimatedTimeOfNextRetry\" = NULL WHERE \"Id\" = @p0 AND \"State\" = 4";

    /// <summary>
    /// A broker redelivery: the attempt that was running when the previous consumer died will never finish
    /// (<see cref="LedgerColumns.RunExpireOrphans"/>).
    /// </summary>
    public static readonly string ExpireOrphanedRuns =
        $"UPDATE {R} SET \"State\" = 5, \"Stop\" = {P(LedgerColumns.RunExpireOrphans, "Stop")}, \"ErrorMessage\" = '{OrphanedMessage}' " +
        $"WHERE \"TaskId\" = {P(LedgerColumns.RunExpireOrphans, "TaskId")} AND \"ConsumerType\" = {P(LedgerColumns.RunExpireOrphans, "ConsumerType")} " +
        $"AND \"State\" = 1 AND \"Id\" <> {P(LedgerColumns.RunExpireOrphans, "Id")}";

    /// <summary>The single-row statement of a change to a stored run, and the columns it is bound from.</summary>
    public static (string Sql, LedgerColumn<RunUpdate>[] Columns) RunUpdate(RunUpdateKind kind) => kind switch
    {
        RunUpdateKind.Finish => (FinishRun, LedgerColumns.RunFinish),
        RunUpdateKind.FailForGood => (FailRunForGood, LedgerColumns.RunFailForGood),
        RunUpdateKind.NextRetry => (SetNextRetry, LedgerColumns.RunNextRetry),
        _ => (ExpireOrphanedRuns, LedgerColumns.RunExpireOrphans),
    };

    /// <summary>
    /// The seed's derivation (docs/architecture.md#task-state): stale-marked → EXPIRED; no runs → WAITING; else, over the
    /// latest run of each consumer, the most pressing of ACTIVE, RETRIED, FAILED, EXPIRED, CANCELLED, SUCCEEDED. Start is
    /// the earliest run's start; Stop the latest stop once no consumer's latest run is still ACTIVE.
    /// Run states: 1 ACTIVE, 2 SUCCEEDED, 3 FAILED, 4 RETRIED, 5 EXPIRED, 6 CANCELLED. Task states: 1 WAITING … 6 EXPIRED,
    /// 7 CANCELLED.
    /// </summary>
    public const string DeriveTask = "UPDATE " + T + " SET " + DerivedColumns + " WHERE \"Id\" = @p0";

    private const string LatestRunOfEachConsumer =
        "l.\"TaskId\" = @p0 AND l.\"Retries\" = (SELECT MAX(m.\"Retries\") FROM " + R + " m WHERE m.\"TaskId\" = @p0 AND m.\"ConsumerType\" = l.\"ConsumerType\")";

    /// <summary>The derived state of the task whose id is <c>@p0</c>.</summary>
    public const string DerivedState =
        "CASE (SELECT MIN(CASE l.\"State\" WHEN 1 THEN 1 WHEN 4 THEN 2 WHEN 3 THEN 3 WHEN 5 THEN 4 WHEN 6 THEN 5 ELSE 6 END) FROM " + R + " l WHERE " +
        LatestRunOfEachConsumer +
        ") WHEN 1 THEN 2 WHEN 2 THEN 5 WHEN 3 THEN 4 WHEN 4 THEN 6 WHEN 5 THEN 7 WHEN 6 THEN 3 ELSE 1 END";

    /// <summary>The derived start of the task whose id is <c>@p0</c>.</summary>
    public const string DerivedStart = "(SELECT MIN(s.\"Start\") FROM " + R + " s WHERE s.\"TaskId\" = @p0)";

    /// <summary>The derived stop of the task whose id is <c>@p0</c>.</summary>
    public const string DerivedStop =
        "(SELECT CASE WHEN COUNT(*) = COUNT(l.\"Stop\") THEN MAX(l.\"Stop\") END FROM " + R + " l WHERE " + LatestRunOfEachConsumer + ")";

    /// <summary>
    /// The SET list of the derivation of the task whose id is <c>@p0</c>. It runs for tasks that runs touched, so it also
    /// drops a failed dispatch's error (<see cref="ClearDispatchError"/>): the message reached a consumer after all.
    /// </summary>
    public const string DerivedColumns =
        "\"State\" = CASE WHEN \"IsSetAsStale\" THEN 6 ELSE " + DerivedState + " END, " +
        "\"Start\" = " + DerivedStart + ", " +
        "\"Stop\" = CASE WHEN \"IsSetAsStale\" THEN \"Stop\" ELSE " + DerivedStop + " END, " + ClearDispatchError;

    /// <summary>The quoted, comma-separated names of <paramref name="columns"/>.</summary>
    public static string ColumnList<TRow>(IEnumerable<LedgerColumn<TRow>> columns) => string.Join(", ", columns.Select(c => $"\"{c.Name}\""));

    /// <summary><c>@p0, @p1, …</c>: one parameter per column.</summary>
    public static string Placeholders(int count) => string.Join(", ", Enumerable.Range(0, count).Select(i => $"@p{i}"));

    /// <summary>The parameter (<c>@pN</c>) of the column named <paramref name="name"/> in <paramref name="columns"/>.</summary>
    public static string P<TRow>(LedgerColumn<TRow>[] columns, string name) => "@p" + LedgerColumn.IndexOf(columns, name);

    /// <summary>
    /// An UPDATE of the row whose key is the first column: <c>UPDATE table SET c1 = @p1, … WHERE "key" = @p0</c>, then
    /// <paramref name="condition"/>; <paramref name="alsoSet"/>, when given, is one more SET item.
    /// </summary>
    public static string UpdateByKey<TRow>(string table, LedgerColumn<TRow>[] columns, string condition, string? alsoSet = null) =>
        $"UPDATE {table} SET {string.Join(", ", columns.Skip(1).Select((c, i) => $"\"{c.Name}\" = @p{i + 1}"))}{(alsoSet is null ? "" : ", " + alsoSet)} " +
        $"WHERE \"{columns[0].Name}\" = @p0{condition}";
}
