namespace JobLog.Storage;

/// <summary>The write path's SQL, identical on SQLite and PostgreSQL (both have <c>INSERT … ON CONFLICT</c>).</summary>
internal static class LedgerStatements
{
    private const string T = "\"" + LedgerModel.Tasks + "\"";
    private const string R = "\"" + LedgerModel.Runs + "\"";

    // Producer fields win over what a consumer guessed; state, start and stop stay derived from the runs.
    public const string UpsertDispatchedTask =
        "INSERT INTO " + T + " (\"Id\", \"Name\", \"QueueName\", \"Input\", \"TaskArgs\", \"TaskKwargs\", \"DispatchedAt\", " +
        "\"EstimatedTimeOfFirstArrival\", \"Expires\", \"Stale\", \"IsSetAsStale\", \"State\", \"ParentRunId\", \"CorrelationId\", " +
        "\"ConversationId\", \"TraceId\", \"SourceAddress\", \"Host\", \"Release\", \"Slug\", \"ExtraData\") " +
        "VALUES (@p0, @p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8, @p9, FALSE, 1, @p10, @p11, @p12, @p13, @p14, @p15, @p16, @p17, @p18) " +
        "ON CONFLICT (\"Id\") DO UPDATE SET \"Name\" = excluded.\"Name\", \"QueueName\" = excluded.\"QueueName\", " +
        "\"Input\" = excluded.\"Input\", \"TaskArgs\" = excluded.\"TaskArgs\", \"TaskKwargs\" = excluded.\"TaskKwargs\", " +
        "\"DispatchedAt\" = excluded.\"DispatchedAt\", \"EstimatedTimeOfFirstArrival\" = excluded.\"EstimatedTimeOfFirstArrival\", " +
        "\"Expires\" = excluded.\"Expires\", \"Stale\" = excluded.\"Stale\", \"ParentRunId\" = excluded.\"ParentRunId\", " +
        "\"CorrelationId\" = excluded.\"CorrelationId\", \"ConversationId\" = excluded.\"ConversationId\", " +
        "\"TraceId\" = excluded.\"TraceId\", \"SourceAddress\" = excluded.\"SourceAddress\", \"Host\" = excluded.\"Host\", " +
        "\"Release\" = excluded.\"Release\", \"Slug\" = excluded.\"Slug\", \"ExtraData\" = excluded.\"ExtraData\"";

    public const string TaskDispatchFailed =
        "UPDATE " + T + " SET \"ErrorMessage\" = @p1 WHERE \"Id\" = @p0";

    // The consume side creates the task when the producer's record has not arrived (or the producer has no JobLog).
    public const string EnsureTask =
        "INSERT INTO " + T + " (\"Id\", \"Name\", \"QueueName\", \"Input\", \"TaskArgs\", \"TaskKwargs\", \"DispatchedAt\", " +
        "\"EstimatedTimeOfFirstArrival\", \"Expires\", \"IsSetAsStale\", \"State\", \"CorrelationId\", \"ConversationId\", \"SourceAddress\") " +
        "VALUES (@p0, @p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8, FALSE, 1, @p9, @p10, @p11) ON CONFLICT (\"Id\") DO NOTHING";

    // Retries is counted by JobLog: the runs this task already has with this consumer.
    public const string UpsertRun =
        "INSERT INTO " + R + " (\"Id\", \"TaskId\", \"Name\", \"QueueName\", \"ConsumerType\", \"Input\", \"TaskArgs\", \"TaskKwargs\", " +
        "\"Start\", \"Stop\", \"State\", \"ErrorMessage\", \"Output\", \"Retries\", \"EstimatedTimeOfNextRetry\", \"WaitingTime\", " +
        "\"Redelivered\", \"Host\") VALUES (@p0, @p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8, @p9, @p10, @p11, @p12, " +
        "(SELECT COUNT(*) FROM " + R + " x WHERE x.\"TaskId\" = @p1 AND x.\"ConsumerType\" = @p4), @p13, @p14, @p15, @p16) " +
        "ON CONFLICT (\"Id\") DO UPDATE SET \"State\" = excluded.\"State\", \"Stop\" = excluded.\"Stop\", " +
        "\"ErrorMessage\" = excluded.\"ErrorMessage\", \"Output\" = excluded.\"Output\", " +
        "\"EstimatedTimeOfNextRetry\" = excluded.\"EstimatedTimeOfNextRetry\" " +
        "WHERE " + R + ".\"State\" = 1 AND excluded.\"State\" <> 1";

    // A final state is never overwritten: only an ACTIVE run finishes.
    public const string FinishRun =
        "UPDATE " + R + " SET \"State\" = @p1, \"Stop\" = @p2, \"ErrorMessage\" = @p3, \"Output\" = @p4, " +
        "\"EstimatedTimeOfNextRetry\" = @p5 WHERE \"Id\" = @p0 AND \"State\" = 1";

    public const string FailRunForGood =
        "UPDATE " + R + " SET \"State\" = 3, \"EstimatedTimeOfNextRetry\" = NULL WHERE \"Id\" = @p0 AND \"State\" = 4";

    public const string SetNextRetry =
        "UPDATE " + R + " SET \"EstimatedTimeOfNextRetry\" = @p1 WHERE \"Id\" = @p0 AND \"State\" = 4 AND \"EstimatedTimeOfNextRetry\" IS NULL";

    // A broker redelivery: the attempt that was running when the previous consumer died will never finish.
    public const string ExpireOrphanedRuns =
        "UPDATE " + R + " SET \"State\" = 5, \"Stop\" = @p3, \"ErrorMessage\" = 'Orphaned: the message was redelivered by the broker before this attempt finished.' " +
        "WHERE \"TaskId\" = @p0 AND \"ConsumerType\" = @p1 AND \"State\" = 1 AND \"Id\" <> @p2";

    /// <summary>
    /// The seed's derivation (DESIGN §3): stale-marked → EXPIRED; no runs → WAITING; else, over the latest run of each
    /// consumer, the most pressing of ACTIVE, RETRIED, FAILED, EXPIRED, SUCCEEDED. Start is the earliest run's start;
    /// Stop the latest stop once no consumer's latest run is still ACTIVE.
    /// Run states: 1 ACTIVE, 2 SUCCEEDED, 3 FAILED, 4 RETRIED, 5 EXPIRED. Task states: 1 WAITING … 6 EXPIRED.
    /// </summary>
    public const string DeriveTask = "UPDATE " + T + " SET " + DerivedColumns + " WHERE \"Id\" = @p0";

    /// <summary>The derivation for every task in the id-list parameter @p0, returning the new states.</summary>
    public static string DeriveTasks(SqlDialect dialect) =>
        "UPDATE " + T + " SET " + DerivedColumns.Replace("@p0", T + ".\"Id\"", StringComparison.Ordinal) +
        " WHERE " + dialect.InIdList("\"Id\"", "@p0");

    private const string LatestRunOfEachConsumer =
        "l.\"TaskId\" = @p0 AND l.\"Retries\" = (SELECT MAX(m.\"Retries\") FROM " + R + " m WHERE m.\"TaskId\" = @p0 AND m.\"ConsumerType\" = l.\"ConsumerType\")";

    private const string DerivedColumns =
        "\"State\" = CASE WHEN \"IsSetAsStale\" THEN 6 ELSE CASE (" +
        "SELECT MIN(CASE l.\"State\" WHEN 1 THEN 1 WHEN 4 THEN 2 WHEN 3 THEN 3 WHEN 5 THEN 4 ELSE 5 END) FROM " + R + " l WHERE " +
        LatestRunOfEachConsumer +
        ") WHEN 1 THEN 2 WHEN 2 THEN 5 WHEN 3 THEN 4 WHEN 4 THEN 6 WHEN 5 THEN 3 ELSE 1 END END, " +
        "\"Start\" = (SELECT MIN(s.\"Start\") FROM " + R + " s WHERE s.\"TaskId\" = @p0), " +
        "\"Stop\" = CASE WHEN \"IsSetAsStale\" THEN \"Stop\" ELSE (" +
        "SELECT CASE WHEN COUNT(*) = COUNT(l.\"Stop\") THEN MAX(l.\"Stop\") END FROM " + R + " l WHERE " +
        LatestRunOfEachConsumer +
        ") END";
}
