using JobLog.Testing;
using MassTransit;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Outbox;

public sealed record PlaceOrder(int OrderId, decimal Total);

public sealed record OrderPlaced(int OrderId, decimal Total, string Customer);

public sealed record OrderAudited(int OrderId);

public sealed class PlaceOrderConsumer : IConsumer<PlaceOrder>
{
    public async Task Consume(ConsumeContext<PlaceOrder> context)
    {
        await context.Publish(new OrderPlaced(context.Message.OrderId, context.Message.Total, "ann"));
        await context.Publish(new OrderAudited(context.Message.OrderId));
    }
}

public sealed record CartCheckedOut(int CartId);

public sealed class CartCheckedOutConsumer : IConsumer<CartCheckedOut>
{
    public static readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, string?> Stamps = new();

    public Task Consume(ConsumeContext<CartCheckedOut> context)
    {
        Stamps[context.MessageId!.Value] = context.Headers.Get<string>("JobLog-InputRequestId");
        return Task.CompletedTask;
    }
}

public sealed class OrderPlacedConsumer : IConsumer<OrderPlaced>
{
    public Task Consume(ConsumeContext<OrderPlaced> context) => Task.CompletedTask;
}

public sealed record PlaceDoomedOrder(int OrderId);

/// <summary>Publishes, then throws: the consumer outbox discards what it published.</summary>
public sealed class PlaceDoomedOrderConsumer : IConsumer<PlaceDoomedOrder>
{
    public async Task Consume(ConsumeContext<PlaceDoomedOrder> context)
    {
        await context.Publish(new OrderPlaced(context.Message.OrderId, 1m, "doomed"));
        throw new InvalidOperationException("stock gone for order " + context.Message.OrderId);
    }
}

public sealed record ForwardOrder(int OrderId);

public sealed record OrderForwarded(int OrderId);

/// <summary>Copies every header of the message it consumes onto what it publishes (tenancy or tracing propagation).</summary>
public sealed class ForwardOrderConsumer : IConsumer<ForwardOrder>
{
    public static readonly System.Collections.Concurrent.ConcurrentDictionary<int, Guid> Forwarded = new();

    public async Task Consume(ConsumeContext<ForwardOrder> context)
    {
        var id = NewId.NextGuid();
        Forwarded[context.Message.OrderId] = id;
        await context.Publish(new OrderForwarded(context.Message.OrderId), x =>
        {
            x.MessageId = id;
            foreach (var header in context.Headers.GetAll())
            {
                x.Headers.Set(header.Key, header.Value);
            }
        });
    }
}

/// <summary>Keeps the headers of what it consumes.</summary>
public sealed class OrderForwardedConsumer : IConsumer<OrderForwarded>
{
    public static readonly System.Collections.Concurrent.ConcurrentDictionary<int, Dictionary<string, object>> Headers = new();

    public Task Consume(ConsumeContext<OrderForwarded> context)
    {
        Headers[context.Message.OrderId] = context.Headers.GetAll().ToDictionary(h => h.Key, h => h.Value);
        return Task.CompletedTask;
    }
}

/// <summary>Messages written to MassTransit's outboxes: recorded under their own type, with their payload and their parent run.</summary>
[TestFixture(Transport.InMemory)]
[TestFixture(Transport.RabbitMq)]
public class OutboxTests(Transport transport)
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

    private static void Consumers(IBusRegistrationConfigurator x)
    {
        x.AddConsumer<PlaceOrderConsumer>();
        x.AddConsumer<OrderPlacedConsumer>();
    }

    [Test]
    public async Task ConsumerOutbox_DeliveredMessage_IsRecordedUnderItsOwnTypeWithPayloadAndParentRun()
    {
        _bus = await BusFixture.StartAsync(transport, x =>
        {
            Consumers(x);
            x.AddInMemoryInboxOutbox();
            x.AddConfigureEndpointsCallback((context, _, e) => e.UseInMemoryInboxOutbox(context));
        }, options: o => o.CloseUnconsumedPublishes = true);

        await AssertOrderPlacedRecorded(_bus);
    }

    // Session 34 probe: the bus outbox (AddInMemoryInboxOutbox) discards what a consumer published when it throws; the
    // ledger must not show a dispatched child task that never left.
    [Test]
    public async Task ConsumerOutbox_ConsumerPublishesThenThrows_TheDiscardedPublishIsNoTask()
    {
        _bus = await BusFixture.StartAsync(transport, x =>
        {
            x.AddConsumer<PlaceDoomedOrderConsumer>();
            x.AddConsumer<OrderPlacedConsumer>();
            x.AddInMemoryInboxOutbox();
            x.AddConfigureEndpointsCallback((context, _, e) => e.UseInMemoryInboxOutbox(context));
        }, options: o => o.CloseUnconsumedPublishes = true);
        var id = NewId.NextGuid();

        await _bus.Bus.Publish(new PlaceDoomedOrder(23), x => x.MessageId = id);

        await LedgerHost.EventuallyAsync(async () => (await _bus.Host.TaskAsync(id)).State == TaskState.Failed, TimeSpan.FromMinutes(1), "the order failed");
        await Task.Delay(2000);
        await _bus.Host.FlushAsync();
        var parent = await _bus.Host.TaskAsync(id);
        var runs = parent.Runs.Select(r => r.Id).ToList();
        var children = (await _bus.Host.TasksAsync()).Where(t => t.ParentRunId is { } p && runs.Contains(p)).ToList();
        TestContext.Out.WriteLine($"parent {parent.State}, runs {parent.Runs.Count}, children: {string.Join("; ", children.Select(c => $"{c.Name} {c.State} {c.Input}"))}");
        Assert.That(children.Select(c => (c.Name, c.State)), Is.Empty, "the discarded publish never left");
    }

    [Test]
    public async Task InMemoryOutbox_ReleasedMessage_IsLinkedToTheRunThatWroteIt()
    {
        _bus = await BusFixture.StartAsync(
            transport, Consumers, options: o => o.CloseUnconsumedPublishes = true, configureBus: (context, cfg) => cfg.UseInMemoryOutbox(context));

        await AssertOrderPlacedRecorded(_bus);
    }

    [Test]
    public async Task Publish_WhileServingAnInboundRequest_LinksTheTaskToTheRequest_AndStampsTheRequestForTheOutbox()
    {
        _bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<CartCheckedOutConsumer>());
        var request = Guid.NewGuid();
        var id = NewId.NextGuid();

        using (JobLogScope.Push(new AmbientFrame(AmbientKind.InputRequest, request, null)))
        {
            await _bus.Bus.Publish(new CartCheckedOut(4), x => x.MessageId = id);
        }

        await LedgerHost.EventuallyAsync(async () => (await _bus.Host.TaskAsync(id)).State == TaskState.Succeeded, because: "consumed");
        var task = await _bus.Host.TaskAsync(id);
        Assert.That(task.InputRequestId, Is.EqualTo(request));
        Assert.That(CartCheckedOutConsumer.Stamps[id], Is.EqualTo(request.ToString()),
            "the request travels with the message, so a bus outbox's later delivery links to it");
    }

    [Test]
    public async Task ConsumerOutbox_AMessageCarryingStampsCopiedFromTheConsumedOne_IsLinkedToTheRunThatWroteIt_NeverToTheForgedOne()
    {
        // A consumer that copies the headers of what it consumes onto what it publishes carries a sender's forged stamps
        // into the outbox, after JobLog's send filter set its own: the clear JobLog-ParentRunId/JobLog-InputRequestId, and
        // a signed stamp replayed from a message JobLog really stamped. Neither may link the delivered task to the run named.
        _bus = await BusFixture.StartAsync(transport, x =>
        {
            x.AddConsumer<ForwardOrderConsumer>();
            x.AddConsumer<OrderForwardedConsumer>();
            x.AddInMemoryInboxOutbox();
            x.AddConfigureEndpointsCallback((context, _, e) => e.UseInMemoryInboxOutbox(context));
        });
        var honest = await ForwardAsync(_bus, new Dictionary<string, object>());
        var victimRun = honest.Forward.Runs.Single().Id;
        Assert.That(honest.Forwarded.ParentRunId, Is.EqualTo(victimRun), "an honest forward is linked to its run");

        var forgedClear = await ForwardAsync(_bus, new Dictionary<string, object>
        {
            ["JobLog-ParentRunId"] = victimRun.ToString(),
            ["JobLog-InputRequestId"] = victimRun.ToString(),
        });
        var replayed = await ForwardAsync(_bus, OrderForwardedConsumer.Headers[honest.OrderId]
            .Where(h => h.Key.StartsWith("JobLog-", StringComparison.Ordinal))
            .ToDictionary(h => h.Key, h => h.Value));

        Assert.That((forgedClear.Forwarded.ParentRunId, forgedClear.Forwarded.InputRequestId),
            Is.EqualTo(((Guid?)forgedClear.Forward.Runs.Single().Id, (Guid?)null)), "forged clear stamps: linked to the run that wrote it");
        Assert.That(replayed.Forwarded.ParentRunId, Is.Not.EqualTo(victimRun), "a replayed signed stamp names another message");
        Assert.That(replayed.Forwarded.InputRequestId, Is.Null);
        Assert.That(await _bus.Host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.ParentRunId == victimRun)), Is.EqualTo(1), "only the honest child");
    }

    [Test]
    public async Task ConsumerOutbox_WhenDataProtectionCannotSealTheStampKey_TheConsumersPublishStillGoesOut()
    {
        // Data Protection cannot store a key (its directory's parent is a file, as a read-only or mis-mounted volume is):
        // the signed parent stamp cannot be made, and recording must not fail the consumer's publish for it.
        await WithBlockedKeyRingAsync(null, async () =>
        {
            var forwarded = await ForwardAsync(_bus!, new Dictionary<string, object>());

            Assert.That(forwarded.Forward.Runs.Single().State, Is.EqualTo(TaskRunState.Succeeded));
            Assert.That(forwarded.Forwarded.State, Is.EqualTo(TaskState.Succeeded));
        });
    }

    [Test]
    public async Task ConsumerOutbox_WhileDataProtectionCannotSealTheStampKey_TheFailureIsLoggedAtASteadyRate_NotPerMessage()
    {
        // Every outbox write tries to seal the key again (a key ring may come back); logging each try floods the log.
        var logs = new WarningCollector();
        await WithBlockedKeyRingAsync(logs, async () =>
        {
            var elapsed = System.Diagnostics.Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => ForwardAsync(_bus!, new Dictionary<string, object>())));
            elapsed.Stop();

            var stampWarnings = logs.Errors.Count(e => e.Contains("parent stamp", StringComparison.Ordinal));
            Assert.That(stampWarnings, Is.InRange(1, 1 + (int)(elapsed.Elapsed.TotalSeconds / 10)),
                "20 unsigned outbox writes in " + elapsed.Elapsed + ": one warning per 10 s at most");
        });
    }

    /// <summary>Runs <paramref name="body"/> on a forwarding bus whose Data Protection key directory cannot be made (its parent is a file).</summary>
    private async Task WithBlockedKeyRingAsync(WarningCollector? logs, Func<Task> body)
    {
        var blocker = Path.Combine(Path.GetTempPath(), "joblog-stamp-blocked-" + Guid.NewGuid().ToString("N"));
        await File.WriteAllTextAsync(blocker, "not a directory");
        try
        {
            _bus = await BusFixture.StartAsync(transport, x =>
            {
                x.AddConsumer<ForwardOrderConsumer>();
                x.AddConsumer<OrderForwardedConsumer>();
                x.AddInMemoryInboxOutbox();
                x.AddConfigureEndpointsCallback((context, _, e) => e.UseInMemoryInboxOutbox(context));
            }, logs: logs, configureServices: s => s.AddDataProtection().PersistKeysToFileSystem(new DirectoryInfo(Path.Combine(blocker, "keys"))));
            await body();
        }
        finally
        {
            File.Delete(blocker);
        }
    }

    private static int s_order = 100;

    private static async Task<(int OrderId, TaskLog Forward, TaskLog Forwarded)> ForwardAsync(BusFixture bus, Dictionary<string, object> headers)
    {
        var order = Interlocked.Increment(ref s_order);
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new ForwardOrder(order), x =>
        {
            x.MessageId = id;
            foreach (var header in headers)
            {
                x.Headers.Set(header.Key, header.Value);
            }
        });
        await LedgerHost.EventuallyAsync(async () => ForwardOrderConsumer.Forwarded.TryGetValue(order, out var forwarded)
            && (await bus.Host.QueryAsync(db => db.TaskLogs.AnyAsync(t => t.Id == forwarded && t.State == TaskState.Succeeded)))
            && (await bus.Host.TaskAsync(id)).State == TaskState.Succeeded, because: "forwarded through the outbox and consumed");
        return (order, await bus.Host.TaskAsync(id), await bus.Host.TaskAsync(ForwardOrderConsumer.Forwarded[order]));
    }

    private static async Task AssertOrderPlacedRecorded(BusFixture bus)
    {
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new PlaceOrder(17, 99.5m), x => x.MessageId = id);

        TaskLog? placed = null;
        await LedgerHost.EventuallyAsync(async () =>
        {
            placed = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs)
                .SingleOrDefaultAsync(t => t.Name == "OrderPlaced" && t.ParentRunId != null && t.State == TaskState.Succeeded));
            return placed is not null
                && await bus.Host.QueryAsync(db => db.TaskLogs.AnyAsync(t => t.Name == "OrderAudited" && t.State == TaskState.Succeeded));
        }, because: "the outbox's message was delivered, consumed and linked");
        var order = await bus.Host.TaskAsync(id);
        var tasks = await bus.Host.TasksAsync();

        Assert.That(tasks.Select(t => t.Name), Is.EquivalentTo(new[] { "PlaceOrder", "OrderPlaced", "OrderAudited" }));
        var audited = tasks.Single(t => t.Name == "OrderAudited");
        Assert.That((audited.State, audited.Runs.Single().ConsumerType), Is.EqualTo((TaskState.Succeeded, "(no consumer)")), "a published event nobody consumes");
        Assert.That(audited.ParentRunId, Is.EqualTo(order.Runs.Single().Id));
        Assert.That(placed!.Name, Is.EqualTo("OrderPlaced"));
        Assert.That(placed.Input, Is.EqualTo("OrderId=17, Total=99.5, Customer=ann"));
        Assert.That(placed.TaskArgs, Is.EqualTo("""[17,99.5,"ann"]"""));
        Assert.That(placed.TaskKwargs, Is.EqualTo("""{"OrderId":17,"Total":99.5,"Customer":"ann"}"""));
        Assert.That(placed.ParentRunId, Is.EqualTo(order.Runs.Single().Id));
        Assert.That(placed.Runs.Single().ConsumerType, Is.EqualTo("OrderPlacedConsumer"));
        Assert.That(placed.DispatchedAt, Is.GreaterThanOrEqualTo(order.Runs.Single().Start));
    }
}
