using JobLog.Testing;
using MassTransit;
using MassTransit.Mediator;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Apps43;

public sealed record Med43(int N, bool Fail);

public sealed record Ask43(int N);

public sealed record Said43(int N);

public sealed record Price43(int N);

public sealed record Priced43(int N);

public sealed class Med43Consumer : IConsumer<Med43>
{
    public Task Consume(ConsumeContext<Med43> context) =>
        context.Message.Fail ? throw new InvalidOperationException("med " + context.Message.N + " broken") : Task.CompletedTask;
}

public sealed class Ask43Consumer(IMediator mediator) : IConsumer<Ask43>
{
    public Task Consume(ConsumeContext<Ask43> context) => mediator.Send(new Med43(context.Message.N, false), context.CancellationToken);
}

/// <summary>
/// Handlers and consumers connected to MassTransit's mediator after it was built (<c>mediator.ConnectHandler&lt;T&gt;</c>,
/// <c>mediator.ConnectConsumer</c>): as on a bus (Apps42.ConnectedConsumerTests), no configuration observer sees them, and
/// the mediator has no receive observer of JobLog's to report them.
/// </summary>
public class MediatorConnectedTests
{
    private static int NextId() => Random.Shared.Next(1000, int.MaxValue);

    private static Task<LedgerHost> StartAsync(Action<IMediatorRegistrationConfigurator>? consumers = null) =>
        LedgerHost.StartAsync(TestLedger.Sqlite(), services: s => s.AddMediator(x =>
        {
            consumers?.Invoke(x);
            x.ConfigureMediator((context, cfg) => cfg.UseTaskLogging(context));
        }));

    /// <summary>Sends a message that succeeds and one that fails through the mediator (the second throws to the caller).</summary>
    private static async Task<(TaskLog Ok, TaskLog Bad, int BadN)> SendPairAsync(LedgerHost host, IMediator mediator)
    {
        var (okId, badId) = (NewId.NextGuid(), NewId.NextGuid());
        var (okN, badN) = (NextId(), NextId());
        await mediator.Send(new Med43(okN, false), Pipe.Execute<SendContext<Med43>>(c => c.MessageId = okId));
        Assert.CatchAsync<InvalidOperationException>(() => mediator.Send(new Med43(badN, true), Pipe.Execute<SendContext<Med43>>(c => c.MessageId = badId)));
        await host.FlushAsync();
        var tasks = await host.TasksAsync();
        foreach (var t in tasks)
        {
            TestContext.Out.WriteLine(Describe(t));
        }

        return (tasks.Single(t => t.Id == okId), tasks.Single(t => t.Id == badId), badN);
    }

    /// <summary>
    /// A handler connected to the mediator: the message it handles is SUCCEEDED with one run
    /// <c>ConnectedHandler&lt;Med43&gt;</c>, the one it fails FAILED with its error (as on a bus).
    /// </summary>
    [Test]
    public async Task HandlerConnectedToTheMediator_EachTaskHasItsRun()
    {
        await using var host = await StartAsync();
        var mediator = host.Services.GetRequiredService<IMediator>();
        var handle = mediator.ConnectHandler<Med43>(c =>
            c.Message.Fail ? throw new InvalidOperationException("med " + c.Message.N + " broken") : Task.CompletedTask);
        try
        {
            var (ok, bad, badN) = await SendPairAsync(host, mediator);
            const string consumer = "ConnectedHandler<Med43>";
            Assert.That((ok.State, ok.Runs.Select(r => (r.ConsumerType, r.State)).ToList()),
                Is.EqualTo((TaskState.Succeeded, new List<(string, TaskRunState)> { (consumer, TaskRunState.Succeeded) })), Describe(ok));
            Assert.That((bad.State, bad.Runs.Select(r => (r.ConsumerType, r.State)).ToList()),
                Is.EqualTo((TaskState.Failed, new List<(string, TaskRunState)> { (consumer, TaskRunState.Failed) })), Describe(bad));
            Assert.That(bad.Runs.Single().ErrorMessage, Does.Contain("med " + badN + " broken"));
        }
        finally
        {
            handle.Disconnect();
        }
    }

    /// <summary>
    /// A consumer connected to the mediator (<c>mediator.ConnectConsumer(() =&gt; new T())</c>): its runs are named as a
    /// configured consumer's, SUCCEEDED, or FAILED with its error.
    /// </summary>
    [Test]
    public async Task ConsumerConnectedToTheMediator_EachTaskHasItsRun()
    {
        await using var host = await StartAsync();
        var mediator = host.Services.GetRequiredService<IMediator>();
        var handle = mediator.ConnectConsumer(() => new Med43Consumer());
        try
        {
            var (ok, bad, badN) = await SendPairAsync(host, mediator);
            Assert.That((ok.State, ok.Runs.Select(r => (r.ConsumerType, r.State)).ToList()),
                Is.EqualTo((TaskState.Succeeded, new List<(string, TaskRunState)> { (nameof(Med43Consumer), TaskRunState.Succeeded) })), Describe(ok));
            Assert.That((bad.State, bad.Runs.Select(r => (r.ConsumerType, r.State)).ToList()),
                Is.EqualTo((TaskState.Failed, new List<(string, TaskRunState)> { (nameof(Med43Consumer), TaskRunState.Failed) })), Describe(bad));
            Assert.That(bad.Runs.Single().ErrorMessage, Does.StartWith("System.InvalidOperationException: med " + badN + " broken"));
        }
        finally
        {
            handle.Disconnect();
        }
    }

    /// <summary>
    /// A published message taken by a handler and a consumer both connected to the mediator, the consumer failing: a run
    /// in each one's lane, the handler's SUCCEEDED and the consumer's FAILED, so the task FAILED.
    /// </summary>
    [Test]
    public async Task PublishToAConnectedHandlerAndAConnectedConsumer_EachHasItsRun()
    {
        await using var host = await StartAsync();
        var mediator = host.Services.GetRequiredService<IMediator>();
        var handlerHandle = mediator.ConnectHandler<Med43>(_ => Task.CompletedTask);
        var consumerHandle = mediator.ConnectConsumer(() => new Med43Consumer());
        try
        {
            var (id, n) = (NewId.NextGuid(), NextId());
            Assert.CatchAsync<InvalidOperationException>(() => mediator.Publish(new Med43(n, true), Pipe.Execute<PublishContext<Med43>>(c => c.MessageId = id)));
            await host.FlushAsync();
            var task = (await host.TasksAsync()).Single(t => t.Id == id);
            TestContext.Out.WriteLine(Describe(task));
            Assert.That(task.Runs.OrderBy(r => r.ConsumerType).Select(r => (r.ConsumerType, r.State)),
                Is.EqualTo(new[] { ("ConnectedHandler<Med43>", TaskRunState.Succeeded), (nameof(Med43Consumer), TaskRunState.Failed) }));
            Assert.That(task.State, Is.EqualTo(TaskState.Failed));
        }
        finally
        {
            consumerHandle.Disconnect();
            handlerHandle.Disconnect();
        }
    }

    /// <summary>
    /// A configured mediator consumer (the control): one run per message, named by the consumer, as documented.
    /// </summary>
    [Test]
    public async Task ConsumerConfiguredOnTheMediator_EachTaskHasItsRun()
    {
        await using var host = await StartAsync(x => x.AddConsumer<Med43Consumer>());
        var mediator = host.Services.GetRequiredService<IMediator>();
        var (ok, bad, _) = await SendPairAsync(host, mediator);
        Assert.That(ok.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Med43Consumer), TaskRunState.Succeeded) }), Describe(ok));
        Assert.That(bad.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Med43Consumer), TaskRunState.Failed) }), Describe(bad));
    }

    /// <summary>
    /// A handler connected to the mediator, sent to from a bus consumer's run (the mediator runs in its caller's flow): the
    /// mediator's task is a child of that run and has its own handler's run; the bus task's run is the bus consumer's alone.
    /// </summary>
    [Test]
    public async Task HandlerConnectedToTheMediator_SentToFromABusConsumer_IsAChildWithItsOwnRun()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<Ask43Consumer>(),
            configureServices: s => s.AddMediator(x => x.ConfigureMediator((context, cfg) => cfg.UseTaskLogging(context))));
        var mediator = bus.Host.Services.GetRequiredService<IMediator>();
        var handle = mediator.ConnectHandler<Med43>(_ => Task.CompletedTask);
        try
        {
            var id = NewId.NextGuid();
            await bus.Bus.Publish(new Ask43(NextId()), x => x.MessageId = id);
            var outer = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the bus consumer succeeded", 60);
            List<TaskLog> tasks = [];
            try
            {
                await LedgerHost.EventuallyAsync(async () =>
                {
                    tasks = await bus.Host.TasksAsync();
                    return tasks.Any(t => t.Name == nameof(Med43) && t.State != TaskState.Waiting);
                }, TimeSpan.FromSeconds(30), "the mediator's task ended");
            }
            catch (TimeoutException)
            {
                // The assertions below say what was left.
            }

            foreach (var t in tasks)
            {
                TestContext.Out.WriteLine(Describe(t));
            }

            var inner = tasks.Single(t => t.Name == nameof(Med43));
            Assert.That(outer.Runs.Select(r => r.ConsumerType), Is.EqualTo(new[] { nameof(Ask43Consumer) }), Describe(outer));
            Assert.That((inner.State, inner.ParentRunId), Is.EqualTo((TaskState.Succeeded, (Guid?)outer.Runs.Single().Id)), Describe(inner));
            Assert.That(inner.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { ("ConnectedHandler<Med43>", TaskRunState.Succeeded) }));
        }
        finally
        {
            handle.Disconnect();
        }
    }

    /// <summary>
    /// A mediator request client (<c>mediator.CreateRequestClient&lt;T&gt;()</c>) asking a handler connected to the
    /// mediator: the request's task has the handler's run, SUCCEEDED, and nothing is left WAITING.
    /// </summary>
    [Test]
    public async Task RequestToAHandlerConnectedToTheMediator_IsTheHandlersRun_NothingLeftWaiting()
    {
        await using var host = await StartAsync();
        var mediator = host.Services.GetRequiredService<IMediator>();
        var handle = mediator.ConnectHandler<Price43>(c => c.RespondAsync(new Priced43(c.Message.N)));
        try
        {
            var (id, n) = (NewId.NextGuid(), NextId());
            var response = await mediator.CreateRequestClient<Price43>().GetResponse<Priced43>(new Price43(n), x => x.UseExecute(c => c.MessageId = id));
            Assert.That(response.Message.N, Is.EqualTo(n));
            await host.FlushAsync();
            var tasks = await host.TasksAsync();
            foreach (var t in tasks)
            {
                TestContext.Out.WriteLine(Describe(t));
            }

            var request = tasks.Single(t => t.Id == id);
            Assert.That((request.State, request.Runs.Select(r => (r.ConsumerType, r.State)).ToList()),
                Is.EqualTo((TaskState.Succeeded, new List<(string, TaskRunState)> { ("ConnectedHandler<Price43>", TaskRunState.Succeeded) })));
            Assert.That(tasks.Where(t => t.State == TaskState.Waiting).Select(Describe), Is.Empty);
        }
        finally
        {
            handle.Disconnect();
        }
    }

    /// <summary>
    /// A handler connected to a mediator with a retry (<c>cfg.UseMessageRetry(r =&gt; r.Immediate(2))</c> and a configured
    /// consumer of the type, which the retry is put in front of): as on a bus endpoint, MassTransit reports only the last
    /// attempt, so the attempts are one run, FAILED with the last attempt's error (or SUCCEEDED).
    /// </summary>
    [Test]
    public async Task HandlerConnectedToTheMediator_UnderItsRetry_ItsAttemptsAreOneRun()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s => s.AddMediator(x =>
        {
            x.AddConsumer<Quiet43Consumer>();
            x.ConfigureMediator((context, cfg) =>
            {
                cfg.UseMessageRetry(r => r.Immediate(2));
                cfg.UseTaskLogging(context);
            });
        }));
        var mediator = host.Services.GetRequiredService<IMediator>();
        var attempts = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        var handle = mediator.ConnectHandler<Med43>(c =>
        {
            var attempt = attempts.AddOrUpdate(c.Message.N, 1, (_, a) => a + 1);
            return c.Message.Fail || attempt == 1 ? throw new InvalidOperationException("med " + c.Message.N + " attempt " + attempt) : Task.CompletedTask;
        });
        try
        {
            var (ok, bad, badN) = await SendPairAsync(host, mediator);
            const string consumer = "ConnectedHandler<Med43>";
            Assert.That(ok.Runs.Where(r => r.ConsumerType == consumer).Select(r => (r.Retries, r.State)), Is.EqualTo(new[] { (0, TaskRunState.Succeeded) }), Describe(ok));
            var failed = bad.Runs.Single(r => r.ConsumerType == consumer);
            Assert.That((bad.State, failed.State), Is.EqualTo((TaskState.Failed, TaskRunState.Failed)), Describe(bad));
            Assert.That(failed.ErrorMessage, Does.Contain("med " + badN + " attempt 3"));
            // The configured consumer beside it: a run per call MassTransit made of it.
            Assert.That(bad.Runs.Count(r => r.ConsumerType == nameof(Quiet43Consumer)), Is.EqualTo(Quiet43Consumer.Calls[badN]), Describe(bad));
        }
        finally
        {
            handle.Disconnect();
        }
    }
}

public sealed class Quiet43Consumer : IConsumer<Med43>
{
    public static readonly System.Collections.Concurrent.ConcurrentDictionary<int, int> Calls = new();

    public Task Consume(ConsumeContext<Med43> context)
    {
        Calls.AddOrUpdate(context.Message.N, 1, (_, a) => a + 1);
        return Task.CompletedTask;
    }
}
