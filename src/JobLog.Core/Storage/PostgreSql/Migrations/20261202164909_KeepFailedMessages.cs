using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <inheritdoc />
    internal partial class KeepFailedMessages : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "JobLogFailureActionItems",
                columns: table => new
                {
                    ActionId = table.Column<Guid>(type: "uuid", nullable: false),
                    TaskId = table.Column<Guid>(type: "uuid", nullable: false),
                    State = table.Column<int>(type: "integer", nullable: false),
                    KeptMessageId = table.Column<Guid>(type: "uuid", nullable: true),
                    ClaimedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: true),
                    DoneAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: true),
                    Reason = table.Column<string>(type: "text", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogFailureActionItems", x => new { x.ActionId, x.TaskId });
                });

            migrationBuilder.CreateTable(
                name: "JobLogFailureActions",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    Kind = table.Column<int>(type: "integer", nullable: false),
                    RequestedBy = table.Column<string>(type: "character varying(250)", maxLength: 250, nullable: false),
                    RequestedAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    Count = table.Column<int>(type: "integer", nullable: false),
                    Skipped = table.Column<int>(type: "integer", nullable: false),
                    Note = table.Column<string>(type: "text", nullable: true),
                    Selection = table.Column<string>(type: "character varying(2000)", maxLength: 2000, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogFailureActions", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "JobLogKeptMessages",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    TaskId = table.Column<Guid>(type: "uuid", nullable: false),
                    ConsumerType = table.Column<string>(type: "character varying(250)", maxLength: 250, nullable: false),
                    InputAddress = table.Column<string>(type: "character varying(2000)", maxLength: 2000, nullable: false),
                    ContentType = table.Column<string>(type: "character varying(250)", maxLength: 250, nullable: true),
                    ExceptionType = table.Column<string>(type: "character varying(250)", maxLength: 250, nullable: true),
                    ExceptionMessage = table.Column<string>(type: "text", nullable: true),
                    KeptAt = table.Column<DateTime>(type: "timestamp with time zone", nullable: false),
                    BodyLength = table.Column<int>(type: "integer", nullable: false),
                    Protected = table.Column<byte[]>(type: "bytea", nullable: true),
                    TooLarge = table.Column<bool>(type: "boolean", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogKeptMessages", x => x.Id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogFailureActionItems_RetryInProgress",
                table: "JobLogFailureActionItems",
                column: "TaskId",
                unique: true,
                filter: "\"State\" IN (0, 1)");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogFailureActionItems_State_ClaimedAt",
                table: "JobLogFailureActionItems",
                columns: new[] { "State", "ClaimedAt" },
                filter: "\"State\" IN (0, 1)");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogFailureActionItems_TaskId",
                table: "JobLogFailureActionItems",
                column: "TaskId");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogFailureActions_RequestedAt",
                table: "JobLogFailureActions",
                column: "RequestedAt");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogKeptMessages_KeptAt",
                table: "JobLogKeptMessages",
                column: "KeptAt");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogKeptMessages_TaskId_KeptAt",
                table: "JobLogKeptMessages",
                columns: new[] { "TaskId", "KeptAt" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "JobLogFailureActionItems");

            migrationBuilder.DropTable(
                name: "JobLogFailureActions");

            migrationBuilder.DropTable(
                name: "JobLogKeptMessages");
        }
    }
}
