using System.Collections.Concurrent;
using JobLog.Testing;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Apps40;

public sealed record Dyn40(int N, bool Fail);

public sealed record Late40(int N, bool Fail);

public sealed record Inst40(int N);

public sealed record Temp40(int N);

public sealed record Done40(int N);

public sealed class Late40Consumer : IConsumer<Late40>
{
    public static readonly ConcurrentDictionary<int, int> Attempts = new();

    public async Task Consume(ConsumeContext<Late40> context)
    {
        var attempt = Attempts.AddOrUpdate(context.Message.N, 1, (_, a) => a + 1);
        if (context.Message.Fail && attempt == 1)
        {
            throw new InvalidOperationException("late " + context.Message.N + " not yet");
        }

        await context.Publish(new Done40(context.Message.N));
    }
}

public sealed class Quiet40Consumer : IConsumer<Late40>
{
    public Task Consume(ConsumeContext<Late40> context) => Task.CompletedTask;
}

public sealed class Inst40Consumer : IConsumer<Inst40>
{
    public Task Consume(ConsumeContext<Inst40> context) => Task.CompletedTask;
}

public sealed class Temp40Consumer : IConsumer<Temp40>
{
    public Task Consume(ConsumeContext<Temp40> context) => Task.CompletedTask;
}

public sealed class Done40Consumer : IConsumer<Done40>
{
    public Task Consume(ConsumeContext<Done40> context) => Task.CompletedTask;
}

/// <summary>
/// Session 40's probes of real MassTransit applications (docs/reviews/session40-apps.md): consumers and handlers
/// connected after the bus started, an endpoint with an instance id, a temporary endpoint.
/// </summary>
public class Apps40ProbeTests
{
    private static int NextId() => Random.Shared.Next(1000, int.MaxValue);

    /// <summary>
    /// A handler connected to the bus endpoint after the bus started (<c>bus.ConnectHandler&lt;T&gt;</c>, a dynamic
    /// subscription): the message sent to the bus's address is consumed by it; its task must end SUCCEEDED with one run,
    /// and one that the handler fails must end FAILED, not stay WAITING with no run.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task HandlerConnectedAfterStart_OnTheBusEndpoint_EachTaskHasItsRun(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, _ => { });
        var handled = new ConcurrentDictionary<int, bool>();
        var handle = bus.Bus.ConnectHandler<Dyn40>(c =>
        {
            handled[c.Message.N] = true;
            return c.Message.Fail ? throw new InvalidOperationException("dyn " + c.Message.N + " broken") : Task.CompletedTask;
        });
        try
        {
            var (ok, bad) = (NewId.NextGuid(), NewId.NextGuid());
            var (okN, badN) = (NextId(), NextId());
            var endpoint = await bus.Bus.GetSendEndpoint(bus.Bus.Address);
            await endpoint.Send(new Dyn40(okN, false), x => x.MessageId = ok);
            await endpoint.Send(new Dyn40(badN, true), x => x.MessageId = bad);
            await LedgerHost.EventuallyAsync(() => Task.FromResult(handled.ContainsKey(okN) && handled.ContainsKey(badN)), TimeSpan.FromSeconds(60), "both handled");

            var okTask = await WaitFor(bus, ok, t => t.State != TaskState.Waiting && t.Runs.Count > 0, "the handled task ended", 60);
            var badTask = await WaitFor(bus, bad, t => t.State != TaskState.Waiting && t.Runs.Count > 0, "the failed task ended", 60);
            TestContext.Out.WriteLine(Describe(okTask));
            TestContext.Out.WriteLine(Describe(badTask));
            Assert.That((okTask.State, okTask.Runs.Single().ConsumerType, okTask.Runs.Single().State), Is.EqualTo((TaskState.Succeeded, "ConnectedHandler<Dyn40>", TaskRunState.Succeeded)));
            Assert.That((badTask.State, badTask.Runs.Single().ConsumerType, badTask.Runs.Single().State), Is.EqualTo((TaskState.Failed, "ConnectedHandler<Dyn40>", TaskRunState.Failed)));
            Assert.That(badTask.Runs.Single().ErrorMessage, Does.Contain("dyn " + badN + " broken"));
        }
        finally
        {
            handle.Disconnect();
        }
    }

    /// <summary>
    /// A handler connected to a running receive endpoint with a retry (<c>e.UseMessageRetry(r =&gt; r.Immediate(2))</c>,
    /// a configured consumer of the same type there, <see cref="Quiet40Consumer"/>). MassTransit retries the handler in
    /// memory and reports its attempts as consumed or faulted only once, at the end (its retry context holds the faults
    /// back), so the handler's retried attempts are one run: FAILED with the last attempt's error (always failing), or
    /// SUCCEEDED (failing once); in its own lane beside the consumer's SUCCEEDED run. Not WAITING, not ACTIVE.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task HandlerConnectedAfterStart_UnderTheEndpointsRetry_ItsAttemptsAreOneRun_FailedOrSucceeded(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x =>
        {
            x.AddConsumer<Done40Consumer>();
            x.AddConsumer<Quiet40Consumer>().ExcludeFromConfigureEndpoints();
        });
        var queue = "late40h-" + NextId();
        var connected = bus.Host.Services.GetRequiredService<IReceiveEndpointConnector>()
            .ConnectReceiveEndpoint(queue, (context, e) =>
            {
                e.UseMessageRetry(r => r.Immediate(2));
                e.ConfigureConsumer<Quiet40Consumer>(context);
            });
        await connected.Ready;
        var attempts = new ConcurrentDictionary<int, int>();
        var handle = connected.ReceiveEndpoint.ConnectHandler<Late40>(async c =>
        {
            var attempt = attempts.AddOrUpdate(c.Message.N, 1, (_, a) => a + 1);
            if (c.Message.Fail || attempt == 1)
            {
                throw new InvalidOperationException("late " + c.Message.N + " attempt " + attempt);
            }

            await c.Publish(new Done40(c.Message.N));
        });
        try
        {
            var (once, always) = (NewId.NextGuid(), NewId.NextGuid());
            var (onceN, alwaysN) = (NextId(), NextId());
            var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:" + queue));
            await endpoint.Send(new Late40(onceN, false), x => x.MessageId = once);
            await endpoint.Send(new Late40(alwaysN, true), x => x.MessageId = always);

            var onceTask = await WaitFor(bus, once, t => t.State == TaskState.Succeeded, "the task failing once succeeded", 60);
            var alwaysTask = await WaitFor(bus, always, t => t.State == TaskState.Failed, "the task failing always failed", 60);
            await SettledAsync(bus.Host, nameof(Late40), nameof(Done40));
            var tasks = await bus.Host.TasksAsync();
            foreach (var t in tasks)
            {
                TestContext.Out.WriteLine(Describe(t));
            }

            var consumer = "ConnectedHandler<" + nameof(Late40) + ">";
            Assert.That(onceTask.Runs.Where(r => r.ConsumerType == consumer).Select(r => (r.Retries, r.State)), Is.EqualTo(new[] { (0, TaskRunState.Succeeded) }));
            var failed = alwaysTask.Runs.Single(r => r.ConsumerType == consumer);
            Assert.That((failed.Retries, failed.State), Is.EqualTo((0, TaskRunState.Failed)));
            Assert.That(failed.ErrorMessage, Does.Contain($"late {alwaysN} attempt 3"), "the last attempt's error");
            Assert.That(attempts[alwaysN], Is.EqualTo(3), "MassTransit tried it three times");
            foreach (var t in new[] { onceTask, alwaysTask })
            {
                Assert.That(t.Runs.Where(r => r.ConsumerType != consumer).Select(r => (r.ConsumerType, r.State)),
                    Is.Not.Empty.And.All.EqualTo((nameof(Quiet40Consumer), TaskRunState.Succeeded)));
            }

            var done = tasks.Single(t => t.Name == nameof(Done40));
            Assert.That(done.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Done40Consumer), TaskRunState.Succeeded) }));
        }
        finally
        {
            handle.Disconnect();
        }
    }

    /// <summary>
    /// A receive endpoint connected after the bus started (<c>IReceiveEndpointConnector.ConnectReceiveEndpoint</c>) with a
    /// registered consumer and the endpoint's retry: the first attempt RETRIED with its error, the second SUCCEEDED; what the
    /// consumer publishes is a child of the succeeded run and is consumed on its own endpoint.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task ReceiveEndpointConnectedAfterStart_RecordsEachAttempt_AndTheChildsParent(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x =>
        {
            x.AddConsumer<Late40Consumer>().ExcludeFromConfigureEndpoints();
            x.AddConsumer<Done40Consumer>();
        }, options: o => o.CloseUnconsumedPublishes = true);
        var connector = bus.Host.Services.GetRequiredService<IReceiveEndpointConnector>();
        var queue = "late40-" + NextId();
        var connected = connector.ConnectReceiveEndpoint(queue, (context, e) =>
        {
            e.UseMessageRetry(r => r.Immediate(2));
            e.ConfigureConsumer<Late40Consumer>(context);
        });
        await connected.Ready;

        var (id, n) = (NewId.NextGuid(), NextId());
        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:" + queue));
        await endpoint.Send(new Late40(n, true), x => x.MessageId = id);

        var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the late endpoint's task succeeded", 60);
        await SettledAsync(bus.Host, nameof(Late40), nameof(Done40));
        var tasks = await bus.Host.TasksAsync();
        foreach (var t in tasks)
        {
            TestContext.Out.WriteLine(Describe(t));
        }

        var runs = task.Runs.OrderBy(r => r.Retries).ToList();
        Assert.That(runs.Select(r => (r.ConsumerType, r.Retries, r.State, r.QueueName)),
            Is.EqualTo(new[] { (nameof(Late40Consumer), 0, TaskRunState.Retried, queue), (nameof(Late40Consumer), 1, TaskRunState.Succeeded, queue) }));
        Assert.That(runs[0].ErrorMessage, Does.Contain("late " + n + " not yet"));
        var done = tasks.Single(t => t.Name == nameof(Done40));
        Assert.That((done.ParentRunId, done.State), Is.EqualTo((runs[1].Id, TaskState.Succeeded)));
        Assert.That(done.Runs.Select(r => r.ConsumerType), Is.EqualTo(new[] { nameof(Done40Consumer) }));
    }

    /// <summary>
    /// A consumer whose endpoint has an instance id (<c>.Endpoint(e =&gt; e.InstanceId = "blue")</c>, one queue per
    /// instance): its run's queue is the instance's queue, and a send to it ends SUCCEEDED.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task ConsumerWithAnInstanceId_ItsRunsQueueIsTheInstancesQueue(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x =>
            x.AddConsumer<Inst40Consumer>().Endpoint(e => e.InstanceId = "blue"));
        var queue = "inst40-blue";
        var id = NewId.NextGuid();
        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:" + queue));
        await endpoint.Send(new Inst40(NextId()), x => x.MessageId = id);

        var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the instance's task succeeded", 60);
        TestContext.Out.WriteLine(Describe(task));
        Assert.That(task.QueueName, Is.EqualTo(queue));
        Assert.That(task.Runs.Select(r => (r.ConsumerType, r.State, r.QueueName)), Is.EqualTo(new[] { (nameof(Inst40Consumer), TaskRunState.Succeeded, queue) }));
    }

    /// <summary>
    /// A temporary endpoint (<c>cfg.ReceiveEndpoint(new TemporaryEndpointDefinition(), …)</c>: a generated queue name,
    /// deleted when the bus stops) consuming a published event: one SUCCEEDED run on that queue.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task TemporaryEndpoint_ConsumingAnEvent_OneSucceededRun(Transport transport)
    {
        string? temporary = null;
        await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<Temp40Consumer>().ExcludeFromConfigureEndpoints(),
            endpoints: (context, cfg) => cfg.ReceiveEndpoint(new TemporaryEndpointDefinition(), e =>
            {
                temporary = e.InputAddress.AbsolutePath.Split('/').Last();
                e.ConfigureConsumer<Temp40Consumer>(context);
            }));
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new Temp40(NextId()), x => x.MessageId = id);

        var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the event consumed", 60);
        TestContext.Out.WriteLine(temporary + ": " + Describe(task));
        Assert.That(task.Runs.Select(r => (r.ConsumerType, r.State, r.QueueName)), Is.EqualTo(new[] { (nameof(Temp40Consumer), TaskRunState.Succeeded, temporary) }));
    }
}
