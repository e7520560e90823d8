using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.Sqlite.Migrations
{
    /// <summary>
    /// <c>JobLogHosts.WriterError</c> and <c>WriterFailingSince</c> (session 34): while a host instance's writer cannot
    /// write to the ledger, why and since when, written by its heartbeat for the hosts page and <c>api/hosts</c> (another
    /// process's writer error; the overview shows only its own). Nullable, no default, no index: an existing ledger's hosts
    /// keep their rows (null: writing, as far as known).
    /// </summary>
    internal partial class HostWriterError : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "WriterError",
                table: "JobLogHosts",
                type: "TEXT",
                maxLength: 500,
                nullable: true);

            migrationBuilder.AddColumn<DateTime>(
                name: "WriterFailingSince",
                table: "JobLogHosts",
                type: "TEXT",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "WriterError",
                table: "JobLogHosts");

            migrationBuilder.DropColumn(
                name: "WriterFailingSince",
                table: "JobLogHosts");
        }
    }
}
