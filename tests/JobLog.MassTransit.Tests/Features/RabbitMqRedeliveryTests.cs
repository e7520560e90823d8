using System.Collections.Concurrent;
using JobLog.MassTransit.Tests.Scheduling;
using JobLog.Testing;
using MassTransit;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public sealed record RedeliverMe(int Times);

public sealed record DelayedFlaky(int Failures);

/// <summary>Hands its message back with <c>context.Redeliver</c> (the message scheduler) its first <see cref="RedeliverMe.Times"/> deliveries.</summary>
public sealed class RedeliverMeConsumer : IConsumer<RedeliverMe>
{
    public static readonly ConcurrentDictionary<Guid, int> Attempts = new();

    public async Task Consume(ConsumeContext<RedeliverMe> context)
    {
        var key = context.GetOriginalMessageId() ?? context.MessageId!.Value;
        if (Attempts.AddOrUpdate(key, 1, (_, v) => v + 1) <= context.Message.Times)
        {
            await context.Redeliver(TimeSpan.FromSeconds(1));
        }
    }
}

/// <summary>Fails its first <see cref="DelayedFlaky.Failures"/> deliveries (counted by the original MessageId).</summary>
public sealed class DelayedFlakyConsumer : IConsumer<DelayedFlaky>
{
    public static readonly ConcurrentDictionary<Guid, int> Attempts = new();

    public Task Consume(ConsumeContext<DelayedFlaky> context)
    {
        var key = context.GetOriginalMessageId() ?? context.MessageId!.Value;
        return Attempts.AddOrUpdate(key, 1, (_, v) => v + 1) <= context.Message.Failures
            ? throw new InvalidOperationException("flaky " + key)
            : Task.CompletedTask;
    }
}

public sealed record RedeliveredBatchItem(int N);

/// <summary>A batch consumer that fails every batch holding a message it sees for the first time.</summary>
public sealed class RedeliveredBatchConsumer : IConsumer<Batch<RedeliveredBatchItem>>
{
    public static readonly ConcurrentDictionary<Guid, int> Seen = new();

    public Task Consume(ConsumeContext<Batch<RedeliveredBatchItem>> context)
    {
        var first = false;
        foreach (var item in context.Message)
        {
            first |= Seen.AddOrUpdate(item.MessageId!.Value, 1, (_, v) => v + 1) == 1;
        }

        return first ? throw new InvalidOperationException($"batch of {context.Message.Length} holds a new message") : Task.CompletedTask;
    }
}

/// <summary>
/// Redelivery on the real RabbitMQ without the delayed-message plugin, with the JobLog scheduler: <c>context.Redeliver</c>
/// (the message scheduler) and <c>UseDelayedRedelivery</c> (the transport's delay).
/// </summary>
public class RabbitMqRedeliveryTests : OneSchedulerBusTests
{
    [Test]
    public async Task Redeliver_TwiceThenConsumed_IsOneTask_RunsRetriedWithTheirRedeliveryTimes_ThenSucceeded()
    {
        var bus = await StartBusAsync(x => x.AddConsumer<RedeliverMeConsumer>());
        var task = await RetriedTwiceThenSucceededAsync(bus, new RedeliverMe(2), "consumed after two redeliveries");
        Assert.That(task.Runs.OrderBy(r => r.Start).Take(2).Select(r => r.EstimatedTimeOfNextRetry), Has.All.Not.Null);
        Assert.That((await bus.Host.TasksAsync()).Where(t => !t.IsInternal).Select(t => t.Id), Is.EqualTo(new[] { task.Id }), "the redeliveries are no tasks");
    }

    [Test]
    public async Task DelayedRedelivery_FailingTwiceThenConsumed_IsOneTask_RunsRetriedThenSucceeded()
    {
        var bus = await StartBusAsync(x => x.AddConsumer<DelayedFlakyConsumer>(),
            (_, cfg) => cfg.UseDelayedRedelivery(r => r.Intervals(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1))));
        var task = await RetriedTwiceThenSucceededAsync(bus, new DelayedFlaky(2), "consumed after two redeliveries");
        Assert.That(task.Runs.OrderBy(r => r.Start).Take(2).Select(r => r.EstimatedTimeOfNextRetry), Has.All.Not.Null);
    }

    [Test]
    public async Task Defer_TwiceThenConsumed_IsOneTask_RunsRetriedThenSucceeded()
    {
        var bus = await StartBusAsync(x => x.AddConsumer<DeferMeConsumer>());
        await RetriedTwiceThenSucceededAsync(bus, new DeferMe(2), "consumed after two deferrals");
    }

    /// <summary>Publishes <paramref name="message"/> and asserts its one task's runs: RETRIED, RETRIED, SUCCEEDED.</summary>
    private static async Task<TaskLog> RetriedTwiceThenSucceededAsync<T>(SchedulerBus bus, T message, string because)
        where T : class
    {
        var id = NewId.NextGuid();
        await bus.Bus.Publish(message, x => x.MessageId = id);
        await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, because, TimeSpan.FromSeconds(40));
        await bus.Host.FlushAsync();
        var task = await bus.Host.TaskAsync(id);
        TestContext.Out.WriteLine(Describe(task));
        Assert.That(task.Runs.OrderBy(r => r.Start).Select(r => (r.Retries, r.State)), Is.EqualTo(new[]
        {
            (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, TaskRunState.Succeeded),
        }), Describe(task));
        return task;
    }

    [Test]
    public async Task Send_WithATransportDelay_IsDeliveredWhenDue_ItsRunNotBeforeItsEta()
    {
        var bus = await StartBusAsync(x => x.AddConsumer<DelayedFlakyConsumer>());
        var id = NewId.NextGuid();
        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:delayed-flaky"));
        using var sending = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await endpoint.Send(new DelayedFlaky(0), x =>
        {
            x.MessageId = id;
            x.Delay = TimeSpan.FromSeconds(2);
        }, sending.Token);
        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "consumed when due", TimeSpan.FromSeconds(40));
        TestContext.Out.WriteLine(Describe(task));
        Assert.That(task.EstimatedTimeOfFirstArrival, Is.GreaterThanOrEqualTo(task.DispatchedAt.AddSeconds(2)), "the delay is the task's ETA");
        Assert.That(task.Runs.Single().Start, Is.GreaterThanOrEqualTo(task.EstimatedTimeOfFirstArrival!.Value), "not consumed before it was due");
    }

    /// <summary>
    /// A batch consumer under the bus's <c>UseDelayedRedelivery</c>: a failed batch hands each of its messages back (a
    /// deferral each, through the JobLog scheduler); they come back in a later batch that succeeds.
    /// </summary>
    [Test]
    public async Task BatchConsumer_UnderDelayedRedelivery_EachMessageRetriedWithItsRedeliveryTime_ThenSucceeded()
    {
        var bus = await StartBusAsync(
            x => x.AddConsumer<RedeliveredBatchConsumer>(c => c.Options<BatchOptions>(o => o.SetMessageLimit(5).SetTimeLimit(TimeSpan.FromMilliseconds(300)))),
            (_, cfg) => cfg.UseDelayedRedelivery(r => r.Intervals(TimeSpan.FromSeconds(1))));
        var ids = Enumerable.Range(0, 5).Select(_ => NewId.NextGuid()).ToList();
        for (var i = 0; i < ids.Count; i++)
        {
            await bus.Bus.Publish(new RedeliveredBatchItem(i), x => x.MessageId = ids[i]);
        }

        await LedgerHost.EventuallyAsync(async () => (await bus.Host.TasksAsync()).Count(t => ids.Contains(t.Id) && t.State == TaskState.Succeeded) == ids.Count,
            TimeSpan.FromSeconds(40), "every item consumed after its redelivery");
        await bus.Host.FlushAsync();
        var tasks = (await bus.Host.TasksAsync()).Where(t => ids.Contains(t.Id)).ToList();
        foreach (var t in tasks)
        {
            TestContext.Out.WriteLine(Describe(t));
        }

        Assert.That(tasks.Select(t => t.Runs.OrderBy(r => r.Start).Select(r => (r.Retries, r.State))),
            Has.All.EqualTo(new[] { (0, TaskRunState.Retried), (1, TaskRunState.Succeeded) }));
        Assert.That(tasks.Select(t => t.Runs.Single(r => r.State == TaskRunState.Retried).EstimatedTimeOfNextRetry), Has.All.Not.Null);
    }

    [Test]
    public async Task DelayedRedeliveryAroundRetryAndInMemoryOutbox_NumbersRunsAcrossRedeliveries_OnlyTheSucceededAttemptsChildIsATask()
    {
        var bus = await StartBusAsync(x =>
        {
            x.AddConsumer<OutboxedParentConsumer>();
            x.AddConsumer<OutboxedChildConsumer>();
        }, (context, cfg) =>
        {
            cfg.UseDelayedRedelivery(r => r.Intervals(TimeSpan.FromSeconds(1)));
            cfg.UseMessageRetry(r => r.Immediate(1));
            cfg.UseInMemoryOutbox(context);
        });
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new OutboxedParent(Random.Shared.Next(), 3), x => x.MessageId = id);
        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "parent succeeded on the 4th attempt", TimeSpan.FromSeconds(40));
        await LedgerHost.EventuallyAsync(async () => (await bus.Host.TasksAsync()).Any(t => t.Name == "OutboxedChild" && t.State == TaskState.Succeeded),
            TimeSpan.FromSeconds(20), "the child consumed");
        await bus.Host.FlushAsync();
        var child = (await bus.Host.TasksAsync()).Single(t => t.Name == "OutboxedChild");
        task = await bus.Host.TaskAsync(id);
        Assert.That(task.Runs.OrderBy(r => r.Start).Select(r => (r.Retries, r.State)),
            Is.EqualTo(new[] { (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, TaskRunState.Retried), (3, TaskRunState.Succeeded) }), Describe(task));
        Assert.That(child.ParentRunId, Is.EqualTo(task.Runs.Single(r => r.State == TaskRunState.Succeeded).Id));
    }
}
