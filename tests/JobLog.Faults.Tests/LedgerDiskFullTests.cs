using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// The ledger database's own disk full: SQLite's, or PostgreSQL's data directory (session 32). The SQLite ledger's own disk full (not the journal's: that one is <c>FaultTests.JournalOnAFullDisk_…</c>): the
/// database answers, reads work, and every write fails with SQLITE_FULL until space is freed. The promise tried: nothing
/// acknowledged or published meanwhile is lost; it reaches the ledger once the disk has room again.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class LedgerDiskFullTests
{
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(3);

    [Test]
    [CancelAfter(400_000)]
    public async Task SqliteLedgersDiskFullDuringLoad_ThenFreed_NothingLost_NoRunStaysActive()
    {
        await using var world = await FaultWorld.SqliteOnASmallDiskAsync(48 * 1024 * 1024);
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(3000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 300, Drain, "300 probes consumed");

        var filler = world.FillLedgerDisk();
        var before = world.Consumed.Count;
        await world.WaitUntilAsync(() => world.Consumed.Count >= before + 600, Drain, "600 more probes consumed while the ledger's disk is full");
        await world.WaitUntilAsync(() => world.Output.Contains("SQLite Error 13", StringComparison.Ordinal), Drain, "a writer meets the full disk (SQLITE_FULL)");
        File.Delete(filler);

        await world.WaitUntilAsync(() => world.Published.Count == 3000, Drain, "3000 probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        var rejected = world.Output.Split('\n').Count(line => line.Contains("dropped a record", StringComparison.Ordinal));
        Assert.Multiple(() =>
        {
            Assert.That(tally.Lost, Is.Zero, $"records kept while the ledger's disk was full ({rejected} log lines say a record was dropped): {tally}");
            Assert.That(tally.Stuck, Is.Zero, tally.ToString());
        });
    }

    /// <summary>
    /// Session 32: PostgreSQL's data directory on a full file system (its WAL elsewhere): the server answers, reads work,
    /// and every statement that makes a table or an index grow fails with 53100 (<c>could not extend file … No space left on
    /// device</c>) until space is freed. Also asked while the disk is full: what JobLog's health checks answer, from a
    /// process of the ledger whose writer has a record to write: the database's check is Healthy (it answers a query), so
    /// the writer's must say why it is Unhealthy, or an operator looks for a network fault.
    /// </summary>
    [Test]
    [CancelAfter(400_000)]
    public async Task PostgresDataDiskFullDuringLoad_ThenFreed_NothingLost_NoRunStaysActive()
    {
        await using var world = await FaultWorld.PostgresOnASmallDiskAsync(96L << 20);
        await world.StartConsumerAsync();
        await world.StartPublisherAsync(2000);
        await world.WaitUntilAsync(() => world.Consumed.Count >= 200, Drain, "200 probes consumed");

        var filler = world.Postgres!.FillDataDisk();
        var before = world.Consumed.Count;
        await world.WaitUntilAsync(() => world.Consumed.Count >= before + 400, Drain, "400 more probes consumed while the ledger's disk is full");
        await world.WaitUntilAsync(() => world.Output.Contains("53100", StringComparison.Ordinal), Drain, "a writer meets the full disk (53100)");

        // A process of the ledger with a record to write, asked for its health meanwhile.
        var journal = Path.Combine(Path.GetTempPath(), "joblog-faults", "health-" + Guid.NewGuid().ToString("N")[..10]);
        HealthReport report;
        await using (var host = await LedgerHost.StartAsync(TestLedger.ExistingPostgres(world.Postgres.ConnectionString), o => o.SpoolDirectory = journal,
            services => services.AddHealthChecks().AddJobLogHealthChecks()))
        {
            var health = host.Services.GetRequiredService<HealthCheckService>();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            do
            {
                // Records until one needs a new page: a few fit in the free space of the tables' and indexes' last pages.
                for (var i = 0; i < 50; i++)
                {
                    host.RecordDispatch(Guid.NewGuid());
                }

                await Task.Delay(500);
                report = await health.CheckHealthAsync();
            }
            while (report.Status == HealthStatus.Healthy && clock.Elapsed < TimeSpan.FromSeconds(60));

            foreach (var (name, entry) in report.Entries)
            {
                TestContext.Out.WriteLine($"health while the disk is full: {name}: {entry.Status}: {entry.Description}");
            }

            File.Delete(filler);
            Assert.That(await host.TryFlushAsync(TimeSpan.FromSeconds(60)), Is.True, "the health process's record written once the disk has room");
        }

        Directory.Delete(journal, recursive: true);
        await world.WaitUntilAsync(() => world.Published.Count == 2000, Drain, "2000 probes published");
        await world.DrainAsync(Drain);
        await world.StopAllAsync();
        var tally = await world.TallyAsync();
        var lines = world.Output.Split('\n');
        TestContext.Out.WriteLine($"log lines naming 53100 in the processes: {lines.Count(line => line.Contains("53100", StringComparison.Ordinal))}; "
            + $"first: {lines.FirstOrDefault(line => line.Contains("53100", StringComparison.Ordinal))?.Trim()}");
        Assert.Multiple(() =>
        {
            Assert.That(report.Status, Is.Not.EqualTo(HealthStatus.Healthy), "the health checks while the ledger refuses every write");
            Assert.That(report.Entries["joblog-writer"].Description, Does.Contain("No space left on device"), "the writer's check says why");
            Assert.That(tally.Lost, Is.Zero, tally.ToString());
            Assert.That(tally.Stuck, Is.Zero, tally.ToString());
            Assert.That(tally.Tasks, Is.EqualTo(2000), tally.ToString());
        });
    }
}
