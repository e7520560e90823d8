using MassTransit;

namespace JobLog.Worker.Demo;

/// <summary>Publishes a mix of demo tasks so every state shows up in the ledger within seconds.</summary>
internal static class DemoPublisher
{
    public static async Task<int> PublishAsync(IBus bus, int rounds, CancellationToken cancellationToken)
    {
        var count = 0;
        for (var i = 0; i < rounds; i++)
        {
            await bus.Publish(new ChargeCard(1000 + i, 10m + i), cancellationToken);
            await bus.Publish(new SyncInventory($"SKU-{i:000}"), cancellationToken);
            await bus.Publish(new SendInvoice(5000 + i, $"customer{i}@example.com"), cancellationToken);
            await bus.Publish(new BuildReport($"Quarterly report {i}", 3), x => x.SetTaskOptions(t => t.StaleTimeLimit = TimeSpan.FromMinutes(5)), cancellationToken);
            count += 4;
        }

        // A task nobody consumes: it expires (TimeToLive 2 s) and the sweeper marks it EXPIRED after its stale limit (4 s).
        var nobody = await bus.GetSendEndpoint(new Uri("queue:joblog-demo-unconsumed"));
        await nobody.Send(new BuildReport("Never built", 0), x => x.SetTaskOptions(t =>
        {
            t.Expires = TimeSpan.FromSeconds(2);
            t.StaleTimeLimit = TimeSpan.FromSeconds(4);
        }), cancellationToken);
        return count + 1;
    }
}
