using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <inheritdoc />
    internal partial class FailureResolution : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "Resolution",
                table: "JobLogTasks",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<DateTime>(
                name: "ResolvedAt",
                table: "JobLogTasks",
                type: "TEXT",
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_UnresolvedFailures",
                table: "JobLogTasks",
                column: "DispatchedAt",
                filter: "\"State\" = 4 AND \"Resolution\" IS NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_UnresolvedFailures",
                table: "JobLogTasks");

            migrationBuilder.DropColumn(
                name: "Resolution",
                table: "JobLogTasks");

            migrationBuilder.DropColumn(
                name: "ResolvedAt",
                table: "JobLogTasks");
        }
    }
}
