using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <inheritdoc />
    internal partial class Scheduler : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "JobLogScheduledMessages",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    MessageId = table.Column<Guid>(type: "TEXT", nullable: true),
                    MessageType = table.Column<string>(type: "TEXT", maxLength: 1000, nullable: true),
                    Destination = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: false),
                    ScheduledTime = table.Column<DateTime>(type: "TEXT", nullable: false),
                    ContentType = table.Column<string>(type: "TEXT", maxLength: 250, nullable: false),
                    Body = table.Column<byte[]>(type: "BLOB", nullable: true),
                    State = table.Column<int>(type: "INTEGER", nullable: false),
                    CreatedAt = table.Column<DateTime>(type: "TEXT", nullable: false),
                    SentAt = table.Column<DateTime>(type: "TEXT", nullable: true),
                    CancelledAt = table.Column<DateTime>(type: "TEXT", nullable: true),
                    Attempts = table.Column<int>(type: "INTEGER", nullable: false),
                    LastError = table.Column<string>(type: "TEXT", nullable: true),
                    ClaimToken = table.Column<Guid>(type: "TEXT", nullable: true),
                    ClaimedUntil = table.Column<DateTime>(type: "TEXT", nullable: true),
                    Host = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true),
                    SentBy = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogScheduledMessages", x => x.Id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogScheduledMessages_MessageId",
                table: "JobLogScheduledMessages",
                column: "MessageId");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogScheduledMessages_State_ClaimedUntil",
                table: "JobLogScheduledMessages",
                columns: new[] { "State", "ClaimedUntil" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogScheduledMessages_State_ScheduledTime",
                table: "JobLogScheduledMessages",
                columns: new[] { "State", "ScheduledTime" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "JobLogScheduledMessages");
        }
    }
}
