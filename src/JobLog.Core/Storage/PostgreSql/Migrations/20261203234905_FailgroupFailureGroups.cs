using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace JobLog.Storage.PostgreSql.Migrations
{
    /// <inheritdoc />
    internal partial class FailgroupFailureGroups : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<DateTime>(
                name: "FailureGroupAt",
                table: "JobLogTasks",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "FailureGroupException",
                table: "JobLogTasks",
                type: "character varying(16)",
                maxLength: 16,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "FailureGroupQueue",
                table: "JobLogTasks",
                type: "character varying(16)",
                maxLength: 16,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "FailureGroupType",
                table: "JobLogTasks",
                type: "character varying(16)",
                maxLength: 16,
                nullable: true);

            // The failures pages' indexes (JobLog.Querying.FailureGroupColumns): expressions and filters the model cannot say,
            // so raw SQL. The groups are filled at start-up (LedgerSchema) and before each failures read.
            migrationBuilder.Sql(JobLog.Querying.FailureGroupColumns.CreateIndexes);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(JobLog.Querying.FailureGroupColumns.DropIndexes);

            migrationBuilder.DropColumn(
                name: "FailureGroupAt",
                table: "JobLogTasks");

            migrationBuilder.DropColumn(
                name: "FailureGroupException",
                table: "JobLogTasks");

            migrationBuilder.DropColumn(
                name: "FailureGroupQueue",
                table: "JobLogTasks");

            migrationBuilder.DropColumn(
                name: "FailureGroupType",
                table: "JobLogTasks");
        }
    }
}
