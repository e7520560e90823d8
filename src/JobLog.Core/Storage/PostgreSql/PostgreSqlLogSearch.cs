namespace JobLog.Storage.PostgreSql;

/// <summary>
/// The request and command lists' search index on PostgreSQL (docs/search.md, "Requests and commands"): a
/// <c>pg_trgm</c> GIN index on the searched column of each log (<see cref="LogText"/>: the requests' <c>Path</c>, the
/// commands' <c>Input</c>), so that the lists' <c>ILIKE '%…%'</c> is answered from it. On the column itself, not in a side
/// table as the tasks' text (<see cref="PostgreSqlSearch"/>): a path is a few dozen characters, where a task's text is
/// hundreds and is rewritten by the sweeper; a statement trigger per upserted request would cost the writer more than the
/// GIN entries of its two row versions. On a partitioned ledger the index is on the parent: every day partition has
/// its own, made ahead with the partition.
/// </summary>
internal static class PostgreSqlLogSearch
{
    /// <summary>The trigram index of <paramref name="log"/>.</summary>
    public static string Index(LogText log) => $"IX_{log.Table}_{log.Column}_Trigram";

    /// <summary>
    /// Creates <c>pg_trgm</c> when it can and the indexes that are missing. Without the extension (or its operator class
    /// on the search path) it succeeds with a WARNING and no index: the lists' search gives the same rows, by scanning.
    /// <c>IF NOT EXISTS</c> lets an operator build the indexes beforehand with <c>CREATE INDEX CONCURRENTLY</c> (an
    /// unpartitioned ledger) on a large ledger, where this build holds off the writer meanwhile.
    /// </summary>
    public static readonly string Create = $$"""
        DO $joblog$
        BEGIN
            BEGIN
                CREATE EXTENSION IF NOT EXISTS pg_trgm;
            EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
                RAISE WARNING 'JobLog: the pg_trgm extension could not be created (%): the request and command search works without its index, by scanning (docs/search.md).', SQLERRM;
            END;
            BEGIN
        {{string.Join("\n", LogText.All.Select(l => $"        CREATE INDEX IF NOT EXISTS \"{Index(l)}\" ON \"{l.Table}\" USING gin (\"{l.Column}\" gin_trgm_ops);"))}}
            EXCEPTION WHEN undefined_object THEN
                RAISE WARNING 'JobLog: the pg_trgm operator class gin_trgm_ops is not on the search_path (%): the request and command search works without its index, by scanning (docs/search.md).', SQLERRM;
            END;
        END
        $joblog$;
        """;

    /// <summary>Drops the indexes (<c>SearchIndex = false</c>).</summary>
    public static readonly string Drop = string.Join("\n", LogText.All.Select(l => $"DROP INDEX IF EXISTS \"{Index(l)}\";"));

    /// <summary>How many of the indexes exist in the ledger's schema (<see cref="LogText.All"/>'s count when complete).</summary>
    public static readonly string CountPresent =
        "SELECT COUNT(*)::int AS \"Value\" FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN (" +
        string.Join(", ", LogText.All.Select(l => "'" + Index(l) + "'")) + ")";
}
