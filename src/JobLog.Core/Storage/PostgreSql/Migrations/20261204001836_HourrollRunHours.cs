using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <summary>
    /// The finished runs by start hour (<see cref="RunRollups.Hours"/>) for the overview's day window: the table, the run
    /// rollup trigger functions that keep it where the minute rollup is a table, and its rows from the minutes. On a
    /// partitioned ledger the start-up makes it a view over the day hours instead (<see cref="Partitioning.DayRollups.AddHours"/>).
    /// </summary>
    internal partial class HourrollRunHours : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "JobLogRunHours",
                columns: table => new
                {
                    Hour = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    Name = table.Column<string>(type: "character varying(250)", maxLength: 250, nullable: false),
                    Runs = table.Column<long>(type: "bigint", nullable: false),
                    TotalMilliseconds = table.Column<long>(type: "bigint", nullable: false),
                    MaxMilliseconds = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogRunHours", x => new { x.Hour, x.Name });
                });

            migrationBuilder.Sql(RunRollups.PostgreSqlHoursUp);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(Partitioning.PartitionedMigrations.RefuseDown("HourrollRunHours"));
            migrationBuilder.Sql(RunRollups.PostgreSqlHoursDown);

            migrationBuilder.DropTable(
                name: "JobLogRunHours");
        }
    }
}
