using System.Collections.Concurrent;
using JobLog.Testing;
using MassTransit;
using MassTransit.Configuration;
using MassTransit.Middleware;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public record SlotWork(int Id, bool Hold);

public record SlotDone(int Id);

/// <summary>A consumer that holds its slot (the message with <see cref="SlotWork.Hold"/>) until the test opens the gate.</summary>
public sealed class OneSlotConsumer : IConsumer<SlotWork>
{
    public static readonly ConcurrentBag<int> Consumed = [];
    public static TaskCompletionSource Holding = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public static TaskCompletionSource Gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static void Reset()
    {
        Consumed.Clear();
        Holding = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public async Task Consume(ConsumeContext<SlotWork> context)
    {
        Consumed.Add(context.Message.Id);
        if (context.Message.Hold)
        {
            Holding.TrySetResult();
            await Gate.Task.WaitAsync(TimeSpan.FromSeconds(60));
        }

        if (context.RequestId is not null)
        {
            await context.RespondAsync(new SlotDone(context.Message.Id));
        }
    }
}

/// <summary>
/// In front of the whole delivery (a pre-pipe filter, before JobLog's and before any concurrency limit): signals when a
/// delivery has gone as far as it can without waiting, i.e. it is parked (here: at a concurrency limit).
/// </summary>
public sealed class ParkedSignalFilter : IFilter<ConsumeContext>
{
    public static readonly ConcurrentDictionary<Guid, TaskCompletionSource> Parked = new();

    public static Task ParkedAsync(Guid messageId) =>
        Parked.GetOrAdd(messageId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task.WaitAsync(TimeSpan.FromSeconds(120));

    public async Task Send(ConsumeContext context, IPipe<ConsumeContext> next)
    {
        var delivery = next.Send(context);
        if (context.MessageId is { } id && !delivery.IsCompleted)
        {
            Parked.GetOrAdd(id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }

        await delivery;
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("parkedSignal");
}

/// <summary>
/// A consumer's own <c>ConcurrentMessageLimit</c> is applied by MassTransit inside the consumer's message pipe, after
/// JobLog's run filter: the run must begin when the consumer gets its slot, and the expiry check be made then.
/// </summary>
[NonParallelizable]
[TestFixture(Transport.InMemory)]
[TestFixture(Transport.RabbitMq)]
public class ConsumerConcurrencyLimitTests(Transport transport)
{
    [SetUp]
    public void SetUp() => OneSlotConsumer.Reset();

    private BusFixture? _bus;

    [TearDown]
    public async Task TearDown()
    {
        // A failed assertion must not leave the held consumer waiting for the gate while the bus stops.
        await ReleaseAsync();
        if (_bus is not null)
        {
            await _bus.DisposeAsync();
            _bus = null;
        }
    }

    public enum Limit
    {
        /// <summary><c>x.AddConsumer&lt;T&gt;(c =&gt; c.ConcurrentMessageLimit = 1)</c>.</summary>
        ConsumersOwn,

        /// <summary><c>x.AddConsumer&lt;T&gt;(c =&gt; c.UseConcurrentMessageLimit(1))</c>: MassTransit adds it from an observer of the consumer.</summary>
        ConsumersUseConcurrentMessageLimit,

        /// <summary><c>cfg.UseConcurrencyLimit(1)</c> on the bus: a limit on each message type's pipe of each endpoint.</summary>
        BusUseConcurrencyLimit,

        /// <summary>
        /// <c>x.AddConsumer&lt;T&gt;(c =&gt; c.UsePartitioner(1, key))</c>: the consumer's own partitioner, on the consumer's pipe
        /// (after JobLog's run filter); one partition holds one message at a time.
        /// </summary>
        ConsumersUsePartitioner,

        /// <summary>
        /// <c>x.AddConsumer&lt;T&gt;(c =&gt; c.UseRateLimit(1, 10 min, router))</c>: the consumer's own rate limit; the test lets the
        /// waiting message go by raising the limit through the router (no wait for the interval).
        /// </summary>
        ConsumersUseRateLimit,

        /// <summary>
        /// <c>c.Message&lt;T&gt;(m =&gt; m.UsePartitioner(1, key))</c>, MassTransit's documented way to partition a consumer's
        /// messages: on the message pipe, before JobLog's run filter.
        /// </summary>
        MessageUsePartitioner,

        /// <summary><c>c.ConsumerMessage&lt;T&gt;(m =&gt; m.UsePartitioner(1, key))</c>: on the consumer's pipe for that message type.</summary>
        ConsumerMessageUsePartitioner,
    }

    private PipeRouter? _rate;

    /// <summary>Lets the waiting message go: opens the holder's gate, and raises the rate limit when there is one.</summary>
    private async Task ReleaseAsync()
    {
        OneSlotConsumer.Gate.TrySetResult();
        if (_rate is not null)
        {
            await _rate.SetRateLimit(2);
        }
    }

    private async Task<BusFixture> StartAsync(Limit limit)
    {
        _rate = limit == Limit.ConsumersUseRateLimit ? new PipeRouter() : null;
        return _bus = await BusFixture.StartAsync(
            transport,
            x => x.AddConsumer<OneSlotConsumer>(c =>
            {
                if (limit == Limit.ConsumersOwn)
                {
                    c.ConcurrentMessageLimit = 1;
                }
                else if (limit == Limit.ConsumersUseConcurrentMessageLimit)
                {
                    c.UseConcurrentMessageLimit(1);
                }
                else if (limit == Limit.ConsumersUsePartitioner)
                {
                    c.UsePartitioner(1, _ => Guid.Empty);
                }
                else if (limit == Limit.ConsumersUseRateLimit)
                {
                    c.UseRateLimit(1, TimeSpan.FromMinutes(10), _rate);
                }
                else if (limit == Limit.MessageUsePartitioner)
                {
                    c.Message<SlotWork>(m => m.UsePartitioner(1, _ => Guid.Empty));
                }
                else if (limit == Limit.ConsumerMessageUsePartitioner)
                {
                    c.ConsumerMessage<SlotWork>(m => m.UsePartitioner(1, _ => Guid.Empty));
                }
            }),
            configureBus: (_, cfg) =>
            {
                cfg.AddPrePipeSpecification(new FilterPipeSpecification<ConsumeContext>(new ParkedSignalFilter()));
                if (limit == Limit.BusUseConcurrencyLimit)
                {
                    cfg.UseConcurrencyLimit(1);
                }
            });
    }

    [TestCase(Limit.ConsumersOwn, TestName = "Consume_WaitingForTheConsumersOnlySlot_HasNoRunUntilTheSlotIsFree_ThenStartsWhenItGetsIt")]
    [TestCase(Limit.ConsumersUseConcurrentMessageLimit, TestName = "Consume_WaitingForTheSlotOfTheConsumersUseConcurrentMessageLimit_HasNoRunUntilTheSlotIsFree_ThenStartsWhenItGetsIt")]
    [TestCase(Limit.BusUseConcurrencyLimit, TestName = "Consume_WaitingForASlotOfUseConcurrencyLimit_HasNoRunUntilTheSlotIsFree_ThenStartsWhenItGetsIt")]
    [TestCase(Limit.ConsumersUsePartitioner, TestName = "Consume_WaitingForItsPartitionOfTheConsumersUsePartitioner_HasNoRunUntilThePartitionIsFree_ThenStartsWhenItGetsIt")]
    [TestCase(Limit.ConsumersUseRateLimit, TestName = "Consume_WaitingForTheConsumersUseRateLimit_HasNoRunUntilTheRateLetsItGo_ThenStartsWhenItGoes")]
    [TestCase(Limit.MessageUsePartitioner, TestName = "Consume_WaitingForItsPartitionOfAConsumersMessageUsePartitioner_HasNoRunUntilThePartitionIsFree_ThenStartsWhenItGetsIt")]
    [TestCase(Limit.ConsumerMessageUsePartitioner, TestName = "Consume_WaitingForItsPartitionOfAConsumersConsumerMessageUsePartitioner_HasNoRunUntilThePartitionIsFree_ThenStartsWhenItGetsIt")]
    public async Task Consume_WaitingForASlot_HasNoRunUntilTheSlotIsFree_ThenStartsWhenItGetsIt(Limit limit)
    {
        var bus = await StartAsync(limit);
        var holder = NewId.NextGuid();
        var waiter = NewId.NextGuid();
        await bus.Bus.Publish(new SlotWork(1, Hold: true), x => x.MessageId = holder);
        await OneSlotConsumer.Holding.Task.WaitAsync(TimeSpan.FromSeconds(120));
        await bus.Bus.Publish(new SlotWork(2, Hold: false), x => x.MessageId = waiter);
        await ParkedSignalFilter.ParkedAsync(waiter);

        // Everything recorded so far is in the ledger: the waiting message has no run yet (it is WAITING, as it is in fact).
        await bus.Host.FlushAsync();
        var waiting = await Find(bus, waiter);
        Assert.That(waiting?.Runs.Select(r => (r.ConsumerType, r.State)), Is.Empty.Or.Null, "no run while waiting for the slot: " + Describe(waiting));

        var released = DateTime.UtcNow;
        await ReleaseAsync();
        var task = await WaitFor(bus, waiter, t => t.State == TaskState.Succeeded, "the waiting message consumed");
        var run = task.Runs.Single();
        // The slot was freed after the gate opened: the run began then (the ledger keeps microseconds).
        Assert.That(run.Start, Is.GreaterThanOrEqualTo(released.AddTicks(-(released.Ticks % 10))));
        var held = await WaitFor(bus, holder, t => t.State == TaskState.Succeeded, "the holder consumed");
        Assert.That(held.Runs.Single().Start, Is.LessThan(released), "a run that got its slot at once starts on receipt");
    }

    [TestCase(Limit.ConsumersOwn, TestName = "Request_WhoseTimeoutRanOutWhileWaitingForTheConsumersSlot_IsNotConsumed_ItsRunIsExpired")]
    [TestCase(Limit.ConsumersUseConcurrentMessageLimit, TestName = "Request_WhoseTimeoutRanOutWhileWaitingForTheSlotOfTheConsumersUseConcurrentMessageLimit_IsNotConsumed_ItsRunIsExpired")]
    [TestCase(Limit.BusUseConcurrencyLimit, TestName = "Request_WhoseTimeoutRanOutWhileWaitingForASlotOfUseConcurrencyLimit_IsNotConsumed_ItsRunIsExpired")]
    [TestCase(Limit.ConsumersUsePartitioner, TestName = "Request_WhoseTimeoutRanOutWhileWaitingForItsPartitionOfTheConsumersUsePartitioner_IsNotConsumed_ItsRunIsExpired")]
    [TestCase(Limit.ConsumersUseRateLimit, TestName = "Request_WhoseTimeoutRanOutWhileWaitingForTheConsumersUseRateLimit_IsNotConsumed_ItsRunIsExpired")]
    public async Task Request_WhoseTimeoutRanOutWhileWaitingForTheSlot_IsNotConsumed_ItsRunIsExpired(Limit limit)
    {
        var bus = await StartAsync(limit);
        var holder = NewId.NextGuid();
        var request = NewId.NextGuid();
        await bus.Bus.Publish(new SlotWork(1, Hold: true), x => x.MessageId = holder);
        await OneSlotConsumer.Holding.Task.WaitAsync(TimeSpan.FromSeconds(120));

        // RequestTimeout is the request's TimeToLive: the request expires while it waits for the slot.
        var client = bus.Bus.CreateRequestClient<SlotWork>(RequestTimeout.After(s: 1));
        var response = client.GetResponse<SlotDone>(new SlotWork(2, Hold: false), x => x.UseExecute(c => c.MessageId = request));
        await ParkedSignalFilter.ParkedAsync(request);
        Assert.ThrowsAsync<RequestTimeoutException>(async () => await response);
        await bus.Host.FlushAsync();
        var waiting = await Find(bus, request);
        Assert.That(waiting?.Expires, Is.Not.Null, "the request's expiry is on its task");
        await LedgerHost.EventuallyAsync(() => Task.FromResult(DateTime.UtcNow > waiting!.Expires!.Value.AddMilliseconds(100)), because: "past the request's expiry");

        await ReleaseAsync();
        var task = await WaitFor(bus, request, t => t.State != TaskState.Waiting && t.State != TaskState.Active, "the request's delivery ended");
        await WaitFor(bus, holder, t => t.State == TaskState.Succeeded, "the holder consumed");
        var run = task.Runs.Single();
        Assert.That((task.State, run.State), Is.EqualTo((TaskState.Expired, TaskRunState.Expired)), Describe(task));
        Assert.That(run.ErrorMessage, Does.StartWith("Expired:"));
        Assert.That(OneSlotConsumer.Consumed, Is.EquivalentTo(new[] { 1 }), "the expired request was not given to the consumer");
    }
}
