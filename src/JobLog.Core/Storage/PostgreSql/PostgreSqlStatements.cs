namespace JobLog.Storage.PostgreSql;

/// <summary>
/// The write path's PostgreSQL statements: one statement per kind and batch over arrays
/// (<c>(SELECT unnest($1::uuid[]) AS "Id", …) AS u</c>, <see cref="Unnest"/>), one array per column of the list each is
/// generated from (the executor fills the arrays from that same list). The single-row updates are in <see cref="LedgerSql"/>.
/// </summary>
internal static class PostgreSqlStatements
{
    private const string T = LedgerSql.T;
    private const string R = LedgerSql.R;

    /// <summary>
    /// The SET list of a dispatch's upsert over a row that existed: the producer's fields win, an earlier dispatch's error
    /// is dropped (<see cref="LedgerSql.ClearDispatchError"/>).
    /// </summary>
    public static readonly string ProducerFieldsFromExcluded =
        string.Join(", ", LedgerColumns.ProducerFields.Select(f => $"\"{f}\" = excluded.\"{f}\"")) + ", " + LedgerSql.ClearDispatchError;

    public static readonly string UpsertDispatchedTasks =
        $"INSERT INTO {T} ({LedgerSql.ColumnList(LedgerColumns.Task)}) SELECT * FROM {Unnest(LedgerColumns.Task)} " +
        $"ON CONFLICT (\"Id\") DO UPDATE SET {ProducerFieldsFromExcluded}";

    public static readonly string InsertTasksIfMissing =
        $"INSERT INTO {T} ({LedgerSql.ColumnList(LedgerColumns.Task)}) SELECT * FROM {Unnest(LedgerColumns.Task)} ON CONFLICT (\"Id\") DO NOTHING";

    /// <summary>The statement's snapshot does not see its own rows: Retries = the runs stored before + the ordinal in this batch.</summary>
    public static readonly string UpsertRuns = BuildUpsertRuns();

    /// <summary>Finishes open runs (<see cref="LedgerColumns.RunFinish"/>, <see cref="LedgerSql.Finishable"/>; first run of each id only).</summary>
    public static readonly string FinishRuns = UpdateFromArrays(LedgerColumns.RunFinish, LedgerSql.Finishable(R));

    public static readonly string SetNextRetries =
        UpdateFromArrays(LedgerColumns.RunNextRetry, $"{R}.\"State\" = 4 AND {R}.\"EstimatedTimeOfNextRetry\" IS NULL");

    public static readonly string FailRunsForGood =
        "UPDATE " + R + " SET \"State\" = 3, \"EstimatedTimeOfNextRetry\" = NULL WHERE \"Id\" = ANY($1::uuid[]) AND \"State\" = 4";

    /// <summary>
    /// <see cref="LedgerSql.DeriveTask"/> for the tasks in $1, writing a row only when the derived values differ from the
    /// stored ones: a task whose state was written with its insert costs a read, not a new row version and its index entries.
    /// </summary>
    public static readonly string DeriveTasksIfChanged = DeriveIfChanged("t.\"Id\" = ANY($1::uuid[])");

    /// <summary>
    /// Locks the tasks in $1 (in id order, so two writers cannot deadlock on them) before <see cref="DeriveTasksIfChanged"/>:
    /// the derivation reads the task's runs in its statement's snapshot, which misses another process's run end that is
    /// not committed yet. Two hosts ending runs of one task (a published message's consumers) each derived the task
    /// without the other's end and the task stayed ACTIVE with every run ended. Locked first, the later of the two
    /// waits for the earlier's commit and its derivation, a new statement, sees it (<c>TwoWritersTests</c>).
    /// </summary>
    public static readonly string LockTasks = LockTasksIn("$1::uuid[]");

    /// <summary><see cref="LockTasks"/> with the id-list parameter @p0 (the sweeper's host pass).</summary>
    public static readonly string LockTasksOfList = LockTasksIn("@p0");

    private static string LockTasksIn(string ids) => $"SELECT 1 FROM {T} WHERE \"Id\" = ANY({ids}) ORDER BY \"Id\" FOR NO KEY UPDATE";

    /// <summary>The sweeper's derivation of the tasks in the id-list parameter @p0 (mostly unchanged: written only when they change).</summary>
    public static readonly string DeriveTasks = DeriveIfChanged("t.\"Id\" = ANY(@p0)");

    /// <summary>PostgreSQL's array element type for a column.</summary>
    public static string PgType(ColumnType type) => type switch
    {
        ColumnType.Uuid => "uuid",
        ColumnType.Timestamp => "timestamptz",
        ColumnType.Integer => "integer",
        ColumnType.Boolean => "boolean",
        ColumnType.Real => "double precision",
        _ => "text",
    };

    private static string BuildUpsertRuns()
    {
        var stored = LedgerColumns.Run.Where(c => c.Stored).ToArray();
        var values = stored.Select(c => LedgerColumns.RunInputFromTask.Contains(c.Name)
            ? $"CASE WHEN u.\"InputFromTask\" THEN t.\"{c.Name}\" ELSE u.\"{c.Name}\" END"
            : $"u.\"{c.Name}\"");
        return $"INSERT INTO {R} ({LedgerSql.ColumnList(stored)}, \"Retries\") SELECT {string.Join(", ", values)}, " +
               $"(SELECT COUNT(*) FROM {R} x WHERE x.\"TaskId\" = u.\"TaskId\" AND x.\"ConsumerType\" = u.\"ConsumerType\") + u.\"Ordinal\" " +
               $"FROM {Unnest(LedgerColumns.Run)} LEFT JOIN {T} t ON t.\"Id\" = u.\"TaskId\" WHERE TRUE " + OnConflictSql.RunConflict;
    }

    /// <summary>Updates runs by key (the first column) from arrays, setting the other columns.</summary>
    private static string UpdateFromArrays(LedgerColumn<RunUpdate>[] columns, string condition) =>
        $"UPDATE {R} SET {string.Join(", ", columns.Skip(1).Select(c => $"\"{c.Name}\" = u.\"{c.Name}\""))} FROM {Unnest(columns)} " +
        $"WHERE {R}.\"{columns[0].Name}\" = u.\"{columns[0].Name}\" AND {condition}";

    /// <summary>
    /// Derives the tasks <paramref name="which"/> selects (on the alias <c>t</c>) from their runs, each task's runs read once
    /// (<see cref="PostgreSqlDerivation"/>; <paramref name="ofTask"/> selects them on the alias <c>r</c>), and writes a task
    /// only where the result differs from the row, or where a failed dispatch's error is to be dropped (the task has runs:
    /// the broker delivered it, <see cref="LedgerSql.DerivedColumns"/>).
    /// </summary>
    internal static string DeriveIfChanged(string which, string ofTask = "r.\"TaskId\" = t.\"Id\"") =>
        // MATERIALIZED: computed once per task, before the update changes the rows it reads.
        $"WITH x AS MATERIALIZED (SELECT t.\"Id\" AS did, t.\"IsSetAsStale\" AS stale, t.\"Stop\" AS stored, {PostgreSqlDerivation.Columns}, " +
        "x.n > 0 AND NOT t.\"IsSetAsStale\" AND t.\"ErrorMessage\" IS NOT NULL AS delivered " +
        $"FROM {T} t CROSS JOIN LATERAL ({PostgreSqlDerivation.Runs(ofTask)}) x WHERE {which}), " +
        "d AS (SELECT did, CASE WHEN stale THEN 6 ELSE dstate END AS \"State\", dstart AS \"Start\", CASE WHEN stale THEN stored ELSE dstop END AS \"Stop\", " +
        "delivered FROM x) " +
        $"UPDATE {T} SET \"State\" = d.\"State\", \"Start\" = d.\"Start\", \"Stop\" = d.\"Stop\", " +
        $"\"ErrorMessage\" = CASE WHEN d.delivered THEN NULL ELSE {T}.\"ErrorMessage\" END FROM d " +
        $"WHERE {T}.\"Id\" = d.did AND ({T}.\"State\" IS DISTINCT FROM d.\"State\" OR {T}.\"Start\" IS DISTINCT FROM d.\"Start\" " +
        $"OR {T}.\"Stop\" IS DISTINCT FROM d.\"Stop\" OR d.delivered)";

    /// <summary>
    /// The rows of a batch, <c>u</c>: one array parameter per column, unnested in step in the select list (a
    /// <c>ProjectSet</c>). <c>unnest($1, $2, …)</c> in <c>FROM</c> yields the same rows, but copies each array into a tuple
    /// store of its own first (a function scan of as many functions): 15 to 35 % of the server's CPU of the consumers'
    /// task rows, where every row exists and nothing else is done with it, a few percent of the inserts'
    /// (docs/benchmarks.md, "Session 17 (pgwriter)").
    /// </summary>
    internal static string Unnest<TRow>(LedgerColumn<TRow>[] columns) =>
        "(SELECT " + string.Join(", ", columns.Select((c, i) => $"unnest(${i + 1}::{PgType(c.Type)}[]) AS \"{c.Name}\"")) + ") AS u";
}
