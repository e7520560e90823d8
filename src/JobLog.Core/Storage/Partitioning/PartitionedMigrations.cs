namespace JobLog.Storage.Partitioning;

/// <summary>The PostgreSQL migrations' <c>Down</c> on a ledger the partitioning changed after them.</summary>
internal static class PartitionedMigrations
{
    /// <summary>
    /// SQL that stops the <c>Down</c> of <paramref name="migration"/> on a partitioned ledger with a message. Since session 9
    /// the minute rollups the rollup migrations created are views there, over day rollups whose triggers (the partitioning's,
    /// not a migration's) also write the task counts: the migrations' <c>DropTable</c> fails on a view, and without the
    /// counts every write of tasks would fail. JobLog never reverts a migration itself (only <c>dotnet ef database update</c>
    /// to an earlier migration, or a script, does); a partitioned ledger has no way back to the unpartitioned schema.
    /// </summary>
    /// <param name="migration">The migration's name, for the message.</param>
    /// <returns>A <c>DO</c> block that raises when the tasks table is partitioned, and does nothing otherwise.</returns>
    public static string RefuseDown(string migration) => $$"""
        DO $refuse$
        BEGIN
            IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('"{{LedgerModel.Tasks}}"')) = 'p' THEN
                -- All in the message: Npgsql leaves a DETAIL out of its exception unless the connection string asks for it.
                RAISE EXCEPTION 'JobLog: the migration {{migration}} cannot be reverted on a partitioned ledger: its minute rollups are views over the day rollups, whose triggers write the task counts, and reverting would drop what every write of tasks needs. JobLog cannot take a ledger back from partitioning: restore a backup taken before it, or keep this migration.';
            END IF;
        END
        $refuse$;
        """;
}
