using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public sealed record BulkOrder(Guid OrderId, int Lines);

public sealed record OrderLine(Guid OrderId, int Line);

/// <summary>Publishes one event per line of the order, all in one consume.</summary>
public sealed class BulkOrderConsumer : IConsumer<BulkOrder>
{
    public async Task Consume(ConsumeContext<BulkOrder> context)
    {
        for (var i = 0; i < context.Message.Lines; i++)
        {
            await context.Publish(new OrderLine(context.Message.OrderId, i));
        }
    }
}

public sealed class OrderLineConsumer : IConsumer<OrderLine>
{
    public Task Consume(ConsumeContext<OrderLine> context) => Task.CompletedTask;
}

/// <summary>Session 29's probes of MassTransit features with real applications.</summary>
public class Session29ProbeTests
{
    /// <summary>
    /// A consumer that publishes 1,000 events in one consume, behind MassTransit's in-memory outbox
    /// (<c>UseInMemoryOutbox</c>: the publishes leave when the consume ends): each event is a task whose parent is the
    /// consume's run, each consumed once, SUCCEEDED.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task Consumer_Publishing1000EventsInOneConsume_BehindTheInMemoryOutbox_EachIsAChildOfTheRun_AndSucceeds(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x =>
        {
            x.AddConsumer<BulkOrderConsumer>();
            x.AddConsumer<OrderLineConsumer>();
        }, configureBus: (context, cfg) => cfg.UseInMemoryOutbox(context));
        var orderId = NewId.NextGuid();
        var messageId = NewId.NextGuid();

        await bus.Bus.Publish(new BulkOrder(orderId, 1000), x => x.MessageId = messageId);

        var order = await WaitFor(bus, messageId, t => t.State == TaskState.Succeeded, "the order consumed");
        var run = order.Runs.Single();
        var key = orderId.ToString();
        List<TaskLog> lines = [];
        await LedgerHost.EventuallyAsync(
            async () =>
            {
                lines = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs)
                    .Where(t => t.Name == nameof(OrderLine) && t.ParentRunId == run.Id).ToListAsync());
                return lines.Count == 1000 && lines.All(t => t.State == TaskState.Succeeded);
            },
            TimeSpan.FromSeconds(60),
            "every line recorded under the order's run and consumed");
        Assert.That(lines.Select(t => t.Runs.Count), Has.All.EqualTo(1));
        Assert.That(lines.Select(t => t.ConversationId).Distinct(), Is.EqualTo(new[] { order.ConversationId }));
        Assert.That(lines.Where(t => !(t.Input ?? "").Contains(key, StringComparison.Ordinal)), Is.Empty);
        var stray = await bus.Host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Name == nameof(OrderLine) && t.ParentRunId != run.Id));
        Assert.That(stray, Is.Zero, "no line outside the order's run");
    }
}
