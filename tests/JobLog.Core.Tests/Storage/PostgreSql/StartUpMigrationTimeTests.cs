using JobLog.Storage;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.PostgreSql;

/// <summary>
/// The start-up migration of a big ledger: a migration that builds an index on the tasks takes minutes at ten million
/// tasks, longer than a command's default 30 s; a start-up that timed out would roll back and time out again at every
/// retry, and the application would never record anything.
/// </summary>
public class StartUpMigrationTimeTests
{
    [Test]
    public async Task AMigrationSlowerThanTheCommandTimeLimit_CompletesAtStartUp()
    {
        var ledger = await TestLedger.PostgresAsync();
        await using var host = await LedgerHost.StartAsync(ledger, o => o.UseNpgsql(ledger.ConnectionString + ";Command Timeout=1"), start: false);
        await ActivatorUtilities.CreateInstance<LedgerSchema>(host.Services).TryMigrateAsync(CancellationToken.None);

        // The ledger as it was before the last migration, whose index build then waits 3 s for a lock held on the tasks,
        // under a command time limit of 1 s.
        await using var holder = new NpgsqlConnection(ledger.ConnectionString);
        await holder.OpenAsync();
        await using (var undo = new NpgsqlCommand(
            $"DROP INDEX \"IX_JobLogTasks_Internal_DispatchedAt\"; DELETE FROM \"{JobLogDbContext.MigrationsHistoryTable}\" WHERE \"MigrationId\" LIKE '%\\_InternalTasksIndex'",
            holder))
        {
            Assert.That(await undo.ExecuteNonQueryAsync(), Is.EqualTo(1), "one migration undone");
        }

        var hold = await holder.BeginTransactionAsync();
        await using (var lockTasks = new NpgsqlCommand($"LOCK TABLE \"{LedgerModel.Tasks}\" IN ACCESS EXCLUSIVE MODE", holder, hold))
        {
            await lockTasks.ExecuteNonQueryAsync();
        }

        var released = Task.Delay(TimeSpan.FromSeconds(3)).ContinueWith(_ => hold.RollbackAsync(), TaskScheduler.Default).Unwrap();
        await ActivatorUtilities.CreateInstance<LedgerSchema>(host.Services).TryMigrateAsync(CancellationToken.None);
        await released;

        await using var check = new NpgsqlCommand("SELECT count(*) FROM pg_indexes WHERE indexname = 'IX_JobLogTasks_Internal_DispatchedAt'", holder);
        Assert.That(await check.ExecuteScalarAsync(), Is.EqualTo(1L));
    }
}
