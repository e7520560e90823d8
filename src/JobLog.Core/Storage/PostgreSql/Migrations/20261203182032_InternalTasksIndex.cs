using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <inheritdoc />
    internal partial class InternalTasksIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_Internal_DispatchedAt",
                table: "JobLogTasks",
                column: "DispatchedAt",
                filter: "\"IsInternal\"");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_Internal_DispatchedAt",
                table: "JobLogTasks");
        }
    }
}
