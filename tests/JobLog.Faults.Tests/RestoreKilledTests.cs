using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// A restore (<c>joblog restore</c>) of a purge's backup SIGKILLed in the middle, then run again. The promise tried (its
/// help: "rows already there are skipped"; each batch one transaction): the second restore puts back what the first did
/// not, skips what it did, and every task and run is back once, with its runs, and the rollups equal the counts.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class RestoreKilledTests
{
    private const int Probes = 3000;
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(4);

    private const string Tasks = "SELECT COUNT(*) FROM \"JobLogTasks\"";
    private const string Runs = "SELECT COUNT(*) FROM \"JobLogTaskRuns\"";
    private const string RunsByTask = "SELECT \"TaskId\", COUNT(*) FROM \"JobLogTaskRuns\" GROUP BY \"TaskId\"";

    [TestCase("sqlite")]
    [TestCase("postgres")]
    [CancelAfter(480_000)]
    public async Task RestoreKilledMidway_RunAgain_EveryRowBackOnce(string database)
    {
        await using var world = database == "sqlite" ? await FaultWorld.SqliteAsync() : await FaultWorld.PostgresAsync();
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(Probes);
        await world.WaitUntilAsync(() => world.Published.Count == Probes, Drain, $"{Probes} probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var (tasks, runs, byTask) = (await world.CountAsync(Tasks), await world.CountAsync(Runs), await world.GroupCountsAsync(RunsByTask));
        var lastStop = await LastStopAsync(world);
        await world.WaitUntilAsync(() => DateTime.UtcNow > lastStop.AddSeconds(2), Drain, "every task finished more than a second ago");

        var backup = Path.Combine(Path.GetTempPath(), "joblog-faults", "restore-backup-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var purge = world.StartWorkerCommand("purge", "--type", "tasks", "--older-than", "1s", "--backup", backup, "--batch-size", "500");
            await purge.WaitForExitAsync(TimeSpan.FromSeconds(180));
            Assert.That(purge.ExitCode, Is.Zero, "the purge\n" + purge.Tail(20));
            var file = Directory.GetFiles(backup).Single();
            var purged = tasks - await world.CountAsync(Tasks);

            // Small batches: the restore takes many commits, and is killed after a fifth of the tasks are back.
            var first = world.StartWorkerCommand("restore", file, "--batch-size", "20");
            while (await world.CountAsync(Tasks) < tasks - purged + purged / 5)
            {
                Assert.That(first.HasExited, Is.False, "the restore ended before it was killed\n" + first.Tail(20));
                await Task.Delay(10);
            }

            await first.KillAsync();
            var (tasksAtKill, runsAtKill) = (await world.CountAsync(Tasks), await world.CountAsync(Runs));
            var second = world.StartWorkerCommand("restore", file);
            await second.WaitForExitAsync(TimeSpan.FromSeconds(180));
            var (tasksAfter, runsAfter, byTaskAfter) = (await world.CountAsync(Tasks), await world.CountAsync(Runs), await world.GroupCountsAsync(RunsByTask));
            var mismatches = await world.RollupMismatchesAsync();
            var restored = System.Text.RegularExpressions.Regex.Match(second.Output, "restored ([0-9]+), skipped ([0-9]+)");
            TestContext.Out.WriteLine(
                $"{database}: tasks {tasks}, runs {runs}; purged {purged} tasks; restore killed at tasks {tasksAtKill}, runs {runsAtKill}; " +
                $"the second: '{restored.Value}'; after it tasks {tasksAfter}, runs {runsAfter}; rollup mismatches {mismatches.Count}");
            foreach (var mismatch in mismatches.Take(10))
            {
                TestContext.Out.WriteLine(mismatch);
            }

            Assert.Multiple(() =>
            {
                Assert.That(purged, Is.EqualTo(tasks), "the purge took every task");
                Assert.That(tasksAtKill, Is.LessThan(tasks), "the restore killed before it was done");
                Assert.That(second.ExitCode, Is.Zero, "the second restore\n" + second.Tail(30));
                Assert.That((tasksAfter, runsAfter), Is.EqualTo((tasks, runs)), "every task and run back once");
                Assert.That(restored.Success ? (int.Parse(restored.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), int.Parse(restored.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture)) : (-1, -1),
                    Is.EqualTo((tasks - tasksAtKill, tasksAtKill - (tasks - purged))), "the second restore put back what the first had not, and skipped what it had");
                Assert.That(byTaskAfter, Is.EquivalentTo(byTask), "every task's runs back");
                Assert.That(mismatches, Is.Empty, "the rollups equal the counts");
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

    /// <summary>The latest Stop of the ledger's tasks (UTC).</summary>
    private static async Task<DateTime> LastStopAsync(FaultWorld world) => await world.ScalarAsync("SELECT MAX(\"Stop\") FROM \"JobLogTasks\"") switch
    {
        DateTime value => DateTime.SpecifyKind(value, DateTimeKind.Utc),
        string text => DateTime.Parse(text, System.Globalization.CultureInfo.InvariantCulture,
            System.Globalization.DateTimeStyles.AdjustToUniversal | System.Globalization.DateTimeStyles.AssumeUniversal),
        var other => throw new InvalidOperationException($"No finished task: {other}"),
    };
}
