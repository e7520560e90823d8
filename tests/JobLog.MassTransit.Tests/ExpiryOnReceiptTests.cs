using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests;

/// <summary>
/// A message received after its expiration time is not given to the consumer (Celery's behaviour). On RabbitMQ the broker
/// drops such messages while they are queued, so this is the in-memory transport's case (and a broker's prefetched ones).
/// </summary>
public class ExpiryOnReceiptTests
{
    [Test]
    public async Task Message_ReceivedAfterItsExpiration_IsNotConsumed_AndItsRunIsExpired()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<SlowJobConsumer, SlowJobDefinition>());
        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:slow-job"));
        var quickBefore = Volatile.Read(ref SlowJobConsumer.QuickConsumed);
        var id = NewId.NextGuid();

        await endpoint.Send(new SlowJob(1500));
        await endpoint.Send(new QuickJob(1), x =>
        {
            x.MessageId = id;
            x.SetTaskOptions(t => t.Expires = TimeSpan.FromMilliseconds(300));
        });

        await LedgerHost.EventuallyAsync(
            async () => await bus.Host.QueryAsync(db => db.TaskLogs.AnyAsync(t => t.Id == id && t.State == TaskState.Expired)),
            because: "the late message's task is EXPIRED");
        var task = await bus.Host.TaskAsync(id);
        var run = task.Runs.Single();
        Assert.That(run.State, Is.EqualTo(TaskRunState.Expired));
        Assert.That(run.ErrorMessage, Does.Contain("after its expiration time"));
        Assert.That(task.IsSetAsStale, Is.False, "expired on receipt, not by the sweeper");
        Assert.That(Volatile.Read(ref SlowJobConsumer.QuickConsumed), Is.EqualTo(quickBefore), "the consumer never saw it");
    }
}
