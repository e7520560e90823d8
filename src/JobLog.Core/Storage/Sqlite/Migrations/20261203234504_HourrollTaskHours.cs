using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <summary>
    /// The tasks by hour (<see cref="LedgerRollups.Hours"/>) for the overview's day window: the table, the rollup triggers
    /// that keep it too (replacing <c>ScaleTaskRollups</c>'s), and its rows from the minutes.
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
                    Hour = table.Column<DateTime>(type: "TEXT", nullable: false),
                    State = table.Column<int>(type: "INTEGER", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 250, nullable: false),
                    IsInternal = table.Column<bool>(type: "INTEGER", nullable: false),
                    Count = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogTaskHours", x => new { x.Hour, x.State, x.Name, x.IsInternal });
                });

            migrationBuilder.Sql(LedgerRollups.SqliteHoursUp);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(LedgerRollups.SqliteHoursDown);

            migrationBuilder.DropTable(
                name: "JobLogTaskHours");
        }
    }
}
