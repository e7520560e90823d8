using JobLog.Storage;

namespace JobLog.Querying;

/// <summary>
/// The group of each open failure under each grouping, kept on its task row (shadow columns, not on <see cref="TaskLog"/>),
/// so that one group's page is one range of an index and the groups list one aggregation over it, instead of reading the
/// error text of the newest 10,000 failures and grouping them in memory on every request (docs/scale.md "Session 13
/// (failgroup)"). The ids are those <see cref="JobLog.Failures.FailureGroupKey.Hash"/> gives for the same failure, from the
/// same text (<see cref="LedgerQueries.FillFailureGroupsAsync(CancellationToken)"/>). <see cref="At"/> is the failure time they were computed
/// for: a task that fails again (a later run, a retry that fails) has a new failure time, so its groups are read as not
/// computed yet and computed again, whichever code wrote the new run: no writer, sweeper or purge needs to know.
/// </summary>
internal static class FailureGroupColumns
{
    public const string Exception = "FailureGroupException";
    public const string Type = "FailureGroupType";
    public const string Queue = "FailureGroupQueue";
    public const string At = "FailureGroupAt";

    private const string T = "\"" + LedgerModel.Tasks + "\"";
    private const string FailedAt = "COALESCE(\"Stop\", \"DispatchedAt\")";
    private const string Open = "\"State\" = 4 AND \"Resolution\" IS NULL";

    /// <summary>An open failure whose groups are missing or were computed for another failure time.</summary>
    public const string Unfilled = Open + " AND (\"" + At + "\" IS NULL OR \"" + At + "\" <> " + FailedAt + ")";

    /// <summary>The partial index of the open failures still to fill (<see cref="Unfilled"/>): normally empty.</summary>
    public const string UnfilledIndex = "IX_JobLogTasks_FailureGroupUnfilled";

    /// <summary>
    /// The open failures still to fill (<see cref="Unfilled"/>, word for word the index's filter), at most
    /// <paramref name="limit"/>, read before every failures page. SQLite is told to walk the (normally empty) partial index:
    /// its planner prefers a search of the State index to a scan of a partial index, and at 10 M tasks read the 100,000
    /// failed tasks' rows for nothing (420–780 ms twice a group's page; docs/scale.md "Session 16 (lead)").
    /// </summary>
    public static string SelectUnfilled(LedgerDatabase database, int limit) =>
        "SELECT \"Id\" AS \"Value\" FROM " + T + database.IndexedBy(UnfilledIndex) + " WHERE " + Unfilled + " LIMIT " +
        limit.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Writes one task's groups, unless its failure time changed since it was read (@p4: a later failure is filled next time).
    /// </summary>
    public const string Fill =
        "UPDATE " + T + " SET \"" + Exception + "\" = @p1, \"" + Type + "\" = @p2, \"" + Queue + "\" = @p3, \"" + At + "\" = " + FailedAt +
        " WHERE \"Id\" = @p0 AND " + FailedAt + " = @p4";

    /// <summary>
    /// <see cref="Fill"/> for a whole batch in one statement (PostgreSQL: arrays @p0 ids, @p1–@p3 groups, @p4 failure
    /// times). One UPDATE by id a row costs a plan over every day partition on a partitioned ledger: 9,000 rows took
    /// 170 s at 1 M tasks, load 20–27. The rows are claimed first, in id order, skipping those another transaction holds
    /// (a writer's or the sweeper's batch: filled by a later read), so the fill never waits on a task row while holding
    /// others, which was a deadlock with a batch that wanted them (<c>FailureLockTests</c>). Returns the table (a day
    /// partition on a partitioned ledger) of each row written, for <see cref="Analyze"/>.
    /// </summary>
    public const string FillMany =
        "WITH c AS (SELECT \"Id\" FROM " + T + " WHERE \"Id\" = ANY(@p0::uuid[]) ORDER BY \"Id\" FOR UPDATE SKIP LOCKED) " +
        "UPDATE " + T + " AS t SET \"" + Exception + "\" = u.e, \"" + Type + "\" = u.y, \"" + Queue + "\" = u.q, \"" + At + "\" = COALESCE(t.\"Stop\", t.\"DispatchedAt\") " +
        "FROM unnest(@p0::uuid[], @p1::text[], @p2::text[], @p3::text[], @p4::timestamptz[]) AS u(id, e, y, q, a) JOIN c ON c.\"Id\" = u.id " +
        "WHERE t.\"Id\" = u.id AND COALESCE(t.\"Stop\", t.\"DispatchedAt\") = u.a " +
        "RETURNING t.tableoid::regclass::text";

    /// <summary>
    /// The statistics of the group columns of one table (<paramref name="table"/>: as <see cref="FillMany"/> returns it,
    /// quoted where needed) taken again (PostgreSQL). A fill of many groups at once (a bulk load, a ledger from before the
    /// columns) changes a few percent of a table's rows, under autovacuum's analyze threshold, which never analyzes a
    /// partitioned parent anyway: the planner kept believing the columns empty, planned a group's page as one row a day
    /// partition and sorted all of them, 164.8 ms at 10 M tasks against 78 ms after an ANALYZE (docs/scale.md "Session 42 (scale)").
    /// </summary>
    public static string Analyze(string table) => $"ANALYZE {table} (\"{Exception}\", \"{Type}\", \"{Queue}\", \"{At}\")";

    /// <summary>
    /// The longest the fill waits for a lock (PostgreSQL, its transaction's <c>lock_timeout</c>): the group counts its
    /// trigger updates, held by a writer's batch for its few milliseconds. Shorter than PostgreSQL's deadlock check
    /// (<c>deadlock_timeout</c>, 1 s by default), so in a cycle with a batch it is the fill that gives up, never the
    /// batch that is aborted.
    /// </summary>
    public const string FillLockTimeout = "SET LOCAL lock_timeout = '200ms'";

    /// <summary>
    /// The indexes (both databases; the migration <c>FailgroupFailureGroups</c> runs this SQL: a change to it is a new migration): per grouping, an open failure's group then its failure time, newest first, as the
    /// pages read them (the kind last, so the default <c>internal</c> filter needs no row); and the few to fill.
    /// </summary>
    public static readonly string CreateIndexes = string.Concat(new[] { Exception, Type, Queue }.Select(c =>
        $"CREATE INDEX IF NOT EXISTS \"IX_JobLogTasks_{c}\" ON {T} (\"{c}\", {FailedAt} DESC, \"Id\" DESC, \"IsInternal\") WHERE {Open};\n"))
        + $"CREATE INDEX IF NOT EXISTS \"{UnfilledIndex}\" ON {T} (\"Id\") WHERE {Unfilled};\n";

    public static readonly string DropIndexes = string.Concat(new[] { Exception, Type, Queue, "FailureGroupUnfilled" }.Select(c =>
        $"DROP INDEX IF EXISTS \"IX_JobLogTasks_{c}\";\n"));

    /// <summary>The column of a grouping.</summary>
    public static string Of(Failures.FailureGrouping by) => by switch
    {
        Failures.FailureGrouping.Type => Type,
        Failures.FailureGrouping.Queue => Queue,
        _ => Exception,
    };
}
