using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// PostgreSQL restarted (<c>pg_ctl restart -m fast</c>: a configuration change, a minor upgrade) during load, while the
/// writers and sweepers hold pooled sessions with statements Npgsql keeps prepared on the server. The promise tried:
/// nothing acknowledged or published is lost, no run stays ACTIVE, and the restart is not taken for a pooler that drops
/// prepared statements (which would turn JobLog's preparation off for the rest of the process).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class PostgresRestartTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(3);

    [Test]
    [CancelAfter(300_000)]
    public async Task PostgresRestartedFastDuringLoad_NothingLost_NoRunStaysActive_PreparedStatementsNotGivenUp()
    {
        await using var world = await FaultWorld.PostgresAsync();
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(6000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 1000, Drain, "1000 probes consumed");

        await world.Postgres!.RestartAsync();
        var atRestart = world.Consumed.Count;
        await world.WaitUntilAsync(() => world.Consumed.Count >= atRestart + 1000, Drain, "1000 more probes consumed after the restart");
        await world.WaitUntilAsync(() => world.Published.Count == 6000, Drain, "6000 probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();

        var tally = await world.TallyAsync();
        var lines = world.Output.Split('\n');
        TestContext.Out.WriteLine($"log lines: batches failed (1006) {lines.Count(l => l.Contains("[1006]", StringComparison.Ordinal))}, " +
            $"writes failed {lines.Count(l => l.Contains("JobLog could not write", StringComparison.Ordinal))}, " +
            $"errors of the processes {lines.Count(l => l.StartsWith("fail:", StringComparison.Ordinal))}");
        Assert.Multiple(() =>
        {
            Assert.That((tally.Lost, tally.Stuck), Is.EqualTo((0, 0)), tally.ToString());
            Assert.That(tally.Tasks, Is.EqualTo(6000), tally.ToString());
            Assert.That(world.Output.Contains("prepares no statement on this database", StringComparison.Ordinal), Is.False,
                "the restart taken for a pooler that drops prepared statements\n" + world.Tails());
        });
    }
}
