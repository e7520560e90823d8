using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
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
                    Grouping = table.Column<int>(type: "integer", nullable: false),
                    GroupId = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    IsInternal = table.Column<bool>(type: "boolean", nullable: false),
                    Count = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogFailureGroups", x => new { x.Grouping, x.GroupId, x.IsInternal });
                });

            migrationBuilder.Sql(FailureGroupRollup.PostgreSqlUp);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(FailureGroupRollup.PostgreSqlDown);

            migrationBuilder.DropTable(
                name: "JobLogFailureGroups");
        }
    }
}
