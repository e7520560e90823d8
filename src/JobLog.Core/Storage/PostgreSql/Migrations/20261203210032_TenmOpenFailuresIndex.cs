using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <inheritdoc />
    internal partial class TenmOpenFailuresIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // The failures pages read the newest open failures by the time they failed (LedgerQueries.OpenFailuresQuery):
            // without this index every open failure is read and sorted (100,000 at 10 M tasks; docs/scale.md "Session 12
            // (tenm)"). An expression, so raw SQL (not in the model); a partitioned ledger builds it on every partition
            // and keeps it through a conversion (LedgerPartitioning reads the indexes from the catalog). PostgreSQL only:
            // SQLite's planner keeps its (State, DispatchedAt) search and sorts with such an index in place.
            migrationBuilder.Sql(
                "CREATE INDEX IF NOT EXISTS \"IX_JobLogTasks_OpenFailures_FailedAt\" ON \"JobLogTasks\" " +
                "(COALESCE(\"Stop\", \"DispatchedAt\") DESC, \"Id\" DESC) WHERE \"State\" = 4 AND \"Resolution\" IS NULL;");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP INDEX IF EXISTS \"IX_JobLogTasks_OpenFailures_FailedAt\";");
        }
    }
}
