using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
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
                    State = table.Column<int>(type: "INTEGER", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 250, nullable: false),
                    IsInternal = table.Column<bool>(type: "INTEGER", nullable: false),
                    Count = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogTaskCounts", x => new { x.State, x.Name, x.IsInternal });
                });

            migrationBuilder.CreateTable(
                name: "JobLogTaskMinutes",
                columns: table => new
                {
                    Minute = table.Column<DateTime>(type: "TEXT", nullable: false),
                    State = table.Column<int>(type: "INTEGER", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 250, nullable: false),
                    IsInternal = table.Column<bool>(type: "INTEGER", nullable: false),
                    Count = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogTaskMinutes", x => new { x.Minute, x.State, x.Name, x.IsInternal });
                });

            // The triggers that keep the rollups exact, and the rollups of the rows already there (docs/architecture.md#rollups).
            migrationBuilder.Sql(LedgerRollups.SqliteUp);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(LedgerRollups.SqliteDown);

            migrationBuilder.DropTable(
                name: "JobLogTaskCounts");

            migrationBuilder.DropTable(
                name: "JobLogTaskMinutes");
        }
    }
}
