using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <summary>
    /// Replaces the runs' <c>(QueueName, TaskId)</c> index with <c>(QueueName, Start, TaskId)</c> on SQLite (session 43).
    /// The old key put each run at its task id within its queue: MassTransit's message ids scatter there, so every run
    /// written dirtied a leaf of its own, written whole to the WAL at the commit (as many pages as the tasks' primary key,
    /// docs/benchmarks.md "Session 43 (perf)"). The new key appends in start order within a queue; it still gives a queue's
    /// runs with their task ids from the index alone (a rare queue's tasks, <c>LedgerQueries.FewTasksOfQueueAsync</c>).
    /// A busy queue's filter looks a task's runs up by <c>(TaskId, ConsumerType, Retries)</c> instead
    /// (<c>LedgerQueries.SentToOrConsumedFromOnSqlite</c>). The model keeps <c>(QueueName, TaskId)</c> for PostgreSQL, so the model snapshot
    /// does not change. IF EXISTS / IF NOT EXISTS: a ledger whose owner changed them already.
    /// </summary>
    internal partial class SqliteRunQueueIndex : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP INDEX IF EXISTS \"IX_JobLogTaskRuns_QueueName_TaskId\";");
            migrationBuilder.Sql("CREATE INDEX IF NOT EXISTS \"" + LedgerModel.RunsQueueStartIndex + "\" ON \"JobLogTaskRuns\" (\"QueueName\", \"Start\", \"TaskId\");");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("DROP INDEX IF EXISTS \"" + LedgerModel.RunsQueueStartIndex + "\";");
            migrationBuilder.Sql("CREATE INDEX IF NOT EXISTS \"IX_JobLogTaskRuns_QueueName_TaskId\" ON \"JobLogTaskRuns\" (\"QueueName\", \"TaskId\");");
        }
    }
}
