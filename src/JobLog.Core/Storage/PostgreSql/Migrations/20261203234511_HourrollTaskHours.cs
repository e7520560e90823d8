using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <summary>
    /// The tasks by hour (<see cref="LedgerRollups.Hours"/>) for the overview's day window: the table, the rollup trigger
    /// functions that keep it where the minute rollup is a table, and its rows from the minutes. On a partitioned ledger
    /// the start-up makes it a view over the day hours instead (<see cref="Partitioning.DayRollups.AddHours"/>).
    /// </summary>
    internal partial class HourrollTaskHours : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "JobLogTaskHours",
                columns: table => new
                {
                    Hour = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    State = table.Column<int>(type: "integer", nullable: false),
                    Name = table.Column<string>(type: "character varying(250)", maxLength: 250, nullable: false),
                    IsInternal = table.Column<bool>(type: "boolean", nullable: false),
                    Count = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogTaskHours", x => new { x.Hour, x.State, x.Name, x.IsInternal });
                });

            migrationBuilder.Sql(LedgerRollups.PostgreSqlHoursUp);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(Partitioning.PartitionedMigrations.RefuseDown("HourrollTaskHours"));
            migrationBuilder.Sql(LedgerRollups.PostgreSqlHoursDown);

            migrationBuilder.DropTable(
                name: "JobLogTaskHours");
        }
    }
}
