using System.Text;
using JobLog.Testing;
using MassTransit;
using NUnit.Framework;
using RabbitMQ.Client;

namespace JobLog.MassTransit.Tests.Features;

public sealed record SkippedPing(int N);

public sealed record SkippedHostMessage(int N);

public sealed class SkippedHostConsumer : IConsumer<SkippedHostMessage>
{
    public Task Consume(ConsumeContext<SkippedHostMessage> context) => Task.CompletedTask;
}

/// <summary>
/// A message that arrives at a queue where no consumer takes any of its types: MassTransit moves it to the queue's
/// <c>_skipped</c> queue, unconsumed. The ledger says so (a FAILED run), instead of a task WAITING until it goes stale
/// (sent by a JobLog producer) or nothing at all (a foreign producer's).
/// </summary>
[TestFixture(Transport.InMemory)]
[TestFixture(Transport.RabbitMq)]
public class SkippedMessageTests(Transport transport)
{
    [Test]
    public async Task AMessageNoConsumerOnItsQueueTakes_IsAFailedRunSayingItWasSkipped()
    {
        await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<SkippedHostConsumer>());
        var id = NewId.NextGuid();
        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:skipped-host"));
        await endpoint.Send(new SkippedPing(1), x => x.MessageId = id);

        await LedgerHost.EventuallyAsync(async () => (await bus.Host.TaskAsync(id)).Runs.Count > 0, because: "the skipped delivery is recorded");
        var task = await bus.Host.TaskAsync(id);

        Assert.That(task.State, Is.EqualTo(TaskState.Failed));
        var run = task.Runs.Single();
        Assert.That((run.State, run.ConsumerType, run.QueueName), Is.EqualTo((TaskRunState.Failed, "(skipped)", "skipped-host")));
        Assert.That(run.ErrorMessage, Does.StartWith("Skipped: no consumer on skipped-host takes this message (urn:message:JobLog.MassTransit.Tests.Features:SkippedPing)"));
    }

    [Test]
    public async Task AForeignProducersMessage_WithOnlyAVeryLongTypeNoConsumerTakes_IsRecorded_WithItsNameCut()
    {
        if (transport != Transport.RabbitMq)
        {
            Assert.Ignore("a raw envelope is published to RabbitMQ");
        }

        await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<SkippedHostConsumer>());
        var id = NewId.NextGuid();
        var urn = "urn:message:Evil:" + new string('A', 10_000);
        var envelope = $$$"""{"messageId":"{{{id}}}","messageType":["{{{urn}}}"],"message":{"n":1},"headers":{}}""";
        var factory = new ConnectionFactory { HostName = RabbitMqVhost.Host, VirtualHost = bus.Vhost!.Name, UserName = "guest", Password = "guest" };
        await using (var connection = await factory.CreateConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync())
        {
            var properties = new BasicProperties { ContentType = "application/vnd.masstransit+json", MessageId = id.ToString(), Persistent = true };
            await channel.BasicPublishAsync("skipped-host", "", false, properties, Encoding.UTF8.GetBytes(envelope));
        }

        await LedgerHost.EventuallyAsync(async () => (await bus.Host.TasksAsync()).Any(t => t.Id == id && t.Runs.Count > 0), because: "the skipped delivery is recorded");
        var task = await bus.Host.TaskAsync(id);

        Assert.That(task.State, Is.EqualTo(TaskState.Failed));
        Assert.That(task.Name, Has.Length.LessThanOrEqualTo(250));
        Assert.That(task.Runs.Single().ErrorMessage, Does.StartWith("Skipped: no consumer on skipped-host takes this message (urn:message:Evil:AAAA"));
    }
}
