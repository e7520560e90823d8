using JobLog.Testing;
using MassTransit;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Features;

public sealed record ReviseArguments(int OrderId, bool Empty);

public sealed record ReviseLog(int OrderId);

/// <summary>
/// Revises the itinerary mid-flight: with <c>Empty</c>, drops what is left (the slip completes here); otherwise adds
/// <see cref="ShipActivity"/> in place of what is left (the <see cref="AuditActivity"/> removed).
/// </summary>
public sealed class ReviseActivity : IActivity<ReviseArguments, ReviseLog>
{
    public Task<ExecutionResult> Execute(ExecuteContext<ReviseArguments> context) => Task.FromResult(context.Arguments.Empty
        ? context.ReviseItinerary(new ReviseLog(context.Arguments.OrderId), _ => { })
        : context.ReviseItinerary(new ReviseLog(context.Arguments.OrderId), builder =>
        {
            builder.AddActivity("Ship", new Uri($"queue:{KebabCaseEndpointNameFormatter.Instance.ExecuteActivity<ShipActivity, ShipArguments>()}"),
                new { context.Arguments.OrderId });
        }));

    public Task<CompensationResult> Compensate(CompensateContext<ReviseLog> context) => Task.FromResult(context.Compensated());
}

public sealed record ShipArguments(int OrderId);

public sealed class ShipActivity : IExecuteActivity<ShipArguments>
{
    public Task<ExecutionResult> Execute(ExecuteContext<ShipArguments> context) => Task.FromResult(context.Completed());
}

public sealed record AuditArguments(int OrderId);

public sealed class AuditActivity : IExecuteActivity<AuditArguments>
{
    public Task<ExecutionResult> Execute(ExecuteContext<AuditArguments> context) => Task.FromResult(context.Completed());
}

/// <summary>Session 35 (apps): a routing slip whose itinerary an activity revises mid-flight (<c>ReviseItinerary</c>).</summary>
public class CourierReviseTests
{
    private static Uri Execute<TActivity, TArguments>()
        where TActivity : class, IExecuteActivity<TArguments>
        where TArguments : class =>
        new($"queue:{KebabCaseEndpointNameFormatter.Instance.ExecuteActivity<TActivity, TArguments>()}");

    private static Task<BusFixture> StartAsync() => BusFixture.StartAsync(Transport.InMemory, x =>
    {
        x.AddActivity<ReviseActivity, ReviseArguments, ReviseLog>();
        x.AddExecuteActivity<ShipActivity, ShipArguments>();
        x.AddExecuteActivity<AuditActivity, AuditArguments>();
    });

    [Test]
    public async Task Revised_AddingAnActivityAndRemovingOne_TheAddedRuns_TheRemovedDoesNot_TheSlipSucceeds()
    {
        await using var bus = await StartAsync();
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddVariable("OrderId", 7);
        builder.AddActivity("Revise", Execute<ReviseActivity, ReviseArguments>(), new { Empty = false });
        builder.AddActivity("Audit", Execute<AuditActivity, AuditArguments>());
        var slip = builder.Build();

        await bus.Bus.Execute(slip);
        var task = await PipelineFeatureTests.WaitFor(bus, slip.TrackingNumber,
            t => t.Runs.Any(r => r.ConsumerType == "RoutingSlip" && r.Stop != null), "the routing slip's own run ended", seconds: 60);

        TestContext.Out.WriteLine(PipelineFeatureTests.Describe(task));
        Assert.That(task.State, Is.EqualTo(TaskState.Succeeded));
        Assert.That(task.Input, Is.EqualTo("Itinerary: Revise → Audit"), "the itinerary as dispatched");
        Assert.That(task.Runs.Select(r => (r.ConsumerType, r.State)), Is.EquivalentTo(new[]
        {
            ("RoutingSlip", TaskRunState.Succeeded), ("ReviseActivity", TaskRunState.Succeeded), ("ShipActivity", TaskRunState.Succeeded),
        }));
    }

    [Test]
    public async Task Revised_ToAnEmptyItinerary_MidFlight_TheSlipSucceeds_NotLeftActive()
    {
        await using var bus = await StartAsync();
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddVariable("OrderId", 8);
        builder.AddActivity("Revise", Execute<ReviseActivity, ReviseArguments>(), new { Empty = true });
        builder.AddActivity("Ship", Execute<ShipActivity, ShipArguments>());
        builder.AddActivity("Audit", Execute<AuditActivity, AuditArguments>());
        var slip = builder.Build();

        await bus.Bus.Execute(slip);
        TaskLog task;
        try
        {
            task = await PipelineFeatureTests.WaitFor(bus, slip.TrackingNumber,
                t => t.Runs.Any(r => r.ConsumerType == "RoutingSlip" && r.Stop != null), "the routing slip's own run ended", seconds: 60);
        }
        finally
        {
            TestContext.Out.WriteLine(PipelineFeatureTests.Describe(await PipelineFeatureTests.Find(bus, slip.TrackingNumber)));
        }

        Assert.That(task.State, Is.EqualTo(TaskState.Succeeded));
        Assert.That(task.Runs.Select(r => (r.ConsumerType, r.State)), Is.EquivalentTo(new[]
        {
            ("RoutingSlip", TaskRunState.Succeeded), ("ReviseActivity", TaskRunState.Succeeded),
        }));
    }
}
