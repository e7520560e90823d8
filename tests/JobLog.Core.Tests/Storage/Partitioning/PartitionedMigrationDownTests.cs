using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Partitioning;

/// <summary>
/// Reverting the rollup migrations (EF's migrator to an earlier migration, as <c>dotnet ef database update</c> does; JobLog
/// itself only migrates up): on a partitioned ledger, whose minute rollups are views the partitioning made, a refusal
/// that says why; on an unpartitioned one, the tables and triggers go as before.
/// </summary>
public class PartitionedMigrationDownTests
{
    // The migration before ScaleTaskRollups, and the one between it and ScaleRunRollup.
    private const string BeforeTaskRollups = "20261202162339_FailureResolution";
    private const string BeforeRunRollup = "20261202164909_KeepFailedMessages";

    [Test]
    public async Task RevertingTheRollupMigrations_OnAPartitionedLedger_IsRefusedWithAMessage()
    {
        await using var host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o => o.Partitioning.Enabled = true);

        var error = Assert.ThrowsAsync<PostgresException>(() => host.QueryAsync(async db =>
        {
            await db.GetService<IMigrator>().MigrateAsync(BeforeRunRollup);
            return 0;
        }));

        // The newest rollup migration is reverted first, and refuses (session 13's hours; ScaleRunRollup's before them).
        Assert.That(error!.MessageText, Does.Contain("HourrollRunHours cannot be reverted on a partitioned ledger"), error.ToString());
        Assert.That(error.MessageText, Does.Contain("views over the day rollups"));
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"SELECT relkind::text FROM pg_class WHERE oid = to_regclass('\"{RunRollups.Minutes}\"')", connection);
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo("v"), "the run rollup's view is still there");
    }

    [Test]
    public async Task RevertingTheRollupMigrations_OnAnUnpartitionedLedger_DropsThem_AndMigratingUpAgainRestoresThem()
    {
        await using var host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync());

        await host.QueryAsync(async db =>
        {
            await db.GetService<IMigrator>().MigrateAsync(BeforeTaskRollups);
            return 0;
        });
        Assert.That(await RelationsAsync(host), Is.Empty);

        await host.QueryAsync(async db =>
        {
            await db.Database.MigrateAsync();
            return 0;
        });
        Assert.That(await RelationsAsync(host), Is.EqualTo(new[] { LedgerRollups.Counts, LedgerRollups.Minutes, RunRollups.Minutes }.Order()));
    }

    private static async Task<List<string>> RelationsAsync(LedgerHost host)
    {
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            $"SELECT relname::text FROM pg_class WHERE relname IN ('{LedgerRollups.Counts}', '{LedgerRollups.Minutes}', '{RunRollups.Minutes}') AND relkind = 'r' ORDER BY 1", connection);
        var names = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            names.Add(reader.GetString(0));
        }

        return names;
    }
}
