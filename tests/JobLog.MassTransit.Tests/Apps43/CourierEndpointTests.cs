using JobLog.MassTransit.Tests.Courier;
using JobLog.Testing;
using MassTransit;
using MassTransit.Courier.Contracts;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Apps43;

/// <summary>
/// Courier activity hosts on a receive endpoint connected after the bus started: are they hooked as the configured
/// ones are (the routing slip one task, each activity a run)?
/// </summary>
public class CourierEndpointTests
{
    /// <summary>
    /// An execute activity host on an endpoint connected after start (<c>ConnectReceiveEndpoint(…, e =&gt;
    /// e.ExecuteActivityHost&lt;ShipActivity, ShipArguments&gt;())</c>), and a faulting one (<c>ChargeActivity</c> over
    /// 100): the routing slip SUCCEEDED with the activity's run and its own <c>Completed.</c>, or FAILED with the
    /// activity's exception.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task ActivityHostsOnAnEndpointConnectedAfterStart_TheRoutingSlipHasTheirRuns(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, _ => { });
        var suffix = Random.Shared.Next(1000, int.MaxValue);
        var (ship, charge) = ("ship43-" + suffix, "charge43-" + suffix);
        var connector = bus.Host.Services.GetRequiredService<IReceiveEndpointConnector>();
        var shipHandle = connector.ConnectReceiveEndpoint(ship, (_, e) => e.ExecuteActivityHost<ShipActivity, ShipArguments>());
        var chargeHandle = connector.ConnectReceiveEndpoint(charge, (_, e) =>
            e.ExecuteActivityHost<ChargeActivity, ChargeArguments>(new Uri("queue:" + charge + "-compensate")));
        await shipHandle.Ready;
        await chargeHandle.Ready;

        var good = new RoutingSlipBuilder(NewId.NextGuid());
        good.AddActivity("Ship", new Uri("queue:" + ship), new ShipArguments(43));
        var bad = new RoutingSlipBuilder(NewId.NextGuid());
        bad.AddActivity("Charge", new Uri("queue:" + charge), new ChargeArguments(43, 500m));
        RoutingSlip goodSlip = good.Build(), badSlip = bad.Build();
        await bus.Bus.Execute(goodSlip);
        await bus.Bus.Execute(badSlip);

        var shipped = await WaitFor(bus, goodSlip.TrackingNumber, t => t.State is TaskState.Succeeded or TaskState.Failed, "the good slip ended", 60);
        var charged = await WaitFor(bus, badSlip.TrackingNumber, t => t.State is TaskState.Succeeded or TaskState.Failed, "the bad slip ended", 60);
        TestContext.Out.WriteLine(Describe(shipped));
        TestContext.Out.WriteLine(Describe(charged));
        Assert.That(shipped.Runs.OrderBy(r => r.ConsumerType).Select(r => (r.ConsumerType, r.State, r.Output ?? "")),
            Is.EqualTo(new[] { ("RoutingSlip", TaskRunState.Succeeded, "Completed."), (nameof(ShipActivity), TaskRunState.Succeeded, "") }));
        Assert.That((shipped.State, shipped.Runs.Single(r => r.ConsumerType == nameof(ShipActivity)).QueueName), Is.EqualTo((TaskState.Succeeded, ship)));
        Assert.That(charged.State, Is.EqualTo(TaskState.Failed));
        Assert.That(charged.Runs.Single(r => r.ConsumerType == nameof(ChargeActivity)).State, Is.EqualTo(TaskRunState.Failed));
        Assert.That(charged.Runs.Single(r => r.ConsumerType == "RoutingSlip").ErrorMessage, Does.Contain("card declined for order 43"));
    }
}
