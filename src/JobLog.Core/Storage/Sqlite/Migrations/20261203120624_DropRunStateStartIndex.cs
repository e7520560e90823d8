using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <inheritdoc />
    internal partial class DropRunStateStartIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Read by no query (docs/benchmarks.md, "Session 9 (sqlcpu)"); IF EXISTS: a ledger whose owner dropped it already.
            migrationBuilder.Sql("DROP INDEX IF EXISTS \"IX_JobLogTaskRuns_State_Start\";");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "IX_JobLogTaskRuns_State_Start",
                table: "JobLogTaskRuns",
                columns: new[] { "State", "Start" });
        }
    }
}
