using System.Text;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;
using RabbitMQ.Client;

namespace JobLog.MassTransit.Tests;

/// <summary>Bytes only a broker can carry: a body that is not JSON at all.</summary>
public class RabbitMqBadInputTests
{
    [Test]
    public async Task Message_ThatIsNotValidJson_GoesToError_WithoutLedgerRows_AndTheWorkerKeepsConsuming()
    {
        await using var bus = await BusFixture.StartAsync(Transport.RabbitMq, x => x.AddConsumer<ChargeCardConsumer>());
        var factory = new ConnectionFactory
        {
            HostName = RabbitMqVhost.Host, VirtualHost = bus.Vhost!.Name, UserName = "guest", Password = "guest",
        };
        await using (var connection = await factory.CreateConnectionAsync())
        await using (var channel = await connection.CreateChannelAsync())
        {
            var properties = new BasicProperties
            {
                ContentType = "application/vnd.masstransit+json",
                MessageId = Guid.NewGuid().ToString(),
                Persistent = true,
            };
            var garbage = Encoding.UTF8.GetBytes("{\"message\": {\"customerId\": 4\u0000\u0001 <script>not json");
            await channel.BasicPublishAsync("charge-card", "", false, properties, garbage);
            await channel.BasicPublishAsync("charge-card", "", false, properties, new byte[] { 0xFF, 0xFE, 0x00, 0x80 });
        }

        await LedgerHost.EventuallyAsync(async () => await bus.Vhost.MessagesInQueueAsync("charge-card_error") == 2, because: "both moved to _error");

        var id = NewId.NextGuid();
        await bus.Bus.Publish(new ChargeCard(5, 1m), x => x.MessageId = id);
        await LedgerHost.EventuallyAsync(
            async () => await bus.Host.QueryAsync(db => db.TaskLogs.AnyAsync(t => t.Id == id && t.State == TaskState.Succeeded)),
            because: "a valid message after the garbage is consumed and recorded");
        Assert.That(await bus.Host.QueryAsync(db => db.TaskLogs.CountAsync()), Is.EqualTo(1), "no ledger rows for undeserializable bytes");
    }
}
