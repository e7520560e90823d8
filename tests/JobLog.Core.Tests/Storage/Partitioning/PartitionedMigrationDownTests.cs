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

    /// <summary>
    /// The request and command filters' indexes (migration ScaleRequestFilterIndexes, docs/scale.md "Session 27 (scale)")
    /// onto a ledger partitioned before them: each is made on the partitioned table and so on every partition it has
    /// (days, <c>_undated</c>, <c>_default</c>), and reverting it drops them all.
    /// </summary>
    [Test]
    public async Task TheRequestFilterIndexes_OntoALedgerPartitionedBeforeThem_IndexEveryPartition()
    {
        await using var host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o => o.Partitioning.Enabled = true);
        (string Table, string Index)[] indexes =
        [
            (LedgerModel.InputRequests, "IX_JobLogInputRequests_UserId_RequestTimestamp"),
            (LedgerModel.InputRequests, "IX_JobLogInputRequests_Method_RequestTimestamp"),
            (LedgerModel.InputRequests, "IX_JobLogInputRequests_Host_RequestTimestamp"),
            (LedgerModel.OutputRequests, "IX_JobLogOutputRequests_Method_RequestTimestamp"),
            (LedgerModel.OutputRequests, "IX_JobLogOutputRequests_Host_RequestTimestamp"),
            (LedgerModel.Commands, "IX_JobLogCommands_IsSuccessful_Start"),
        ];
        await host.QueryAsync(async db =>
        {
            var migrations = db.Database.GetMigrations().ToList();
            await db.GetService<IMigrator>().MigrateAsync(migrations[migrations.FindIndex(m => m.EndsWith("_ScaleRequestFilterIndexes", StringComparison.Ordinal)) - 1]);
            return 0;
        });
        Assert.That(await ChildrenAsync(host, indexes.Select(i => i.Index)), Has.All.EqualTo(0), "reverted: no partition has them");

        await host.QueryAsync(async db =>
        {
            await db.Database.MigrateAsync();
            return 0;
        });
        var partitions = await ChildrenAsync(host, indexes.Select(i => i.Table));
        Assert.That(partitions, Has.All.GreaterThan(2), "the test's premise: days, _undated and _default");
        Assert.That(await ChildrenAsync(host, indexes.Select(i => i.Index)), Is.EqualTo(partitions));
    }

    /// <summary>How many partitions each partitioned table or index has.</summary>
    private static async Task<List<long>> ChildrenAsync(LedgerHost host, IEnumerable<string> relations)
    {
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        var counts = new List<long>();
        foreach (var relation in relations)
        {
            await using var command = new NpgsqlCommand($"SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass('\"{relation}\"')", connection);
            counts.Add((long)(await command.ExecuteScalarAsync())!);
        }

        return counts;
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
