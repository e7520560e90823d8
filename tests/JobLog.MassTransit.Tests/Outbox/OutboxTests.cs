using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Outbox;

public sealed record PlaceOrder(int OrderId, decimal Total);

public sealed record OrderPlaced(int OrderId, decimal Total, string Customer);

public sealed record OrderAudited(int OrderId);

public sealed class PlaceOrderConsumer : IConsumer<PlaceOrder>
{
    public async Task Consume(ConsumeContext<PlaceOrder> context)
    {
        await context.Publish(new OrderPlaced(context.Message.OrderId, context.Message.Total, "ann"));
        await context.Publish(new OrderAudited(context.Message.OrderId));
    }
}

public sealed record CartCheckedOut(int CartId);

public sealed class CartCheckedOutConsumer : IConsumer<CartCheckedOut>
{
    public static readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, string?> Stamps = new();

    public Task Consume(ConsumeContext<CartCheckedOut> context)
    {
        Stamps[context.MessageId!.Value] = context.Headers.Get<string>("JobLog-InputRequestId");
        return Task.CompletedTask;
    }
}

public sealed class OrderPlacedConsumer : IConsumer<OrderPlaced>
{
    public Task Consume(ConsumeContext<OrderPlaced> context) => Task.CompletedTask;
}

/// <summary>Messages written to MassTransit's outboxes: recorded under their own type, with their payload and their parent run.</summary>
[TestFixture(Transport.InMemory)]
[TestFixture(Transport.RabbitMq)]
public class OutboxTests(Transport transport)
{
    private BusFixture? _bus;

    [TearDown]
    public async Task TearDown()
    {
        if (_bus is not null)
        {
            await _bus.DisposeAsync();
            _bus = null;
        }
    }

    private static void Consumers(IBusRegistrationConfigurator x)
    {
        x.AddConsumer<PlaceOrderConsumer>();
        x.AddConsumer<OrderPlacedConsumer>();
    }

    [Test]
    public async Task ConsumerOutbox_DeliveredMessage_IsRecordedUnderItsOwnTypeWithPayloadAndParentRun()
    {
        _bus = await BusFixture.StartAsync(transport, x =>
        {
            Consumers(x);
            x.AddInMemoryInboxOutbox();
            x.AddConfigureEndpointsCallback((context, _, e) => e.UseInMemoryInboxOutbox(context));
        }, options: o => o.CloseUnconsumedPublishes = true);

        await AssertOrderPlacedRecorded(_bus);
    }

    [Test]
    public async Task InMemoryOutbox_ReleasedMessage_IsLinkedToTheRunThatWroteIt()
    {
        _bus = await BusFixture.StartAsync(
            transport, Consumers, options: o => o.CloseUnconsumedPublishes = true, configureBus: (context, cfg) => cfg.UseInMemoryOutbox(context));

        await AssertOrderPlacedRecorded(_bus);
    }

    [Test]
    public async Task Publish_WhileServingAnInboundRequest_LinksTheTaskToTheRequest_AndStampsTheRequestForTheOutbox()
    {
        _bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<CartCheckedOutConsumer>());
        var request = Guid.NewGuid();
        var id = NewId.NextGuid();

        using (JobLogScope.Push(new AmbientFrame(AmbientKind.InputRequest, request, null)))
        {
            await _bus.Bus.Publish(new CartCheckedOut(4), x => x.MessageId = id);
        }

        await LedgerHost.EventuallyAsync(async () => (await _bus.Host.TaskAsync(id)).State == TaskState.Succeeded, because: "consumed");
        var task = await _bus.Host.TaskAsync(id);
        Assert.That(task.InputRequestId, Is.EqualTo(request));
        Assert.That(CartCheckedOutConsumer.Stamps[id], Is.EqualTo(request.ToString()),
            "the request travels with the message, so a bus outbox's later delivery links to it");
    }

    private static async Task AssertOrderPlacedRecorded(BusFixture bus)
    {
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new PlaceOrder(17, 99.5m), x => x.MessageId = id);

        TaskLog? placed = null;
        await LedgerHost.EventuallyAsync(async () =>
        {
            placed = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs)
                .SingleOrDefaultAsync(t => t.Name == "OrderPlaced" && t.ParentRunId != null && t.State == TaskState.Succeeded));
            return placed is not null
                && await bus.Host.QueryAsync(db => db.TaskLogs.AnyAsync(t => t.Name == "OrderAudited" && t.State == TaskState.Succeeded));
        }, because: "the outbox's message was delivered, consumed and linked");
        var order = await bus.Host.TaskAsync(id);
        var tasks = await bus.Host.TasksAsync();

        Assert.That(tasks.Select(t => t.Name), Is.EquivalentTo(new[] { "PlaceOrder", "OrderPlaced", "OrderAudited" }));
        var audited = tasks.Single(t => t.Name == "OrderAudited");
        Assert.That((audited.State, audited.Runs.Single().ConsumerType), Is.EqualTo((TaskState.Succeeded, "(no consumer)")), "a published event nobody consumes");
        Assert.That(audited.ParentRunId, Is.EqualTo(order.Runs.Single().Id));
        Assert.That(placed!.Name, Is.EqualTo("OrderPlaced"));
        Assert.That(placed.Input, Is.EqualTo("OrderId=17, Total=99.5, Customer=ann"));
        Assert.That(placed.TaskArgs, Is.EqualTo("""[17,99.5,"ann"]"""));
        Assert.That(placed.TaskKwargs, Is.EqualTo("""{"OrderId":17,"Total":99.5,"Customer":"ann"}"""));
        Assert.That(placed.ParentRunId, Is.EqualTo(order.Runs.Single().Id));
        Assert.That(placed.Runs.Single().ConsumerType, Is.EqualTo("OrderPlacedConsumer"));
        Assert.That(placed.DispatchedAt, Is.GreaterThanOrEqualTo(order.Runs.Single().Start));
    }
}
