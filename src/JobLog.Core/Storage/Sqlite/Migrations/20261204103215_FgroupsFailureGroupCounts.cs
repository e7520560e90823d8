using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <summary>
    /// The open failures counted per group (<see cref="FailureGroupRollup"/>): the table, the triggers on the tasks that
    /// keep it, and the counts of the failures already grouped (the start-up's fill moves the rest in).
    /// </summary>
    internal partial class FgroupsFailureGroupCounts : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "JobLogFailureGroups",
                columns: table => new
                {
                    Grouping = table.Column<int>(type: "INTEGER", nullable: false),
                    GroupId = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    IsInternal = table.Column<bool>(type: "INTEGER", nullable: false),
                    Count = table.Column<long>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogFailureGroups", x => new { x.Grouping, x.GroupId, x.IsInternal });
                });

            migrationBuilder.Sql(FailureGroupRollup.SqliteUp);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(FailureGroupRollup.SqliteDown);

            migrationBuilder.DropTable(
                name: "JobLogFailureGroups");
        }
    }
}
