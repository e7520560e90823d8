using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <inheritdoc />
    internal partial class SqlwriterTaskIndexes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            // Read by no SQLite plan, and PostgreSQL's state lists use (State, DispatchedAt) as well; each task paid an entry
            // on insert and a move on every state change (docs/benchmarks.md, "Session 11 (sqlwriter)"). IF EXISTS: a ledger
            // whose owner dropped it already.
            migrationBuilder.Sql("DROP INDEX IF EXISTS \"IX_JobLogTasks_IsInternal_State_DispatchedAt\";");

            // The same rows, a filter without an IN list: SQLite built a temporary b-tree for "State" IN (1, 2, 5) each time it
            // evaluated the filter, on every task inserted and twice on every task derived (LedgerModel.UnfinishedStaleFilter).
            migrationBuilder.Sql("DROP INDEX IF EXISTS \"IX_JobLogTasks_Unfinished_Stale\";");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_Unfinished_Stale",
                table: "JobLogTasks",
                column: "Stale",
                filter: "(\"State\" = 1 OR \"State\" = 2 OR \"State\" = 5) AND \"IsSetAsStale\" = FALSE AND \"Stale\" IS NOT NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_JobLogTasks_Unfinished_Stale",
                table: "JobLogTasks");

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_IsInternal_State_DispatchedAt",
                table: "JobLogTasks",
                columns: new[] { "IsInternal", "State", "DispatchedAt" });

            migrationBuilder.CreateIndex(
                name: "IX_JobLogTasks_Unfinished_Stale",
                table: "JobLogTasks",
                column: "Stale",
                filter: "\"State\" IN (1, 2, 5) AND \"IsSetAsStale\" = FALSE AND \"Stale\" IS NOT NULL");
        }
    }
}
