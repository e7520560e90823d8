using System.Collections.Concurrent;
using JobLog.Testing;
using MassTransit;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public sealed record Tally(int N);

public sealed record TallySummed(int Count, int Sum);

/// <summary>A batch consumer that publishes one event for the whole batch.</summary>
public sealed class TallyBatchConsumer : IConsumer<Batch<Tally>>
{
    public static readonly ConcurrentDictionary<int, Guid> Published = new();

    public async Task Consume(ConsumeContext<Batch<Tally>> context)
    {
        var id = NewId.NextGuid();
        Published[context.Message[0].Message.N] = id;
        await context.Publish(new TallySummed(context.Message.Length, context.Message.Sum(m => m.Message.N)), x => x.MessageId = id);
    }
}

public sealed class TallySummedConsumer : IConsumer<TallySummed>
{
    public Task Consume(ConsumeContext<TallySummed> context) => Task.CompletedTask;
}

public sealed record ParcelCreated(Guid ParcelId);

public sealed record ParcelScanned(Guid ParcelId);

public sealed class Parcel : SagaStateMachineInstance
{
    public Guid CorrelationId { get; set; }

    public string CurrentState { get; set; } = "";
}

/// <summary>A scan of a parcel the saga does not know is discarded (<c>OnMissingInstance(m =&gt; m.Discard())</c>).</summary>
public sealed class ParcelMachine : MassTransitStateMachine<Parcel>
{
    public ParcelMachine()
    {
        InstanceState(x => x.CurrentState);
        Event(() => Created, e => e.CorrelateById(m => m.Message.ParcelId));
        Event(() => Scanned, e =>
        {
            e.CorrelateById(m => m.Message.ParcelId);
            e.OnMissingInstance(m => m.Discard());
        });
        Initially(When(Created).TransitionTo(InTransit));
        During(InTransit, When(Scanned).TransitionTo(Delivered));
    }

    public State InTransit { get; private set; } = null!;

    public State Delivered { get; private set; } = null!;

    public Event<ParcelCreated> Created { get; private set; } = null!;

    public Event<ParcelScanned> Scanned { get; private set; } = null!;
}

/// <summary>An application's scoped consume filter that drops duplicates (an idempotency check): it does not call next.</summary>
public sealed class DropDuplicatesFilter<T> : IFilter<ConsumeContext<T>>
    where T : class
{
    public Task Send(ConsumeContext<T> context, IPipe<ConsumeContext<T>> next) =>
        context.Headers.Get<string>("X-Duplicate") == "yes" ? Task.CompletedTask : next.Send(context);

    public void Probe(ProbeContext context) => context.CreateFilterScope("dropDuplicates");
}

/// <summary>A definition that names the consumer's endpoint and sets its limits, as applications do.</summary>
public sealed class ChargeCardEndpointDefinition : ConsumerDefinition<ChargeCardConsumer>
{
    public ChargeCardEndpointDefinition()
    {
        EndpointName = "billing-charges";
        ConcurrentMessageLimit = 2;
    }

    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<ChargeCardConsumer> consumerConfigurator, IRegistrationContext context)
    {
        endpointConfigurator.PrefetchCount = 4;
        endpointConfigurator.UseMessageRetry(r => r.Immediate(1));
    }
}

/// <summary>
/// Session 27's probes of MassTransit features earlier sessions did not try (in memory): a handler's own retry, a
/// consumer's own retry that ignores an exception, a publish from a batch consumer, a definition's endpoint settings.
/// </summary>
public class ApplicationProbeTests
{
    /// <summary>
    /// A handler's own retry (<c>e.Handler&lt;T&gt;(h, c =&gt; c.UseMessageRetry(…))</c>) is added by MassTransit after JobLog's
    /// run filter, and nothing of JobLog's can follow it (the handler is its pipe's last filter): the attempts are one run.
    /// JobLog says so once, at the handler's first message; before, nothing told why the failures retried away did not show.
    /// </summary>
    [Test]
    public async Task Handler_RetriedByItsOwnUseMessageRetry_IsOneRun_AndJobLogSaysSoOnce()
    {
        var attempts = new ConcurrentDictionary<Guid, int>();
        var warnings = new Scheduling.WarningLog();
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, _ => { }, endpoints: (_, cfg) => cfg.ReceiveEndpoint("ping-own-retry", e =>
            e.Handler<Ping>(
                c => attempts.AddOrUpdate(c.MessageId!.Value, 1, (_, n) => n + 1) <= 2 ? throw new InvalidOperationException("ping fails") : Task.CompletedTask,
                h => h.UseMessageRetry(r => r.Immediate(3)))), logs: warnings);
        var ids = new[] { NewId.NextGuid(), NewId.NextGuid() };
        foreach (var id in ids)
        {
            await bus.Bus.Publish(new Ping(1), x => x.MessageId = id);
        }

        foreach (var id in ids)
        {
            var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the handler succeeded on its third attempt");
            TestContext.Out.WriteLine(Describe(task));
            Assert.That((attempts[id], task.Runs.Single().State), Is.EqualTo((3, TaskRunState.Succeeded)));
        }

        var said = warnings.Lines.Where(l => l.Contains("Handler<Ping>", StringComparison.Ordinal)).ToList();
        TestContext.Out.WriteLine(string.Join(Environment.NewLine, said));
        Assert.That(said, Has.Count.EqualTo(1), "said once: " + string.Join(" | ", warnings.Lines));
        Assert.That(said[0], Does.Contain("on ping-own-retry has its own UseMessageRetry").And.Contain("its attempts are recorded as one run"));
    }

    /// <summary>Likewise a handler's own <c>UseConcurrentMessageLimit</c>: its runs begin when the wait begins (session 24), now said.</summary>
    [Test]
    public async Task Handler_WithItsOwnUseConcurrentMessageLimit_JobLogSaysItsRunsBeginWhenTheWaitBegins()
    {
        var warnings = new Scheduling.WarningLog();
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, _ => { }, endpoints: (_, cfg) => cfg.ReceiveEndpoint("ping-own-limit", e =>
            e.Handler<Ping>(_ => Task.CompletedTask, h => h.UseConcurrentMessageLimit(1))), logs: warnings);
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new Ping(2), x => x.MessageId = id);

        await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the handler ran");
        var said = warnings.Lines.Where(l => l.Contains("Handler<Ping>", StringComparison.Ordinal)).ToList();
        TestContext.Out.WriteLine(string.Join(Environment.NewLine, said));
        Assert.That(said, Has.Count.EqualTo(1), "said once: " + string.Join(" | ", warnings.Lines));
        Assert.That(said[0], Does.Contain("on ping-own-limit has its own concurrency limit").And.Contain("its runs begin when the wait for the limit begins"));
    }

    /// <summary>The consumer's own retry (session 24's per-attempt path) with an exception filter that leaves this one out.</summary>
    [TestCase(false, TestName = "Consume_TheConsumersOwnRetryIgnoringTheException_FailsAtOnce_WithOneFailedRun")]
    [TestCase(true, TestName = "Consume_TheConsumersOwnRetryHandlingOtherExceptionsOnly_FailsAtOnce_WithOneFailedRun")]
    public async Task Consume_TheConsumersOwnRetryNotForThisException_FailsAtOnce_WithOneFailedRun(bool handleOthers)
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<IgnoredFailureConsumer>(c => c.UseMessageRetry(r =>
        {
            r.Immediate(3);
            if (handleOthers)
            {
                r.Handle<TimeoutException>();
            }
            else
            {
                r.Ignore<NotSupportedException>();
            }
        })));
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new IgnoredFailure("no"), x => x.MessageId = id);

        var task = await WaitFor(bus, id, t => t.State == TaskState.Failed, "failed");
        TestContext.Out.WriteLine(Describe(task));
        var run = task.Runs.Single();
        Assert.That((run.State, run.Retries, run.EstimatedTimeOfNextRetry), Is.EqualTo((TaskRunState.Failed, 0, (DateTime?)null)));
        Assert.That(run.ErrorMessage, Does.Contain("NotSupportedException"));
    }

    [Test]
    public async Task BatchConsumer_PublishingOneEventForTheBatch_TheEventIsAChildOfARunOfTheBatch()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
        {
            x.AddConsumer<TallyBatchConsumer>(c => c.Options<BatchOptions>(o => o.SetMessageLimit(3).SetTimeLimit(TimeSpan.FromSeconds(5))));
            x.AddConsumer<TallySummedConsumer>();
        });
        var first = Random.Shared.Next(1000, 100_000);
        var ids = Enumerable.Range(0, 3).Select(_ => NewId.NextGuid()).ToArray();
        for (var i = 0; i < ids.Length; i++)
        {
            await bus.Bus.Publish(new Tally(first + i), x => x.MessageId = ids[i]);
        }

        var tallies = new List<TaskLog>();
        foreach (var id in ids)
        {
            tallies.Add(await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "each message of the batch consumed"));
        }

        await LedgerHost.EventuallyAsync(() => Task.FromResult(TallyBatchConsumer.Published.ContainsKey(first)), TimeSpan.FromSeconds(20), "the batch published");
        var summed = await WaitFor(bus, TallyBatchConsumer.Published[first], t => t.State == TaskState.Succeeded, "the batch's event consumed");
        foreach (var t in tallies.Append(summed))
        {
            TestContext.Out.WriteLine(t.Id + " " + Describe(t));
        }

        Assert.That(tallies.SelectMany(t => t.Runs).Select(r => r.Id), Does.Contain(summed.ParentRunId), "the event's parent is a run of the batch");
    }

    /// <summary>
    /// A message a filter of the application's does not pass on (<c>UseConsumeFilter</c>, an idempotency check dropping a
    /// duplicate): no consumer ran, and MassTransit moves it to the queue's <c>_skipped</c>. Before, its task stayed WAITING
    /// until its stale limit, like a message still on its way.
    /// </summary>
    [Test]
    public async Task Consume_DroppedByAUsersConsumeFilter_IsExpired_SayingAFilterDidNotPassItOn()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<ChargeCardConsumer>(),
            configureBus: (context, cfg) => cfg.UseConsumeFilter(typeof(DropDuplicatesFilter<>), context));
        var (kept, dropped) = (NewId.NextGuid(), NewId.NextGuid());
        await bus.Bus.Publish(new ChargeCard(1, 2m), x => x.MessageId = kept);
        await bus.Bus.Publish(new ChargeCard(1, 2m), x =>
        {
            x.MessageId = dropped;
            x.Headers.Set("X-Duplicate", "yes");
        });

        await WaitFor(bus, kept, t => t.State == TaskState.Succeeded, "the first consumed");
        var task = await WaitFor(bus, dropped, t => t.State == TaskState.Expired, "the duplicate dropped by the filter is EXPIRED");
        TestContext.Out.WriteLine(Describe(task));
        var run = task.Runs.Single();
        Assert.That((run.ConsumerType, run.State), Is.EqualTo(("ChargeCardConsumer", TaskRunState.Expired)));
        Assert.That(run.ErrorMessage, Does.StartWith("Not consumed: it arrived at charge-card at ")
            .And.Contain("a filter in front of its consumers did not pass it on").And.Contain("charge-card_skipped"));
    }

    /// <summary>
    /// A saga event with no instance that the event's <c>OnMissingInstance(m =&gt; m.Discard())</c> lets go: the saga is never
    /// called. The run ends as the application chose (SUCCEEDED) and now says the saga was not called; before, it read
    /// like the known parcel's run without its state line, as if the saga had handled it.
    /// </summary>
    [Test]
    public async Task SagaEvent_WithoutAnInstance_DiscardedByOnMissingInstance_ItsRunSaysTheSagaWasNotCalled()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddSagaStateMachine<ParcelMachine, Parcel>().InMemoryRepository());
        var (known, unknown) = (NewId.NextGuid(), NewId.NextGuid());
        var (created, scanned, stray) = (NewId.NextGuid(), NewId.NextGuid(), NewId.NextGuid());
        await bus.Bus.Publish(new ParcelCreated(known), x => x.MessageId = created);
        await WaitFor(bus, created, t => t.State == TaskState.Succeeded, "the parcel's saga created");
        await bus.Bus.Publish(new ParcelScanned(known), x => x.MessageId = scanned);
        await bus.Bus.Publish(new ParcelScanned(unknown), x => x.MessageId = stray);

        var delivered = await WaitFor(bus, scanned, t => t.State == TaskState.Succeeded, "the known parcel's scan consumed");
        var discarded = await WaitFor(bus, stray, t => t.State is not (TaskState.Waiting or TaskState.Active), "the stray scan settled");
        TestContext.Out.WriteLine(Describe(delivered));
        TestContext.Out.WriteLine(Describe(discarded));
        Assert.That(delivered.Runs.Single().Output, Does.Contain("InTransit → Delivered"));
        var run = discarded.Runs.Single();
        Assert.That((run.ConsumerType, run.State), Is.EqualTo((nameof(Parcel), TaskRunState.Succeeded)));
        Assert.That(run.Output, Does.Contain("Saga Parcel was not called: no instance matched the message"));
    }

    [Test]
    public async Task ConsumerDefinition_EndpointNameLimitAndRetry_TheRunsAreOnTheDefinitionsQueue()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<ChargeCardConsumer, ChargeCardEndpointDefinition>());
        var ids = Enumerable.Range(0, 4).Select(_ => NewId.NextGuid()).ToArray();
        foreach (var id in ids)
        {
            await bus.Bus.Publish(new ChargeCard(1, 2m), x => x.MessageId = id);
        }

        foreach (var id in ids)
        {
            var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "consumed on the definition's endpoint");
            var run = task.Runs.Single();
            Assert.That((run.ConsumerType, run.QueueName, run.State), Is.EqualTo(("ChargeCardConsumer", "billing-charges", TaskRunState.Succeeded)), Describe(task));
        }
    }
}
