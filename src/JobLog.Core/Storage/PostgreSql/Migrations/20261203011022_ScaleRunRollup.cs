using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
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
                    Minute = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    Name = table.Column<string>(type: "character varying(250)", maxLength: 250, nullable: false),
                    Runs = table.Column<long>(type: "bigint", nullable: false),
                    TotalMilliseconds = table.Column<long>(type: "bigint", nullable: false),
                    MaxMilliseconds = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogRunMinutes", x => new { x.Minute, x.Name });
                });

            // The triggers that keep the run rollup exact, and the rollup of the runs already there (docs/scale.md).
            migrationBuilder.Sql(RunRollups.PostgreSqlUp);

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
            // On a partitioned ledger the minute rollup is a view the partitioning made (docs/scale.md "Session 10 (part)").
            migrationBuilder.Sql(Partitioning.PartitionedMigrations.RefuseDown("ScaleRunRollup"));

            migrationBuilder.Sql(RunRollups.PostgreSqlDown);

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
