using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <inheritdoc />
    internal partial class TaskInputRequest : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<Guid>(
                name: "InputRequestId",
                table: "JobLogTasks",
                type: "TEXT",
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_InputRequestId",
                table: "JobLogTasks",
                column: "InputRequestId",
                filter: "\"InputRequestId\" IS NOT NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_InputRequestId",
                table: "JobLogTasks");

            migrationBuilder.DropColumn(
                name: "InputRequestId",
                table: "JobLogTasks");
        }
    }
}
