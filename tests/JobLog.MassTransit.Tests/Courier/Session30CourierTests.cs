using JobLog.Testing;
using MassTransit;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Courier;

public sealed record BookSeatArguments(int Flight);

public sealed record BookSeatLog(string Seat);

/// <summary>Books a seat and passes it on as a routing slip variable (<c>CompletedWithVariables</c>).</summary>
public sealed class BookSeatActivity : IActivity<BookSeatArguments, BookSeatLog>
{
    public Task<ExecutionResult> Execute(ExecuteContext<BookSeatArguments> context) =>
        Task.FromResult(context.CompletedWithVariables(new BookSeatLog($"{context.Arguments.Flight}-12A"), new { Seat = $"{context.Arguments.Flight}-12A" }));

    public Task<CompensationResult> Compensate(CompensateContext<BookSeatLog> context) => Task.FromResult(context.Compensated());
}

/// <summary>Its <c>Seat</c> argument comes from the variable the booking set; it refuses the seat.</summary>
public sealed record PrintTicketArguments(int Flight, string Seat);

public sealed class PrintTicketActivity : IExecuteActivity<PrintTicketArguments>
{
    public Task<ExecutionResult> Execute(ExecuteContext<PrintTicketArguments> context) =>
        throw new InvalidOperationException($"printer jammed on seat {context.Arguments.Seat}");
}

/// <summary>Courier compensation with variables (session 30).</summary>
public class Session30CourierTests
{
    [Test]
    public async Task RoutingSlip_ArgumentFromAVariableAnActivitySet_FaultsAndCompensates_TheLedgerShowsEachStepsInput()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
        {
            x.AddActivity<BookSeatActivity, BookSeatArguments, BookSeatLog>();
            x.AddExecuteActivity<PrintTicketActivity, PrintTicketArguments>();
        });
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddVariable("Flight", 714);
        builder.AddActivity("BookSeat", new Uri($"queue:{KebabCaseEndpointNameFormatter.Instance.ExecuteActivity<BookSeatActivity, BookSeatArguments>()}"));
        builder.AddActivity("PrintTicket", new Uri($"queue:{KebabCaseEndpointNameFormatter.Instance.ExecuteActivity<PrintTicketActivity, PrintTicketArguments>()}"));
        var slip = builder.Build();
        await bus.Bus.Execute(slip);

        TaskLog? task = null;
        await LedgerHost.EventuallyAsync(async () => (task = await bus.Host.TaskAsync(slip.TrackingNumber)).Runs.Any(r => r.ConsumerType == "RoutingSlip" && r.Stop != null)
            && task.Runs.Any(r => r.ConsumerType == "BookSeatActivity (compensate)" && r.Stop != null), TimeSpan.FromSeconds(30), "the routing slip compensated");
        foreach (var r in task!.Runs.OrderBy(r => r.Start))
        {
            TestContext.Out.WriteLine($"{r.Name} | {r.ConsumerType} | {r.State} | in: {r.Input} | out: {r.Output} | err: {r.ErrorMessage?.Split('\n')[0]}");
        }

        Assert.That(task.State, Is.EqualTo(TaskState.Failed));
        Assert.That(task.Runs.Single(r => r.ConsumerType == "BookSeatActivity").Input, Does.Contain("Flight=714"));
        var print = task.Runs.Single(r => r.ConsumerType == "PrintTicketActivity");
        Assert.That((print.State, print.Input), Is.EqualTo((TaskRunState.Failed, "Flight=714, Seat=714-12A")), "the argument taken from the variable the booking set");
        Assert.That(print.ErrorMessage, Does.Contain("printer jammed on seat 714-12A"));
        var compensate = task.Runs.Single(r => r.ConsumerType == "BookSeatActivity (compensate)");
        Assert.That((compensate.Name, compensate.State, compensate.Input), Is.EqualTo(("BookSeat (compensate)", TaskRunState.Succeeded, "Seat=714-12A")));
        var own = task.Runs.Single(r => r.ConsumerType == "RoutingSlip");
        Assert.That((own.State, own.ErrorMessage?.Split('\n')[0]), Is.EqualTo((TaskRunState.Failed, "Compensated. Faulted in PrintTicket: System.InvalidOperationException: printer jammed on seat 714-12A")));
    }
}
