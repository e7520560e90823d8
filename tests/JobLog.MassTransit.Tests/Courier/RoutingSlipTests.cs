using JobLog.Testing;
using MassTransit;
using MassTransit.Courier.Contracts;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Courier;

/// <summary>Courier routing slips: one task per routing slip (its tracking number), a run per activity attempt and compensation.</summary>
[TestFixture(Transport.InMemory)]
[TestFixture(Transport.RabbitMq)]
public class RoutingSlipTests(Transport transport)
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

    private async Task<BusFixture> Start(int retries = 0)
    {
        _bus = await BusFixture.StartAsync(transport, x =>
        {
            x.AddActivity<ReserveActivity, ReserveArguments, ReserveLog>();
            x.AddActivity<ChargeActivity, ChargeArguments, ChargeLog>();
            x.AddExecuteActivity<ShipActivity, ShipArguments>();
        }, retries);
        return _bus;
    }

    private static RoutingSlip Order(int orderId, decimal amount)
    {
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddActivity("Reserve", CourierAddresses.Execute<ReserveActivity, ReserveArguments>(), new { OrderId = orderId, Quantity = 2 });
        builder.AddActivity("Charge", CourierAddresses.Execute<ChargeActivity, ChargeArguments>(), new { OrderId = orderId, Amount = amount });
        builder.AddActivity("Ship", CourierAddresses.Execute<ShipActivity, ShipArguments>(), new { OrderId = orderId });
        return builder.Build();
    }

    private static async Task<TaskLog> WaitFinal(BusFixture bus, Guid trackingNumber)
    {
        TaskLog? task = null;
        await LedgerHost.EventuallyAsync(
            async () =>
            {
                task = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == trackingNumber));
                return task is { State: TaskState.Succeeded or TaskState.Failed };
            },
            because: "the routing slip's task ends");
        return task!;
    }

    private static string Describe(TaskLog task) =>
        string.Join("; ", task.Runs.OrderBy(r => r.Start).ThenBy(r => r.Retries).Select(r => $"{r.ConsumerType} #{r.Retries} {r.State}"));

    [Test]
    public async Task Execute_WhenEveryActivityCompletes_RecordsTheRoutingSlipSucceededWithARunPerActivity()
    {
        var bus = await Start();
        var slip = Order(1, 20m);

        await bus.Bus.Execute(slip);

        var task = await WaitFinal(bus, slip.TrackingNumber);
        Assert.That(task.State, Is.EqualTo(TaskState.Succeeded), Describe(task));
        Assert.That(task.Name, Is.EqualTo("RoutingSlip"));
        Assert.That(task.Input, Is.EqualTo("Itinerary: Reserve → Charge → Ship"));
        Assert.That(task.TaskKwargs, Does.Contain("reserve_execute"));
        var runs = task.Runs.OrderBy(r => r.Start).ToList();
        Assert.That(
            runs.Where(r => r.ConsumerType != "RoutingSlip").Select(r => (r.ConsumerType, r.Name, r.State)),
            Is.EqualTo(new[]
            {
                ("ReserveActivity", "Reserve", TaskRunState.Succeeded),
                ("ChargeActivity", "Charge", TaskRunState.Succeeded),
                ("ShipActivity", "Ship", TaskRunState.Succeeded),
            }));
        var reserve = runs.Single(r => r.ConsumerType == "ReserveActivity");
        Assert.That(reserve.Input, Is.EqualTo("OrderId=1, Quantity=2"), "the activity's arguments are the run's input");
        Assert.That(reserve.QueueName, Is.EqualTo("reserve_execute"));
        Assert.That(reserve.Output, Does.Contain("reserving 2 for order 1"));
        var own = runs.Single(r => r.ConsumerType == "RoutingSlip");
        Assert.That((own.State, own.Output), Is.EqualTo((TaskRunState.Succeeded, "Completed.")));
        Assert.That(await bus.Host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Name == "RoutingSlip")), Is.EqualTo(1),
            "the hops between activities are not tasks");
    }

    [Test]
    public async Task Execute_WhenAnActivityFaultsAfterRetries_RecordsTheRoutingSlipFailedWithTheExceptionAndItsCompensation()
    {
        var bus = await Start(retries: 2);
        var slip = Order(7, 500m);

        await bus.Bus.Execute(slip);

        var task = await WaitFinal(bus, slip.TrackingNumber);
        Assert.That(task.State, Is.EqualTo(TaskState.Failed), Describe(task));
        var charge = task.Runs.Where(r => r.ConsumerType == "ChargeActivity").OrderBy(r => r.Retries).ToList();
        Assert.That(charge.Select(r => (r.Retries, r.State)),
            Is.EqualTo(new[] { (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, TaskRunState.Failed) }), Describe(task));
        Assert.That(charge[^1].ErrorMessage, Does.Contain("card declined for order 7"));
        Assert.That(charge[0].EstimatedTimeOfNextRetry, Is.Not.Null);
        var compensation = task.Runs.Single(r => r.ConsumerType == "ReserveActivity (compensate)");
        Assert.That((compensation.Name, compensation.State, compensation.QueueName),
            Is.EqualTo(("Reserve (compensate)", TaskRunState.Succeeded, "reserve_compensate")));
        Assert.That(compensation.Output, Does.Contain("releasing reservation"));
        Assert.That(task.Runs.Any(r => r.ConsumerType == "ShipActivity"), Is.False, "the itinerary stopped at the fault");
        var own = task.Runs.Single(r => r.ConsumerType == "RoutingSlip");
        Assert.That(own.State, Is.EqualTo(TaskRunState.Failed));
        Assert.That(own.ErrorMessage, Does.StartWith("Compensated. Faulted in Charge: System.InvalidOperationException: card declined for order 7"));
        Assert.That(own.Output, Is.EqualTo("Faulted; compensated: Reserve."));
    }

    [Test]
    public async Task Execute_WhenTheFirstActivityFaults_RecordsTheRoutingSlipFailedWithNothingToCompensate()
    {
        var bus = await Start();
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddActivity("Charge", CourierAddresses.Execute<ChargeActivity, ChargeArguments>(), new { OrderId = 3, Amount = 1000m });
        var slip = builder.Build();

        await bus.Bus.Execute(slip);

        var task = await WaitFinal(bus, slip.TrackingNumber);
        Assert.That(task.State, Is.EqualTo(TaskState.Failed), Describe(task));
        var own = task.Runs.Single(r => r.ConsumerType == "RoutingSlip");
        Assert.That(own.ErrorMessage, Does.StartWith("Faulted in Charge: System.InvalidOperationException: card declined for order 3"));
        Assert.That(own.Output, Is.EqualTo("Faulted in Charge; nothing to compensate."));
    }

    [Test]
    public async Task Execute_CourierEvents_AreInternalTasksOutsideTheFailureCount()
    {
        var bus = await Start();
        var slip = Order(9, 900m);

        await bus.Bus.Execute(slip);
        await WaitFinal(bus, slip.TrackingNumber);
        await bus.Host.FlushAsync();

        var tasks = await bus.Host.TasksAsync();
        var events = tasks.Where(t => t.Name.StartsWith("RoutingSlipActivity", StringComparison.Ordinal) || t.Name == "RoutingSlipFaulted").ToList();
        Assert.That(events.Select(t => t.Name), Does.Contain("RoutingSlipActivityFaulted"));
        Assert.That(events.All(t => t.IsInternal), Is.True, string.Join(", ", events.Select(t => $"{t.Name} internal={t.IsInternal}")));
        Assert.That(tasks.Where(t => !t.IsInternal).Select(t => (t.Name, t.State)), Is.EqualTo(new[] { ("RoutingSlip", TaskState.Failed) }),
            "the one failure a user sees is the routing slip's");
    }
}
