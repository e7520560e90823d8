using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <summary>
    /// Drops <c>IX_JobLogTasks_Stop</c> on SQLite (session 35). No dashboard, API, CLI or sweeper query reads it; the failures'
    /// retention (<c>Stop &lt; cutoff</c>, FAILED or EXPIRED, oldest dispatched first) read it on a small ledger with full
    /// statistics, but on a 1,000,000-task ledger with the statistics JobLog keeps it reads <c>(State, DispatchedAt)</c>
    /// with or without it, in the same time. Every task written paid an entry in it, and every task derived after its
    /// dispatch (written WAITING, then given its run) a move (docs/benchmarks.md, "Session 35 (perf)"). The model keeps
    /// the index for PostgreSQL (its partitioned retention reads it), so the model snapshot does not change. IF EXISTS: a
    /// ledger whose owner dropped it already.
    /// </summary>
    internal partial class SqliteTaskStopIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP INDEX IF EXISTS \"IX_JobLogTasks_Stop\";");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("CREATE INDEX IF NOT EXISTS \"IX_JobLogTasks_Stop\" ON \"JobLogTasks\" (\"Stop\");");
        }
    }
}
