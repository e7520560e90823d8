using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <inheritdoc />
    internal partial class ScaleTaskRollups : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "JobLogTaskCounts",
                columns: table => new
                {
                    State = table.Column<int>(type: "integer", nullable: false),
                    Name = table.Column<string>(type: "character varying(250)", maxLength: 250, nullable: false),
                    IsInternal = table.Column<bool>(type: "boolean", nullable: false),
                    Count = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogTaskCounts", x => new { x.State, x.Name, x.IsInternal });
                });

            migrationBuilder.CreateTable(
                name: "JobLogTaskMinutes",
                columns: table => new
                {
                    Minute = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    State = table.Column<int>(type: "integer", nullable: false),
                    Name = table.Column<string>(type: "character varying(250)", maxLength: 250, nullable: false),
                    IsInternal = table.Column<bool>(type: "boolean", nullable: false),
                    Count = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogTaskMinutes", x => new { x.Minute, x.State, x.Name, x.IsInternal });
                });

            // The triggers that keep the rollups exact, and the rollups of the rows already there (docs/architecture.md#rollups).
            migrationBuilder.Sql(LedgerRollups.PostgreSqlUp);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            // On a partitioned ledger the minute rollup is a view the partitioning made (docs/scale.md "Session 10 (part)").
            migrationBuilder.Sql(Partitioning.PartitionedMigrations.RefuseDown("ScaleTaskRollups"));

            migrationBuilder.Sql(LedgerRollups.PostgreSqlDown);

            migrationBuilder.DropTable(
                name: "JobLogTaskCounts");

            migrationBuilder.DropTable(
                name: "JobLogTaskMinutes");
        }
    }
}
