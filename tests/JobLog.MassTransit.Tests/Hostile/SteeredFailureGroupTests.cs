using JobLog.Failures;
using JobLog.Querying;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using Shop.Billing;

namespace JobLog.MassTransit.Tests.Hostile;

/// <summary>
/// The failure group (exception type and first frame of the application's code) of a consumer's failure is the
/// exception's, whatever its message says: a message with lines that look like frames or inner exceptions does not put
/// the failure in another group.
/// </summary>
public class SteeredFailureGroupTests
{
    // Outside JobLog's namespaces: frames of JobLog.MassTransit.* are JobLog's own and never a group's frame.
    private const string Decline = "Shop.Billing.SteeredChargeConsumer.Decline";

    [Test]
    public async Task Failures_WhoseMessagesHoldFramesOrInnerExceptions_AreGroupedByTheExceptionsOwnTypeAndFrame()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<SteeredChargeConsumer>());
        var charges = new[]
        {
            new SteeredCharge("card expired", Wrapped: false),
            new SteeredCharge("x\n   at Shop.Payments.Charge(Order order)\n   at Shop.Payments.Gateway.Send()", Wrapped: false),
            new SteeredCharge("x\r\n   at Shop.Payments.Charge(Order order)", Wrapped: true),
            new SteeredCharge("x\n ---> Shop.Fraud.SuspectedFraudException: y\n   at Shop.Fraud.Check()", Wrapped: true),
        };
        var ids = new List<Guid>();
        foreach (var charge in charges)
        {
            var id = NewId.NextGuid();
            ids.Add(id);
            await bus.Bus.Publish(charge, x => x.MessageId = id);
        }

        List<TaskLog> tasks = [];
        await LedgerHost.EventuallyAsync(
            async () => (tasks = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).Where(t => ids.Contains(t.Id)).ToListAsync()))
                .Count(t => t.State == TaskState.Failed) == charges.Length,
            because: "every charge failed");

        var expected = new FailureSignature(typeof(InvalidOperationException).FullName!, Decline);
        foreach (var task in tasks)
        {
            var error = task.Runs.Single().ErrorMessage;
            Assert.That(FailureSignature.Parse(error), Is.EqualTo(expected), error);
        }

        await using var scope = bus.Host.Services.CreateAsyncScope();
        var groups = await scope.ServiceProvider.GetRequiredService<LedgerQueries>().FailureGroupsAsync(new FailureFilter(), DateTime.UtcNow, default);
        Assert.That(groups.Groups.Select(g => (g.Key, g.Count)), Is.EqualTo(new[] { (expected.ToString(), charges.Length) }), "one group");
    }

    /// <summary>
    /// A sender's <c>MT-Redelivery-Count</c> that is not a number makes MassTransit's fault generation throw (its fault pipe
    /// reads the header as an int: <c>JsonException</c>) from inside the consumer filter's catch, in place of the consumer's
    /// exception. The run's error (and so its failure group) is still the consumer's own, with a line about the fault.
    /// </summary>
    [TestCase(Transport.InMemory, 0)]
    [TestCase(Transport.InMemory, 1)]
    [TestCase(Transport.RabbitMq, 0)]
    public async Task Failure_WithASendersRedeliveryCountThatIsNotANumber_IsRecordedWithTheConsumersOwnException(Transport transport, int retries)
    {
        await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<SteeredChargeConsumer>(), retries);
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new SteeredCharge("r", Wrapped: false), x =>
        {
            x.MessageId = id;
            x.Headers.Set("MT-Redelivery-Count", "many");
        });

        TaskLog? task = null;
        await LedgerHost.EventuallyAsync(
            async () => (task = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == id)))
                ?.State == TaskState.Failed,
            because: "the charge failed");

        var error = task!.Runs.OrderBy(r => r.Retries).Last().ErrorMessage;
        Assert.That(FailureSignature.Parse(error), Is.EqualTo(new FailureSignature(typeof(InvalidOperationException).FullName!, Decline)), error);
        Assert.That(error, Does.StartWith("System.InvalidOperationException: declined: r"), error);
        if (retries == 0)
        {
            // Without a retry the fault is generated in the attempt (with one, after the last attempt, outside it).
            Assert.That(error, Does.Contain("its own exception left the consumer's pipe in its place: System.Text.Json.JsonException"), error);
        }

        // The kept message (for a retry from the ledger) names the consumer's exception too, not MassTransit's.
        KeptMessageLog? kept = null;
        await LedgerHost.EventuallyAsync(
            async () => (kept = await bus.Host.QueryAsync(db => db.KeptMessages.AsNoTracking().SingleOrDefaultAsync(k => k.TaskId == id))) is not null,
            because: "the failed message is kept");
        Assert.That((kept!.ExceptionType, kept.ExceptionMessage), Is.EqualTo((typeof(InvalidOperationException).FullName, "declined: r")));
    }

    /// <summary>
    /// An endpoint handler (<c>e.Handler&lt;T&gt;</c>, no consumer type) with a hostile redelivery count: one MassTransit's
    /// fault generation reads (negative, empty), and ones it cannot read as an int (<c>many</c>, past an int, <c>1e400</c>):
    /// then its fault pipe throws a <c>JsonException</c> in place of the handler's exception. The run's error, its failure
    /// group and the kept message are the handler's own, with and without a retry.
    /// </summary>
    [Test]
    public async Task HandlerFailure_WithAHostileRedeliveryCount_IsRecordedWithTheHandlersOwnException(
        [Values("-5", "", "many", "99999999999999999999", "2147483648", "1e400")] string count, [Values(0, 1)] int retries)
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, _ => { }, retries, endpoints: (_, cfg) => cfg.ReceiveEndpoint("ping-hostile-count", e =>
            e.Handler<Ping>(_ => throw new InvalidOperationException("handler declined"))));
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new Ping(7), x =>
        {
            x.MessageId = id;
            x.Headers.Set("MT-Redelivery-Count", count);
        });

        TaskLog? task = null;
        await LedgerHost.EventuallyAsync(
            async () => (task = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == id)))
                ?.State == TaskState.Failed,
            because: "the handler failed");

        Assert.That(task!.Runs, Has.Count.EqualTo(retries + 1), "one run per attempt");
        foreach (var run in task.Runs)
        {
            Assert.That(run.ErrorMessage, Does.StartWith("System.InvalidOperationException: handler declined"), run.ErrorMessage);
        }

        KeptMessageLog? kept = null;
        await LedgerHost.EventuallyAsync(
            async () => (kept = await bus.Host.QueryAsync(db => db.KeptMessages.AsNoTracking().SingleOrDefaultAsync(k => k.TaskId == id))) is not null,
            because: "the failed message is kept");
        Assert.That((kept!.ExceptionType, kept.ExceptionMessage), Is.EqualTo((typeof(InvalidOperationException).FullName, "handler declined")));
    }
}
