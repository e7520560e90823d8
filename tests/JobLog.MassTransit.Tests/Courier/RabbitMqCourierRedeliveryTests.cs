using System.Collections.Concurrent;
using JobLog.MassTransit.Tests.Scheduling;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Courier;

public sealed record FlakyChargeArguments(int OrderId, int Failures);

public sealed record FlakyChargeLog(string ChargeId);

/// <summary>Fails its first <see cref="FlakyChargeArguments.Failures"/> executions for an order.</summary>
public sealed class FlakyChargeActivity : IActivity<FlakyChargeArguments, FlakyChargeLog>
{
    public static readonly ConcurrentDictionary<int, int> Attempts = new();

    public Task<ExecutionResult> Execute(ExecuteContext<FlakyChargeArguments> context)
    {
        var n = Attempts.AddOrUpdate(context.Arguments.OrderId, 1, (_, v) => v + 1);
        return n <= context.Arguments.Failures
            ? throw new InvalidOperationException($"gateway busy for order {context.Arguments.OrderId} (attempt {n})")
            : Task.FromResult(context.Completed(new FlakyChargeLog("ch_" + context.Arguments.OrderId)));
    }

    public Task<CompensationResult> Compensate(CompensateContext<FlakyChargeLog> context) => Task.FromResult(context.Compensated());
}

public sealed record FlakyReleaseArguments(int OrderId, int Failures);

public sealed record FlakyReleaseLog(int OrderId, int Failures);

/// <summary>Reserves at once; fails its first <see cref="FlakyReleaseLog.Failures"/> compensations for an order.</summary>
public sealed class FlakyReleaseActivity : IActivity<FlakyReleaseArguments, FlakyReleaseLog>
{
    public static readonly ConcurrentDictionary<int, int> Compensations = new();

    public Task<ExecutionResult> Execute(ExecuteContext<FlakyReleaseArguments> context) =>
        Task.FromResult(context.Completed(new FlakyReleaseLog(context.Arguments.OrderId, context.Arguments.Failures)));

    public Task<CompensationResult> Compensate(CompensateContext<FlakyReleaseLog> context)
    {
        var n = Compensations.AddOrUpdate(context.Log.OrderId, 1, (_, v) => v + 1);
        return n <= context.Log.Failures
            ? throw new InvalidOperationException($"stock service busy for order {context.Log.OrderId} (compensation {n})")
            : Task.FromResult(context.Compensated());
    }
}

/// <summary>
/// A routing slip whose activity is redelivered (the bus's <c>UseScheduledRedelivery</c> or <c>UseDelayedRedelivery</c>)
/// on the real RabbitMQ with the JobLog scheduler: one routing slip task, the activity's attempts numbered across the
/// redeliveries, nothing compensated.
/// </summary>
[TestFixture(true)]
[TestFixture(false)]
public class RabbitMqCourierRedeliveryTests(bool scheduled) : OneSchedulerBusTests
{
    /// <summary>Starts the test's bus with the fixture's redelivery (scheduled or delayed, 500 ms twice) on every activity.</summary>
    private Task<SchedulerBus> StartRedeliveringBusAsync(Action<IBusRegistrationConfigurator> activities) =>
        StartBusAsync(activities, (_, cfg) =>
        {
            if (scheduled)
            {
                cfg.UseScheduledRedelivery(r => r.Intervals(500, 500));
            }
            else
            {
                cfg.UseDelayedRedelivery(r => r.Intervals(500, 500));
            }
        });

    /// <summary>Executes the routing slip and waits until it ends; its task with its runs described.</summary>
    private static async Task<(TaskLog Task, string Described)> ExecuteUntilEndedAsync(SchedulerBus bus, RoutingSlipBuilder builder)
    {
        var slip = builder.Build();
        await bus.Bus.Execute(slip);
        await bus.WaitForTaskAsync(slip.TrackingNumber, t => t.State is TaskState.Succeeded or TaskState.Failed, "the routing slip ends", TimeSpan.FromSeconds(40));
        await bus.Host.FlushAsync();
        var task = await bus.Host.TaskAsync(slip.TrackingNumber);
        var described = string.Join("; ", task.Runs.OrderBy(r => r.Start)
            .Select(r => $"{r.ConsumerType} #{r.Retries} {r.State} next={r.EstimatedTimeOfNextRetry:O} err={r.ErrorMessage?[..Math.Min(80, r.ErrorMessage.Length)]}"));
        TestContext.Out.WriteLine(described);
        return (task, described);
    }

    [TestCase(2, TestName = "RoutingSlip_WhoseActivityIsRedeliveredTwice_Succeeds_WithTheActivitysAttemptsAsRuns")]
    [TestCase(100, TestName = "RoutingSlip_WhoseActivityFailsEveryRedelivery_Fails_TheLastAttemptFailed")]
    public async Task RoutingSlip_WhoseActivityIsRedelivered(int failures)
    {
        var bus = await StartRedeliveringBusAsync(x =>
        {
            x.AddActivity<ReserveActivity, ReserveArguments, ReserveLog>();
            x.AddActivity<FlakyChargeActivity, FlakyChargeArguments, FlakyChargeLog>();
        });
        var orderId = Random.Shared.Next();
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddActivity("Reserve", CourierAddresses.Execute<ReserveActivity, ReserveArguments>(), new { OrderId = orderId, Quantity = 1 });
        builder.AddActivity("Charge", new Uri($"queue:{KebabCaseEndpointNameFormatter.Instance.ExecuteActivity<FlakyChargeActivity, FlakyChargeArguments>()}"),
            new { OrderId = orderId, Failures = failures });
        var (task, described) = await ExecuteUntilEndedAsync(bus, builder);
        var last = failures > 2 ? TaskRunState.Failed : TaskRunState.Succeeded;
        Assert.That(task.State, Is.EqualTo(failures > 2 ? TaskState.Failed : TaskState.Succeeded), described);
        var charge = task.Runs.Where(r => r.ConsumerType == "FlakyChargeActivity").OrderBy(r => r.Start).ToList();
        Assert.That(charge.Select(r => (r.Retries, r.State)),
            Is.EqualTo(new[] { (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, last) }), described);
        Assert.That(charge.Take(2).Select(r => r.EstimatedTimeOfNextRetry), Has.All.Not.Null, described);
        Assert.That(task.Runs.Any(r => r.ConsumerType.EndsWith("(compensate)", StringComparison.Ordinal)), Is.EqualTo(failures > 2),
            "Reserve compensated only when the charge failed for good: " + described);
        Assert.That(await bus.Host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Name == "RoutingSlip")), Is.EqualTo(1), "the redeliveries are no tasks");
    }

    [TestCase(2, TestName = "RoutingSlip_WhoseCompensationIsRedeliveredTwice_IsCompensated_WithTheCompensationsAttemptsAsRuns")]
    [TestCase(100, TestName = "RoutingSlip_WhoseCompensationFailsEveryRedelivery_CompensationFailed_TheLastAttemptFailed")]
    public async Task RoutingSlip_WhoseCompensationIsRedelivered(int failures)
    {
        var bus = await StartRedeliveringBusAsync(x =>
        {
            x.AddActivity<FlakyReleaseActivity, FlakyReleaseArguments, FlakyReleaseLog>();
            x.AddActivity<ChargeActivity, ChargeArguments, ChargeLog>();
        });
        var orderId = Random.Shared.Next();
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddActivity("Release", CourierAddresses.Execute<FlakyReleaseActivity, FlakyReleaseArguments>(), new { OrderId = orderId, Failures = failures });
        builder.AddActivity("Charge", CourierAddresses.Execute<ChargeActivity, ChargeArguments>(), new { OrderId = orderId, Amount = 500m });
        var (task, described) = await ExecuteUntilEndedAsync(bus, builder);
        Assert.That(task.State, Is.EqualTo(TaskState.Failed), "the charge faulted: " + described);
        var compensations = task.Runs.Where(r => r.ConsumerType == "FlakyReleaseActivity (compensate)").OrderBy(r => r.Start).ToList();
        var last = failures > 2 ? TaskRunState.Failed : TaskRunState.Succeeded;
        Assert.That(compensations.Select(r => (r.Retries, r.State)),
            Is.EqualTo(new[] { (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, last) }), described);
        Assert.That(compensations.Take(2).Select(r => r.EstimatedTimeOfNextRetry), Has.All.Not.Null, described);
        var slipRun = task.Runs.Single(r => r.ConsumerType == "RoutingSlip");
        Assert.That(slipRun.ErrorMessage, failures > 2 ? Does.StartWith("Compensation of Release failed") : Does.StartWith("Compensated."), described);
        Assert.That(await bus.Host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Name == "RoutingSlip")), Is.EqualTo(1), "the redeliveries are no tasks");
    }
}
