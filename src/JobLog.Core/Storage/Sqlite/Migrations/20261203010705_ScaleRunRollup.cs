using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <inheritdoc />
    internal partial class ScaleRunRollup : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "JobLogRunMinutes",
                columns: table => new
                {
                    Minute = table.Column<DateTime>(type: "TEXT", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 250, nullable: false),
                    Runs = table.Column<long>(type: "INTEGER", nullable: false),
                    TotalMilliseconds = table.Column<long>(type: "INTEGER", nullable: false),
                    MaxMilliseconds = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogRunMinutes", x => new { x.Minute, x.Name });
                });

            // The triggers that keep the run rollup exact, and the rollup of the runs already there (docs/scale.md).
            migrationBuilder.Sql(RunRollups.SqliteUp);

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_Name_State_DispatchedAt",
                table: "JobLogTasks",
                columns: new[] { "Name", "State", "DispatchedAt" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTaskRuns_QueueName_TaskId",
                table: "JobLogTaskRuns",
                columns: new[] { "QueueName", "TaskId" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(RunRollups.SqliteDown);

            migrationBuilder.DropTable(
                name: "JobLogRunMinutes");

            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_Name_State_DispatchedAt",
                table: "JobLogTasks");

            migrationBuilder.DropIndex(
                name: "IX_JobLogTaskRuns_QueueName_TaskId",
                table: "JobLogTaskRuns");
        }
    }
}
