using JobLog.MassTransit.Tests.Scheduling;
using JobLog.Testing;
using MassTransit;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public sealed record Meter(int N, bool Broken);

public sealed class MeterConsumer : IConsumer<Meter>
{
    public Task Consume(ConsumeContext<Meter> context) =>
        context.Message.Broken ? throw new InvalidOperationException("meter " + context.Message.N + " broken") : Task.CompletedTask;
}

/// <summary>
/// <c>UseKillSwitch</c> on the real RabbitMQ: failures trip it, the endpoint stops and restarts; every message ends
/// with the state of its last attempt, and no run is left ACTIVE by the stop.
/// </summary>
public class RabbitMqKillSwitchTests : OneSchedulerBusTests
{
    [Test]
    public async Task KillSwitch_TrippedByFailures_RestartsTheEndpoint_EveryTaskEndsWithItsLastAttemptsState()
    {
        var bus = await StartBusAsync(
            x => x.AddConsumer<MeterConsumer>(),
            (_, cfg) => cfg.UseKillSwitch(k => k.SetActivationThreshold(4).SetTripThreshold(0.2).SetRestartTimeout(s: 1)));
        var stops = new StopCounter();
        bus.Bus.ConnectReceiveEndpointObserver(stops);
        var ids = Enumerable.Range(0, 20).Select(_ => NewId.NextGuid()).ToList();
        for (var i = 0; i < ids.Count; i++)
        {
            await bus.Bus.Publish(new Meter(i, Broken: i % 4 == 0), x => x.MessageId = ids[i]);
        }

        await LedgerHost.EventuallyAsync(async () =>
                (await bus.Host.TasksAsync()).Count(t => ids.Contains(t.Id) && t.State is TaskState.Succeeded or TaskState.Failed) == ids.Count,
            TimeSpan.FromSeconds(60), "every meter ended");
        await bus.Host.FlushAsync();
        var tasks = (await bus.Host.TasksAsync()).Where(t => ids.Contains(t.Id)).ToList();
        foreach (var t in tasks.OrderBy(t => t.DispatchedAt))
        {
            TestContext.Out.WriteLine(Describe(t));
        }

        Assert.That(tasks.Where(t => t.State == TaskState.Failed).Select(t => ids.IndexOf(t.Id)).Order(), Is.EqualTo(new[] { 0, 4, 8, 12, 16 }),
            "only the broken meters failed");
        Assert.That(tasks.SelectMany(t => t.Runs).Where(r => r.State == TaskRunState.Active), Is.Empty, "no run left ACTIVE by the stops");
        Assert.That(await bus.Vhost.MessagesInQueueAsync("meter_error"), Is.EqualTo(5));
        Assert.That(stops.Count, Is.GreaterThan(0), "the kill switch tripped (the endpoint stopped) at least once");
    }

    private sealed class StopCounter : IReceiveEndpointObserver
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public Task Ready(ReceiveEndpointReady ready) => Task.CompletedTask;

        public Task Stopping(ReceiveEndpointStopping stopping)
        {
            if (stopping.InputAddress.AbsolutePath.EndsWith("/meter", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref _count);
            }

            return Task.CompletedTask;
        }

        public Task Completed(ReceiveEndpointCompleted completed) => Task.CompletedTask;

        public Task Faulted(ReceiveEndpointFaulted faulted) => Task.CompletedTask;
    }
}
