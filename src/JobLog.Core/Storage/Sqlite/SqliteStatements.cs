namespace JobLog.Storage.Sqlite;

/// <summary>
/// The write path's SQLite statements: one prepared statement per row, <c>@pN</c> parameters in the order of the column
/// list each is generated from (the executor binds that same list). The shared single-row updates are in
/// <see cref="LedgerSql"/>.
/// </summary>
internal static class SqliteStatements
{
    private const string T = LedgerSql.T;
    private const string R = LedgerSql.R;

    /// <summary>Inserts a task row of <see cref="LedgerColumns.Task"/> unless it exists (the change count tells whether it was new).</summary>
    public static readonly string InsertTaskIfMissing =
        $"INSERT INTO {T} ({LedgerSql.ColumnList(LedgerColumns.Task)}) VALUES ({LedgerSql.Placeholders(LedgerColumns.Task.Length)}) ON CONFLICT (\"Id\") DO NOTHING";

    /// <summary>The key, then the producer's fields (<see cref="LedgerColumns.ProducerFields"/>).</summary>
    public static readonly LedgerColumn<TaskWrite>[] ProducerColumns =
        [LedgerColumns.Task[0], .. LedgerColumns.Task.Where(c => LedgerColumns.ProducerFields.Contains(c.Name))];

    /// <summary>The producer's fields over a row that existed (<see cref="ProducerColumns"/>); an earlier dispatch's error dropped (<see cref="LedgerSql.ClearDispatchError"/>).</summary>
    public static readonly string UpdateProducerFields = LedgerSql.UpdateByKey(T, ProducerColumns, "", LedgerSql.ClearDispatchError);

    /// <summary>The run columns SQLite binds: all but <c>Ordinal</c> (one row per statement, numbered by the rows stored before).</summary>
    public static readonly LedgerColumn<RunRow>[] RunColumns = [.. LedgerColumns.Run.Where(c => c.Name != "Ordinal")];

    /// <summary>
    /// Inserts a run of <see cref="RunColumns"/>; <c>Retries</c> counts the runs this task already has with this consumer.
    /// <c>INSERT … VALUES</c> with scalar subqueries, not <c>INSERT … SELECT</c>: a SELECT that reads the table it inserts
    /// into is first copied into a temporary b-tree, one per run (docs/benchmarks.md, "Session 11 (sqlwriter)").
    /// </summary>
    public static readonly string UpsertRun = BuildUpsertRun(byRowid: false);

    /// <summary>
    /// <see cref="UpsertRun"/> for a run whose task row the batch probed (<see cref="ProbeTask"/>): Input, TaskArgs and
    /// TaskKwargs are read by the row's rowid, the parameter after <see cref="RunColumns"/>, one table b-tree seek each
    /// instead of a seek of the <c>Id</c> index and then of the table.
    /// </summary>
    public static readonly string UpsertRunByTaskRowid = BuildUpsertRun(byRowid: true);

    /// <summary>The derivation of every task in the JSON id list @p0: on SQLite the plain UPDATE costs less than a guarded one.</summary>
    public static readonly string DeriveTasks =
        "UPDATE " + T + " SET " + LedgerSql.DerivedColumns.Replace("@p0", T + ".\"Id\"", StringComparison.Ordinal) +
        " WHERE " + SqliteLedgerDatabase.Instance.InIdList("\"Id\"", "@p0");

    /// <summary>
    /// The task row @p0 names, if stored: its rowid, whether any run of it is stored, and its rollup columns (state, name,
    /// kind, stop) and stale mark. Probed before the batch's runs are inserted, "no run stored" means the batch's runs are
    /// all the task will have once they are, so its derivation is the planner's (<see cref="LedgerDerivation"/>),
    /// <see cref="SetDerived"/> writes it without reading the runs, and its rollup move is known without reading it again.
    /// </summary>
    public const string ProbeTask =
        "SELECT rowid, EXISTS (SELECT 1 FROM " + R + " r WHERE r.\"TaskId\" = @p0), \"State\", \"Name\", \"IsInternal\", \"Stop\", \"IsSetAsStale\" " +
        "FROM " + T + " WHERE \"Id\" = @p0";

    /// <summary>
    /// <see cref="LedgerSql.DeriveTask"/> with the runs' part computed by the planner (@p1 state, @p2 start, @p3 stop) for
    /// the task whose rowid is @p0; a stale-marked task stays EXPIRED with its stop, as the derivation keeps it, and a
    /// failed dispatch's error is dropped, as the derivation drops it.
    /// </summary>
    public const string SetDerived =
        "UPDATE " + T + " SET \"State\" = CASE WHEN \"IsSetAsStale\" THEN 6 ELSE @p1 END, \"Start\" = @p2, " +
        "\"Stop\" = CASE WHEN \"IsSetAsStale\" THEN \"Stop\" ELSE @p3 END, " + LedgerSql.ClearDispatchError + " WHERE rowid = @p0";

    private static string BuildUpsertRun(bool byRowid)
    {
        var fromTask = LedgerSql.P(RunColumns, "InputFromTask");
        var taskId = LedgerSql.P(RunColumns, "TaskId");
        var taskRow = byRowid ? $"t.rowid = @p{RunColumns.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)}" : $"t.\"Id\" = {taskId}";
        var stored = RunColumns.Where(c => c.Stored).ToArray();
        var values = stored.Select(c => LedgerColumns.RunInputFromTask.Contains(c.Name)
            ? $"CASE WHEN {fromTask} THEN (SELECT t.\"{c.Name}\" FROM {T} t WHERE {taskRow}) ELSE {LedgerSql.P(RunColumns, c.Name)} END"
            : LedgerSql.P(RunColumns, c.Name));
        return $"INSERT INTO {R} ({LedgerSql.ColumnList(stored)}, \"Retries\") VALUES ({string.Join(", ", values)}, " +
               $"(SELECT COUNT(*) FROM {R} x WHERE x.\"TaskId\" = {taskId} AND x.\"ConsumerType\" = {LedgerSql.P(RunColumns, "ConsumerType")})) " +
               OnConflictSql.RunConflict;
    }
}
