using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <summary>
    /// HOT run updates (session 33, docs/scale.md): the host pass's partial index <c>IX_JobLogTaskRuns_HostInstanceId</c>
    /// (whose <c>State</c> predicate made every finish of a run move an index entry) gives way to the side table of open
    /// runs <c>JobLogOpenRuns</c>, filled from the ACTIVE runs already recorded and kept by statement triggers; the runs get
    /// <c>fillfactor</c> 90 (each partition of a partitioned ledger). On an existing ledger: the side table is filled by one
    /// read of the ACTIVE runs through the index it replaces, then the index is dropped; the fill factor applies to pages
    /// written from now on.
    /// </summary>
    internal partial class ScaleHotRuns : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder) => migrationBuilder.Sql(OpenRuns.Up);

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder) => migrationBuilder.Sql(OpenRuns.Down);
    }
}
