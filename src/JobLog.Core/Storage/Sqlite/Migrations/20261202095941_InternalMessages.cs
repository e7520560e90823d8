using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <inheritdoc />
    internal partial class InternalMessages : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<bool>(
                name: "IsInternal",
                table: "JobLogTasks",
                type: "INTEGER",
                nullable: false,
                defaultValue: false);

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_IsInternal_State_DispatchedAt",
                table: "JobLogTasks",
                columns: new[] { "IsInternal", "State", "DispatchedAt" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_IsInternal_State_DispatchedAt",
                table: "JobLogTasks");

            migrationBuilder.DropColumn(
                name: "IsInternal",
                table: "JobLogTasks");
        }
    }
}
