using System.Text;
using JobLog.Testing;
using MassTransit;
using NUnit.Framework;
using RabbitMQ.Client;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public class RabbitRawJsonTests
{
    [Test]
    public async Task RawJson_FromAForeignProducer_WithHostileIdsAndHeaders_IsConsumedAndRecorded()
    {
        await using var bus = await BusFixture.StartAsync(Transport.RabbitMq, x => x.AddConsumer<ChargeCardConsumer>(),
            configureBus: (_, cfg) => cfg.UseRawJsonDeserializer(RawSerializerOptions.AnyMessageType));
        var factory = new ConnectionFactory
        {
            HostName = RabbitMqVhost.Host, VirtualHost = bus.Vhost!.Name, UserName = "guest", Password = "guest",
        };
        await using (var connection = await factory.CreateConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync())
        {
            var properties = new BasicProperties
            {
                ContentType = "application/json",
                MessageId = "not-a-guid'; DROP TABLE x; --",
                CorrelationId = "also-not-a-guid",
                Persistent = true,
                Headers = new Dictionary<string, object?>
                {
                    ["MT-OriginalMessageId"] = Encoding.UTF8.GetBytes("zzz"),
                    ["MT-Redelivery-Count"] = Encoding.UTF8.GetBytes("many"),
                    ["JobLog-ParentRunId"] = Encoding.UTF8.GetBytes("<script>"),
                    ["X-Evil"] = Encoding.UTF8.GetBytes("\u0000\u202e\r\nSet-Cookie: a"),
                },
            };
            await channel.BasicPublishAsync("charge-card", "", false, properties, Encoding.UTF8.GetBytes("{\"customerId\":77,\"amount\":3}"));
        }

        await LedgerHost.EventuallyAsync(async () => (await bus.Host.TasksAsync()).Any(t => t.State != TaskState.Waiting && t.Runs.All(r => r.Stop != null)),
            TimeSpan.FromSeconds(20), "consumed and recorded");
        var tasks = await bus.Host.TasksAsync();
        foreach (var t in tasks)
        {
            TestContext.Out.WriteLine(t.Id + " " + Describe(t));
        }

        Assert.That(tasks, Has.Count.EqualTo(1));
        Assert.That(tasks[0].State, Is.EqualTo(TaskState.Succeeded));
        Assert.That(tasks[0].Runs.Single().Output, Does.Contain("charging customer 77"));
        Assert.That(await bus.Vhost.MessagesInQueueAsync("charge-card_error"), Is.LessThanOrEqualTo(0));
    }
}
