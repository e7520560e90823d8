using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <inheritdoc />
    internal partial class Hosts : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<Guid>(
                name: "HostInstanceId",
                table: "JobLogTaskRuns",
                type: "TEXT",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "JobLogHosts",
                columns: table => new
                {
                    InstanceId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 250, nullable: false),
                    ProcessId = table.Column<int>(type: "INTEGER", nullable: false),
                    Release = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true),
                    StartedAt = table.Column<DateTime>(type: "TEXT", nullable: false),
                    LastHeartbeat = table.Column<DateTime>(type: "TEXT", nullable: false),
                    StoppedAt = table.Column<DateTime>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogHosts", x => x.InstanceId);
                });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTaskRuns_HostInstanceId",
                table: "JobLogTaskRuns",
                column: "HostInstanceId",
                filter: "\"State\" = 1 AND \"HostInstanceId\" IS NOT NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "JobLogHosts");

            migrationBuilder.DropIndex(
                name: "IX_JobLogTaskRuns_HostInstanceId",
                table: "JobLogTaskRuns");

            migrationBuilder.DropColumn(
                name: "HostInstanceId",
                table: "JobLogTaskRuns");
        }
    }
}
