using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <inheritdoc />
    internal partial class PartialIndexes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_ParentRunId",
                table: "JobLogTasks");

            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_State_Stale",
                table: "JobLogTasks");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_ParentRunId",
                table: "JobLogTasks",
                column: "ParentRunId",
                filter: "\"ParentRunId\" IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_Unfinished_Stale",
                table: "JobLogTasks",
                column: "Stale",
                filter: "\"State\" IN (1, 2, 5) AND \"IsSetAsStale\" = FALSE AND \"Stale\" IS NOT NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_ParentRunId",
                table: "JobLogTasks");

            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_Unfinished_Stale",
                table: "JobLogTasks");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_ParentRunId",
                table: "JobLogTasks",
                column: "ParentRunId");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_State_Stale",
                table: "JobLogTasks",
                columns: new[] { "State", "Stale" });
        }
    }
}
