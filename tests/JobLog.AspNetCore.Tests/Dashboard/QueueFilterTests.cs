using System.Text.Json;
using JobLog.Testing;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Dashboard;

/// <summary>The queue filter finds a task by the exchange it was sent to and by the queues that consumed it.</summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class QueueFilterTests(LedgerProvider provider)
{
    [Test]
    public async Task QueueFilter_MatchesTheTasksExchange_AndTheQueuesOfItsRuns()
    {
        await using var host = await DashboardHost.StartAsync(await Ledgers.CreateAsync(provider));
        var now = DateTime.UtcNow;
        var published = Rows.Task("OrderPlaced", now.AddMinutes(-1), queue: "Shop.Contracts:OrderPlaced");
        var billing = Rows.Run(published, 0, TaskRunState.Succeeded, 0.1, 0.2);
        billing.QueueName = "billing";
        var shipping = Rows.Run(published, 0, TaskRunState.Succeeded, 0.1, 0.3);
        shipping.QueueName = "shipping";
        shipping.ConsumerType = "Shipping.OrderPlacedConsumer";
        var other = Rows.Task("ChargeCard", now.AddMinutes(-2), queue: "charge-card");
        await host.SeedAsync(published, billing, shipping, other);

        Assert.That(await Ids(host, "Shop.Contracts:OrderPlaced"), Is.EqualTo(new[] { published.Id }));
        Assert.That(await Ids(host, "billing"), Is.EqualTo(new[] { published.Id }), "the queue that consumed it");
        Assert.That(await Ids(host, "shipping"), Is.EqualTo(new[] { published.Id }));
        Assert.That(await Ids(host, "charge-card"), Is.EqualTo(new[] { other.Id }));
        Assert.That(await Ids(host, "nowhere"), Is.Empty);
    }

    private static async Task<List<Guid>> Ids(DashboardHost host, string queue)
    {
        using var json = JsonDocument.Parse(await host.GetStringAsync("/joblog/api/tasks?queue=" + Uri.EscapeDataString(queue)));
        return json.RootElement.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("id").GetGuid()).ToList();
    }
}
