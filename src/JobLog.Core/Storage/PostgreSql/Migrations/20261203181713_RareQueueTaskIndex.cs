using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <inheritdoc />
    internal partial class RareQueueTaskIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // A rare queue's tasks are listed from this index and the runs' (QueueName, TaskId) before the page is read by id:
            // the filter's walk of the newest tasks read every task for a queue with five runs (docs/scale.md, "Session 11
            // (lead)"). Takes the place of (IsInternal, State, DispatchedAt), dropped by SqlwriterTaskIndexes.
            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_QueueName_DispatchedAt",
                table: "JobLogTasks",
                columns: new[] { "QueueName", "DispatchedAt" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_QueueName_DispatchedAt",
                table: "JobLogTasks");
        }
    }
}
