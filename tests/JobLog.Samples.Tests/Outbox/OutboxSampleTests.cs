using JobLog.Samples.Outbox;
using JobLog.Testing;
using Microsoft.Extensions.Hosting;
using NUnit.Framework;

namespace JobLog.Samples.Tests.Outbox;

public class OutboxSampleTests
{
    [Test]
    public async Task OutboxSample_RecordsEachDeliveredMessageUnderItsType_LinkedToTheRunThatWroteIt()
    {
        await using var ledger = TestLedger.Sqlite();
        using var host = OutboxSample.CreateHost(SampleLedger.Args(ledger));
        await host.StartAsync();
        try
        {
            await OutboxSample.RunAsync(host.Services, orders: 3);

            var tasks = await SampleLedger.WaitForAsync(host, t => t.Count == 9 && t.All(x => x.State == TaskState.Succeeded), "nine tasks succeeded");

            Assert.That(tasks.GroupBy(t => t.Name).ToDictionary(g => g.Key, g => g.Count()), Is.EqualTo(new Dictionary<string, int>
            {
                ["SubmitOrder"] = 3, ["OrderAccepted"] = 3, ["SendConfirmation"] = 3,
            }));
            var submitRuns = tasks.Where(t => t.Name == "SubmitOrder").ToDictionary(t => t.Runs.Single().Id);
            foreach (var delivered in tasks.Where(t => t.Name != "SubmitOrder"))
            {
                Assert.That(submitRuns.ContainsKey(delivered.ParentRunId!.Value), Is.True, $"{delivered.Name} links to the run that wrote it");
            }

            var accepted = tasks.Single(t => t.Name == "OrderAccepted" && t.Input!.StartsWith("OrderId=2,"));
            Assert.That(accepted.Input, Is.EqualTo("OrderId=2, Customer=customer-2, Total=20"));
            Assert.That(accepted.Runs.Single().ConsumerType, Is.EqualTo("OrderAcceptedConsumer"));
            Assert.That(submitRuns[accepted.ParentRunId!.Value].Input, Does.StartWith("OrderId=2,"));
            Assert.That(tasks.Where(t => t.Name == "SendConfirmation").Select(t => t.QueueName).Distinct(), Is.EqualTo(new[] { "send-confirmation" }));
            Assert.That(tasks.Single(t => t.Name == "SubmitOrder" && t.Input!.StartsWith("OrderId=1,")).Runs.Single().Output,
                Does.Contain("Accepting order 1 for customer-1"));
        }
        finally
        {
            await host.StopAsync();
        }
    }
}
