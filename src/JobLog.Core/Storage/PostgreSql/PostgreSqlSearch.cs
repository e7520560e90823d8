using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Storage.PostgreSql;

/// <summary>
/// The task search's indexes on PostgreSQL (docs/search.md): <c>pg_trgm</c> GIN indexes on the tasks' <c>Input</c> and
/// <c>TaskKwargs</c> (one index over both, <see cref="TaskText"/>) and the runs' <c>ErrorMessage</c>, so that
/// <c>ILIKE '%text%'</c> (the plain substring search) is answered from them.
/// </summary>
internal static class PostgreSqlSearch
{
    /// <summary>
    /// The task's two searched columns as one text, a line feed between them: one trigram index over both instead of
    /// one per column. They mostly carry the same values (the rendered input and the message's JSON), so one index
    /// extracts and stores each trigram once per task instead of twice, and the writer's second row version of a
    /// task (its derived state; no HOT update, <c>State</c> is indexed) re-indexes one text instead of two.
    /// </summary>
    public const string TaskText = "(COALESCE(\"Input\", '') || E'\\n' || COALESCE(\"TaskKwargs\", ''))";

    /// <summary>
    /// The task index leaves out <see cref="TaskState.Waiting"/> rows: on the bus a task is written first as Waiting (the
    /// dispatch), then with its derived state, so the dispatch's row version costs no trigrams. The few tasks waiting
    /// for a consumer are searched through <c>IX_JobLogTasks_State_DispatchedAt</c> instead (<see cref="TasksContaining"/>).
    /// </summary>
    private const string NotWaiting = " WHERE \"State\" <> 1";

    /// <summary>The index names, the tables and what they index (a column or an expression in parentheses).</summary>
    public static readonly (string Index, string Table, string Indexed, string Where)[] Indexes =
    [
        ("IX_JobLogTasks_Text_Trigram", LedgerModel.Tasks, TaskText, NotWaiting),
        ("IX_JobLogTaskRuns_ErrorMessage_Trigram", LedgerModel.Runs, "\"ErrorMessage\"", " WHERE \"ErrorMessage\" IS NOT NULL"),
    ];

    /// <summary>The indexes of session 6 and before (one per task column), replaced by <c>IX_JobLogTasks_Text_Trigram</c>.</summary>
    public static readonly string[] Replaced = ["IX_JobLogTasks_Input_Trigram", "IX_JobLogTasks_TaskKwargs_Trigram"];

    /// <summary>
    /// Creates <c>pg_trgm</c> (a trusted extension: the database owner, or any role with CREATE on the database, may
    /// create it) and the indexes, and drops the <see cref="Replaced"/> ones. When the extension cannot be created or
    /// found, the migration still succeeds with a WARNING and no indexes: the search gives the same rows, by scanning.
    /// <c>IF NOT EXISTS</c> lets an operator create the indexes beforehand with <c>CREATE INDEX CONCURRENTLY</c> on a
    /// large ledger.
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
            $"        CREATE INDEX IF NOT EXISTS \"{i.Index}\" ON \"{i.Table}\" USING gin ({i.Indexed} gin_trgm_ops){i.Where};"))}}
            EXCEPTION WHEN undefined_object THEN
                RAISE WARNING 'JobLog: the pg_trgm operator class gin_trgm_ops is not on the search_path (%): the task search works without its indexes, by scanning (docs/search.md).', SQLERRM;
            END;
        {{string.Join("\n", Replaced.Select(i => $"    DROP INDEX IF EXISTS \"{i}\";"))}}
        END
        $joblog$;
        """;

    /// <summary>How many of the indexes exist (in the ledger's schema).</summary>
    public static readonly string CountPresent = Count(Indexes.Select(i => i.Index));

    /// <summary>How many of the <see cref="Replaced"/> indexes are left (in the ledger's schema).</summary>
    public static readonly string CountReplaced = Count(Replaced);

    /// <summary>Drops the indexes (the migration's Down, and <c>SearchIndex = false</c>); the extension stays, other schemas may use it.</summary>
    public static readonly string Drop = string.Join("\n", Indexes.Select(i => i.Index).Concat(Replaced).Select(i => $"DROP INDEX IF EXISTS \"{i}\";"));

    private static string Count(IEnumerable<string> names) =>
        "SELECT COUNT(*)::int AS \"Value\" FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN ("
        + string.Join(", ", names.Select(i => "'" + i + "'")) + ")";

    // {0} is the ILIKE pattern of the whole text. The task part is the indexed expression and predicate, so that the
    // planner answers it from the index; the waiting tasks (not in it) from the state index.
    private const string Matching = $$"""
        SELECT t."Id" AS "Value" FROM "{{LedgerModel.Tasks}}" t WHERE t."State" <> 1 AND {{TaskText}} ILIKE {0} ESCAPE '\'
        UNION
        SELECT t."Id" AS "Value" FROM "{{LedgerModel.Tasks}}" t WHERE t."State" = 1 AND {{TaskText}} ILIKE {0} ESCAPE '\'
        UNION
        SELECT r."TaskId" AS "Value" FROM "{{LedgerModel.Runs}}" r WHERE r."ErrorMessage" ILIKE {0} ESCAPE '\'
        """;

    // {1} is the ILIKE pattern of the text's key: the only index condition (a GIN scan reads the whole posting list of
    // each trigram of its pattern, and the trigrams of an id's punctuation are in every row); the whole text ({0}) is
    // checked on the rows found, in a form no index serves (`|| ''`).
    private const string MatchingByKey = $$"""
        SELECT t."Id" AS "Value" FROM "{{LedgerModel.Tasks}}" t
            WHERE t."State" <> 1 AND {{TaskText}} ILIKE {1} ESCAPE '\' AND ({{TaskText}} || '') ILIKE {0} ESCAPE '\'
        UNION
        SELECT t."Id" AS "Value" FROM "{{LedgerModel.Tasks}}" t WHERE t."State" = 1 AND {{TaskText}} ILIKE {0} ESCAPE '\'
        UNION
        SELECT r."TaskId" AS "Value" FROM "{{LedgerModel.Runs}}" r
            WHERE r."ErrorMessage" ILIKE {1} ESCAPE '\' AND (r."ErrorMessage" || '') ILIKE {0} ESCAPE '\'
        """;

    /// <summary>
    /// The ids of the tasks whose <c>Input</c>, <c>TaskKwargs</c> or a run's <c>ErrorMessage</c> contains
    /// <paramref name="text"/> (case-insensitive), as a composable query answered from the indexes (looking up
    /// <paramref name="key"/> when there is one); <see langword="null"/> (scan the columns) for a text with a line feed,
    /// which could match across the two columns' joint in the index.
    /// </summary>
    public static IQueryable<Guid>? TasksContaining(JobLogDbContext db, string text, string? key)
    {
        if (text.Contains('\n', StringComparison.Ordinal))
        {
            return null;
        }

        var pattern = LedgerSql.LikePattern(text);
        return key is null
            ? db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(Matching, pattern))
            : db.Database.SqlQuery<Guid>(FormattableStringFactory.Create(MatchingByKey, pattern, LedgerSql.LikePattern(key)));
    }
}
