namespace JobLog.Storage.PostgreSql;

/// <summary>
/// The PostgreSQL ledger's side table of open runs (<c>JobLogOpenRuns</c>: run id, task id, host instance), the host
/// pass's and the hosts page's path to a host's ACTIVE runs, and the runs' <c>fillfactor</c> (docs/scale.md, "Session 33
/// (scale)"). The runs then have no index that names a column their finish changes (<c>State</c>, <c>Stop</c>,
/// <c>ErrorMessage</c>), so a run's finish (the sweeper's expiry, the host pass, the writer's end of a run started in an
/// earlier batch) is a HOT update: its new version goes on its page, no index entry moves.
/// </summary>
/// <remarks>
/// Kept by statement triggers over the runs' transition tables (one statement each per writer batch, whatever the path:
/// the writer, the sweeper, a restore, EF): a run written ACTIVE with a host instance enters it, a run updated out of
/// ACTIVE or deleted leaves it. A run started and finished in one writer batch is inserted final and never enters it. A
/// day partition's drop fires no trigger: the drop deletes its dropped runs' rows (<see cref="ForgetDay"/>, since session
/// 34), and the host pass forgets the rows of a gone host whose runs are not ACTIVE any more (<see cref="Forget"/>). SQLite keeps the partial index <c>IX_JobLogTaskRuns_HostInstanceId</c>: it has no HOT update,
/// and updates only the indexes whose columns change.
/// </remarks>
internal static class OpenRuns
{
    /// <summary>The side table's name.</summary>
    public const string Table = "JobLogOpenRuns";

    /// <summary>The runs' <c>fillfactor</c>: room on each page for a finished run's new version (a run row is ~0.3–2 KB).</summary>
    public const int FillFactor = 90;

    /// <summary>The storage clause of a runs table or partition made by JobLog (<see cref="FillFactor"/>).</summary>
    public static readonly string RunsStorage = $" WITH (fillfactor = {FillFactor})";

    /// <summary>The partial index the side table replaces (the model's on SQLite).</summary>
    public const string FormerIndex = "IX_JobLogTaskRuns_HostInstanceId";

    private const string O = "\"" + Table + "\"";
    private const string R = "\"" + LedgerModel.Runs + "\"";

    private const string Open = "\"State\" = 1 AND \"HostInstanceId\" IS NOT NULL";

    /// <summary>
    /// The host pass's claim (<c>@p0</c> the instance, <c>@p1</c> the batch size): that host's ACTIVE runs, locked, others'
    /// claims skipped.
    /// </summary>
    public const string Claim =
        $"SELECT r.\"Id\", r.\"TaskId\" FROM {O} o JOIN {R} r ON r.\"Id\" = o.\"RunId\" " +
        "WHERE o.\"HostInstanceId\" = @p0 AND r.\"State\" = 1 LIMIT @p1 FOR UPDATE OF r SKIP LOCKED";

    /// <summary>
    /// The host pass's read of the hosts to judge (<c>LedgerDatabase.HostsToJudge</c>): each instance with a row here, then
    /// its host row by its key (a lateral join, so that the hosts are never scanned whatever their number). An instance whose
    /// rows are left from a dropped day is read too, and its rows forgotten (<see cref="Forget"/>) once it is gone.
    /// </summary>
    public const string Hosts =
        "SELECT h.\"InstanceId\", h.\"Name\", h.\"ProcessId\", h.\"LastHeartbeat\", h.\"StoppedAt\" " +
        $"FROM (SELECT DISTINCT \"HostInstanceId\" FROM {O}) o CROSS JOIN LATERAL " +
        $"(SELECT * FROM \"{LedgerModel.Hosts}\" x WHERE x.\"InstanceId\" = o.\"HostInstanceId\") h";

    /// <summary>Deletes the rows of a host instance (<c>@p0</c>) whose run is gone or not ACTIVE (a dropped day's: no trigger fired).</summary>
    public const string Forget =
        $"DELETE FROM {O} o WHERE o.\"HostInstanceId\" = @p0 AND NOT EXISTS (SELECT 1 FROM {R} r WHERE r.\"Id\" = o.\"RunId\" AND r.\"State\" = 1)";

    /// <summary>
    /// After a day's drop (<c>LedgerPartitioning.DropExpiredAsync</c>, its transaction committed): deletes the rows of the
    /// day <c>{0}</c> whose run is gone, since a dropped partition fires no trigger. The kept runs (the day's <c>_k</c>
    /// partition) and a run of the day written since (a late task, in the default partition) are found by their id in
    /// that day and stay. A row and its run are written in one transaction (the trigger), so the statement's snapshot
    /// sees both or neither. The side table holds only open runs; its rows of the day are found by their task's day
    /// (<c>joblog_id_day</c>, the runs' partition key).
    /// </summary>
    public const string ForgetDay =
        $"DELETE FROM {O} o WHERE {Partitioning.PartitionDay.Function}(o.\"TaskId\") = {{0}} " +
        $"AND NOT EXISTS (SELECT 1 FROM {R} r WHERE r.\"Id\" = o.\"RunId\" AND r.\"{Partitioning.PartitionDay.Column}\" = {{0}});";

    /// <summary>The number of ACTIVE runs of each host instance (the hosts page): "Id", "Count".</summary>
    public const string ActiveByHost =
        $"SELECT o.\"HostInstanceId\" AS \"Id\", count(*)::int AS \"Count\" FROM {O} o JOIN {R} r ON r.\"Id\" = o.\"RunId\" " +
        "WHERE r.\"State\" = 1 GROUP BY o.\"HostInstanceId\"";

    /// <summary>Fills the side table from the runs (the migration's, and the bench's bulk fill with triggers off).</summary>
    public const string Fill =
        $"INSERT INTO {O} (\"RunId\", \"TaskId\", \"HostInstanceId\") SELECT \"Id\", \"TaskId\", \"HostInstanceId\" FROM {R} WHERE {Open} ON CONFLICT DO NOTHING";

    private const string Added =
        $"INSERT INTO {O} (\"RunId\", \"TaskId\", \"HostInstanceId\") SELECT \"Id\", \"TaskId\", \"HostInstanceId\" FROM new_rows WHERE {Open} ON CONFLICT DO NOTHING;";

    // An id array (an index probe each), not a join: the planner cannot size a transition table, and a hash join would read
    // the whole side table (a backlog's open runs) at every batch.
    private const string Removed = $"DELETE FROM {O} WHERE \"RunId\" = ANY (ARRAY(SELECT \"Id\" FROM {{0}} WHERE {{1}}));";

    /// <summary>
    /// The migration <c>ScaleHotRuns</c>'s <c>Up</c>: the side table filled from the runs, its triggers, the partial index
    /// dropped, and the runs' <see cref="FillFactor"/> (on every partition of a partitioned ledger: a partitioned table has
    /// no storage of its own). Pages already full get the room as they are rewritten; new partitions are made with it.
    /// </summary>
    public static readonly string Up = $$"""
        CREATE TABLE IF NOT EXISTS {{O}} ("RunId" uuid NOT NULL PRIMARY KEY, "TaskId" uuid NOT NULL, "HostInstanceId" uuid NOT NULL);
        CREATE INDEX IF NOT EXISTS "IX_{{Table}}_HostInstanceId" ON {{O}} ("HostInstanceId");
        {{Fill}};

        CREATE OR REPLACE FUNCTION joblog_open_runs_insert() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            {{Added}}
            RETURN NULL;
        END $body$;

        CREATE OR REPLACE FUNCTION joblog_open_runs_update() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            {{string.Format(System.Globalization.CultureInfo.InvariantCulture, Removed, "new_rows", "\"State\" <> 1")}}
            {{Added}}
            RETURN NULL;
        END $body$;

        CREATE OR REPLACE FUNCTION joblog_open_runs_delete() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            {{string.Format(System.Globalization.CultureInfo.InvariantCulture, Removed, "old_rows", "\"State\" = 1")}}
            RETURN NULL;
        END $body$;

        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Open_Insert" ON {{R}};
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Open_Update" ON {{R}};
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Open_Delete" ON {{R}};
        CREATE TRIGGER "JobLogTaskRuns_Open_Insert" AFTER INSERT ON {{R}}
            REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_open_runs_insert();
        CREATE TRIGGER "JobLogTaskRuns_Open_Update" AFTER UPDATE ON {{R}}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_open_runs_update();
        CREATE TRIGGER "JobLogTaskRuns_Open_Delete" AFTER DELETE ON {{R}}
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION joblog_open_runs_delete();

        DROP INDEX IF EXISTS "{{FormerIndex}}";
        {{SetFillFactor($"SET (fillfactor = {FillFactor})")}}
        """;

    /// <summary>The migration's <c>Down</c>: the partial index again, the side table and its triggers gone, the default fill.</summary>
    public static readonly string Down = $"""
        CREATE INDEX IF NOT EXISTS "{FormerIndex}" ON {R} ("HostInstanceId") WHERE {Open};
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Open_Insert" ON {R};
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Open_Update" ON {R};
        DROP TRIGGER IF EXISTS "JobLogTaskRuns_Open_Delete" ON {R};
        DROP FUNCTION IF EXISTS joblog_open_runs_insert();
        DROP FUNCTION IF EXISTS joblog_open_runs_update();
        DROP FUNCTION IF EXISTS joblog_open_runs_delete();
        DROP TABLE IF EXISTS {O};
        {SetFillFactor("RESET (fillfactor)")}
        """;

    // The runs table itself, or each of its partitions (and theirs: none today) when it is partitioned.
    private static string SetFillFactor(string action) => $$"""
        DO $fill$
        DECLARE part regclass;
        BEGIN
            IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('{{R}}')) = 'p' THEN
                FOR part IN SELECT relid FROM pg_partition_tree(to_regclass('{{R}}')) WHERE isleaf LOOP
                    EXECUTE format('ALTER TABLE %s {{action}}', part);
                END LOOP;
            ELSE
                ALTER TABLE {{R}} {{action}};
            END IF;
        END
        $fill$;
        """;
}
