using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <summary>
    /// The search's text moves off the rows the writer and the sweeper update into the side table
    /// <c>JobLogSearchText</c> (docs/search.md): created and filled from the rows, kept by triggers; the trigram
    /// indexes on the tasks and runs are dropped. Raw SQL only: the EF model does not know the table.
    /// </summary>
    internal partial class SearchTextTable : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(JobLog.Storage.PostgreSql.PostgreSqlSearch.Create);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(JobLog.Storage.PostgreSql.PostgreSqlSearch.Drop);
            migrationBuilder.Sql(JobLog.Storage.PostgreSql.PostgreSqlSearch.FormerCreate);
        }
    }
}
