namespace JobLog.Storage.PostgreSql;

/// <summary>
/// The task search's indexes on PostgreSQL (docs/search.md): <c>pg_trgm</c> GIN indexes on the tasks' <c>Input</c> and
/// <c>TaskKwargs</c> and the runs' <c>ErrorMessage</c>, so that <c>ILIKE '%text%'</c> (the plain substring search)
/// is answered from them.
/// </summary>
internal static class PostgreSqlSearch
{
    /// <summary>The index names: the columns they index and the table.</summary>
    public static readonly (string Index, string Table, string Column)[] Indexes =
    [
        ("IX_JobLogTasks_Input_Trigram", LedgerModel.Tasks, "Input"),
        ("IX_JobLogTasks_TaskKwargs_Trigram", LedgerModel.Tasks, "TaskKwargs"),
        ("IX_JobLogTaskRuns_ErrorMessage_Trigram", LedgerModel.Runs, "ErrorMessage"),
    ];

    /// <summary>
    /// Creates <c>pg_trgm</c> (a trusted extension: the database owner, or any role with CREATE on the database, may
    /// create it) and the indexes. When the extension cannot be created or found, the migration still succeeds with a
    /// WARNING and no indexes: the search gives the same rows, by scanning. <c>IF NOT EXISTS</c> lets an operator
    /// create the indexes beforehand with <c>CREATE INDEX CONCURRENTLY</c> on a large ledger.
    /// </summary>
    public static readonly string Create = $$"""
        DO $joblog$
        BEGIN
            BEGIN
                CREATE EXTENSION IF NOT EXISTS pg_trgm;
            EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
                RAISE WARNING 'JobLog: the pg_trgm extension could not be created (%): the task search works without its indexes, by scanning. Ask the database owner to run CREATE EXTENSION pg_trgm, then create the indexes listed in docs/search.md.', SQLERRM;
            END;
            BEGIN
        {{string.Join("\n", Indexes.Select(i =>
            $"        CREATE INDEX IF NOT EXISTS \"{i.Index}\" ON \"{i.Table}\" USING gin (\"{i.Column}\" gin_trgm_ops) WHERE \"{i.Column}\" IS NOT NULL;"))}}
            EXCEPTION WHEN undefined_object THEN
                RAISE WARNING 'JobLog: the pg_trgm operator class gin_trgm_ops is not on the search_path (%): the task search works without its indexes, by scanning (docs/search.md).', SQLERRM;
            END;
        END
        $joblog$;
        """;

    /// <summary>How many of the indexes exist (in the ledger's schema).</summary>
    public static readonly string CountPresent =
        "SELECT COUNT(*)::int AS \"Value\" FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN ("
        + string.Join(", ", Indexes.Select(i => "'" + i.Index + "'")) + ")";

    /// <summary>Drops the indexes (the migration's Down); the extension stays, other schemas may use it.</summary>
    public static readonly string Drop = string.Join("\n", Indexes.Select(i => $"DROP INDEX IF EXISTS \"{i.Index}\";"));
}
