using System.Collections.Concurrent;
using JobLog.Testing;
using MassTransit;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Apps44;

/// <summary>Fails its first <see cref="FailFirst"/> attempts.</summary>
public sealed record Redo44(int N, int FailFirst);

public sealed class Redo44Consumer : IConsumer<Redo44>
{
    public static readonly ConcurrentDictionary<int, int> Attempts = new();

    public Task Consume(ConsumeContext<Redo44> context)
    {
        var attempt = Attempts.AddOrUpdate(context.Message.N, 1, (_, a) => a + 1);
        return attempt <= context.Message.FailFirst
            ? throw new InvalidOperationException("redo " + context.Message.N + " attempt " + attempt + " broken")
            : Task.CompletedTask;
    }
}

/// <summary>
/// Redelivery without the JobLog scheduler: <c>UseScheduledRedelivery</c> on the in-memory transport's delayed scheduler
/// (<c>UseDelayedMessageScheduler</c>), and <c>UseDelayedRedelivery</c> on RabbitMQ without the delayed-message plugin
/// (MassTransit cannot redeliver there).
/// </summary>
public class RedeliveryTests
{
    private static int NextId() => Random.Shared.Next(1000, int.MaxValue);

    /// <summary>
    /// In memory, <c>UseDelayedMessageScheduler</c> + <c>UseScheduledRedelivery</c>: a consumer failing twice then
    /// succeeding is one task (the redeliveries are no tasks) with runs RETRIED (each with its redelivery time),
    /// RETRIED, SUCCEEDED; one failing every time ends FAILED after its redeliveries.
    /// </summary>
    [TestCase(2, TaskState.Succeeded)]
    [TestCase(9, TaskState.Failed)]
    public async Task ScheduledRedelivery_OnTheInMemoryDelayedScheduler_EachDeliveryIsARunOfOneTask(int failFirst, TaskState expected)
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<Redo44Consumer>(), configureBus: (_, cfg) =>
        {
            cfg.UseDelayedMessageScheduler();
            cfg.UseScheduledRedelivery(r => r.Intervals(200, 200));
        });
        var (id, n) = (NewId.NextGuid(), NextId());
        await bus.Bus.Publish(new Redo44(n, failFirst), x => x.MessageId = id);
        var task = await WaitFor(bus, id, t => t.State == expected, "ended " + expected, 60);
        await SettledAsync(bus.Host, nameof(Redo44));
        var tasks = await bus.Host.TasksAsync();
        foreach (var t in tasks)
        {
            TestContext.Out.WriteLine(Describe(t));
        }

        task = tasks.Single(t => t.Id == id);
        var runs = task.Runs.OrderBy(r => r.Start).ToList();
        var last = expected == TaskState.Succeeded ? TaskRunState.Succeeded : TaskRunState.Failed;
        Assert.That(runs.Select(r => (r.ConsumerType, r.Retries, r.State)), Is.EqualTo(new[]
        {
            (nameof(Redo44Consumer), 0, TaskRunState.Retried), (nameof(Redo44Consumer), 1, TaskRunState.Retried), (nameof(Redo44Consumer), 2, last),
        }), Describe(task));
        Assert.That(runs.Take(2).Select(r => r.EstimatedTimeOfNextRetry), Has.All.Not.Null);
        Assert.That(runs[0].ErrorMessage, Does.Contain("redo " + n + " attempt 1 broken"));
        Assert.That(Redo44Consumer.Attempts[n], Is.EqualTo(3));
        Assert.That(tasks.Where(t => !t.IsInternal).Select(t => t.Id), Is.EqualTo(new[] { id }), "the redeliveries are no tasks");
        Assert.That(tasks.Where(t => t.State is TaskState.Waiting or TaskState.Active), Is.Empty, "nothing left waiting");
    }

    /// <summary>
    /// RabbitMQ without the delayed-message plugin and without <c>AddJobLogScheduler</c>: <c>UseDelayedRedelivery</c>
    /// cannot send the redelivery (declaring the <c>x-delayed-message</c> exchange closes the channel:
    /// <c>TransportException: The message delivery could not be rescheduled</c>). The closed channel's delivery goes back
    /// to the queue and the broker delivers it again. The ledger: the first attempt a run with the consumer's error, FAILED
    /// when the delivery failed; the broker's redelivery the next run, SUCCEEDED, and the task SUCCEEDED; nothing left
    /// WAITING or ACTIVE, no redelivery task, nothing in <c>redo44_error</c>.
    /// </summary>
    [Test]
    public async Task DelayedRedelivery_OnRabbitMqWithoutThePluginOrTheJobLogScheduler_TheBrokersRedeliveryIsTheNextRun_NothingLeftWaiting()
    {
        await using var bus = await BusFixture.StartAsync(Transport.RabbitMq, x => x.AddConsumer<Redo44Consumer>(),
            configureBus: (_, cfg) => cfg.UseDelayedRedelivery(r => r.Intervals(200)));
        var (id, n) = (NewId.NextGuid(), NextId());
        await bus.Bus.Publish(new Redo44(n, 1), x => x.MessageId = id);
        var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded && t.Runs.All(r => r.State != TaskRunState.Active),
            "consumed again after the broker's redelivery", 120);
        await SettledAsync(bus.Host, nameof(Redo44));
        var tasks = await bus.Host.TasksAsync();
        foreach (var t in tasks)
        {
            TestContext.Out.WriteLine(Describe(t));
        }

        task = tasks.Single(t => t.Id == id);
        var runs = task.Runs.OrderBy(r => r.Start).ToList();
        Assert.That(Redo44Consumer.Attempts[n], Is.EqualTo(2));
        Assert.That(runs.Select(r => (r.ConsumerType, r.Retries, r.State)), Is.EqualTo(new[]
        {
            (nameof(Redo44Consumer), 0, TaskRunState.Failed), (nameof(Redo44Consumer), 1, TaskRunState.Succeeded),
        }), Describe(task));
        Assert.That(runs[0].ErrorMessage, Does.Contain("redo " + n + " attempt 1 broken"));
        Assert.That(tasks.Where(t => !t.IsInternal).Select(t => t.Id), Is.EqualTo(new[] { id }), "no redelivery task");
        Assert.That(tasks.Where(t => t.State is TaskState.Waiting or TaskState.Active), Is.Empty, "nothing left waiting");
        Assert.That(await bus.Vhost!.MessagesInQueueAsync("redo44_error"), Is.LessThanOrEqualTo(0), "nothing in redo44_error");
    }
}
