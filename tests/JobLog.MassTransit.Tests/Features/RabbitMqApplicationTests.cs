using System.Collections.Concurrent;
using JobLog.MassTransit.Tests.Scheduling;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public record FanOut(int Id, int FailuresOfB);

public record AlwaysBroken(int Id);

public record CallsOut(int Id);

public record LoadItem(int Id);

public sealed class FanAConsumer : IConsumer<FanOut>
{
    public Task Consume(ConsumeContext<FanOut> context) => Task.CompletedTask;
}

public sealed class FanBConsumer : IConsumer<FanOut>
{
    public static readonly ConcurrentDictionary<int, int> Attempts = new();

    public Task Consume(ConsumeContext<FanOut> context)
    {
        var n = Attempts.AddOrUpdate(context.Message.Id, 1, (_, v) => v + 1);
        if (n <= context.Message.FailuresOfB)
        {
            throw new InvalidOperationException($"B fails attempt {n}");
        }

        return Task.CompletedTask;
    }
}

public sealed class FanCConsumer : IConsumer<FanOut>
{
    public Task Consume(ConsumeContext<FanOut> context) => Task.CompletedTask;
}

public sealed class AlwaysBrokenConsumer : IConsumer<AlwaysBroken>
{
    public Task Consume(ConsumeContext<AlwaysBroken> context) => throw new InvalidOperationException("broken " + context.Message.Id);
}

public sealed class CallsOutConsumer(IHttpClientFactory factory) : IConsumer<CallsOut>
{
    public static string? Url;

    public async Task Consume(ConsumeContext<CallsOut> context)
    {
        var client = factory.CreateClient("partner");
        using var response = await client.GetAsync(Url + "?id=" + context.Message.Id, context.CancellationToken);
    }
}

public sealed class LoadItemConsumer : IConsumer<LoadItem>
{
    public async Task Consume(ConsumeContext<LoadItem> context) => await Task.Delay(20, context.CancellationToken);
}

/// <summary>
/// What real applications do, on the real RabbitMQ (a throwaway vhost, no delayed-message plugin, the JobLog scheduler)
/// with the ledger on SQLite and on PostgreSQL: fan-out, retry inside scheduled redelivery, the in-memory outbox, batch
/// consumers, a bus restart under load, sagas with Schedule and Request, job consumers, exchange and queue addresses,
/// HttpClient calls inside a consumer.
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class RabbitMqApplicationTests(LedgerProvider provider) : OneSchedulerBusTests(provider)
{
    private static async Task Dump(SchedulerBus bus)
    {
        await bus.Host.FlushAsync();
        foreach (var t in (await bus.Host.TasksAsync()).OrderBy(t => t.DispatchedAt))
        {
            TestContext.Out.WriteLine($"{t.Id} internal={t.IsInternal} dispatched={t.DispatchedAt:O} expires={t.Expires:O} {Describe(t)}");
            foreach (var r in t.Runs.OrderBy(r => r.Start))
            {
                TestContext.Out.WriteLine($"    run {r.Id} {r.ConsumerType} q={r.QueueName} #{r.Retries} {r.State} start={r.Start:O} stop={r.Stop:O} next={r.EstimatedTimeOfNextRetry:O} redelivered={r.Redelivered}");
            }
        }
    }

    [Test]
    public async Task FanOut_TwoConsumersOnOneQueueAndOneOnAnother_ARunPerConsumerAttempt_WithItsQueue()
    {
        var bus = await StartBusAsync(x =>
        {
            x.AddConsumer<FanAConsumer>().Endpoint(e => e.Name = "fan-one");
            x.AddConsumer<FanBConsumer>().Endpoint(e => e.Name = "fan-one");
            x.AddConsumer<FanCConsumer>().Endpoint(e => e.Name = "fan-two");
        }, (_, cfg) => cfg.UseMessageRetry(r => r.Immediate(2)));
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new FanOut(Random.Shared.Next(), 1), x => x.MessageId = id);
        await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded && t.Runs.Count >= 3 && t.Runs.All(r => r.Stop != null) && t.Runs.Any(r => r.ConsumerType == "FanCConsumer")
            && t.Runs.Any(r => r.ConsumerType == "FanBConsumer" && r.State == TaskRunState.Succeeded), "fanned out");
        await Task.Delay(1000);
        await Dump(bus);
        var task = await bus.Host.TaskAsync(id);
        Assert.That(task.State, Is.EqualTo(TaskState.Succeeded));
        Assert.That(task.Runs.Where(r => r.ConsumerType == "FanCConsumer").Select(r => r.QueueName), Is.EqualTo(new[] { "fan-two" }));
        Assert.That(task.Runs.Where(r => r.ConsumerType == "FanBConsumer").OrderBy(r => r.Retries).Select(r => (r.Retries, r.State, r.QueueName)),
            Is.EqualTo(new[] { (0, TaskRunState.Retried, "fan-one"), (1, TaskRunState.Succeeded, "fan-one") }));
    }

    [Test]
    public async Task FanOut_OneConsumerFailingForGood_FailsTheTask_TheOthersRunsStaySucceeded()
    {
        var bus = await StartBusAsync(x =>
        {
            x.AddConsumer<FanAConsumer>().Endpoint(e => e.Name = "fan-one");
            x.AddConsumer<FanBConsumer>().Endpoint(e => e.Name = "fan-one");
            x.AddConsumer<FanCConsumer>().Endpoint(e => e.Name = "fan-two");
        }, (_, cfg) => cfg.UseMessageRetry(r => r.Immediate(1)));
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new FanOut(Random.Shared.Next(), 100), x => x.MessageId = id);
        await bus.WaitForTaskAsync(
            id, t => t.State == TaskState.Failed && t.Runs.Any(r => r.ConsumerType == "FanCConsumer") && t.Runs.All(r => r.Stop != null), "B failed, every run ended");
        await LedgerHost.EventuallyAsync(async () => await bus.Vhost.MessagesInQueueAsync("fan-one_error") >= 1, because: "the message moved to fan-one_error");
        await Task.Delay(1000);
        await Dump(bus);
        var task = await bus.Host.TaskAsync(id);
        Assert.That(task.Runs.Where(r => r.ConsumerType == "FanBConsumer").OrderBy(r => r.Retries).Select(r => r.State),
            Is.EqualTo(new[] { TaskRunState.Retried, TaskRunState.Failed }));
        Assert.That(task.Runs.Where(r => r.ConsumerType != "FanBConsumer").Select(r => r.State), Has.All.EqualTo(TaskRunState.Succeeded));
        Assert.That(await bus.Vhost.MessagesInQueueAsync("fan-one_error"), Is.EqualTo(1));
    }

    [Test]
    public async Task ScheduledRedeliveryAroundMessageRetry_OnTheJobLogScheduler_NumbersRunsAcrossRedeliveries_TheLastFailed()
    {
        var bus = await StartBusAsync(x => x.AddConsumer<AlwaysBrokenConsumer>(), (_, cfg) =>
        {
            cfg.UseScheduledRedelivery(r => r.Intervals(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)));
            cfg.UseMessageRetry(r => r.Immediate(1));
        });
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new AlwaysBroken(7), x => x.MessageId = id);
        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Failed, "failed after redeliveries", TimeSpan.FromSeconds(40));
        await LedgerHost.EventuallyAsync(async () => await bus.Vhost.MessagesInQueueAsync("always-broken_error") >= 1, because: "the message moved to always-broken_error");
        await Task.Delay(1000);
        await Dump(bus);
        task = await bus.Host.TaskAsync(id);
        var runs = task.Runs.OrderBy(r => r.Start).ToList();
        Assert.That(runs.Select(r => r.Retries), Is.EqualTo(Enumerable.Range(0, 6)));
        Assert.That(runs.Select(r => r.State), Is.EqualTo(Enumerable.Repeat(TaskRunState.Retried, 5).Append(TaskRunState.Failed)));
        Assert.That(runs[1].EstimatedTimeOfNextRetry, Is.Not.Null);
        Assert.That(runs[3].EstimatedTimeOfNextRetry, Is.Not.Null);
        Assert.That((await bus.Host.TasksAsync()).Where(t => !t.IsInternal).Select(t => t.Id), Is.EqualTo(new[] { id }));
        Assert.That(await bus.Vhost.MessagesInQueueAsync("always-broken_error"), Is.EqualTo(1));
    }

    [Test]
    public async Task SagaSchedule_OnTheJobLogScheduler_TimeoutAndUnscheduled()
    {
        var bus = await StartBusAsync(x => x.AddSagaStateMachine<TimedOrderMachine, TimedOrder>().InMemoryRepository());
        var expires = NewId.NextGuid();
        var paid = NewId.NextGuid();
        var paidOpened = NewId.NextGuid();
        await bus.Bus.Publish(new OrderOpened(expires));
        // The paid order's timeout is far (it was 1 s, and under load the payment came after it: both timeouts were sent);
        // the payment once the saga holds the order (it was a 300-ms sleep).
        await bus.Bus.Publish(new OrderOpened(paid, TimeoutSeconds: 600), x => x.MessageId = paidOpened);
        await bus.WaitForTaskAsync(paidOpened, t => t.State == TaskState.Succeeded, "the paid order opened");
        await bus.Bus.Publish(new OrderPaid(paid));
        await LedgerHost.EventuallyAsync(async () => (await bus.Host.TasksAsync()).Count(t => t.Name == "OrderExpired" && t.State != TaskState.Waiting && t.State != TaskState.Active) == 2,
            TimeSpan.FromSeconds(20), "two timeouts settled");
        await Task.Delay(1500);
        await Dump(bus);
        var timeouts = (await bus.Host.TasksAsync()).Where(t => t.Name == "OrderExpired").ToList();
        Assert.That(timeouts.Select(t => t.State).Order(), Is.EqualTo(new[] { TaskState.Succeeded, TaskState.Expired }));
        Assert.That((await bus.Host.TasksAsync()).SelectMany(t => t.Runs).Where(r => r.State == TaskRunState.Active), Is.Empty);
    }

    [Test]
    public async Task InMemoryOutbox_WithScheduledRedelivery_RecordsOnlyTheSucceededAttemptsChild()
    {
        var bus = await StartBusAsync(x =>
        {
            x.AddConsumer<OutboxedParentConsumer>();
            x.AddConsumer<OutboxedChildConsumer>();
        }, (context, cfg) =>
        {
            cfg.UseScheduledRedelivery(r => r.Intervals(TimeSpan.FromSeconds(1)));
            cfg.UseMessageRetry(r => r.Immediate(1));
            cfg.UseInMemoryOutbox(context);
        });
        var key = Random.Shared.Next();
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new OutboxedParent(key, 3), x => x.MessageId = id);
        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "parent succeeded on the 4th attempt");
        await LedgerHost.EventuallyAsync(async () => (await bus.Host.TasksAsync()).Any(t => t.Name == "OutboxedChild"), because: "the succeeded attempt's child recorded");
        await Task.Delay(1500);
        await Dump(bus);
        var tasks = await bus.Host.TasksAsync();
        var children = tasks.Where(t => t.Name == "OutboxedChild").ToList();
        Assert.That(children, Has.Count.EqualTo(1));
        Assert.That(children[0].ParentRunId, Is.EqualTo(task.Runs.Single(r => r.State == TaskRunState.Succeeded).Id));
        Assert.That(task.Runs.OrderBy(r => r.Start).Select(r => (r.Retries, r.State)),
            Is.EqualTo(new[] { (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, TaskRunState.Retried), (3, TaskRunState.Succeeded) }));
    }

    [Test]
    public async Task BatchConsumer_FirstBatchFailsThenRetried_EachMessageHasOneSucceededRun()
    {
        BatchItemConsumer.Calls = 0;
        var bus = await StartBusAsync(x => x.AddConsumer<BatchItemConsumer>(c => c.Options<BatchOptions>(o => o.SetMessageLimit(5).SetTimeLimit(TimeSpan.FromMilliseconds(500)))),
            (_, cfg) => cfg.UseMessageRetry(r => r.Immediate(1)));
        var ids = Enumerable.Range(0, 5).Select(_ => NewId.NextGuid()).ToList();
        for (var i = 0; i < 5; i++)
        {
            var mid = ids[i];
            await bus.Bus.Publish(new BatchItem(i), x => x.MessageId = mid);
        }

        await LedgerHost.EventuallyAsync(async () => (await bus.Host.TasksAsync()).Count(t => ids.Contains(t.Id) && t.State == TaskState.Succeeded) == 5,
            TimeSpan.FromSeconds(20), "five succeeded");
        await Task.Delay(500);
        await Dump(bus);
        var tasks = (await bus.Host.TasksAsync()).Where(t => ids.Contains(t.Id)).ToList();
        Assert.That(tasks.SelectMany(t => t.Runs).Where(r => r.State == TaskRunState.Active), Is.Empty);
        Assert.That(tasks.Select(t => t.Runs.Count(r => r.State == TaskRunState.Succeeded)), Has.All.EqualTo(1));
    }

    [Test]
    public async Task BusRestart_DuringLoad_EveryTaskEndsSucceeded()
    {
        var bus = await StartBusAsync(x => x.AddConsumer<LoadItemConsumer>(c => c.ConcurrentMessageLimit = 4));
        var ids = Enumerable.Range(0, 200).Select(_ => NewId.NextGuid()).ToList();
        for (var i = 0; i < 200; i++)
        {
            var mid = ids[i];
            await bus.Bus.Publish(new LoadItem(i), x => x.MessageId = mid);
        }

        var control = bus.Host.Services.GetRequiredService<IBusControl>();
        await Task.Delay(500);
        await control.StopAsync();
        await Task.Delay(500);
        await control.StartAsync();
        await LedgerHost.EventuallyAsync(async () => (await bus.Host.TasksAsync()).Count(t => ids.Contains(t.Id) && t.State == TaskState.Succeeded) == 200,
            TimeSpan.FromSeconds(60), "all succeeded");
        await Task.Delay(500);
        await bus.Host.FlushAsync();
        var tasks = (await bus.Host.TasksAsync()).Where(t => ids.Contains(t.Id)).ToList();
        foreach (var t in tasks.Where(t => t.Runs.Count != 1))
        {
            TestContext.Out.WriteLine(Describe(t));
        }

        Assert.That(tasks.SelectMany(t => t.Runs).Where(r => r.State == TaskRunState.Active), Is.Empty);
        Assert.That(tasks.Select(t => t.State), Has.All.EqualTo(TaskState.Succeeded));
    }

    [Test]
    public async Task SagaRequest_OnTheJobLogScheduler_CompletedAndTimedOut()
    {
        var bus = await StartBusAsync(x =>
        {
            x.AddConsumer<AskStockConsumer>().Endpoint(e => e.Name = "ask-stock");
            x.AddSagaStateMachine<CheckedOrderMachine, CheckedOrder>().InMemoryRepository();
        });
        await bus.Bus.Publish(new StartCheck(NewId.NextGuid(), "low-1"));
        await bus.Bus.Publish(new StartCheck(NewId.NextGuid(), "slow"));
        // Both answers (the slow one after its request's timeout) consumed and nothing left running (it was a 6-s sleep).
        await SettledAsync(bus.Host, "StockLow", "StockOk");
        await Dump(bus);
        var tasks = await bus.Host.TasksAsync();
        Assert.That(tasks.SelectMany(t => t.Runs).Where(r => r.State == TaskRunState.Active), Is.Empty);
        Assert.That(tasks.Where(t => !t.IsInternal && t.State != TaskState.Succeeded).Select(t => t.Name + " " + t.State), Is.Empty);
    }

    [Test]
    public async Task JobConsumers_OnTheJobLogScheduler_CompletedRetriedThenFailedAndCancelled()
    {
        var bus = await StartBusAsync(x =>
        {
            x.SetJobConsumerOptions();
            x.SetInMemorySagaRepositoryProvider();
            x.AddJobSagaStateMachines();
            x.AddConsumer<JobLog.MassTransit.Tests.Jobs.ConvertVideoConsumer>(c => c.Options<JobOptions<JobLog.MassTransit.Tests.Jobs.ConvertVideo>>(o => o.SetRetry(r => r.None())
                // Both videos at once: with one slot the second waits for MassTransit's slot wait (30 s).
                .SetConcurrentJobLimit(2)));
            x.AddConsumer<JobLog.MassTransit.Tests.Jobs.BrokenJobConsumer>(c => c.Options<JobOptions<JobLog.MassTransit.Tests.Jobs.BrokenJob>>(o => o.SetRetry(r => r.Intervals(500, 500))));
        });
        var ok = await bus.Bus.SubmitJob(new JobLog.MassTransit.Tests.Jobs.ConvertVideo("a.mp4", 0), CancellationToken.None);
        var broken = await bus.Bus.SubmitJob(new JobLog.MassTransit.Tests.Jobs.BrokenJob(5), CancellationToken.None);
        var cancelled = await bus.Bus.SubmitJob(new JobLog.MassTransit.Tests.Jobs.ConvertVideo("long.mp4", 60), CancellationToken.None);
        await bus.WaitForTaskAsync(cancelled, t => t.State == TaskState.Active, "long job started", TimeSpan.FromSeconds(30));
        await bus.Bus.CancelJob(cancelled);
        try
        {
            await bus.WaitForTaskAsync(ok, t => t.State == TaskState.Succeeded, "ok job", TimeSpan.FromSeconds(30));
            await bus.WaitForTaskAsync(broken, t => t.State == TaskState.Failed, "broken job", TimeSpan.FromSeconds(30));
            await bus.WaitForTaskAsync(cancelled, t => t.State == TaskState.Cancelled, "cancelled job", TimeSpan.FromSeconds(30));
        }
        finally
        {
            await Task.Delay(1000);
            await Dump(bus);
        }

        var b = await bus.Host.TaskAsync(broken);
        Assert.That(b.Runs.OrderBy(r => r.Retries).Select(r => (r.Retries, r.State)),
            Is.EqualTo(new[] { (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, TaskRunState.Failed) }));
        var tasks = await bus.Host.TasksAsync();
        Assert.That(tasks.SelectMany(t => t.Runs).Where(r => r.State == TaskRunState.Active), Is.Empty);
        // One StartJob per attempt (1 + 3 + 1), consumed on the instance endpoint by its job type's StartJobConsumer<T>.
        var startJobs = tasks.Where(t => t.Name == "StartJob").ToList();
        Assert.That(startJobs, Has.Count.EqualTo(5));
        Assert.That(startJobs.Select(t => (t.State, t.Runs.Count)), Has.All.EqualTo((TaskState.Succeeded, 1)));
    }

    [Test]
    public async Task SendToTheMessageTypesExchange_FansOut_AndSendToAQueue_ReachesOnlyIt()
    {
        var bus = await StartBusAsync(x =>
        {
            x.AddConsumer<FanAConsumer>().Endpoint(e => e.Name = "fan-one");
            x.AddConsumer<FanCConsumer>().Endpoint(e => e.Name = "fan-two");
        });
        var viaExchange = NewId.NextGuid();
        var viaQueue = NewId.NextGuid();
        await (await bus.Bus.GetSendEndpoint(new Uri("exchange:JobLog.MassTransit.Tests.Features:FanOut"))).Send(new FanOut(Random.Shared.Next(), 0), x => x.MessageId = viaExchange);
        await (await bus.Bus.GetSendEndpoint(new Uri("queue:fan-two"))).Send(new FanOut(Random.Shared.Next(), 0), x => x.MessageId = viaQueue);
        var fanned = await bus.WaitForTaskAsync(viaExchange, t => t.Runs.Count == 2 && t.State == TaskState.Succeeded, "both queues consumed the exchange send");
        var direct = await bus.WaitForTaskAsync(viaQueue, t => t.State == TaskState.Succeeded, "the queue send consumed");
        await Task.Delay(500);
        await Dump(bus);
        Assert.That(fanned.QueueName, Is.EqualTo("JobLog.MassTransit.Tests.Features:FanOut"));
        Assert.That(fanned.Runs.Select(r => (r.ConsumerType, r.QueueName)).Order(), Is.EqualTo(new[] { ("FanAConsumer", "fan-one"), ("FanCConsumer", "fan-two") }));
        Assert.That(direct.QueueName, Is.EqualTo("fan-two"));
        Assert.That((await bus.Host.TaskAsync(viaQueue)).Runs.Select(r => (r.ConsumerType, r.QueueName)), Is.EqualTo(new[] { ("FanCConsumer", "fan-two") }));
    }

    [Test]
    public async Task HttpClientInsideAConsumer_IsLinkedToTheRun()
    {
        using var server = new System.Net.HttpListener();
        var free = System.Net.Sockets.TcpListener.Create(0);
        free.Start();
        var p = ((System.Net.IPEndPoint)free.LocalEndpoint).Port;
        free.Stop();
        server.Prefixes.Add($"http://127.0.0.1:{p}/");
        server.Start();
        _ = Task.Run(async () =>
        {
            while (server.IsListening)
            {
                try
                {
                    var ctx = await server.GetContextAsync();
                    ctx.Response.StatusCode = 200;
                    ctx.Response.Close();
                }
                catch (Exception)
                {
                    return;
                }
            }
        });
        CallsOutConsumer.Url = $"http://127.0.0.1:{p}/partner";
        var bus = await StartBusAsync(x =>
        {
            x.AddConsumer<CallsOutConsumer>();
            x.AddHttpClient("partner").AddJobLogging("partner");
        });
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new CallsOut(5), x => x.MessageId = id);
        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "called out");
        await Task.Delay(500);
        await Dump(bus);
        var runId = task.Runs.Single().Id;
        var outbound = await bus.Host.QueryAsync(db => db.OutputRequestLogs.AsNoTracking().ToListAsync());
        var related = await bus.Host.QueryAsync(db => db.OutputRequestRelatedObjects.AsNoTracking().ToListAsync());
        foreach (var o in outbound)
        {
            TestContext.Out.WriteLine($"out {o.Id} {o.Method} {o.Path} {o.ResponseCode}");
        }

        Assert.That(outbound, Has.Count.EqualTo(1));
        Assert.That(related.Where(r => r.TaskRunLogId == runId).Select(r => r.OutputRequestId), Is.EqualTo(new[] { outbound[0].Id }));
    }
}

public record OutboxedParent(int Id, int Failures);

public record OutboxedChild(int Id, int Attempt);

public sealed class OutboxedParentConsumer : IConsumer<OutboxedParent>
{
    public static readonly ConcurrentDictionary<int, int> Attempts = new();

    public async Task Consume(ConsumeContext<OutboxedParent> context)
    {
        var n = Attempts.AddOrUpdate(context.Message.Id, 1, (_, v) => v + 1);
        await context.Publish(new OutboxedChild(context.Message.Id, n));
        if (n <= context.Message.Failures)
        {
            throw new InvalidOperationException("parent fails attempt " + n);
        }
    }
}

public sealed class OutboxedChildConsumer : IConsumer<OutboxedChild>
{
    public Task Consume(ConsumeContext<OutboxedChild> context) => Task.CompletedTask;
}

public record BatchItem(int Id);

public sealed class BatchItemConsumer : IConsumer<Batch<BatchItem>>
{
    public static int Calls;

    public Task Consume(ConsumeContext<Batch<BatchItem>> context) =>
        Interlocked.Increment(ref Calls) == 1 ? throw new InvalidOperationException("first batch fails") : Task.CompletedTask;
}

