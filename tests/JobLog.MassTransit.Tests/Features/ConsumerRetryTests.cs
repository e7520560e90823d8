using MassTransit;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

/// <summary>Retries a definition or <c>AddConsumer</c> configures on the consumer itself.</summary>
public sealed class FlakyJobRetryDefinition : ConsumerDefinition<FlakyJobConsumer>
{
    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<FlakyJobConsumer> consumerConfigurator, IRegistrationContext context) =>
        consumerConfigurator.UseMessageRetry(r => r.Immediate(3));
}

/// <summary>
/// <c>UseMessageRetry</c> on a consumer configurator (in a <c>ConsumerDefinition</c>'s <c>ConfigureConsumer</c>, or
/// <c>x.AddConsumer&lt;T&gt;(c =&gt; c.UseMessageRetry(…))</c>): MassTransit adds that retry to the consumer's message pipe
/// from a configuration observer called after JobLog's. Each attempt must still be a run.
/// </summary>
[TestFixture(Transport.InMemory)]
[TestFixture(Transport.RabbitMq)]
public class ConsumerRetryTests(Transport transport)
{
    [TestCase(true, TestName = "Consume_RetriedByItsDefinitionsConsumerRetry_RecordsARunPerAttempt")]
    [TestCase(false, TestName = "Consume_RetriedByAddConsumersUseMessageRetry_RecordsARunPerAttempt")]
    public async Task Consume_RetriedByTheConsumersOwnRetry_RecordsARunPerAttempt(bool definition)
    {
        await using var bus = await BusFixture.StartAsync(transport, x =>
        {
            if (definition)
            {
                x.AddConsumer<FlakyJobConsumer, FlakyJobRetryDefinition>();
            }
            else
            {
                x.AddConsumer<FlakyJobConsumer>(c => c.UseMessageRetry(r => r.Immediate(3)));
            }
        });
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new FlakyJob(2), x => x.MessageId = id);

        var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the flaky job consumed");
        var runs = task.Runs.OrderBy(r => r.Retries).Select(r => (r.Retries, r.State)).ToList();
        Assert.That(runs, Is.EqualTo(new[] { (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, TaskRunState.Succeeded) }), Describe(task));
        Assert.That(task.Runs.Where(r => r.State == TaskRunState.Retried).Select(r => r.ErrorMessage), Has.All.Contain("flaky failure"));
        Assert.That(task.Runs.Where(r => r.State == TaskRunState.Retried).Select(r => r.EstimatedTimeOfNextRetry), Has.All.Not.Null,
            "each retried attempt knows when the next came");
    }

    [Test]
    public async Task Consume_FailingEveryAttemptOfTheConsumersOwnRetry_RecordsRetriedRunsThenAFailedOne()
    {
        await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<DoomedJobConsumer>(c => c.UseMessageRetry(r => r.Immediate(2))));
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new DoomedJob("no"), x => x.MessageId = id);

        var task = await WaitFor(bus, id, t => t.State == TaskState.Failed, "the doomed job failed");
        var runs = task.Runs.OrderBy(r => r.Retries).Select(r => (r.Retries, r.State)).ToList();
        Assert.That(runs, Is.EqualTo(new[] { (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, TaskRunState.Failed) }), Describe(task));
        Assert.That(task.Runs.Select(r => r.ErrorMessage), Has.All.Contain("doomed: no"));
    }
}
