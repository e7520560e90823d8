using System.Collections.Concurrent;
using JobLog.Failures;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace JobLog.MassTransit.Tests.Apps45;

/// <summary>Fails the consumers that ask it until <see cref="Open"/> is set; counts what ran.</summary>
public sealed class Switch45
{
    public volatile bool Open;

    public ConcurrentDictionary<string, int> Calls { get; } = new();

    public void Count(string what) => Calls.AddOrUpdate(what, 1, (_, n) => n + 1);

    public int Of(string what) => Calls.GetValueOrDefault(what);

    public void ThrowUnlessOpen(string what)
    {
        Count(what);
        if (!Open)
        {
            throw new InvalidOperationException($"{what} is switched off");
        }

        Count(what + " ok");
    }
}

// Courier: Reserve completes (and compensates), Charge fails until the switch is open.
public sealed record Reserve45Arguments(int OrderId);

public sealed record Reserve45Log(int OrderId);

public sealed class Reserve45Activity(Switch45 sw) : IActivity<Reserve45Arguments, Reserve45Log>
{
    public Task<ExecutionResult> Execute(ExecuteContext<Reserve45Arguments> context)
    {
        sw.Count("reserve");
        return Task.FromResult(context.Completed(new Reserve45Log(context.Arguments.OrderId)));
    }

    public Task<CompensationResult> Compensate(CompensateContext<Reserve45Log> context)
    {
        sw.Count("reserve compensated");
        return Task.FromResult(context.Compensated());
    }
}

public sealed record Charge45Arguments(int OrderId);

public sealed class Charge45Activity(Switch45 sw) : IExecuteActivity<Charge45Arguments>
{
    public Task<ExecutionResult> Execute(ExecuteContext<Charge45Arguments> context)
    {
        sw.ThrowUnlessOpen("charge");
        return Task.FromResult(context.Completed());
    }
}

// A saga whose Paid handler fails until the switch is open.
public sealed record Opened45(Guid OrderId);

public sealed record Paid45(Guid OrderId);

public sealed record Cancelled45(Guid OrderId);

public sealed class Order45State : SagaStateMachineInstance
{
    public Guid CorrelationId { get; set; }

    public string CurrentState { get; set; } = "";
}

public sealed class Order45Machine : MassTransitStateMachine<Order45State>
{
    public Order45Machine(Switch45 sw)
    {
        InstanceState(x => x.CurrentState);
        Event(() => Opened, e => e.CorrelateById(m => m.Message.OrderId));
        Event(() => Paid, e => e.CorrelateById(m => m.Message.OrderId));
        Event(() => Cancelled, e => e.CorrelateById(m => m.Message.OrderId));
        Initially(When(Opened).TransitionTo(Open));
        During(Open,
            When(Paid).Then(_ => sw.ThrowUnlessOpen("paid")).TransitionTo(PaidState),
            When(Cancelled).TransitionTo(CancelledState));
    }

    public State Open { get; private set; } = null!;

    public State PaidState { get; private set; } = null!;

    public State CancelledState { get; private set; } = null!;

    public Event<Opened45> Opened { get; private set; } = null!;

    public Event<Paid45> Paid { get; private set; } = null!;

    public Event<Cancelled45> Cancelled { get; private set; } = null!;
}

// A job that fails until the switch is open.
public sealed record Report45(int N);

public sealed class Report45Consumer(Switch45 sw) : IJobConsumer<Report45>
{
    public Task Run(JobContext<Report45> context)
    {
        sw.ThrowUnlessOpen("report");
        return Task.CompletedTask;
    }
}

// A batch consumer that fails until the switch is open.
public sealed record Line45(int N);

public sealed class Line45BatchConsumer(Switch45 sw) : IConsumer<Batch<Line45>>
{
    public Task Consume(ConsumeContext<Batch<Line45>> context)
    {
        sw.Count("batch of " + context.Message.Length);
        foreach (var line in context.Message)
        {
            sw.Count("line " + line.Message.N);
        }

        sw.ThrowUnlessOpen("batch");
        return Task.CompletedTask;
    }
}

// One message, two endpoints: one always takes it, the other fails until the switch is open.
public sealed record Shipped45(int N);

public sealed class Shipped45LedgerConsumer(Switch45 sw) : IConsumer<Shipped45>
{
    public Task Consume(ConsumeContext<Shipped45> context)
    {
        sw.Count("ledger");
        return Task.CompletedTask;
    }
}

public sealed class Shipped45MailConsumer(Switch45 sw) : IConsumer<Shipped45>
{
    public Task Consume(ConsumeContext<Shipped45> context)
    {
        sw.ThrowUnlessOpen("mail");
        return Task.CompletedTask;
    }
}

// The outbox: a consumer publishes, then fails until the switch is open.
public sealed record Invoice45(int N);

public sealed record Invoiced45(int N);

public sealed class Invoice45Consumer(Switch45 sw) : IConsumer<Invoice45>
{
    public async Task Consume(ConsumeContext<Invoice45> context)
    {
        await context.Publish(new Invoiced45(context.Message.N));
        sw.ThrowUnlessOpen("invoice");
    }
}

public sealed class Invoiced45Consumer(Switch45 sw) : IConsumer<Invoiced45>
{
    public Task Consume(ConsumeContext<Invoiced45> context)
    {
        sw.Count("invoiced");
        return Task.CompletedTask;
    }
}

// A request whose consumer fails until the switch is open.
public sealed record Quote45(int N);

public sealed record Quoted45(int N);

public sealed class Quote45Consumer(Switch45 sw) : IConsumer<Quote45>
{
    public async Task Consume(ConsumeContext<Quote45> context)
    {
        sw.ThrowUnlessOpen("quote");
        await context.RespondAsync(new Quoted45(context.Message.N));
    }
}

/// <summary>What the tests of this folder share: retrying from the ledger and reading what became of it.</summary>
internal static class Retry45
{
    public static async Task<(FailureActionReceipt Receipt, List<FailureActionItemLog> Items)> RetryAsync(LedgerHost host, params Guid[] ids)
    {
        var receipt = await host.Services.GetRequiredService<IFailureActions>().RetryAsync(new FailureActionRequest(ids, "apps45"));
        var items = await host.QueryAsync(db => db.FailureActionItems.AsNoTracking().Where(i => i.ActionId == receipt.RequestId).ToListAsync());
        return (receipt, items);
    }

    public static async Task<TaskLog> WaitAsync(LedgerHost host, Guid id, Func<TaskLog, bool> condition, string because, int seconds = 60)
    {
        TaskLog? task = null;
        try
        {
            await LedgerHost.EventuallyAsync(
                async () =>
                {
                    task = await host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == id));
                    return task is not null && condition(task);
                },
                TimeSpan.FromSeconds(seconds),
                because);
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException($"{ex.Message}: {(task is null ? "no task" : Describe(task))}", ex);
        }

        return task!;
    }

    public static Task WaitKeptAsync(LedgerHost host, Guid id) =>
        LedgerHost.EventuallyAsync(() => host.QueryAsync(db => db.KeptMessages.AnyAsync(k => k.TaskId == id)), TimeSpan.FromSeconds(60), "the message kept");

    public static string Describe(TaskLog task) =>
        $"{task.Name} {task.State}: " + string.Join("; ", task.Runs.OrderBy(r => r.Start).ThenBy(r => r.Retries)
            .Select(r => $"{r.ConsumerType} #{r.Retries} {r.State} {r.ErrorMessage?.Split('\n')[0]}"));
}
