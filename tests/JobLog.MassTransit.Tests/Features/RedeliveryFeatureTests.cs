using JobLog.Testing;
using MassTransit;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public class RedeliveryFeatureTests
{
    [Test]
    public async Task DelayedRedeliveryAroundMessageRetry_InMemory_RetryNumbersRunAcrossRedeliveries()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<WobblyConsumer>(),
            configureBus: (_, cfg) =>
            {
                cfg.UseDelayedRedelivery(r => r.Intervals(200, 200));
                cfg.UseMessageRetry(r => r.Immediate(1));
            });
        var ok = NewId.NextGuid();
        var doomed = NewId.NextGuid();
        await bus.Bus.Publish(new Wobbly(3), x => x.MessageId = ok);
        await bus.Bus.Publish(new Wobbly(100), x => x.MessageId = doomed);
        var a = await WaitFor(bus, ok, t => t.State == TaskState.Succeeded, "succeeded on the 4th attempt");
        var b = await WaitFor(bus, doomed, t => t.State == TaskState.Failed, "failed after 6 attempts");
        await Task.Delay(300);
        a = (await Find(bus, ok))!;
        b = (await Find(bus, doomed))!;
        TestContext.Out.WriteLine(Describe(a));
        TestContext.Out.WriteLine(Describe(b));
        Assert.That((await bus.Host.TasksAsync()).Count, Is.EqualTo(2), "redeliveries are no tasks");
        Assert.That(a.Runs.OrderBy(r => r.Start).Select(r => (r.Retries, r.State)), Is.EqualTo(new[]
        {
            (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, TaskRunState.Retried), (3, TaskRunState.Succeeded),
        }));
        Assert.That(b.Runs.OrderBy(r => r.Start).Select(r => r.State), Is.EqualTo(new[]
        {
            TaskRunState.Retried, TaskRunState.Retried, TaskRunState.Retried, TaskRunState.Retried, TaskRunState.Retried, TaskRunState.Failed,
        }));
        Assert.That(a.Runs.Where(r => r.State == TaskRunState.Retried).Select(r => r.EstimatedTimeOfNextRetry), Has.All.Not.Null);
    }
}
