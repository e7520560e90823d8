using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <summary>
    /// The finished runs by start hour (<see cref="RunRollups.Hours"/>) for the overview's day window: the table, the run
    /// rollup triggers that keep it too (replacing <c>ScaleRunRollup</c>'s), and its rows from the minutes.
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
                    Hour = table.Column<DateTime>(type: "TEXT", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 250, nullable: false),
                    Runs = table.Column<long>(type: "INTEGER", nullable: false),
                    TotalMilliseconds = table.Column<long>(type: "INTEGER", nullable: false),
                    MaxMilliseconds = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogRunHours", x => new { x.Hour, x.Name });
                });

            migrationBuilder.Sql(RunRollups.SqliteHoursUp);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(RunRollups.SqliteHoursDown);

            migrationBuilder.DropTable(
                name: "JobLogRunHours");
        }
    }
}
