using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <inheritdoc />
    internal partial class Initial : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "JobLogCommands",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 250, nullable: false),
                    Input = table.Column<string>(type: "TEXT", nullable: true),
                    ExecutedFromCommandLine = table.Column<bool>(type: "INTEGER", nullable: false),
                    Start = table.Column<DateTime>(type: "TEXT", nullable: false),
                    Stop = table.Column<DateTime>(type: "TEXT", nullable: true),
                    Output = table.Column<string>(type: "TEXT", nullable: true),
                    IsSuccessful = table.Column<bool>(type: "INTEGER", nullable: true),
                    ErrorMessage = table.Column<string>(type: "TEXT", nullable: true),
                    ExitCode = table.Column<int>(type: "INTEGER", nullable: true),
                    Host = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogCommands", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "JobLogInputRequests",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    UserId = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true),
                    Ip = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    Type = table.Column<int>(type: "INTEGER", nullable: false),
                    Host = table.Column<string>(type: "TEXT", maxLength: 250, nullable: false),
                    Method = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    Path = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: false),
                    Queries = table.Column<string>(type: "TEXT", nullable: true),
                    IsSecure = table.Column<bool>(type: "INTEGER", nullable: false),
                    Slug = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true),
                    RequestTimestamp = table.Column<DateTime>(type: "TEXT", nullable: false),
                    RequestHeaders = table.Column<string>(type: "TEXT", nullable: true),
                    RequestBody = table.Column<string>(type: "TEXT", nullable: true),
                    ResponseTimestamp = table.Column<DateTime>(type: "TEXT", nullable: true),
                    ResponseCode = table.Column<int>(type: "INTEGER", nullable: true),
                    ResponseHeaders = table.Column<string>(type: "TEXT", nullable: true),
                    ResponseBody = table.Column<string>(type: "TEXT", nullable: true),
                    Status = table.Column<int>(type: "INTEGER", nullable: false),
                    ErrorDescription = table.Column<string>(type: "TEXT", nullable: true),
                    ExceptionName = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogInputRequests", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "JobLogOutputRequests",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    InputRequestId = table.Column<Guid>(type: "TEXT", nullable: true),
                    Host = table.Column<string>(type: "TEXT", maxLength: 250, nullable: false),
                    Method = table.Column<string>(type: "TEXT", maxLength: 16, nullable: false),
                    Path = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: false),
                    Queries = table.Column<string>(type: "TEXT", nullable: true),
                    IsSecure = table.Column<bool>(type: "INTEGER", nullable: false),
                    Slug = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true),
                    RequestTimestamp = table.Column<DateTime>(type: "TEXT", nullable: false),
                    RequestHeaders = table.Column<string>(type: "TEXT", nullable: true),
                    RequestBody = table.Column<string>(type: "TEXT", nullable: true),
                    ResponseTimestamp = table.Column<DateTime>(type: "TEXT", nullable: true),
                    ResponseCode = table.Column<int>(type: "INTEGER", nullable: true),
                    ResponseHeaders = table.Column<string>(type: "TEXT", nullable: true),
                    ResponseBody = table.Column<string>(type: "TEXT", nullable: true),
                    Status = table.Column<int>(type: "INTEGER", nullable: false),
                    ErrorDescription = table.Column<string>(type: "TEXT", nullable: true),
                    ExceptionName = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogOutputRequests", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "JobLogTasks",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 250, nullable: false),
                    QueueName = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true),
                    Input = table.Column<string>(type: "TEXT", nullable: true),
                    TaskArgs = table.Column<string>(type: "TEXT", nullable: true),
                    TaskKwargs = table.Column<string>(type: "TEXT", nullable: true),
                    DispatchedAt = table.Column<DateTime>(type: "TEXT", nullable: false),
                    EstimatedTimeOfFirstArrival = table.Column<DateTime>(type: "TEXT", nullable: true),
                    Expires = table.Column<DateTime>(type: "TEXT", nullable: true),
                    Stale = table.Column<DateTime>(type: "TEXT", nullable: true),
                    IsSetAsStale = table.Column<bool>(type: "INTEGER", nullable: false),
                    State = table.Column<int>(type: "INTEGER", nullable: false),
                    Start = table.Column<DateTime>(type: "TEXT", nullable: true),
                    Stop = table.Column<DateTime>(type: "TEXT", nullable: true),
                    ParentRunId = table.Column<Guid>(type: "TEXT", nullable: true),
                    CorrelationId = table.Column<Guid>(type: "TEXT", nullable: true),
                    ConversationId = table.Column<Guid>(type: "TEXT", nullable: true),
                    TraceId = table.Column<string>(type: "TEXT", maxLength: 64, nullable: true),
                    SourceAddress = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: true),
                    Host = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true),
                    Release = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true),
                    Slug = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true),
                    ExtraData = table.Column<string>(type: "TEXT", nullable: true),
                    ErrorMessage = table.Column<string>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogTasks", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "JobLogOutputRequestRelatedObjects",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    OutputRequestId = table.Column<Guid>(type: "TEXT", nullable: false),
                    CommandLogId = table.Column<Guid>(type: "TEXT", nullable: true),
                    TaskRunLogId = table.Column<Guid>(type: "TEXT", nullable: true),
                    ContentType = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true),
                    ObjectId = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogOutputRequestRelatedObjects", x => x.Id);
                    table.ForeignKey(
                        name: "FK_JobLogOutputRequestRelatedObjects_JobLogOutputRequests_OutputRequestId",
                        column: x => x.OutputRequestId,
                        principalTable: "JobLogOutputRequests",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "JobLogTaskRuns",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    TaskId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 250, nullable: false),
                    QueueName = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true),
                    ConsumerType = table.Column<string>(type: "TEXT", maxLength: 250, nullable: false),
                    Input = table.Column<string>(type: "TEXT", nullable: true),
                    TaskArgs = table.Column<string>(type: "TEXT", nullable: true),
                    TaskKwargs = table.Column<string>(type: "TEXT", nullable: true),
                    Start = table.Column<DateTime>(type: "TEXT", nullable: false),
                    Stop = table.Column<DateTime>(type: "TEXT", nullable: true),
                    State = table.Column<int>(type: "INTEGER", nullable: false),
                    ErrorMessage = table.Column<string>(type: "TEXT", nullable: true),
                    Output = table.Column<string>(type: "TEXT", nullable: true),
                    Retries = table.Column<int>(type: "INTEGER", nullable: false),
                    EstimatedTimeOfNextRetry = table.Column<DateTime>(type: "TEXT", nullable: true),
                    WaitingTime = table.Column<double>(type: "REAL", nullable: true),
                    Redelivered = table.Column<bool>(type: "INTEGER", nullable: false),
                    Host = table.Column<string>(type: "TEXT", maxLength: 250, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_JobLogTaskRuns", x => x.Id);
                    table.ForeignKey(
                        name: "FK_JobLogTaskRuns_JobLogTasks_TaskId",
                        column: x => x.TaskId,
                        principalTable: "JobLogTasks",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogCommands_Name_Start",
                table: "JobLogCommands",
                columns: new[] { "Name", "Start" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogCommands_Start",
                table: "JobLogCommands",
                column: "Start");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogCommands_Stop",
                table: "JobLogCommands",
                column: "Stop");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogInputRequests_Ip_RequestTimestamp",
                table: "JobLogInputRequests",
                columns: new[] { "Ip", "RequestTimestamp" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogInputRequests_RequestTimestamp",
                table: "JobLogInputRequests",
                column: "RequestTimestamp");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogInputRequests_ResponseTimestamp",
                table: "JobLogInputRequests",
                column: "ResponseTimestamp");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogInputRequests_Slug_RequestTimestamp",
                table: "JobLogInputRequests",
                columns: new[] { "Slug", "RequestTimestamp" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogInputRequests_Status_RequestTimestamp",
                table: "JobLogInputRequests",
                columns: new[] { "Status", "RequestTimestamp" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogOutputRequestRelatedObjects_CommandLogId",
                table: "JobLogOutputRequestRelatedObjects",
                column: "CommandLogId");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogOutputRequestRelatedObjects_ContentType_ObjectId",
                table: "JobLogOutputRequestRelatedObjects",
                columns: new[] { "ContentType", "ObjectId" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogOutputRequestRelatedObjects_OutputRequestId",
                table: "JobLogOutputRequestRelatedObjects",
                column: "OutputRequestId");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogOutputRequestRelatedObjects_TaskRunLogId",
                table: "JobLogOutputRequestRelatedObjects",
                column: "TaskRunLogId");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogOutputRequests_InputRequestId",
                table: "JobLogOutputRequests",
                column: "InputRequestId");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogOutputRequests_RequestTimestamp",
                table: "JobLogOutputRequests",
                column: "RequestTimestamp");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogOutputRequests_ResponseTimestamp",
                table: "JobLogOutputRequests",
                column: "ResponseTimestamp");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogOutputRequests_Slug_RequestTimestamp",
                table: "JobLogOutputRequests",
                columns: new[] { "Slug", "RequestTimestamp" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogOutputRequests_Status_RequestTimestamp",
                table: "JobLogOutputRequests",
                columns: new[] { "Status", "RequestTimestamp" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTaskRuns_Name_Start",
                table: "JobLogTaskRuns",
                columns: new[] { "Name", "Start" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTaskRuns_State_Start",
                table: "JobLogTaskRuns",
                columns: new[] { "State", "Start" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTaskRuns_TaskId_ConsumerType_Retries",
                table: "JobLogTaskRuns",
                columns: new[] { "TaskId", "ConsumerType", "Retries" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_DispatchedAt",
                table: "JobLogTasks",
                column: "DispatchedAt");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_Name_DispatchedAt",
                table: "JobLogTasks",
                columns: new[] { "Name", "DispatchedAt" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_ParentRunId",
                table: "JobLogTasks",
                column: "ParentRunId");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_State_DispatchedAt",
                table: "JobLogTasks",
                columns: new[] { "State", "DispatchedAt" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_State_Stale",
                table: "JobLogTasks",
                columns: new[] { "State", "Stale" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_Stop",
                table: "JobLogTasks",
                column: "Stop");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "JobLogCommands");

            migrationBuilder.DropTable(
                name: "JobLogInputRequests");

            migrationBuilder.DropTable(
                name: "JobLogOutputRequestRelatedObjects");

            migrationBuilder.DropTable(
                name: "JobLogTaskRuns");

            migrationBuilder.DropTable(
                name: "JobLogOutputRequests");

            migrationBuilder.DropTable(
                name: "JobLogTasks");
        }
    }
}
