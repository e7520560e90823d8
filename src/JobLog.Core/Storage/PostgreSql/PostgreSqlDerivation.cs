namespace JobLog.Storage.PostgreSql;

/// <summary>
/// PostgreSQL's derivation of a task <c>t</c> in one read of its runs: the same state, start and stop as
/// <see cref="LedgerSql.DerivedColumns"/> (each consumer's latest run by <c>Retries</c>, every run's start), where
/// those three sub-queries and their two nested latest-run look-ups descend the runs' <c>TaskId</c> index five times
/// a task. The sweep's claimed tasks (1,000 stale tasks of the 1 M ledger: 17,567 buffer hits against 5,567,
/// docs/scale.md, "Session 12 (pgsweep2)") and the writer's derivation at the end of each batch
/// (<see cref="PostgreSqlStatements.DeriveTasksIfChanged"/>: a sixth of the server's CPU per message less,
/// docs/benchmarks.md, "Session 14 (pgcpu)") read it so. SQLite keeps the sub-queries, whose plan its sweep was tuned for.
/// </summary>
internal static class PostgreSqlDerivation
{
    private const string R = LedgerSql.R;

    /// <summary>The runs' aggregate over the rows that <paramref name="ofTask"/> (on the alias <c>r</c>) selects.</summary>
    public static string Runs(string ofTask) =>
        "SELECT MIN(CASE l.\"State\" WHEN 1 THEN 1 WHEN 4 THEN 2 WHEN 3 THEN 3 WHEN 5 THEN 4 WHEN 6 THEN 5 ELSE 6 END) FILTER (WHERE l.latest) AS code, " +
        "MIN(l.\"Start\") AS dstart, COUNT(*) FILTER (WHERE l.latest) AS n, COUNT(l.\"Stop\") FILTER (WHERE l.latest) AS nstop, " +
        "MAX(l.\"Stop\") FILTER (WHERE l.latest) AS maxstop FROM (SELECT r.\"State\", r.\"Start\", r.\"Stop\", " +
        $"r.\"Retries\" = MAX(r.\"Retries\") OVER (PARTITION BY r.\"ConsumerType\") AS latest FROM {R} r WHERE {ofTask}) l";

    /// <summary>The derived <c>dstate</c>, <c>dstart</c>, <c>dstop</c> from <see cref="Runs"/> as <c>x</c>.</summary>
    public const string Columns =
        "CASE x.code WHEN 1 THEN 2 WHEN 2 THEN 5 WHEN 3 THEN 4 WHEN 4 THEN 6 WHEN 5 THEN 7 WHEN 6 THEN 3 ELSE 1 END AS dstate, " +
        "x.dstart, CASE WHEN x.n = x.nstop THEN x.maxstop END AS dstop";
}
