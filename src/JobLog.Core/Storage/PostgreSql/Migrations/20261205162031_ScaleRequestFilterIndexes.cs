using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <inheritdoc />
    internal partial class ScaleRequestFilterIndexes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "IX_JobLogOutputRequests_Host_RequestTimestamp",
                table: "JobLogOutputRequests",
                columns: new[] { "Host", "RequestTimestamp" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogOutputRequests_Method_RequestTimestamp",
                table: "JobLogOutputRequests",
                columns: new[] { "Method", "RequestTimestamp" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogInputRequests_Host_RequestTimestamp",
                table: "JobLogInputRequests",
                columns: new[] { "Host", "RequestTimestamp" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogInputRequests_Method_RequestTimestamp",
                table: "JobLogInputRequests",
                columns: new[] { "Method", "RequestTimestamp" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogInputRequests_UserId_RequestTimestamp",
                table: "JobLogInputRequests",
                columns: new[] { "UserId", "RequestTimestamp" },
                filter: "\"UserId\" IS NOT NULL");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogCommands_IsSuccessful_Start",
                table: "JobLogCommands",
                columns: new[] { "IsSuccessful", "Start" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_JobLogOutputRequests_Host_RequestTimestamp",
                table: "JobLogOutputRequests");

            migrationBuilder.DropIndex(
                name: "IX_JobLogOutputRequests_Method_RequestTimestamp",
                table: "JobLogOutputRequests");

            migrationBuilder.DropIndex(
                name: "IX_JobLogInputRequests_Host_RequestTimestamp",
                table: "JobLogInputRequests");

            migrationBuilder.DropIndex(
                name: "IX_JobLogInputRequests_Method_RequestTimestamp",
                table: "JobLogInputRequests");

            migrationBuilder.DropIndex(
                name: "IX_JobLogInputRequests_UserId_RequestTimestamp",
                table: "JobLogInputRequests");

            migrationBuilder.DropIndex(
                name: "IX_JobLogCommands_IsSuccessful_Start",
                table: "JobLogCommands");
        }
    }
}
