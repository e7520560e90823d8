using JobLog.Testing;
using MassTransit;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Apps44;

public sealed record Filtered44(int N);

public sealed class Filtered44Consumer : IConsumer<Filtered44>
{
    public Task Consume(ConsumeContext<Filtered44> context) => Task.CompletedTask;
}

/// <summary>
/// <c>AddJobLogScheduler</c> with a <c>ConfigureEndpoints</c> filter that names the consumers it includes (an application
/// including only its own), on RabbitMQ without the delayed-message plugin. The filter leaves JobLog's scheduler consumer
/// out, so the bus has no scheduler endpoint: before session 44 a publish with a countdown never returned (nor honoured
/// its token: 4 and 10 minutes in the apps helper's probes), and JobLog said nothing. It now fails at once saying why
/// and how to include it (<c>f.IncludeJobLogScheduler()</c>), with which the countdown works.
/// </summary>
public class SchedulerFilterTests
{
    [TestCase(false)]
    [TestCase(true)]
    [CancelAfter(240_000)]
    public async Task SchedulerLeftOutByAFilter_ADelayedPublishFailsSayingWhy_IncludedItIsDelivered(bool included)
    {
        await using var bus = await BusFixture.StartAsync(Transport.RabbitMq, x =>
            {
                x.AddConsumer<Filtered44Consumer>();
                x.AddJobLogScheduler(o => o.PollInterval = TimeSpan.FromMilliseconds(500));
            },
            endpointFilter: f =>
            {
                f.Include(typeof(Filtered44Consumer));
                if (included)
                {
                    f.IncludeJobLogScheduler();
                }
            });
        var id = NewId.NextGuid();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var publish = bus.Bus.Publish(new Filtered44(1), x =>
        {
            x.MessageId = id;
            x.SetTaskOptions(t => t.Countdown = TimeSpan.FromSeconds(1));
        }, stop.Token);
        var ended = await Task.WhenAny(publish, Task.Delay(TimeSpan.FromSeconds(90)));
        Assert.That(ended, Is.SameAs(publish), "the publish returned");
        if (!included)
        {
            var error = Assert.CatchAsync<InvalidOperationException>(() => publish);
            Assert.That(error!.Message, Does.Contain("IncludeJobLogScheduler").And.Contain("joblog-scheduler"), error.Message);
            return;
        }

        await publish;
        await LedgerHost.EventuallyAsync(async () => (await bus.Host.TasksAsync()).SingleOrDefault(t => t.Id == id) is { State: TaskState.Succeeded },
            because: "the delayed message delivered by the JobLog scheduler and consumed");
        var task = (await bus.Host.TasksAsync()).Single(t => t.Id == id);
        Assert.That(task.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Filtered44Consumer), TaskRunState.Succeeded) }));
        Assert.That(task.Runs.Single().Start, Is.GreaterThanOrEqualTo(task.DispatchedAt.AddSeconds(1)), "consumed after its countdown");
    }
}
