namespace JobLog.Storage;

/// <summary>One column of a write-path row: its name and its PostgreSQL array element type.</summary>
internal readonly record struct LedgerColumn(string Name, string PgType);

/// <summary>
/// The write path's SQL. SQLite executes one prepared statement per row (<c>@pN</c> parameters in column order);
/// PostgreSQL executes one statement per kind and batch over arrays (<c>unnest($1::uuid[], ...)</c>). Both use
/// <c>INSERT … ON CONFLICT</c>, and both must keep the rules: producer fields win, a final run state is never
/// overwritten, runs are numbered per task and consumer, and the task's state is derived from its runs.
/// </summary>
internal static class LedgerStatements
{
    private const string T = "\"" + LedgerModel.Tasks + "\"";
    private const string R = "\"" + LedgerModel.Runs + "\"";

    /// <summary>A task row, in the order <see cref="LedgerRows.Task{TSink}"/> writes it.</summary>
    public static readonly LedgerColumn[] TaskColumns =
    [
        new("Id", "uuid"), new("Name", "text"), new("QueueName", "text"), new("Input", "text"), new("TaskArgs", "text"),
        new("TaskKwargs", "text"), new("DispatchedAt", "timestamptz"), new("EstimatedTimeOfFirstArrival", "timestamptz"),
        new("Expires", "timestamptz"), new("Stale", "timestamptz"), new("IsSetAsStale", "boolean"), new("State", "integer"),
        new("Start", "timestamptz"), new("Stop", "timestamptz"), new("ParentRunId", "uuid"), new("CorrelationId", "uuid"),
        new("ConversationId", "uuid"), new("TraceId", "text"), new("SourceAddress", "text"), new("Host", "text"),
        new("Release", "text"), new("Slug", "text"), new("ExtraData", "text"), new("IsInternal", "boolean"), new("InputRequestId", "uuid"),
    ];

    // Producer fields win over what a consumer guessed; state, start and stop stay derived from the runs.
    private static readonly string[] s_producerFields =
    [
        "Name", "QueueName", "Input", "TaskArgs", "TaskKwargs", "DispatchedAt", "EstimatedTimeOfFirstArrival", "Expires", "Stale",
        "ParentRunId", "CorrelationId", "ConversationId", "TraceId", "SourceAddress", "Host", "Release", "Slug", "ExtraData", "IsInternal", "InputRequestId",
    ];

    /// <summary>
    /// A run row, in the order <see cref="LedgerRows.Run{TSink}"/> writes it. <c>InputFromTask</c>: take Input, TaskArgs
    /// and TaskKwargs from the task row (the message was not rendered on the consume path). <c>Ordinal</c> (PostgreSQL
    /// only): the run's position among this batch's runs of its task and consumer.
    /// </summary>
    public static readonly LedgerColumn[] RunColumns =
    [
        new("Id", "uuid"), new("TaskId", "uuid"), new("Name", "text"), new("QueueName", "text"), new("ConsumerType", "text"),
        new("Input", "text"), new("TaskArgs", "text"), new("TaskKwargs", "text"), new("Start", "timestamptz"), new("Stop", "timestamptz"),
        new("State", "integer"), new("ErrorMessage", "text"), new("Output", "text"), new("EstimatedTimeOfNextRetry", "timestamptz"),
        new("WaitingTime", "double precision"), new("Redelivered", "boolean"), new("Host", "text"), new("InputFromTask", "boolean"),
        new("Ordinal", "integer"),
    ];

    // The stored columns of a run (the last two of RunColumns only steer the insert).
    private static readonly LedgerColumn[] s_runStored = RunColumns[..^2];

    private static readonly string[] s_fromTask = ["Input", "TaskArgs", "TaskKwargs"];

    private const string RunConflict =
        "ON CONFLICT (\"Id\") DO UPDATE SET \"State\" = excluded.\"State\", \"Stop\" = excluded.\"Stop\", " +
        "\"ErrorMessage\" = excluded.\"ErrorMessage\", \"Output\" = excluded.\"Output\", " +
        "\"EstimatedTimeOfNextRetry\" = excluded.\"EstimatedTimeOfNextRetry\" " +
        "WHERE " + R + ".\"State\" = 1 AND excluded.\"State\" <> 1";

    // ---- SQLite: one prepared statement per row ----

    /// <summary>Inserts a task row unless it exists (the caller learns from the change count whether it was new).</summary>
    public static readonly string InsertTaskIfMissing =
        $"INSERT INTO {T} ({ColumnList(TaskColumns)}) VALUES ({Placeholders(TaskColumns.Length)}) ON CONFLICT (\"Id\") DO NOTHING";

    /// <summary>The producer's fields over a row that existed (same parameters as <see cref="InsertTaskIfMissing"/>).</summary>
    public static readonly string UpdateProducerFields =
        $"UPDATE {T} SET {string.Join(", ", s_producerFields.Select(f => $"\"{f}\" = @p{Array.FindIndex(TaskColumns, c => c.Name == f)}"))} WHERE \"Id\" = @p0";

    public const string TaskExists = "SELECT 1 FROM " + T + " WHERE \"Id\" = @p0";

    /// <summary>Inserts a run; <c>Retries</c> counts the runs this task already has with this consumer.</summary>
    public static readonly string UpsertRun =
        $"INSERT INTO {R} ({ColumnList(s_runStored)}, \"Retries\") SELECT " +
        string.Join(", ", s_runStored.Select((c, i) => s_fromTask.Contains(c.Name)
            ? $"CASE WHEN @p{s_runStored.Length} THEN t.\"{c.Name}\" ELSE @p{i} END"
            : $"@p{i}")) +
        $", (SELECT COUNT(*) FROM {R} x WHERE x.\"TaskId\" = @p1 AND x.\"ConsumerType\" = @p4) " +
        $"FROM (SELECT 1) AS one LEFT JOIN {T} t ON t.\"Id\" = @p1 WHERE TRUE " + RunConflict;

    public const string TaskDispatchFailed =
        "UPDATE " + T + " SET \"ErrorMessage\" = @p1 WHERE \"Id\" = @p0";

    // A final state is never overwritten: only an ACTIVE run finishes.
    public const string FinishRun =
        "UPDATE " + R + " SET \"State\" = @p1, \"Stop\" = @p2, \"ErrorMessage\" = @p3, \"Output\" = @p4, " +
        "\"EstimatedTimeOfNextRetry\" = @p5 WHERE \"Id\" = @p0 AND \"State\" = 1";

    public const string FailRunForGood =
        "UPDATE " + R + " SET \"State\" = 3, \"EstimatedTimeOfNextRetry\" = NULL WHERE \"Id\" = @p0 AND \"State\" = 4";

    public const string SetNextRetry =
        "UPDATE " + R + " SET \"EstimatedTimeOfNextRetry\" = @p1 WHERE \"Id\" = @p0 AND \"State\" = 4 AND \"EstimatedTimeOfNextRetry\" IS NULL";

    public const string OrphanedMessage = "Orphaned: the message was redelivered by the broker before this attempt finished.";

    // A broker redelivery: the attempt that was running when the previous consumer died will never finish.
    public const string ExpireOrphanedRuns =
        "UPDATE " + R + " SET \"State\" = 5, \"Stop\" = @p3, \"ErrorMessage\" = '" + OrphanedMessage + "' " +
        "WHERE \"TaskId\" = @p0 AND \"ConsumerType\" = @p1 AND \"State\" = 1 AND \"Id\" <> @p2";

    /// <summary>
    /// The seed's derivation (DESIGN §3): stale-marked → EXPIRED; no runs → WAITING; else, over the latest run of each
    /// consumer, the most pressing of ACTIVE, RETRIED, FAILED, EXPIRED, CANCELLED, SUCCEEDED. Start is the earliest run's start;
    /// Stop the latest stop once no consumer's latest run is still ACTIVE.
    /// Run states: 1 ACTIVE, 2 SUCCEEDED, 3 FAILED, 4 RETRIED, 5 EXPIRED, 6 CANCELLED. Task states: 1 WAITING … 6 EXPIRED,
    /// 7 CANCELLED.
    /// </summary>
    public const string DeriveTask = "UPDATE " + T + " SET " + DerivedColumns + " WHERE \"Id\" = @p0";

    /// <summary>
    /// The derivation for every task in the id-list parameter @p0. On PostgreSQL a row is written only when its values
    /// change (the sweeper derives tasks that mostly stay as they are; an unchanged row would still cost a new row
    /// version and its index entries); on SQLite the plain UPDATE is cheaper.
    /// </summary>
    public static string DeriveTasks(SqlDialect dialect) => dialect.Provider == LedgerProvider.PostgreSql
        ? DeriveIfChanged(dialect.InIdList("t.\"Id\"", "@p0"))
        : "UPDATE " + T + " SET " + DerivedColumns.Replace("@p0", T + ".\"Id\"", StringComparison.Ordinal) +
          " WHERE " + dialect.InIdList("\"Id\"", "@p0");

    // ---- PostgreSQL: one statement per kind over arrays ----

    public static readonly string PgUpsertDispatchedTasks =
        $"INSERT INTO {T} ({ColumnList(TaskColumns)}) SELECT * FROM {Unnest(TaskColumns)} " +
        $"ON CONFLICT (\"Id\") DO UPDATE SET {string.Join(", ", s_producerFields.Select(f => $"\"{f}\" = excluded.\"{f}\""))}";

    public static readonly string PgInsertTasksIfMissing =
        $"INSERT INTO {T} ({ColumnList(TaskColumns)}) SELECT * FROM {Unnest(TaskColumns)} ON CONFLICT (\"Id\") DO NOTHING";

    // The statement's snapshot does not see its own rows: Retries = the runs stored before + the ordinal in this batch.
    public static readonly string PgUpsertRuns =
        $"INSERT INTO {R} ({ColumnList(s_runStored)}, \"Retries\") SELECT " +
        string.Join(", ", s_runStored.Select(c => s_fromTask.Contains(c.Name)
            ? $"CASE WHEN u.\"InputFromTask\" THEN t.\"{c.Name}\" ELSE u.\"{c.Name}\" END"
            : $"u.\"{c.Name}\"")) +
        $", (SELECT COUNT(*) FROM {R} x WHERE x.\"TaskId\" = u.\"TaskId\" AND x.\"ConsumerType\" = u.\"ConsumerType\") + u.\"Ordinal\" " +
        $"FROM {Unnest(RunColumns)} LEFT JOIN {T} t ON t.\"Id\" = u.\"TaskId\" WHERE TRUE " + RunConflict;


    public static readonly string PgFinishRuns =
        "UPDATE " + R + " SET \"State\" = u.s, \"Stop\" = u.stop, \"ErrorMessage\" = u.e, \"Output\" = u.o, \"EstimatedTimeOfNextRetry\" = u.n " +
        "FROM unnest($1::uuid[], $2::integer[], $3::timestamptz[], $4::text[], $5::text[], $6::timestamptz[]) AS u(id, s, stop, e, o, n) " +
        "WHERE " + R + ".\"Id\" = u.id AND " + R + ".\"State\" = 1";

    public static readonly string PgSetNextRetries =
        "UPDATE " + R + " SET \"EstimatedTimeOfNextRetry\" = u.n FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, n) " +
        "WHERE " + R + ".\"Id\" = u.id AND " + R + ".\"State\" = 4 AND " + R + ".\"EstimatedTimeOfNextRetry\" IS NULL";

    public static readonly string PgFailRunsForGood =
        "UPDATE " + R + " SET \"State\" = 3, \"EstimatedTimeOfNextRetry\" = NULL WHERE \"Id\" = ANY($1::uuid[]) AND \"State\" = 4";

    /// <summary>
    /// <see cref="DeriveTask"/> for the tasks in $1, writing a row only when the derived values differ from the stored
    /// ones: a task whose state was written with its insert costs a read, not a new row version and its index entries.
    /// </summary>
    public static readonly string PgDeriveTasksIfChanged = DeriveIfChanged("t.\"Id\" = ANY($1::uuid[])");

    private const string LatestRunOfEachConsumer =
        "l.\"TaskId\" = @p0 AND l.\"Retries\" = (SELECT MAX(m.\"Retries\") FROM " + R + " m WHERE m.\"TaskId\" = @p0 AND m.\"ConsumerType\" = l.\"ConsumerType\")";

    private const string DerivedState =
        "CASE (SELECT MIN(CASE l.\"State\" WHEN 1 THEN 1 WHEN 4 THEN 2 WHEN 3 THEN 3 WHEN 5 THEN 4 WHEN 6 THEN 5 ELSE 6 END) FROM " + R + " l WHERE " +
        LatestRunOfEachConsumer +
        ") WHEN 1 THEN 2 WHEN 2 THEN 5 WHEN 3 THEN 4 WHEN 4 THEN 6 WHEN 5 THEN 7 WHEN 6 THEN 3 ELSE 1 END";

    private const string DerivedStart = "(SELECT MIN(s.\"Start\") FROM " + R + " s WHERE s.\"TaskId\" = @p0)";

    private const string DerivedStop =
        "(SELECT CASE WHEN COUNT(*) = COUNT(l.\"Stop\") THEN MAX(l.\"Stop\") END FROM " + R + " l WHERE " + LatestRunOfEachConsumer + ")";

    private const string DerivedColumns =
        "\"State\" = CASE WHEN \"IsSetAsStale\" THEN 6 ELSE " + DerivedState + " END, " +
        "\"Start\" = " + DerivedStart + ", " +
        "\"Stop\" = CASE WHEN \"IsSetAsStale\" THEN \"Stop\" ELSE " + DerivedStop + " END";

    private static string DeriveIfChanged(string which)
    {
        static string Of(string sql) => sql.Replace("@p0", "t.\"Id\"", StringComparison.Ordinal);
        // MATERIALIZED: computed once per task; inlined, the subqueries would run again for every reference.
        return
            $"WITH d AS MATERIALIZED (" +
            $"SELECT t.\"Id\", CASE WHEN t.\"IsSetAsStale\" THEN 6 ELSE {Of(DerivedState)} END AS \"State\", {Of(DerivedStart)} AS \"Start\", " +
            $"CASE WHEN t.\"IsSetAsStale\" THEN t.\"Stop\" ELSE {Of(DerivedStop)} END AS \"Stop\" FROM {T} t WHERE {which}) " +
            $"UPDATE {T} SET \"State\" = d.\"State\", \"Start\" = d.\"Start\", \"Stop\" = d.\"Stop\" FROM d " +
            $"WHERE {T}.\"Id\" = d.\"Id\" AND ({T}.\"State\" IS DISTINCT FROM d.\"State\" OR {T}.\"Start\" IS DISTINCT FROM d.\"Start\" " +
            $"OR {T}.\"Stop\" IS DISTINCT FROM d.\"Stop\")";
    }

    private static string ColumnList(IEnumerable<LedgerColumn> columns) => string.Join(", ", columns.Select(c => $"\"{c.Name}\""));

    private static string Placeholders(int count) => string.Join(", ", Enumerable.Range(0, count).Select(i => $"@p{i}"));

    private static string Unnest(LedgerColumn[] columns) =>
        "unnest(" + string.Join(", ", columns.Select((c, i) => $"${i + 1}::{c.PgType}[]")) + ") AS u(" + ColumnList(columns) + ")";
}
