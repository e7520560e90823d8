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
}
