using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <inheritdoc />
    internal partial class TaskSearchIndexes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_ConversationId",
                table: "JobLogTasks",
                column: "ConversationId",
                filter: "\"ConversationId\" IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_CorrelationId",
                table: "JobLogTasks",
                column: "CorrelationId",
                filter: "\"CorrelationId\" IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_TraceId",
                table: "JobLogTasks",
                column: "TraceId",
                filter: "\"TraceId\" IS NOT NULL");

            // The text search's index (docs/search.md).
            migrationBuilder.Sql(JobLog.Storage.PostgreSql.PostgreSqlSearch.FormerCreate);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(JobLog.Storage.PostgreSql.PostgreSqlSearch.FormerDrop);

            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_ConversationId",
                table: "JobLogTasks");

            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_CorrelationId",
                table: "JobLogTasks");

            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_TraceId",
                table: "JobLogTasks");
        }
    }
}
