using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests;

public sealed record CheckStock(int Sku);

public sealed record StockLevel(int Sku, int Count);

public sealed record InventoryCounted(int Items);

public sealed record Ping(int Number);

public interface IStockEvent
{
    int Sku { get; }
}

public sealed record StockAdjusted(int Sku, int By) : IStockEvent;

public sealed class StockEventConsumer : IConsumer<IStockEvent>
{
    public Task Consume(ConsumeContext<IStockEvent> context) => Task.CompletedTask;
}

public sealed class CheckStockConsumer : IConsumer<CheckStock>
{
    public Task Consume(ConsumeContext<CheckStock> context) => context.RespondAsync(new StockLevel(context.Message.Sku, 12));
}

public sealed class DoomedJobFaultConsumer : IConsumer<Fault<DoomedJob>>
{
    public Task Consume(ConsumeContext<Fault<DoomedJob>> context) => Task.CompletedTask;
}

/// <summary>Responses, events nobody consumes, faults, handlers and queue names, as a MassTransit user knows them.</summary>
[TestFixture(Transport.InMemory)]
[TestFixture(Transport.RabbitMq)]
public class RequestResponseTests(Transport transport)
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

    private static async Task<TaskLog> Eventually(BusFixture bus, Func<TaskLog, bool> match, string because)
    {
        TaskLog? found = null;
        await LedgerHost.EventuallyAsync(async () =>
        {
            found = (await bus.Host.TasksAsync()).FirstOrDefault(match);
            return found is not null;
        }, because: because);
        return found!;
    }

    [Test]
    public async Task Response_IsLinkedToTheRunThatAnswered_AndSucceedsWhenTheRequesterReceivesIt()
    {
        _bus = await BusFixture.StartAsync(transport, x =>
        {
            x.AddConsumer<CheckStockConsumer>();
            x.AddRequestClient<CheckStock>();
        });
        var client = _bus.Harness.GetRequestClient<CheckStock>();

        var response = await client.GetResponse<StockLevel>(new CheckStock(7));

        var level = await Eventually(_bus, t => t.Name == "StockLevel" && t.State == TaskState.Succeeded, "the response succeeded");
        var request = await Eventually(_bus, t => t.Name == "CheckStock" && t.State == TaskState.Succeeded, "the request succeeded");
        Assert.That(level.Id, Is.EqualTo(response.MessageId));
        Assert.That(level.ParentRunId, Is.EqualTo(request.Runs.Single().Id), "the response is a child of the request's run");
        Assert.That(level.Runs.Single().ConsumerType, Is.EqualTo("RequestClient"));
        Assert.That(level.Input, Is.EqualTo("Sku=7, Count=12"));
    }

    [Test]
    public async Task PublishedEvent_NobodyConsumes_IsClosedByANoConsumerRun_NeitherWaitingNorFailed()
    {
        _bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<ChargeCardConsumer>(), options: o => o.CloseUnconsumedPublishes = true);
        var id = NewId.NextGuid();

        await _bus.Bus.Publish(new InventoryCounted(3), x => x.MessageId = id);

        await _bus.Host.FlushAsync();
        var task = await _bus.Host.TaskAsync(id);
        Assert.That(task.State, Is.EqualTo(TaskState.Succeeded));
        Assert.That(task.Runs.Single().ConsumerType, Is.EqualTo("(no consumer)"));
        Assert.That(task.Runs.Single().Output, Does.Contain("no consumer of InventoryCounted"));
    }

    [Test]
    public async Task PublishedEvent_NobodyHereConsumes_WithTheOptionOff_IsLeftToTheApplicationsThatConsumeIt()
    {
        _bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<ChargeCardConsumer>());
        var id = NewId.NextGuid();

        await _bus.Bus.Publish(new InventoryCounted(3), x => x.MessageId = id);

        await _bus.Host.FlushAsync();
        var task = await _bus.Host.TaskAsync(id);
        Assert.That((task.State, task.Runs.Count), Is.EqualTo((TaskState.Waiting, 0)));
    }

    [Test]
    public async Task PublishedEvent_WithAConsumer_HasNoNoConsumerRun()
    {
        _bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<ChargeCardConsumer>(), options: o => o.CloseUnconsumedPublishes = true);
        var id = NewId.NextGuid();

        await _bus.Bus.Publish(new ChargeCard(1, 2m), x => x.MessageId = id);

        var task = await Eventually(_bus, t => t.Id == id && t.State == TaskState.Succeeded, "consumed");
        Assert.That(task.Runs.Select(r => r.ConsumerType), Is.EqualTo(new[] { "ChargeCardConsumer" }));
    }

    [Test]
    public async Task PublishedEvent_ConsumedThroughAnInterfaceItImplements_HasNoNoConsumerRun()
    {
        // docs/masstransit.md: closed when no consumer takes "its type, a base type or an interface".
        _bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<StockEventConsumer>(), options: o => o.CloseUnconsumedPublishes = true);
        var id = NewId.NextGuid();

        await _bus.Bus.Publish(new StockAdjusted(7, -1), x => x.MessageId = id);

        var task = await Eventually(_bus, t => t.Id == id && t.State == TaskState.Succeeded, "consumed");
        await _bus.Host.FlushAsync();
        task = await _bus.Host.TaskAsync(id);
        Assert.That(task.Runs.Select(r => r.ConsumerType), Is.EqualTo(new[] { "StockEventConsumer" }));
    }

    [Test]
    public async Task Fault_ConsumedByTheApplication_IsATaskLinkedToTheRunThatFaulted()
    {
        _bus = await BusFixture.StartAsync(transport, x =>
        {
            x.AddConsumer<DoomedJobConsumer>();
            x.AddConsumer<DoomedJobFaultConsumer>();
        }, retries: 1);
        var id = NewId.NextGuid();

        await _bus.Bus.Publish(new DoomedJob("expired card"), x => x.MessageId = id);

        var fault = await Eventually(_bus, t => t.Name == "Fault<DoomedJob>" && t.State == TaskState.Succeeded, "the fault was consumed");
        // The fault's task can reach the ledger in an earlier batch than the doomed message's last run.
        var doomed = await Eventually(_bus, t => t.Id == id && t.State == TaskState.Failed, "the doomed job failed for good");
        var failed = doomed.Runs.Single(r => r.State == TaskRunState.Failed);
        Assert.That(fault.ParentRunId, Is.EqualTo(failed.Id), "the fault hangs under the attempt that failed for good");
        Assert.That(fault.Runs.Single().ConsumerType, Is.EqualTo("DoomedJobFaultConsumer"));
    }

    [Test]
    public async Task Publish_RecordsTheExchangeName_AndTheRunTheQueueThatConsumedIt()
    {
        _bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<ChargeCardConsumer>());
        var id = NewId.NextGuid();

        await _bus.Bus.Publish(new ChargeCard(5, 1m), x => x.MessageId = id);

        var task = await Eventually(_bus, t => t.Id == id && t.State == TaskState.Succeeded, "consumed");
        Assert.That(task.QueueName, Is.EqualTo("JobLog.MassTransit.Tests:ChargeCard"));
        Assert.That(task.Runs.Single().QueueName, Is.EqualTo("charge-card"));
    }

    [Test]
    public async Task Handler_OnAReceiveEndpoint_RecordsARunPerAttempt()
    {
        var attempts = 0;
        _bus = await BusFixture.StartAsync(transport, _ => { }, endpoints: (_, cfg) => cfg.ReceiveEndpoint("ping-handler", e =>
        {
            e.UseMessageRetry(r => r.Immediate(1));
            e.Handler<Ping>(_ => Interlocked.Increment(ref attempts) == 1 ? throw new InvalidOperationException("first ping fails") : Task.CompletedTask);
        }));
        var id = NewId.NextGuid();

        await _bus.Bus.Publish(new Ping(1), x => x.MessageId = id);

        var task = await Eventually(_bus, t => t.Id == id && t.State == TaskState.Succeeded, "the handler succeeded on its retry");
        Assert.That(task.Runs.OrderBy(r => r.Retries).Select(r => (r.ConsumerType, r.State, r.QueueName)), Is.EqualTo(new[]
        {
            ("Handler<Ping>", TaskRunState.Retried, "ping-handler"), ("Handler<Ping>", TaskRunState.Succeeded, "ping-handler"),
        }));
    }
}
