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
