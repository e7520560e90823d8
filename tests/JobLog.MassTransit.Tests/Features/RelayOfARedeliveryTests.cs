using MassTransit;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public class RelayOfARedeliveryTests
{
    [Test]
    public async Task ConsumerOfARedeliveredMessage_SendingWithItsHeadersCopied_RecordsTheSentTaskAndSucceeds()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
            {
                x.AddConsumer<RelayConsumer>();
                x.AddConsumer<ChargeCardConsumer>();
            },
            configureBus: (_, cfg) => cfg.UseDelayedRedelivery(r => r.Intervals(100)));
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new Relay(5), x => x.MessageId = id);
        var relay = await WaitFor(bus, id, t => t.Runs.Count == 2 && t.Runs.All(r => r.Stop != null), "retried by redelivery, then relayed");
        await Task.Delay(1000);
        await bus.Host.FlushAsync();
        var tasks = await bus.Host.TasksAsync();
        foreach (var t in tasks)
        {
            TestContext.Out.WriteLine(t.Id + " " + Describe(t));
        }

        relay = tasks.Single(t => t.Id == id);
        Assert.That(relay.Runs.OrderBy(r => r.Start).Select(r => r.State), Is.EqualTo(new[] { TaskRunState.Retried, TaskRunState.Succeeded }));
        var relayed = tasks.Single(t => t.Name == "ChargeCard");
        Assert.That(relayed.State, Is.EqualTo(TaskState.Succeeded));
        Assert.That(relayed.ParentRunId, Is.EqualTo(relay.Runs.Single(r => r.State == TaskRunState.Succeeded).Id), "the relayed message was recorded when sent, in the run that sent it");
    }
}
