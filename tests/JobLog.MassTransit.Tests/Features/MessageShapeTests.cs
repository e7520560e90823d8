using JobLog.MassTransit.Tests.Courier;
using JobLog.Testing;
using MassTransit;
using MassTransit.Courier.Contracts;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public interface IShipmentEvent
{
    Guid ShipmentId { get; }
}

public sealed record ShipmentDispatched(Guid ShipmentId, string Carrier) : IShipmentEvent;

public sealed class ShipmentAuditConsumer : IConsumer<IShipmentEvent>
{
    public Task Consume(ConsumeContext<IShipmentEvent> context) => Task.CompletedTask;
}

public sealed class ShipmentDispatchedConsumer : IConsumer<ShipmentDispatched>
{
    public Task Consume(ConsumeContext<ShipmentDispatched> context) => Task.CompletedTask;
}

public sealed class Manifest
{
    public Guid ManifestId { get; init; }

    public MessageData<string> Document { get; init; } = null!;
}

public sealed class ManifestConsumer : IConsumer<Manifest>
{
    public async Task Consume(ConsumeContext<Manifest> context)
    {
        var text = await context.Message.Document.Value;
        if (text.Length < 100_000)
        {
            throw new InvalidOperationException("document too short: " + text.Length);
        }
    }
}

public sealed class OrderFulfilled
{
    public int OrderId { get; init; }

    public Guid TrackingNumber { get; init; }
}

public sealed class SlipAuditConsumer : IConsumer<RoutingSlipCompleted>, IConsumer<RoutingSlipFaulted>, IConsumer<OrderFulfilled>
{
    public Task Consume(ConsumeContext<RoutingSlipCompleted> context) => Task.CompletedTask;

    public Task Consume(ConsumeContext<RoutingSlipFaulted> context) => Task.CompletedTask;

    public Task Consume(ConsumeContext<OrderFulfilled> context) => Task.CompletedTask;
}

/// <summary>Session 28's probes of message shapes (in memory): polymorphic events, message data, Courier subscriptions.</summary>
public class MessageShapeTests
{
    /// <summary>
    /// Polymorphic messages: a consumer of an interface (<c>IConsumer&lt;IShipmentEvent&gt;</c>) and one of the concrete type.
    /// The concrete event published is one task with a run of each; published as the interface (the object, or an
    /// initializer), one task of the interface type with the interface consumer's run only, as MassTransit delivers it.
    /// </summary>
    [Test]
    public async Task PolymorphicEvent_ConsumersOfTheInterfaceAndOfTheType_OneTaskWithTheRunsOfThoseItReached()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
        {
            x.AddConsumer<ShipmentAuditConsumer>();
            x.AddConsumer<ShipmentDispatchedConsumer>();
        });
        var (concrete, asInterface, initializer) = (NewId.NextGuid(), NewId.NextGuid(), NewId.NextGuid());
        await bus.Bus.Publish(new ShipmentDispatched(Guid.NewGuid(), "dhl"), x => x.MessageId = concrete);
        await bus.Bus.Publish<IShipmentEvent>(new ShipmentDispatched(Guid.NewGuid(), "ups"), x => x.MessageId = asInterface);
        await bus.Bus.Publish<IShipmentEvent>(new { ShipmentId = Guid.NewGuid() }, x => x.MessageId = initializer);

        var both = await WaitFor(bus, concrete, t => t.State == TaskState.Succeeded && t.Runs.Count == 2, "both consumers ran");
        Assert.That((both.Name, both.Runs.Select(r => r.ConsumerType).Order()), Is.EqualTo(("ShipmentDispatched", new[] { "ShipmentAuditConsumer", "ShipmentDispatchedConsumer" })));
        foreach (var id in new[] { asInterface, initializer })
        {
            var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the interface's consumer ran");
            await bus.Host.FlushAsync();
            task = (await Find(bus, id))!;
            Assert.That((task.Name, task.Runs.Single().ConsumerType), Is.EqualTo(("IShipmentEvent", "ShipmentAuditConsumer")), Describe(task));
        }
    }

    /// <summary>
    /// A big document passed as <c>MessageData&lt;string&gt;</c> (<c>UseMessageData</c>, in-memory repository): the task's input
    /// shows where the document is (its <c>urn:msgdata:</c> address), not the document. Before, the rendering serialized
    /// the message data's <c>Value</c> task: the input read <c>Document={"Value":{"Result":"xxxx…</c> (the whole document
    /// read, the task's internals, the address cut off).
    /// </summary>
    [Test]
    public async Task MessageData_ABigDocument_TheTaskShowsItsAddress_NotTheDocument()
    {
        var repository = new global::MassTransit.MessageData.InMemoryMessageDataRepository();
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<ManifestConsumer>(),
            configureBus: (_, cfg) => cfg.UseMessageData(repository));
        var (big, small) = (NewId.NextGuid(), NewId.NextGuid());
        await bus.Bus.Publish<Manifest>(new { ManifestId = Guid.NewGuid(), Document = new string('x', 300_000) }, x => x.MessageId = big);
        await bus.Bus.Publish<Manifest>(new { ManifestId = Guid.NewGuid(), Document = "short" }, x => x.MessageId = small);

        var consumed = await WaitFor(bus, big, t => t.State == TaskState.Succeeded, "the consumer read the big document");
        var failed = await WaitFor(bus, small, t => t.State == TaskState.Failed, "the consumer refused the short one");
        foreach (var task in new[] { consumed, failed })
        {
            TestContext.Out.WriteLine(task.Input);
            Assert.That(task.Input, Does.Contain("Document=").And.Contain("\"Address\":\"urn:msgdata:").And.Not.Contain("xxxxxxxxxx")
                .And.Not.Contain("IsCompletedSuccessfully").And.Not.Contain("\"Result\""));
            Assert.That(task.TaskKwargs, Does.Contain("[not rendered: Task of String, not awaited]").And.Not.Contain("xxxxxxxxxx"));
        }
    }
    /// <summary>
    /// Courier subscriptions (<c>builder.AddSubscription(address, events)</c>): the routing slip's events are sent to the
    /// subscriber's queue. With a message of its own (<c>x.Send&lt;OrderFulfilled&gt;(new { OrderId = 5 })</c>), the subscriber
    /// receives that message, not Courier's event: its task is an <c>OrderFulfilled</c> of the application (not internal),
    /// whose input holds the subscription's values. Before, the task was named after the event the message replaced
    /// (<c>RoutingSlipCompleted</c>), internal (out of the default lists) and showed the event's fields, not OrderId.
    /// </summary>
    [Test]
    public async Task RoutingSlipSubscription_WithAMessageOfItsOwn_ItsTaskIsThatMessage_TheApplicationsNotCouriers()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
        {
            x.AddActivity<ReserveActivity, ReserveArguments, ReserveLog>();
            x.AddExecuteActivity<ShipActivity, ShipArguments>();
            x.AddConsumer<SlipAuditConsumer>().Endpoint(e => e.Name = "slip-audit");
        });
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddActivity("Reserve", CourierAddresses.Execute<ReserveActivity, ReserveArguments>(), new { OrderId = 5, Quantity = 2 });
        builder.AddActivity("Ship", CourierAddresses.Execute<ShipActivity, ShipArguments>(), new { OrderId = 5 });
        builder.AddSubscription(new Uri("queue:slip-audit"), RoutingSlipEvents.Completed);
        await builder.AddSubscription(new Uri("queue:slip-audit"), RoutingSlipEvents.Completed, x => x.Send<OrderFulfilled>(new { OrderId = 5 }));
        var slip = builder.Build();

        await bus.Bus.Execute(slip);

        await WaitFor(bus, slip.TrackingNumber, t => t.State == TaskState.Succeeded, "the routing slip completed");
        List<TaskLog> delivered = [];
        await LedgerHost.EventuallyAsync(
            async () => (delivered = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs)
                .Where(t => t.QueueName == "slip-audit" && t.State == TaskState.Succeeded).ToListAsync())).Count == 2,
            TimeSpan.FromSeconds(20), "both subscriptions' messages consumed");
        foreach (var t in delivered)
        {
            TestContext.Out.WriteLine($"{t.Name} internal={t.IsInternal} input={t.Input} " + Describe(t));
        }

        var own = delivered.SingleOrDefault(t => t.Runs.Single().Name == nameof(OrderFulfilled));
        Assert.That(own, Is.Not.Null, "the subscriber consumed an OrderFulfilled");
        Assert.That((own!.Name, own.IsInternal, own.Runs.Single().ConsumerType), Is.EqualTo((nameof(OrderFulfilled), false, nameof(SlipAuditConsumer))));
        Assert.That(own.Input, Does.Contain("OrderId=5").And.Contain("TrackingNumber=" + slip.TrackingNumber));
        var courier = delivered.Single(t => t != own);
        Assert.That((courier.Name, courier.IsInternal), Is.EqualTo(("RoutingSlipCompleted", true)), "the plain subscription's event is Courier's, as before");
    }
}
