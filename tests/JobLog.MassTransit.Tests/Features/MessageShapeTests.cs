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

public sealed record OrderFulfilled(int OrderId, Guid TrackingNumber);

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
}
