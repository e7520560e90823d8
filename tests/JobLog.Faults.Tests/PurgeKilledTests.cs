using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// The retention purge (<c>joblog purge --backup</c>) SIGKILLed in the middle: each batch's rows reach the backup file
/// (flushed to disk) before their delete commits. The promise tried: the backup file the killed purge left restores every
/// row it deleted (<c>joblog restore</c>), and the ledger is whole again: every task and every run.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class PurgeKilledTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(3);

    private const string Tasks = "SELECT COUNT(*) FROM \"JobLogTasks\"";
    private const string Runs = "SELECT COUNT(*) FROM \"JobLogTaskRuns\"";

    [Test]
    [CancelAfter(300_000)]
    public async Task PurgeWithBackupKilledMidway_TheBackupRestoresEveryDeletedTaskAndRun()
    {
        await using var world = await FaultWorld.SqliteAsync();
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(4000);
        await world.WaitUntilAsync(() => world.Published.Count == 4000, Drain, "4000 probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var (tasks, runs) = (await world.CountAsync(Tasks), await world.CountAsync(Runs));
        await Task.Delay(TimeSpan.FromSeconds(2));

        var backup = Path.Combine(Path.GetTempPath(), "joblog-faults", "purge-backup-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var purge = world.StartWorkerCommand("purge", "--type", "tasks", "--older-than", "1s", "--backup", backup, "--batch-size", "20");
            await world.WaitUntilAsync(async () => await world.CountAsync(Tasks) <= tasks - 500, Drain, "500 tasks purged");
            await purge.KillAsync();
            var (tasksLeft, runsLeft) = (await world.CountAsync(Tasks), await world.CountAsync(Runs));
            var file = Directory.GetFiles(backup).Single();
            TestContext.Out.WriteLine($"tasks {tasks}, runs {runs}; after the killed purge: tasks {tasksLeft}, runs {runsLeft}; backup {new FileInfo(file).Length} bytes");
            Assert.That(tasksLeft, Is.GreaterThan(0), "the purge killed before it was done");

            var restore = world.StartWorkerCommand("restore", file);
            await restore.WaitForExitAsync(TimeSpan.FromSeconds(120));
            TestContext.Out.WriteLine("restore: " + restore.Tail(5));
            var (tasksAfter, runsAfter) = (await world.CountAsync(Tasks), await world.CountAsync(Runs));
            Assert.Multiple(() =>
            {
                Assert.That(restore.ExitCode, Is.Zero, "the restore of the killed purge's backup\n" + restore.Tail(30));
                Assert.That((tasksAfter, runsAfter), Is.EqualTo((tasks, runs)), "every purged task and run restored");
            });
        }
        finally
        {
            if (Directory.Exists(backup))
            {
                Directory.Delete(backup, recursive: true);
            }
        }
    }
}
