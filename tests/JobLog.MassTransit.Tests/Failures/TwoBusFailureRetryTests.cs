using JobLog.Failures;
using JobLog.MassTransit.Tests.Features;
using JobLog.Testing;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Failures;

/// <summary>Retrying from the ledger in an application with two buses (<c>AddMassTransit&lt;ISecondBus&gt;</c>), each on its own RabbitMQ virtual host.</summary>
public class TwoBusFailureRetryTests
{
    /// <summary>
    /// Each bus runs a retry sender; before the fix whichever claimed a retry sent it through its own bus, so a retry of
    /// the second bus's message claimed by the first bus's sender was confirmed by the first virtual host and dropped
    /// there: counted sent, never consumed (the task stayed FAILED). Six retries, one at a time, each had that chance.
    /// </summary>
    [Test]
    public async Task Retry_OfAMessageOfTheSecondBus_IsSentThroughTheSecondBus_AndConsumed()
    {
        await using var first = await RabbitMqVhost.CreateAsync();
        await using var second = await RabbitMqVhost.CreateAsync();
        var gate = new Gate();
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.Failures.RetriesPerSecond = 5000;
            o.Failures.RetryPollInterval = TimeSpan.FromMilliseconds(50);
        }, services: s =>
        {
            s.AddSingleton(gate);
            s.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            s.AddMassTransit(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddConsumer<ChargeCardConsumer>();
                x.UsingTestVhost(first);
            });
            s.AddMassTransit<ISecondBus>(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddConsumer<ToggledConsumer>();
                x.UsingTestVhost(second);
            });
        });
        var ids = Enumerable.Range(0, 6).Select(_ => NewId.NextGuid()).ToList();
        foreach (var (id, n) in ids.Select((id, n) => (id, n)))
        {
            await host.Services.GetRequiredService<ISecondBus>().Publish(new Toggled(n, "s"), x => x.MessageId = id);
        }

        await FailureTestKit.WaitFailedAndKeptAsync(host, ids);
        gate.Open = true;
        var actions = host.Services.GetRequiredService<IFailureActions>();
        foreach (var id in ids)
        {
            var receipt = await actions.RetryAsync(new FailureActionRequest([id], "tester"));
            Assert.That(receipt.Accepted, Is.EqualTo(1));
            try
            {
                await LedgerHost.EventuallyAsync(async () => (await host.TasksAsync()).Any(t => t.Id == id && t.State == TaskState.Succeeded),
                    TimeSpan.FromSeconds(15), "the retry was consumed");
            }
            catch (TimeoutException ex)
            {
                var progress = await actions.GetRetryProgressAsync(receipt.RequestId);
                throw new TimeoutException($"{ex.Message}: {progress}", ex);
            }
        }

        Assert.That(ids.Select(id => gate.Succeeded.GetValueOrDefault(id)), Has.All.EqualTo(1));
        Assert.That(await first.MessagesInQueueAsync("toggled"), Is.EqualTo(-1), "nothing of the second bus on the first vhost");
    }
}
