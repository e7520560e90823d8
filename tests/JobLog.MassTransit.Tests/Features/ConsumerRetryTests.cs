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
    public enum Configured
    {
        Definition,
        AddConsumer,

        /// <summary>With a <c>ConcurrentMessageLimit</c> as well: the attempts begin at the slot, inside the retry.</summary>
        AddConsumerWithALimit,
    }

    [TestCase(Configured.Definition, TestName = "Consume_RetriedByItsDefinitionsConsumerRetry_RecordsARunPerAttempt")]
    [TestCase(Configured.AddConsumer, TestName = "Consume_RetriedByAddConsumersUseMessageRetry_RecordsARunPerAttempt")]
    [TestCase(Configured.AddConsumerWithALimit, TestName = "Consume_RetriedByTheConsumersOwnRetry_WithAConcurrentMessageLimit_RecordsARunPerAttempt")]
    public async Task Consume_RetriedByTheConsumersOwnRetry_RecordsARunPerAttempt(Configured configured)
    {
        await using var bus = await BusFixture.StartAsync(transport, x =>
        {
            if (configured == Configured.Definition)
            {
                x.AddConsumer<FlakyJobConsumer, FlakyJobRetryDefinition>();
            }
            else
            {
                x.AddConsumer<FlakyJobConsumer>(c =>
                {
                    c.UseMessageRetry(r => r.Immediate(3));
                    if (configured == Configured.AddConsumerWithALimit)
                    {
                        c.ConcurrentMessageLimit = 1;
                    }
                });
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

public sealed record RetriedLine(int N);

/// <summary>Fails the first attempt of each batch (keyed by its first message).</summary>
public sealed class OnceFailingLineBatchConsumer : IConsumer<Batch<RetriedLine>>
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, int> s_attempts = new();

    public Task Consume(ConsumeContext<Batch<RetriedLine>> context)
    {
        var attempt = s_attempts.AddOrUpdate(context.Message[0].MessageId!.Value, 1, (_, n) => n + 1);
        return attempt == 1 ? throw new InvalidOperationException("batch attempt 1 failed") : Task.CompletedTask;
    }
}

/// <summary>A batch consumer with its own <c>UseMessageRetry</c>: each attempt of the batch is a run on each message.</summary>
[TestFixture(Transport.InMemory)]
public class BatchConsumerRetryTests(Transport transport)
{
    [Test]
    public async Task BatchConsume_RetriedByTheConsumersOwnRetry_RecordsARunPerAttemptOnEachMessage()
    {
        await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<OnceFailingLineBatchConsumer>(c =>
        {
            c.Options<BatchOptions>(o => o.SetMessageLimit(3).SetTimeLimit(TimeSpan.FromMilliseconds(500)));
            c.UseMessageRetry(r => r.Immediate(2));
        }));
        var ids = new[] { NewId.NextGuid(), NewId.NextGuid(), NewId.NextGuid() };
        for (var i = 0; i < ids.Length; i++)
        {
            await bus.Bus.Publish(new RetriedLine(i), x => x.MessageId = ids[i]);
        }

        List<TaskLog> tasks = [];
        await JobLog.Testing.LedgerHost.EventuallyAsync(async () =>
        {
            tasks = (await bus.Host.TasksAsync()).Where(t => ids.Contains(t.Id)).ToList();
            return tasks.Count == 3 && tasks.All(t => t.State == TaskState.Succeeded);
        }, TimeSpan.FromSeconds(20), "every message of the batch consumed");
        Assert.That(tasks.Select(t => string.Join(",", t.Runs.OrderBy(r => r.Start).ThenBy(r => r.Retries).Select(r => $"{r.Retries}{r.State}"))),
            Has.All.EqualTo("0Retried,1Succeeded"), string.Join(" | ", tasks.Select(Describe)));
    }
}
