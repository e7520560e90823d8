using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// A bulk retry (README "Failures: keep, retry, resolve") whose sending process is SIGKILLed while items are
/// <i>sending</i>, then started again. The promise tried ("Resumable, nothing sent twice"): the process started again
/// takes the dead sender's claims over once their lease has run out, counts those whose task has a run since the claim as
/// sent and sends the others; every task is retried and consumed, none sent twice (the consumer runs again at once, so
/// the README's window, a message still unconsumed in its queue when the lease runs out, is not open), and the request
/// completes with no item left pending or sending. A delivery consumed and recorded whose acknowledgement the kill cut is
/// redelivered and consumed again: a second run, which the ledger records because the consumer ran twice.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class RetryKilledTests
{
    private const int Probes = 2000;
    private static readonly TimeSpan Drain = TimeSpan.FromMinutes(4);

    private const string Items = "SELECT \"State\", COUNT(*) FROM \"JobLogFailureActionItems\" GROUP BY \"State\"";
    private const string Kept = "SELECT COUNT(*) FROM \"JobLogKeptMessages\"";
    private const string FailedTasks = "SELECT COUNT(*) FROM \"JobLogTasks\" WHERE \"State\" = 4";
    private const string SucceededTasks = "SELECT COUNT(*) FROM \"JobLogTasks\" WHERE \"State\" = 3";

    // The consumer fails every probe until JobLog retries it; its sender looks for the CLI's retry every 0.5 s and a dead
    // sender's claim is taken over after 30 s (a lease longer than the consumer's restart: the queue is drained by then).
    private static readonly string[] Consumer = ["--Fault:FailUnlessRetried=true", "--Fault:RetryLeaseMs=30000", "--Fault:RetryPollMs=500"];

    [Test]
    [CancelAfter(480_000)]
    public async Task BulkRetryKilledWhileSending_TheProcessStartedAgainFinishesIt_EveryTaskRetriedOnce()
    {
        await using var world = await FaultWorld.SqliteAsync();
        var first = await world.StartWithAsync("consume", 0, 0, Consumer);
        var publisher = await world.StartPublisherAsync(Probes);
        await world.WaitUntilAsync(() => world.Published.Count == Probes, Drain, $"{Probes} probes published");
        await publisher.StopAsync(TimeSpan.FromSeconds(60));
        await world.WaitUntilAsync(
            async () => await world.CountAsync(Kept) == Probes && await world.CountAsync(FailedTasks) == Probes, Drain, "every probe FAILED, its message kept");

        var ids = world.Published.Select(id => id.ToString("D")).ToArray();
        var ask = world.StartWorkerCommand(["retry", .. ids, "--by", "faults", "--no-wait"]);
        await ask.WaitForExitAsync(TimeSpan.FromSeconds(120));
        Assert.That(ask.ExitCode, Is.Zero, "the retry asked\n" + ask.Tail(20));
        Assert.That(ask.Output, Does.Contain($"{Probes} queued, 0 skipped"), ask.Tail(20));

        // Killed mid-send: a fifth sent, a batch claimed and being sent.
        Dictionary<string, long> items;
        while (true)
        {
            items = await world.GroupCountsAsync(Items);
            Assert.That(items.GetValueOrDefault("2"), Is.LessThan(Probes), "the retry finished before the kill\n" + world.Tails());
            Assert.That(first.HasExited, Is.False, "the sender died on its own\n" + first.Tail(30));
            if (items.GetValueOrDefault("2") >= Probes / 5 && items.GetValueOrDefault("1") > 0)
            {
                break;
            }

            await Task.Delay(20);
        }

        await first.KillAsync();
        var killed = await world.GroupCountsAsync(Items);
        TestContext.Out.WriteLine($"at the kill: items {Show(items)}; after it: {Show(killed)}; retried probes consumed {world.RetriedDeliveries().Count}");

        var second = await world.StartWithAsync("consume", 0, 0, Consumer);
        await world.WaitUntilAsync(
            async () => await world.GroupCountsAsync(Items) is var now && now.GetValueOrDefault("0") == 0 && now.GetValueOrDefault("1") == 0,
            Drain, "the retry completed (no item pending or sending)");
        await world.WaitUntilAsync(async () => await world.CountAsync(SucceededTasks) == Probes, Drain, "every retried task SUCCEEDED");
        await world.WaitUntilAsync(async () => await world.Vhost!.MessagesInQueueAsync("fault-probe") == 0, Drain, "the probe queue drained");
        await second.StopAsync(TimeSpan.FromSeconds(60));

        var end = await world.GroupCountsAsync(Items);
        var deliveries = world.RetriedDeliveries();
        var sends = deliveries.Where(d => !d.Redelivered).GroupBy(d => d.Id).ToDictionary(g => g.Key, g => g.Count());
        var twice = sends.Where(s => s.Value > 1).Select(s => s.Key).ToList();
        var delivered = deliveries.Select(d => d.Id).ToHashSet();
        var runs = await world.GroupCountsAsync("SELECT \"TaskId\", COUNT(*) FROM \"JobLogTaskRuns\" WHERE \"Retries\" >= 1 AND \"State\" = 2 GROUP BY \"TaskId\"");
        var retries = await world.GroupCountsAsync("SELECT \"Retries\", COUNT(*) FROM \"JobLogTaskRuns\" GROUP BY \"Retries\"");
        // A delivery whose run was recorded but whose acknowledgement the SIGKILL cut is redelivered and consumed again: a
        // second SUCCEEDED run that is what happened (the consumer ran twice), not a retry sent twice. Each run is one of
        // the consumer's deliveries, and a task has more than one only if RabbitMQ redelivered it.
        var deliveriesPerTask = deliveries.GroupBy(d => d.Id).ToDictionary(g => g.Key, g => g.Count());
        var redeliveredIds = deliveries.Where(d => d.Redelivered).Select(d => d.Id).ToHashSet();
        var runsPerTask = runs.ToDictionary(r => Guid.Parse(r.Key), r => r.Value);
        var beyondDeliveries = runsPerTask.Where(r => r.Value > deliveriesPerTask.GetValueOrDefault(r.Key)).Select(r => r.Key).ToList();
        var againUnredelivered = runsPerTask.Where(r => r.Value > 1 && !redeliveredIds.Contains(r.Key)).Select(r => r.Key).ToList();
        var recovered = world.Output.Split('\n').Where(line => line.Contains("retries sent before a restart", StringComparison.Ordinal)).ToList();
        TestContext.Out.WriteLine(
            $"end: items {Show(end)}; retried deliveries {deliveries.Count} ({deliveries.Count(d => d.Redelivered)} redelivered) of {delivered.Count} probes; " +
            $"sent twice {twice.Count}; runs by Retries {Show(retries)}; succeeded retried runs per task {Show(runs.Values.GroupBy(v => v).ToDictionary(g => g.Key.ToString(), g => (long)g.Count()))}");
        foreach (var line in recovered)
        {
            TestContext.Out.WriteLine("taken over: " + line.Trim());
        }

        foreach (var id in twice.Take(5))
        {
            TestContext.Out.WriteLine("sent twice: " + await world.DescribeTaskAsync(id));
        }

        Assert.Multiple(() =>
        {
            Assert.That(killed.GetValueOrDefault("1"), Is.GreaterThan(0), "the kill left claims sending (the case tried)");
            Assert.That(end.GetValueOrDefault("2"), Is.EqualTo(Probes), "every item of the request done\n" + Show(end));
            Assert.That(end.Keys.Except(["2"]), Is.Empty, "no item pending, sending, skipped or failed\n" + Show(end));
            Assert.That(delivered, Is.EquivalentTo(world.Published), "every retried probe delivered to a consumer");
            Assert.That(twice, Is.Empty, "no retry sent twice (two deliveries that are not redeliveries)");
            Assert.That(runs.Count, Is.EqualTo(Probes), "every task has a SUCCEEDED run of its retry");
            Assert.That(beyondDeliveries, Is.Empty, "no task with more SUCCEEDED runs of its retry than its consumer had deliveries of it");
            Assert.That(againUnredelivered, Is.Empty, "a second SUCCEEDED run of a retry only where RabbitMQ redelivered it");
            Assert.That(recovered, Is.Not.Empty, "the process started again took the dead sender's claims over");
        });
    }

    private static string Show(Dictionary<string, long> counts) =>
        string.Join(", ", counts.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}: {c.Value}"));
}
