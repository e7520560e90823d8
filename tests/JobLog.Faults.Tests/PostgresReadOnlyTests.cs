using Npgsql;
using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// A PostgreSQL primary turned read-only while a publisher and a consumer run under load (<c>ALTER SYSTEM SET
/// default_transaction_read_only = on</c> and <c>pg_reload_conf()</c>: every session's next transaction is refused with
/// 25006, as on a primary an operator fenced, or a database over quota), then writable again. The promise tried (README,
/// the durability table): the journal keeps what the ledger refuses, nothing acknowledged or published is lost, no run is
/// left ACTIVE once writes are allowed again; and the processes' services say the refusal once a spell instead of at every
/// pass (session 45, <c>LedgerRefusals</c>: before, the sweeper's 1012 every pass, here every 500 ms).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class PostgresReadOnlyTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(4);

    [Test]
    [CancelAfter(420_000)]
    public async Task PrimaryTurnedReadOnlyDuringLoad_ThenWritable_NothingLost_NoRunStaysActive_RefusalSaidOncePerProcess()
    {
        await using var world = await FaultWorld.PostgresAsync();
        await world.StartWithAsync("consume", 0, 0, "--Fault:SweepMs=500");
        await world.StartPublisherAsync(6000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 1000, Drain, "1000 probes consumed");

        await SetReadOnlyAsync(world, true);
        var atReadOnly = world.Consumed.Count;
        // The load goes on against the refusing ledger: the processes' journals keep it.
        await world.WaitUntilAsync(() => world.Consumed.Count >= atReadOnly + 1000, Drain, "1000 more probes consumed while the ledger is read-only");
        await Task.Delay(TimeSpan.FromSeconds(10));
        var duringSpell = world.Output.Split('\n');
        await SetReadOnlyAsync(world, false);

        await world.WaitUntilAsync(() => world.Published.Count == 6000, Drain, "6000 probes published");
        await world.DrainAsync(Drain);
        // The services ask again within a minute; their resumption is said (1058) by each process that paused. Waited for
        // without failing here, so that a build without it fails on the counts below, printed.
        for (var i = 0; i < 90 && !world.Output.Contains("[1058]", StringComparison.Ordinal); i++)
        {
            await Task.Delay(TimeSpan.FromSeconds(1));
        }

        await world.StopAllAsync();

        var tally = await world.TallyAsync();
        var lines = world.Output.Split('\n');
        static int Count(string[] lines, string text) => lines.Count(l => l.Contains(text, StringComparison.Ordinal));
        TestContext.Out.WriteLine(
            $"published {tally.Published}, consumed {tally.Consumed}, tasks {tally.Tasks}, runs {tally.Runs}, lost {tally.Lost}, stuck {tally.Stuck}; " +
            $"log lines: refused said (1057) {Count(lines, "[1057]")}, resumed (1058) {Count(lines, "[1058]")}, sweeps failed (1012) {Count(lines, "[1012]")}, " +
            $"dispatcher failed (3002) {Count(lines, "[3002]")}, batches failed (1006) {Count(lines, "[1006]")}, writer unreachable (1001) {Count(lines, "[1001]")}, " +
            $"'read-only transaction' {Count(lines, "read-only transaction")} (during the spell {Count(duringSpell, "read-only transaction")}), " +
            $"errors of the processes {lines.Count(l => l.StartsWith("fail:", StringComparison.Ordinal))}");
        Assert.Multiple(() =>
        {
            Assert.That((tally.Lost, tally.Stuck), Is.EqualTo((0, 0)), tally.ToString());
            Assert.That(tally.Tasks, Is.EqualTo(6000), tally.ToString());
            Assert.That(Count(lines, "[1057]"), Is.InRange(1, 2), "the refusal said once by each process whose services met it\n" + world.Tails());
            Assert.That(Count(lines, "[1012]"), Is.Zero, "no sweep failure logged at each pass\n" + world.Tails());
            Assert.That(Count(lines, "[1058]"), Is.InRange(1, 2), "the services resumed, said once by each process that paused\n" + world.Tails());
        });
    }

    /// <summary>The whole server's <c>default_transaction_read_only</c>, for every session's next transaction (the test's own cluster).</summary>
    private static async Task SetReadOnlyAsync(FaultWorld world, bool on)
    {
        await using var connection = new NpgsqlConnection(world.Postgres!.LocalConnectionString + ";Options=-c default_transaction_read_only=off");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            (on ? "ALTER SYSTEM SET default_transaction_read_only = on" : "ALTER SYSTEM RESET default_transaction_read_only") + "; SELECT pg_reload_conf()", connection);
        await command.ExecuteNonQueryAsync();
    }
}
