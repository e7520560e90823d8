using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <summary>
    /// <c>JobLogTaskRuns.JobRetryAttempt</c> (session 32): a job attempt's retry attempt within its occurrence, so that a
    /// recurring job's runs read "occurrence N · attempt M". Nullable, no default, no index: an existing ledger keeps its
    /// rows as they are (null, as for every run that is no job attempt); on a partitioned PostgreSQL ledger the column is
    /// added to the partitioned table and so to every partition.
    /// </summary>
    internal partial class JobRetryAttempt : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "JobRetryAttempt",
                table: "JobLogTaskRuns",
                type: "INTEGER",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "JobRetryAttempt",
                table: "JobLogTaskRuns");
        }
    }
}
