using JobLog.MassTransit.Internal;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Features;

/// <summary>MassTransit features the samples do not cover (batch, defer, retry filters, circuit breaker, partitioner, outbox, addresses, hostile headers, generic names).</summary>
public class PipelineFeatureTests
{
    internal static string Describe(TaskLog? t) => t is null ? "(no task)" :
        $"{t.Name} {t.State} q={t.QueueName} parent={t.ParentRunId} runs=[" + string.Join("; ", t.Runs.OrderBy(r => r.Start).ThenBy(r => r.Retries)
            .Select(r => $"{r.ConsumerType} #{r.Retries} {r.State} next={r.EstimatedTimeOfNextRetry:O} err={Trim(r.ErrorMessage)} out={Trim(r.Output)}")) + "]";

    private static string? Trim(string? s) => s is null ? null : s.Length > 120 ? s[..120] : s;

    internal static async Task<TaskLog?> Find(BusFixture bus, Guid id) =>
        await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == id));

    internal static async Task<TaskLog> WaitFor(BusFixture bus, Guid id, Func<TaskLog, bool> done, string because, int seconds = 20)
    {
        TaskLog? task = null;
        try
        {
            await LedgerHost.EventuallyAsync(async () => (task = await Find(bus, id)) is not null && done(task), TimeSpan.FromSeconds(seconds), because);
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException(because + ": last seen " + Describe(task), ex);
        }

        return task!;
    }

    /// <summary>
    /// Waits until a task of each of <paramref name="names"/> is recorded and every task that is not JobLog's own has
    /// ended (neither WAITING nor ACTIVE), with no run ACTIVE: the state a test that asserts on "everything" reads, instead
    /// of a sleep that a loaded machine outlasts. Should it not come, the test's assertions say what is left.
    /// </summary>
    internal static async Task SettledAsync(LedgerHost host, params string[] names)
    {
        try
        {
            await LedgerHost.EventuallyAsync(
                async () =>
                {
                    var tasks = await host.TasksAsync();
                    return names.All(n => tasks.Any(t => t.Name == n))
                        && tasks.Where(t => !t.IsInternal).All(t => t.State != TaskState.Waiting && t.State != TaskState.Active)
                        && tasks.SelectMany(t => t.Runs).All(r => r.State != TaskRunState.Active);
                },
                because: "settled: " + string.Join(", ", names));
        }
        catch (TimeoutException ex)
        {
            TestContext.Out.WriteLine(ex.Message);
        }
    }

    /// <summary>Publishes <paramref name="message"/> to <typeparamref name="TConsumer"/> on the in-memory bus; its task once it ended.</summary>
    private static async Task<TaskLog> ConsumedAsync<TConsumer>(object message)
        where TConsumer : class, IConsumer
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<TConsumer>());
        var id = NewId.NextGuid();
        await bus.Bus.Publish(message, message.GetType(), x => x.MessageId = id);
        var task = await WaitFor(bus, id, t => t.State != TaskState.Waiting && t.State != TaskState.Active, "consumed");
        TestContext.Out.WriteLine(Describe(task));
        return task;
    }

    [Test]
    public async Task GenericMessage_IsNamedWithItsArguments()
    {
        var task = await ConsumedAsync<EnvelopeConsumer>(new Envelope<ChargeCard>(new ChargeCard(1, 2m)));
        Assert.That((task.State, task.Name), Is.EqualTo((TaskState.Succeeded, "Envelope<ChargeCard>")));
    }

    [Test]
    public async Task NestedMessage_IsRecorded()
    {
        var task = await ConsumedAsync<NestedConsumer>(new Nest.Nested("a"));
        Assert.That((task.State, task.Name), Is.EqualTo((TaskState.Succeeded, "Nested")));
    }

    [Test]
    public async Task MessageNestedInAGenericClass_IsConsumedAndRecorded()
    {
        var task = await ConsumedAsync<OuterInnerConsumer>(new Outer<int>.Inner("a"));
        Assert.That(task.State, Is.EqualTo(TaskState.Succeeded));
        Assert.That(task.Runs.Single().State, Is.EqualTo(TaskRunState.Succeeded));
    }

    [Test]
    public async Task MessagesAndConsumersNestedInDifferentClosedGenericClasses_HaveDistinctNames()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
        {
            x.AddConsumer<Lanes<int>.Consumer>().Endpoint(e => e.Name = "lanes-int");
            x.AddConsumer<Lanes<string>.Consumer>().Endpoint(e => e.Name = "lanes-string");
        });
        var (intId, stringId) = (NewId.NextGuid(), NewId.NextGuid());
        await bus.Bus.Publish(new Outer<int>.Inner("a"), x => x.MessageId = intId);
        await bus.Bus.Publish(new Outer<string>.Inner("b"), x => x.MessageId = stringId);

        var ofInt = await WaitFor(bus, intId, t => t.State == TaskState.Succeeded, "consumed");
        var ofString = await WaitFor(bus, stringId, t => t.State == TaskState.Succeeded, "consumed");

        Assert.That((ofInt.Name, ofInt.Runs.Single().ConsumerType), Is.EqualTo(("Outer<Int32>.Inner", "Lanes<Int32>.Consumer")));
        Assert.That((ofString.Name, ofString.Runs.Single().ConsumerType), Is.EqualTo(("Outer<String>.Inner", "Lanes<String>.Consumer")));
    }

    [TestCase(typeof(Outer<int>.Inner), "Outer<Int32>.Inner")]
    [TestCase(typeof(Deep<int>.Middle.Leaf<string>), "Deep<Int32>.Middle.Leaf<String>")]
    [TestCase(typeof(Envelope<Outer<long>.Inner>), "Envelope<Outer<Int64>.Inner>")]
    [TestCase(typeof(Dictionary<string, int>), "Dictionary<String,Int32>")]
    [TestCase(typeof(Nest.Nested), "Nested")]
    public void ShortName_OfTypesNestedInGenericClasses_GivesEachLevelItsOwnArguments(Type type, string name) =>
        Assert.That(TaskLoggingServices.ShortName(type), Is.EqualTo(name));

    [Test]
    public async Task Defer_TheDeferredRunIsNotSucceeded_AndTheLastRunSucceeds()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<DeferMeConsumer>(),
            configureBus: (_, cfg) => cfg.UseDelayedRedelivery(r => r.Intervals(100)));
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new DeferMe(1), x => x.MessageId = id);
        var task = await WaitFor(bus, id, t => t.Runs.Count == 2 && t.Runs.All(r => r.Stop != null), "deferred then consumed");
        await Task.Delay(500);
        task = (await Find(bus, id))!;
        TestContext.Out.WriteLine(Describe(task));
        var tasks = await bus.Host.TasksAsync();
        TestContext.Out.WriteLine("tasks: " + tasks.Count);
        Assert.That(tasks, Has.Count.EqualTo(1), "the redelivery is no new task");
        var runs = task.Runs.OrderBy(r => r.Start).ToList();
        Assert.That(runs.Select(r => r.Retries), Is.EqualTo(new[] { 0, 1 }));
        Assert.That(runs[1].State, Is.EqualTo(TaskRunState.Succeeded));
        Assert.That(runs[0].State, Is.EqualTo(TaskRunState.Retried), "a deferred attempt did not do its work: it is retried later");
        Assert.That(runs[0].EstimatedTimeOfNextRetry, Is.Not.Null);
    }

    [Test]
    public async Task Defer_ByOneOfTwoConsumersOfAMessage_LeavesTheOthersFinishedRunSucceeded()
    {
        // Both consumers of one endpoint start together; the deferring one hands the message back while the slow one is
        // still working: only the deferring run is the deferred attempt (review of session 20).
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
            {
                x.AddConsumer<SlowPartnerConsumer>();
                x.AddConsumer<DeferringPartnerConsumer>();
            },
            configureBus: (_, cfg) => cfg.UseDelayedRedelivery(r => r.Intervals(100)),
            endpoints: (context, cfg) => cfg.ReceiveEndpoint("partners-probe", e =>
            {
                e.ConfigureConsumer<SlowPartnerConsumer>(context);
                e.ConfigureConsumer<DeferringPartnerConsumer>(context);
            }));
        var id = NewId.NextGuid();
        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:partners-probe"));
        await endpoint.Send(new Partnered(), x => x.MessageId = id);
        var task = await WaitFor(bus, id, t => t.Runs.Count == 4 && t.Runs.All(r => r.Stop != null), "both consumers, twice");
        TestContext.Out.WriteLine(Describe(task));
        var slow = task.Runs.Where(r => r.ConsumerType.Contains(nameof(SlowPartnerConsumer), StringComparison.Ordinal)).OrderBy(r => r.Start).ToList();
        var deferring = task.Runs.Where(r => r.ConsumerType.Contains(nameof(DeferringPartnerConsumer), StringComparison.Ordinal)).OrderBy(r => r.Start).ToList();
        Assert.That(slow.Select(r => r.State), Is.EqualTo(new[] { TaskRunState.Succeeded, TaskRunState.Succeeded }), "the slow consumer did its work both times");
        Assert.That(deferring.Select(r => r.State), Is.EqualTo(new[] { TaskRunState.Retried, TaskRunState.Succeeded }));
    }

    [Test]
    public async Task MessageRetryIgnoringAnException_FailsAtOnce_WithOneFailedRun()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<IgnoredFailureConsumer>(),
            configureBus: (_, cfg) => cfg.UseMessageRetry(r =>
            {
                r.Immediate(3);
                r.Ignore<NotSupportedException>();
            }));
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new IgnoredFailure("no"), x => x.MessageId = id);
        var task = await WaitFor(bus, id, t => t.State == TaskState.Failed, "failed");
        TestContext.Out.WriteLine(Describe(task));
        Assert.That(task.Runs.Single().State, Is.EqualTo(TaskRunState.Failed));
    }

    [Test]
    public async Task CircuitBreaker_MessagesRejectedByTheOpenCircuit_AreNotLeftWaiting()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<BreakerConsumer>(),
            configureBus: (_, cfg) => cfg.UseCircuitBreaker(cb =>
            {
                cb.TrackingPeriod = TimeSpan.FromMinutes(1);
                cb.TripThreshold = 10;
                cb.ActiveThreshold = 2;
                cb.ResetInterval = TimeSpan.FromMinutes(10);
            }));
        // One message at a time, each after the previous one failed: the first three are consumed (the third opens the
        // circuit), the last three are refused by the open circuit (closed again only after ResetInterval, out of reach).
        // The test waited on sleeps before, and at load 66 read the last three still WAITING.
        var ids = Enumerable.Range(0, 6).Select(_ => NewId.NextGuid()).ToList();
        for (var i = 0; i < ids.Count; i++)
        {
            await bus.Bus.Publish(new Breaker(i), x => x.MessageId = ids[i]);
            await WaitFor(bus, ids[i], t => t.State == TaskState.Failed, $"message {i} failed", seconds: 60);
        }

        var tasks = (await bus.Host.TasksAsync()).Where(t => ids.Contains(t.Id)).OrderBy(t => t.DispatchedAt).ToList();
        foreach (var t in tasks)
        {
            TestContext.Out.WriteLine(Describe(t));
        }

        Assert.That(tasks, Has.Count.EqualTo(6));
        Assert.That(tasks.Select(t => t.State), Has.All.EqualTo(TaskState.Failed), "every message went to _error");
        Assert.That(tasks.Select(t => t.Runs.Single().ConsumerType), Has.All.EqualTo("BreakerConsumer"), "in the consumer's lane");
        // The open circuit refuses with the exception that opened it (the third message's): the refused runs name its task.
        Assert.That(tasks.Skip(3).Select(t => t.Runs.Single().ErrorMessage), Has.All.StartWith(
            $"Refused before any consumer ran, by the failure of another message rethrown (an open circuit breaker refuses with the exception that opened it; that message's task: {tasks[2].Id}): System.InvalidOperationException: breaker 2"));
    }

    [TestCase(Transport.InMemory, false)]
    [TestCase(Transport.InMemory, true)]
    [TestCase(Transport.RabbitMq, true)]
    public async Task RefusedOnOneOfTheEndpointsThatConsumeIt_IsInThatEndpointsConsumersLane_AndItsLaterRunDecides(Transport transport, bool configureEndpoints)
    {
        // Two consumers of one published message, each on its own endpoint; a filter of one endpoint refuses the first
        // delivery. The refusal concerns that endpoint's consumer only: when the message is moved back from its _error
        // queue and consumed, the task is done. In a lane of its own, "(delivery)", it stayed FAILED for good.
        var refusals = 0;
        void Refuse(IReceiveEndpointConfigurator e) => e.UseExecute(_ =>
        {
            if (Interlocked.Increment(ref refusals) == 1)
            {
                throw new InvalidOperationException("refused by the endpoint's validation filter");
            }
        });

        await using var bus = configureEndpoints
            ? await BusFixture.StartAsync(transport, x =>
            {
                x.AddConsumer<ShippedBillingConsumer>().Endpoint(e => e.Name = "shipped-billing");
                x.AddConsumer<ShippedMailConsumer>().Endpoint(e => e.Name = "shipped-mail");
                x.AddConfigureEndpointsCallback((_, name, e) =>
                {
                    if (name == "shipped-billing")
                    {
                        Refuse(e);
                    }
                });
            })
            : await BusFixture.StartAsync(transport, _ => { }, endpoints: (_, cfg) =>
            {
                cfg.ReceiveEndpoint("shipped-billing", e =>
                {
                    Refuse(e);
                    e.Consumer<ShippedBillingConsumer>();
                });
                cfg.ReceiveEndpoint("shipped-mail", e => e.Consumer<ShippedMailConsumer>());
            });
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new Shipped(1), x => x.MessageId = id);
        var refused = await WaitFor(bus, id, t => t.Runs.Count == 2 && t.Runs.All(r => r.Stop != null), "refused on one endpoint, consumed on the other");
        Assert.That(refused.Runs.Select(r => (r.ConsumerType, r.State)),
            Is.EquivalentTo(new[] { ("ShippedBillingConsumer", TaskRunState.Failed), ("ShippedMailConsumer", TaskRunState.Succeeded) }), Describe(refused));
        Assert.That(refused.Runs.Single(r => r.State == TaskRunState.Failed).ErrorMessage, Does.StartWith("Refused before any consumer ran: "));

        // Moved back from shipped-billing_error: the same message on the endpoint's queue again.
        var billing = await bus.Bus.GetSendEndpoint(new Uri("queue:shipped-billing"));
        await billing.Send(new Shipped(1), x => x.MessageId = id);

        var done = await WaitFor(bus, id, t => t.Runs.Count == 3 && t.Runs.All(r => r.Stop != null), "consumed after the move back");
        Assert.That(done.State, Is.EqualTo(TaskState.Succeeded), Describe(done));
    }

    [Test]
    public async Task RefusedOnAnEndpointWithTwoConsumersOfIt_IsInEachOfTheirLanes_AndTheirLaterRunsDecide()
    {
        var refusals = 0;
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, _ => { }, endpoints: (_, cfg) =>
            cfg.ReceiveEndpoint("shipped-both", e =>
            {
                e.UseExecute(_ =>
                {
                    if (Interlocked.Increment(ref refusals) == 1)
                    {
                        throw new InvalidOperationException("refused by the endpoint's validation filter");
                    }
                });
                e.Consumer<ShippedBillingConsumer>();
                e.Consumer<ShippedMailConsumer>();
            }));
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new Shipped(2), x => x.MessageId = id);
        var refused = await WaitFor(bus, id, t => t.State == TaskState.Failed, "refused");
        await bus.Host.FlushAsync();
        refused = (await Find(bus, id))!;
        Assert.That(refused.Runs.Select(r => (r.ConsumerType, r.State)),
            Is.EquivalentTo(new[] { ("ShippedBillingConsumer", TaskRunState.Failed), ("ShippedMailConsumer", TaskRunState.Failed) }), Describe(refused));

        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:shipped-both"));
        await endpoint.Send(new Shipped(2), x => x.MessageId = id);

        var done = await WaitFor(bus, id, t => t.Runs.Count == 4 && t.Runs.All(r => r.Stop != null), "consumed by both after the move back");
        Assert.That(done.State, Is.EqualTo(TaskState.Succeeded), Describe(done));
    }

    [Test]
    public async Task Partitioner_EveryMessageHasOneSucceededRun()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<PartitionedConsumer>(),
            endpoints: (_, cfg) => cfg.ReceiveEndpoint("partitioned-probe", e =>
            {
                var p = e.CreatePartitioner(2);
                e.UseMessageRetry(r => r.Immediate(1));
                e.UsePartitioner<Partitioned>(p, m => new Guid(m.Message.Key, 0, 0, new byte[8]));
                e.Consumer<PartitionedConsumer>();
            }));
        var ids = Enumerable.Range(0, 20).Select(_ => NewId.NextGuid()).ToList();
        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:partitioned-probe"));
        for (var i = 0; i < ids.Count; i++)
        {
            await endpoint.Send(new Partitioned(i % 3, i), x => x.MessageId = ids[i]);
        }

        await LedgerHost.EventuallyAsync(async () =>
            (await bus.Host.TasksAsync()).Count(t => ids.Contains(t.Id) && t.State == TaskState.Succeeded) == 20, TimeSpan.FromSeconds(20), "all consumed");
        var tasks = (await bus.Host.TasksAsync()).Where(t => ids.Contains(t.Id)).ToList();
        Assert.That(tasks.Select(t => t.Runs.Count), Has.All.EqualTo(1));
        Assert.That(tasks.Select(t => t.QueueName), Has.All.EqualTo("partitioned-probe"));
    }

    [Test]
    public async Task InMemoryOutbox_PublishThenFailThenSucceed_RecordsOnlyTheReleasedChild_LinkedToTheSucceededRun()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
            {
                x.AddConsumer<OutboxParentConsumer>();
                x.AddConsumer<OutboxChildConsumer>();
            },
            configureBus: (context, cfg) =>
            {
                cfg.UseMessageRetry(r => r.Immediate(2));
                cfg.UseInMemoryOutbox(context);
            });
        var ok = NewId.NextGuid();
        var doomed = NewId.NextGuid();
        await bus.Bus.Publish(new OutboxParent(1), x => x.MessageId = ok);
        await bus.Bus.Publish(new OutboxParent(5), x => x.MessageId = doomed);
        await WaitFor(bus, ok, t => t.State == TaskState.Succeeded, "parent succeeded");
        await WaitFor(bus, doomed, t => t.State == TaskState.Failed, "parent failed");
        await Task.Delay(1000);
        await bus.Host.FlushAsync();
        var tasks = await bus.Host.TasksAsync();
        foreach (var t in tasks.OrderBy(t => t.DispatchedAt))
        {
            TestContext.Out.WriteLine(t.Id + " " + Describe(t));
        }

        var okTask = tasks.Single(t => t.Id == ok);
        var children = tasks.Where(t => t.Name == "OutboxChild").ToList();
        Assert.That(children, Has.Count.EqualTo(1), "only the succeeded attempt's publish was released");
        var succeeded = okTask.Runs.Single(r => r.State == TaskRunState.Succeeded);
        Assert.That(children[0].ParentRunId, Is.EqualTo(succeeded.Id));
        Assert.That(children[0].State, Is.EqualTo(TaskState.Succeeded));
    }

    [Test]
    public async Task SendToExchangeAndQueueAddresses_RecordTheirNames()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<ChargeCardConsumer>());
        var viaQueue = NewId.NextGuid();
        var viaExchange = NewId.NextGuid();
        await (await bus.Bus.GetSendEndpoint(new Uri("queue:charge-card"))).Send(new ChargeCard(1, 1m), x => x.MessageId = viaQueue);
        await (await bus.Bus.GetSendEndpoint(new Uri("exchange:charge-card"))).Send(new ChargeCard(2, 1m), x => x.MessageId = viaExchange);
        var a = await WaitFor(bus, viaQueue, t => t.State == TaskState.Succeeded, "queue send consumed");
        var b = await WaitFor(bus, viaExchange, t => t.State == TaskState.Succeeded, "exchange send consumed");
        TestContext.Out.WriteLine(Describe(a));
        TestContext.Out.WriteLine(Describe(b));
        Assert.That((a.QueueName, b.QueueName), Is.EqualTo(("charge-card", "charge-card")));
    }

    [Test]
    public async Task HostileHeaders_AMalformedOriginalMessageId_DoesNotKeepTheConsumerFromRunning()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<ChargeCardConsumer>());
        var id = NewId.NextGuid();
        var other = NewId.NextGuid();
        await bus.Bus.Publish(new ChargeCard(1, 1m), x =>
        {
            x.MessageId = id;
            x.Headers.Set("JobLog-ParentRunId", "'; DROP TABLE \"JobLogTasks\"; --");
            x.Headers.Set("JobLog-InputRequestId", new string('x', 100_000));
            x.Headers.Set("X-Evil", "\u0000\u202e<script>alert(1)</script>\r\nSet-Cookie: a=b");
            x.Headers.Set("MT-OriginalMessageId", "not-a-guid");
        });
        var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "consumed");
        TestContext.Out.WriteLine(Describe(task));
        Assert.That(task.ParentRunId, Is.Null);
        Assert.That(task.InputRequestId, Is.Null);
        Assert.That(await Find(bus, other), Is.Null);
    }
}
