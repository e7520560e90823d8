using System.Collections.Concurrent;
using JobLog.Testing;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Apps43;

public sealed record Late43(int N, bool Fail);

public sealed record Done43(int N);

public sealed record Inst43(int N);

public sealed record Temp43(int N);

public sealed record Quote43(int N);

public sealed record Quoted43(int N);

public sealed class Late43Consumer : IConsumer<Late43>
{
    public static readonly ConcurrentDictionary<int, int> Attempts = new();

    public async Task Consume(ConsumeContext<Late43> context)
    {
        var attempt = Attempts.AddOrUpdate(context.Message.N, 1, (_, a) => a + 1);
        if (context.Message.Fail && attempt == 1)
        {
            throw new InvalidOperationException("late " + context.Message.N + " not yet");
        }

        await context.Publish(new Done43(context.Message.N));
    }
}

public sealed class Done43Consumer : IConsumer<Done43>
{
    public Task Consume(ConsumeContext<Done43> context) => Task.CompletedTask;
}

public sealed class Inst43Consumer : IConsumer<Inst43>
{
    public Task Consume(ConsumeContext<Inst43> context) => Task.CompletedTask;
}

public sealed class Temp43Consumer : IConsumer<Temp43>
{
    public Task Consume(ConsumeContext<Temp43> context) => Task.CompletedTask;
}

public sealed class Quote43Consumer : IConsumer<Quote43>
{
    public Task Consume(ConsumeContext<Quote43> context) => context.RespondAsync(new Quoted43(context.Message.N));
}

/// <summary>
/// Receive endpoints that are not the bus's configured ones: connected after the bus started, with an instance id,
/// temporary (session 40's probes, reverted with its fix, restored), and a request client factory's response endpoint.
/// </summary>
public class EndpointTests
{
    private static int NextId() => Random.Shared.Next(1000, int.MaxValue);

    /// <summary>
    /// A receive endpoint connected after the bus started (<c>IReceiveEndpointConnector.ConnectReceiveEndpoint</c>) with a
    /// registered consumer and the endpoint's retry: the first attempt RETRIED with its error, the second SUCCEEDED; what
    /// the consumer publishes is a child of the succeeded run and is consumed on its own endpoint.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task ReceiveEndpointConnectedAfterStart_RecordsEachAttempt_AndTheChildsParent(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x =>
        {
            x.AddConsumer<Late43Consumer>().ExcludeFromConfigureEndpoints();
            x.AddConsumer<Done43Consumer>();
        });
        var queue = "late43-" + NextId();
        var connected = bus.Host.Services.GetRequiredService<IReceiveEndpointConnector>().ConnectReceiveEndpoint(queue, (context, e) =>
        {
            e.UseMessageRetry(r => r.Immediate(2));
            e.ConfigureConsumer<Late43Consumer>(context);
        });
        await connected.Ready;

        var (id, n) = (NewId.NextGuid(), NextId());
        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:" + queue));
        await endpoint.Send(new Late43(n, true), x => x.MessageId = id);

        var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the late endpoint's task succeeded", 60);
        await SettledAsync(bus.Host, nameof(Late43), nameof(Done43));
        var tasks = await bus.Host.TasksAsync();
        foreach (var t in tasks)
        {
            TestContext.Out.WriteLine(Describe(t));
        }

        var runs = task.Runs.OrderBy(r => r.Retries).ToList();
        Assert.That(runs.Select(r => (r.ConsumerType, r.Retries, r.State, r.QueueName)),
            Is.EqualTo(new[] { (nameof(Late43Consumer), 0, TaskRunState.Retried, queue), (nameof(Late43Consumer), 1, TaskRunState.Succeeded, queue) }));
        Assert.That(runs[0].ErrorMessage, Does.Contain("late " + n + " not yet"));
        var done = tasks.Single(t => t.Name == nameof(Done43));
        Assert.That((done.ParentRunId, done.State), Is.EqualTo((runs[1].Id, TaskState.Succeeded)));
        Assert.That(done.Runs.Select(r => r.ConsumerType), Is.EqualTo(new[] { nameof(Done43Consumer) }));
    }

    /// <summary>
    /// A consumer whose endpoint has an instance id (<c>.Endpoint(e =&gt; e.InstanceId = "blue")</c>, one queue per
    /// instance): the task's and the run's queue are the instance's queue, and a send to it ends SUCCEEDED.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task ConsumerWithAnInstanceId_ItsRunsQueueIsTheInstancesQueue(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<Inst43Consumer>().Endpoint(e => e.InstanceId = "blue"));
        const string queue = "inst43-blue";
        var id = NewId.NextGuid();
        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:" + queue));
        await endpoint.Send(new Inst43(NextId()), x => x.MessageId = id);

        var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the instance's task succeeded", 60);
        TestContext.Out.WriteLine(Describe(task));
        Assert.That(task.QueueName, Is.EqualTo(queue));
        Assert.That(task.Runs.Select(r => (r.ConsumerType, r.State, r.QueueName)), Is.EqualTo(new[] { (nameof(Inst43Consumer), TaskRunState.Succeeded, queue) }));
    }

    /// <summary>
    /// A consumer registered on a temporary endpoint (<c>.Endpoint(e =&gt; e.Temporary = true)</c>: MassTransit keeps the
    /// endpoint's name, <c>temp43</c>, and makes the queue auto-delete and not durable) consuming a published event: one
    /// SUCCEEDED run on that queue.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task ConsumerOnATemporaryEndpoint_ConsumingAnEvent_OneSucceededRunOnItsQueue(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<Temp43Consumer>().Endpoint(e => e.Temporary = true));
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new Temp43(NextId()), x => x.MessageId = id);

        var task = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the event consumed", 60);
        TestContext.Out.WriteLine(Describe(task));
        var run = task.Runs.Single();
        Assert.That((run.ConsumerType, run.State), Is.EqualTo((nameof(Temp43Consumer), TaskRunState.Succeeded)));
        Assert.That(run.QueueName, Is.EqualTo("temp43"));
    }

    /// <summary>
    /// A request client from a client factory the application connects (<c>bus.ConnectClientFactory()</c>: its responses
    /// come to a temporary endpoint connected after start, not to the bus endpoint): the request is the responder's
    /// SUCCEEDED run, the response a child of that run with its receipt (<c>RequestClient</c>) on the factory's endpoint.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task RequestFromAConnectedClientFactory_TheResponseIsReceivedOnItsEndpoint(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<Quote43Consumer>());
        // The factory's endpoint stops with the bus (IClientFactory is not IAsyncDisposable; its ClientFactory is).
        var factory = bus.Bus.ConnectClientFactory(RequestTimeout.After(s: 60));
        var client = factory.CreateRequestClient<Quote43>(new Uri("queue:quote43"));
        var id = NewId.NextGuid();
        var n = NextId();
        var response = await client.GetResponse<Quoted43>(new Quote43(n), x => x.UseExecute(c => c.MessageId = id));
        Assert.That(response.Message.N, Is.EqualTo(n));

        var request = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the request succeeded", 60);
        var answer = await WaitFor(bus, response.MessageId!.Value, t => t.State != TaskState.Waiting, "the response ended", 60);
        TestContext.Out.WriteLine(Describe(request));
        TestContext.Out.WriteLine(Describe(answer));
        var answered = request.Runs.Single();
        Assert.That((answered.ConsumerType, answered.State), Is.EqualTo((nameof(Quote43Consumer), TaskRunState.Succeeded)));
        Assert.That((answer.State, answer.ParentRunId), Is.EqualTo((TaskState.Succeeded, (Guid?)answered.Id)));
        var receipt = answer.Runs.Single();
        Assert.That((receipt.ConsumerType, receipt.State), Is.EqualTo(("RequestClient", TaskRunState.Succeeded)));
        Assert.That(receipt.QueueName, Is.Not.Null.And.Not.Empty.And.Not.EqualTo(request.Runs.Single().QueueName));
    }

    /// <summary>
    /// A handler configured on an endpoint connected to the running bus without a name (<c>bus.ConnectReceiveEndpoint(e =&gt;
    /// e.Handler&lt;T&gt;(…))</c>: a temporary endpoint): configured, so through JobLog's observers: one run
    /// <c>Handler&lt;Temp43&gt;</c> per attempt, the failed one FAILED with its error.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task HandlerOnATemporaryEndpointConnectedAfterStart_EachTaskHasItsRun(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, _ => { });
        string? queue = null;
        var handle = bus.Bus.ConnectReceiveEndpoint(e =>
        {
            queue = e.InputAddress.AbsolutePath.Split('/').Last();
            e.Handler<Temp43>(c => c.Message.N % 2 == 1 ? throw new InvalidOperationException("temp " + c.Message.N + " odd") : Task.CompletedTask);
        });
        await handle.Ready;
        try
        {
            var endpoint = await bus.Bus.GetSendEndpoint(handle.ReceiveEndpoint.InputAddress);
            var (ok, bad) = (NewId.NextGuid(), NewId.NextGuid());
            var oddN = (Random.Shared.Next(1000, 1_000_000) * 2) + 1;
            await endpoint.Send(new Temp43(Random.Shared.Next(1000, 1_000_000) * 2), x => x.MessageId = ok);
            await endpoint.Send(new Temp43(oddN), x => x.MessageId = bad);
            var okTask = await WaitFor(bus, ok, t => t.State is TaskState.Succeeded or TaskState.Failed, "the even one ended", 60);
            var badTask = await WaitFor(bus, bad, t => t.State is TaskState.Succeeded or TaskState.Failed, "the odd one ended", 60);
            TestContext.Out.WriteLine(queue + ": " + Describe(okTask));
            TestContext.Out.WriteLine(Describe(badTask));
            Assert.That(okTask.Runs.Select(r => (r.ConsumerType, r.State, r.QueueName)), Is.EqualTo(new[] { ("Handler<Temp43>", TaskRunState.Succeeded, queue) }));
            Assert.That(badTask.Runs.Select(r => (r.ConsumerType, r.State, r.QueueName)), Is.EqualTo(new[] { ("Handler<Temp43>", TaskRunState.Failed, queue) }));
            Assert.That(badTask.Runs.Single().ErrorMessage, Does.Contain("temp " + oddN + " odd"));
        }
        finally
        {
            await handle.StopAsync();
        }
    }
}
