using JobLog.Testing.Processes;
using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// Processes starting together on an empty PostgreSQL ledger migrate one at a time behind JobLog's advisory lock keyed on
/// the ledger (<c>PostgreSqlMigrationLock</c>, c5a30f9), held on a connection of its own. What is tried: its holder dies
/// mid-migration (SIGKILL) while the others wait for it. The server must end the dead session and let the lock go, the
/// holder's open migration roll back, and a waiter migrate; then every probe is recorded.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class PostgresMigrationLockTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(3);

    [Test]
    [CancelAfter(300_000)]
    public async Task ThreeProcessesStartTogetherOnAnEmptyLedger_TheLockHolderKilledMidMigration_TheOthersMigrateAndRecordEveryProbe()
    {
        await using var world = await FaultWorld.PostgresAsync();
        var starters = await LaunchStartersAsync(world);

        string? holder = null;
        await world.WaitUntilAsync(async () => (holder = (await world.AdvisoryLocksAsync()).Holder) is not null, Drain,
            "a starting process holds the migration lock");
        var holding = starters[int.Parse(holder![^1..], System.Globalization.CultureInfo.InvariantCulture)];
        FaultWorld.Pause(holding);
        Assert.That((await world.AdvisoryLocksAsync()).Holder, Is.EqualTo(holder), "the test's premise: paused holding the lock, mid-migration");
        await world.WaitUntilAsync(async () => (await world.AdvisoryLocksAsync()).Waiting == starters.Count - 1, Drain,
            "the other starting processes wait for the lock");
        await holding.KillAsync();

        foreach (var starter in starters.Where(s => s != holding))
        {
            await FaultWorld.WaitUntilReadyAsync(starter, Drain);
        }

        TestContext.Out.WriteLine($"the lock's holder: {holder}");
        await PublishAndAssertEveryProbeRecordedAsync(world);
    }

    /// <summary>
    /// The database crashes (<c>pg_ctl stop -m immediate</c>) while one of three processes starting together migrates the
    /// empty ledger and the others wait for its lock, and starts again: every session is cut, the migration's open
    /// transaction is rolled back by recovery, and the processes' start-up retries must migrate it once, with no
    /// half-made schema left behind.
    /// </summary>
    [Test]
    [CancelAfter(300_000)]
    public async Task ThreeProcessesStartTogetherOnAnEmptyLedger_TheDatabaseCrashesMidMigration_TheyMigrateOnceItIsBackAndRecordEveryProbe()
    {
        await using var world = await FaultWorld.PostgresAsync();
        var starters = await LaunchStartersAsync(world);

        await world.WaitUntilAsync(async () => (await world.AdvisoryLocksAsync()).Holder is not null, Drain, "a starting process holds the migration lock");
        await world.Postgres!.StopAsync();
        await world.Postgres.StartAsync();

        foreach (var starter in starters)
        {
            await FaultWorld.WaitUntilReadyAsync(starter, Drain);
        }

        await PublishAndAssertEveryProbeRecordedAsync(world);
    }

    /// <summary>Three consumers launched at once on the empty ledger, each with an <c>Application Name</c> of its own (starter-0…2).</summary>
    private static async Task<List<ChildProcess>> LaunchStartersAsync(FaultWorld world)
    {
        var starters = new List<ChildProcess>();
        for (var i = 0; i < 3; i++)
        {
            starters.Add(await world.LaunchConsumerAsync("Application Name=starter-" + i));
        }

        return starters;
    }

    /// <summary>500 probes published and consumed: each a task with its run, none lost or left ACTIVE, and no migration ran into another's tables.</summary>
    private static async Task PublishAndAssertEveryProbeRecordedAsync(FaultWorld world)
    {
        await world.StartPublisherAsync(500);
        await world.WaitUntilAsync(() => world.Published.Count == 500, Drain, "500 probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        TestContext.Out.WriteLine(tally);
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, tally.ToString());
            Assert.That(tally.Stuck, Is.Zero, tally.ToString());
            Assert.That(tally.Tasks, Is.EqualTo(500), tally.ToString());
            Assert.That(world.Output, Does.Not.Contain("42P07"), "no migration ran into another's tables");
        });
    }
}
