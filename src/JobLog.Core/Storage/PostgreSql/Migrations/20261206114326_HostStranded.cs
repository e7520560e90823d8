using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <summary>
    /// <c>JobLogHosts.Stranded</c> (session 33): what a host instance found waiting in the ledger for a broker none of its
    /// buses reaches (the warnings 3012 and 3205), written by its heartbeat for the hosts page and <c>api/hosts</c>.
    /// Nullable, no default, no index: an existing ledger's hosts keep their rows (null: nothing stranded known).
    /// </summary>
    internal partial class HostStranded : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "Stranded",
                table: "JobLogHosts",
                type: "character varying(1000)",
                maxLength: 1000,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "Stranded",
                table: "JobLogHosts");
        }
    }
}
