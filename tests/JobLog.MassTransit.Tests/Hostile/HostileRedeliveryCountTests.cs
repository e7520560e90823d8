using JobLog.Failures;
using JobLog.MassTransit.Tests.Courier;
using JobLog.MassTransit.Tests.Jobs;
using JobLog.MassTransit.Tests.Sagas;
using JobLog.Testing;
using MassTransit;
using MassTransit.Saga;
using MassTransit.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Hostile;

/// <summary>
/// A sender's <c>MT-Redelivery-Count</c> that MassTransit cannot read as an int (or can, but is nonsense) on a message to a
/// saga state machine, a Courier activity and a job: the ledger reads as it does without the header (the same task state,
/// the same runs, each run's error in the same failure group), never MassTransit's <c>JsonException</c> in the failure's place.
/// </summary>
public class HostileRedeliveryCountTests
{
    private static readonly string[] Counts = ["many", "2147483648", "1e400", "-5"];

    private static string Describe(TaskLog task) =>
        string.Join("; ", task.Runs.OrderBy(r => r.Start).ThenBy(r => r.Retries).Select(r => $"{r.ConsumerType} #{r.Retries} {r.State}: {FailureSignature.Parse(r.ErrorMessage)}"));

    private static string Shape(TaskLog task) =>
        task.State + " | " + string.Join("; ", task.Runs.OrderBy(r => r.ConsumerType, StringComparer.Ordinal).ThenBy(r => r.Retries)
            .Select(r => $"{r.ConsumerType} #{r.Retries} {r.State}: {FailureSignature.Parse(r.ErrorMessage)} / {FirstLine(r.ErrorMessage)}"));

    private static string? FirstLine(string? error) => error?.Split('\n')[0].TrimEnd('\r');

    private static async Task<TaskLog> Final(LedgerHost host, Func<JobLogDbContext, Task<TaskLog?>> find, string because)
    {
        TaskLog? task = null;
        await LedgerHost.EventuallyAsync(
            async () => (task = await host.QueryAsync(find)) is { State: TaskState.Succeeded or TaskState.Failed },
            because: because);
        // What settles after the task's state (a routing slip's own run, a retried attempt's end) is in by the flush.
        await host.FlushAsync();
        return (await host.QueryAsync(find))!;
    }

    [TestCase(0)]
    [TestCase(1)]
    public async Task SagaStateMachine_WithAHostileRedeliveryCount_ReadsAsWithout(int retries)
    {
        var shapes = new List<(string? Count, string Shape)>();
        foreach (var count in Counts.Prepend(null))
        {
            shapes.Add((count, await SagaShape(count, retries)));
        }

        AssertAllReadAsWithout(shapes, "SagaConflictException");
    }

    // Each bus in its own async method: MassTransit's log context is an AsyncLocal that a harness sets and its disposal leaves.
    private static async Task<string> SagaShape(string? count, int retries)
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, _ => { }, retries, endpoints: (_, cfg) =>
            cfg.ReceiveEndpoint("order-state-hostile", e => e.StateMachineSaga(new OrderStateMachine(conflicts: int.MaxValue), new InMemorySagaRepository<OrderState>())));
        var order = NewId.NextGuid();
        var submitted = NewId.NextGuid();
        var shipped = NewId.NextGuid();
        await bus.Bus.Publish(new OrderSubmitted(order), x => x.MessageId = submitted);
        await Final(bus.Host, db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == submitted), "the saga started");
        await bus.Bus.Publish(new OrderShipped(order), x =>
        {
            x.MessageId = shipped;
            if (count is not null)
            {
                x.Headers.Set("MT-Redelivery-Count", count);
            }
        });

        var task = await Final(bus.Host, db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == shipped), "the event failed");
        TestContext.Out.WriteLine($"{count ?? "(none)"}: {Describe(task)}");
        return Shape(task);
    }

    [Test]
    public async Task CourierActivity_WithAHostileRedeliveryCount_ReadsAsWithout()
    {
        var shapes = new List<(string? Count, string Shape)>();
        foreach (var count in Counts.Prepend(null))
        {
            shapes.Add((count, await CourierShape(count)));
        }

        AssertAllReadAsWithout(shapes, "card declined");
    }

    private static async Task<string> CourierShape(string? count)
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
        {
            x.AddActivity<ReserveActivity, ReserveArguments, ReserveLog>();
            x.AddActivity<ChargeActivity, ChargeArguments, ChargeLog>();
        });
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddActivity("Charge", CourierAddresses.Execute<ChargeActivity, ChargeArguments>(), new { OrderId = 3, Amount = 1000m });
        var slip = builder.Build();
        var first = await bus.Bus.GetSendEndpoint(slip.Itinerary[0].Address);
        await first.Send(slip, x =>
        {
            if (count is not null)
            {
                x.Headers.Set("MT-Redelivery-Count", count);
            }
        });

        var task = await Final(bus.Host, db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == slip.TrackingNumber), "the routing slip failed");
        TestContext.Out.WriteLine($"{count ?? "(none)"}: {Describe(task)}");
        return Shape(task);
    }

    /// <summary>
    /// The activity's fault could not be reported (the header) and the routing slip's message left the host for the error
    /// queue: the copy kept for a retry from the ledger names the activity's exception, as the routing slip's run does, not
    /// MassTransit's <c>JsonException</c>.
    /// </summary>
    [TestCase("many")]
    [TestCase("1e400")]
    public async Task CourierActivity_WithAHostileRedeliveryCount_KeepsTheMessageUnderTheActivitysException(string count)
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddActivity<ChargeActivity, ChargeArguments, ChargeLog>());
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddActivity("Charge", CourierAddresses.Execute<ChargeActivity, ChargeArguments>(), new { OrderId = 4, Amount = 1000m });
        var slip = builder.Build();
        var first = await bus.Bus.GetSendEndpoint(slip.Itinerary[0].Address);
        await first.Send(slip, x => x.Headers.Set("MT-Redelivery-Count", count));

        await Final(bus.Host, db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == slip.TrackingNumber), "the routing slip failed");
        KeptMessageLog? kept = null;
        await LedgerHost.EventuallyAsync(
            async () => (kept = await bus.Host.QueryAsync(db => db.KeptMessages.AsNoTracking().FirstOrDefaultAsync(k => k.TaskId == slip.TrackingNumber))) is not null,
            because: "the routing slip's message, in the error queue, is kept");
        Assert.That((kept!.ExceptionType, kept.ExceptionMessage), Is.EqualTo((typeof(InvalidOperationException).FullName, "card declined for order 4")));
    }

    /// <summary>
    /// A retry around the activity host (<c>UseRetry</c> on the bus's consume pipe, not <c>UseMessageRetry</c>, which
    /// retries inside the host) whose policy ignores the activity's exception: the activity fails once, its fault cannot be
    /// reported (the header), MassTransit's exception leaves the host and the retry runs the routing slip again, and this
    /// time the activity succeeds and Courier completes the routing slip. The ledger reads as Courier ended: SUCCEEDED, the
    /// failed attempt RETRIED, not FAILED for good. (A policy that handles the activity's exception defers the fault's
    /// report, which then cannot throw: Courier faults the routing slip, as without the header.)
    /// </summary>
    [Test]
    public async Task CourierActivity_FailingOnceUnderAHostileRedeliveryCount_ThenSucceedingOnARetryAroundItsHost_ReadsCompleted()
    {
        await using var bus = await BusFixture.StartAsync(
            Transport.InMemory, x => x.AddExecuteActivity<FailsOnceActivity, FailsOnceArguments>(),
            configureBus: (_, cfg) => RetryAroundEveryPipe(cfg));
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddActivity("FailsOnce", CourierAddresses.Execute<FailsOnceActivity, FailsOnceArguments>(), new { Key = NewId.NextGuid() });
        var slip = builder.Build();
        var first = await bus.Bus.GetSendEndpoint(slip.Itinerary[0].Address);
        await first.Send(slip, x => x.Headers.Set("MT-Redelivery-Count", "many"));

        var task = await Final(bus.Host, db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == slip.TrackingNumber), "the routing slip ended");
        TestContext.Out.WriteLine(Describe(task));
        Assert.That(await bus.Harness.Published.Any<global::MassTransit.Courier.Contracts.RoutingSlipCompleted>(m => m.Context.Message.TrackingNumber == slip.TrackingNumber), Is.True,
            "Courier completed the routing slip on the second delivery attempt");
        var attempts = task.Runs.Where(r => r.ConsumerType == nameof(FailsOnceActivity)).OrderBy(r => r.Start).ToList();
        var own = task.Runs.Single(r => r.ConsumerType == "RoutingSlip");
        Assert.Multiple(() =>
        {
            Assert.That(task.State, Is.EqualTo(TaskState.Succeeded), Describe(task));
            Assert.That((own.State, own.ErrorMessage), Is.EqualTo((TaskRunState.Succeeded, (string?)null)), "the routing slip's own run");
            Assert.That(attempts.Select(r => r.State), Is.EqualTo(new[] { TaskRunState.Retried, TaskRunState.Succeeded }), Describe(task));
            Assert.That(attempts[0].ErrorMessage, Does.StartWith("System.InvalidOperationException: fails once"), "the first attempt's error");
        });
    }

    // The endpoint's whole consume pipe retried: MassTransit marks it obsolete in favour of UseMessageRetry (which retries
    // inside an activity host), but it is still supported, and it is what wraps a host.
#pragma warning disable CS0618
    private static void RetryAroundEveryPipe(IBusFactoryConfigurator cfg) => cfg.UseRetry(r =>
    {
        // The activity's exception is not retried: its fault goes to the context the retry wraps at once, and that report
        // throws (the header); MassTransit's JsonException, which the policy handles, is.
        r.Ignore<InvalidOperationException>();
        r.Immediate(1);
    });
#pragma warning restore CS0618

    [Test]
    public async Task JobConsumer_WithAHostileRedeliveryCountOnItsSubmission_ReadsAsWithout()
    {
        var shapes = new List<(string? Count, string Shape)>();
        foreach (var count in Counts.Prepend(null))
        {
            shapes.Add((count, await JobShape(count)));
        }

        AssertAllReadAsWithout(shapes, "cannot run");
    }

    private static async Task<string> JobShape(string? count)
    {
        await using var host = await JobBus.StartAsync();
        var bus = host.Services.GetTestHarness().Bus;
        // The job message itself, sent to the job consumer's endpoint: the job service chooses its JobId.
        var messageId = NewId.NextGuid();
        await bus.Publish(new BrokenJob(7), x =>
        {
            x.MessageId = messageId;
            if (count is not null)
            {
                x.Headers.Set("MT-Redelivery-Count", count);
            }
        });

        var task = await Final(host, db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Name == "BrokenJob" && t.Id != messageId), "the job failed");
        TestContext.Out.WriteLine($"{count ?? "(none)"}: {Describe(task)}");
        return Shape(task);
    }

    private static void AssertAllReadAsWithout(List<(string? Count, string Shape)> shapes, string failure)
    {
        var without = shapes[0].Shape;
        Assert.That(without, Does.StartWith("Failed").And.Contain(failure).And.Not.Contain("JsonException"), "without the header");
        Assert.Multiple(() =>
        {
            foreach (var (count, shape) in shapes.Skip(1))
            {
                Assert.That(shape, Is.EqualTo(without), $"MT-Redelivery-Count: {count}");
            }
        });
    }
}

public sealed record FailsOnceArguments(Guid Key);

/// <summary>Fails the first execution of each key, succeeds after.</summary>
public sealed class FailsOnceActivity : IExecuteActivity<FailsOnceArguments>
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, int> s_runs = new();

    public Task<ExecutionResult> Execute(ExecuteContext<FailsOnceArguments> context) =>
        s_runs.AddOrUpdate(context.Arguments.Key, 1, (_, n) => n + 1) == 1
            ? throw new InvalidOperationException("fails once")
            : Task.FromResult(context.Completed());
}
