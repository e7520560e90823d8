using System.Collections.Concurrent;
using JobLog.Testing;
using MassTransit;
using MassTransit.Saga;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Apps42;

public sealed record Dyn42(int N, bool Fail);

public sealed record Late42(int N, bool Fail);

public sealed record Conn42(int N, bool Fail);

public sealed record Done42(int N);

public sealed record Open42(Guid CorrelationId);

public sealed record Close42(Guid CorrelationId, bool Fail);

public sealed class Quiet42Consumer : IConsumer<Late42>
{
    public Task Consume(ConsumeContext<Late42> context) => Task.CompletedTask;
}

public sealed class Done42Consumer : IConsumer<Done42>
{
    public Task Consume(ConsumeContext<Done42> context) => Task.CompletedTask;
}

public sealed class Conn42Consumer : IConsumer<Conn42>
{
    public Task Consume(ConsumeContext<Conn42> context) =>
        context.Message.Fail ? throw new InvalidOperationException("conn " + context.Message.N + " broken") : Task.CompletedTask;
}

public sealed class Conn42State : SagaStateMachineInstance
{
    public Guid CorrelationId { get; set; }

    public string CurrentState { get; set; } = "";
}

public sealed class Conn42Machine : MassTransitStateMachine<Conn42State>
{
    public Conn42Machine()
    {
        InstanceState(x => x.CurrentState);
        Event(() => Opened, e => e.CorrelateById(m => m.Message.CorrelationId));
        Event(() => Closed, e => e.CorrelateById(m => m.Message.CorrelationId));
        Initially(When(Opened).TransitionTo(Open));
        During(Open, When(Closed)
            .Then(c =>
            {
                if (c.Message.Fail)
                {
                    throw new InvalidOperationException("saga " + c.Message.CorrelationId + " cannot close");
                }
            })
            .TransitionTo(Done));
    }

    public State Open { get; private set; } = null!;

    public State Done { get; private set; } = null!;

    public Event<Open42> Opened { get; private set; } = null!;

    public Event<Close42> Closed { get; private set; } = null!;
}

/// <summary>
/// Handlers, consumers and sagas connected to a running bus or endpoint (docs/masstransit.md, "Handlers and consumers
/// connected to a running bus"): MassTransit gives them no configuration observer, so their messages stayed WAITING with
/// no run. Session 40's probe of the connected handler (Apps40ProbeTests, reverted with its fix) is the first two.
/// </summary>
public class ConnectedConsumerTests
{
    private static int NextId() => Random.Shared.Next(1000, int.MaxValue);

    /// <summary>
    /// A handler connected to the bus endpoint after the bus started (<c>bus.ConnectHandler&lt;T&gt;</c>): a message sent
    /// to the bus's address that it handles ends SUCCEEDED with one run, one that it fails ends FAILED with its error.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task HandlerConnectedToTheBus_EachTaskHasItsRun(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, _ => { });
        var handled = new ConcurrentDictionary<int, bool>();
        var handle = bus.Bus.ConnectHandler<Dyn42>(c =>
        {
            handled[c.Message.N] = true;
            return c.Message.Fail ? throw new InvalidOperationException("dyn " + c.Message.N + " broken") : Task.CompletedTask;
        });
        try
        {
            var (okTask, badTask, badN) = await SendPairAsync(bus, bus.Bus.Address, n => new Dyn42(n, false), n => new Dyn42(n, true));
            const string consumer = "ConnectedHandler<Dyn42>";
            Assert.That((okTask.State, okTask.Runs.Single().ConsumerType, okTask.Runs.Single().State), Is.EqualTo((TaskState.Succeeded, consumer, TaskRunState.Succeeded)));
            Assert.That((badTask.State, badTask.Runs.Single().ConsumerType, badTask.Runs.Single().State), Is.EqualTo((TaskState.Failed, consumer, TaskRunState.Failed)));
            Assert.That(badTask.Runs.Single().ErrorMessage, Does.Contain("dyn " + badN + " broken"));
        }
        finally
        {
            handle.Disconnect();
        }
    }

    /// <summary>
    /// A consumer connected to the bus endpoint (<c>bus.ConnectConsumer(() =&gt; new T())</c>, or <c>ConnectInstance</c>):
    /// its runs are named as a configured consumer's (<c>Conn42Consumer</c>), SUCCEEDED, or FAILED with its error.
    /// </summary>
    [TestCase(Transport.InMemory, false)]
    [TestCase(Transport.InMemory, true)]
    [TestCase(Transport.RabbitMq, false)]
    [TestCase(Transport.RabbitMq, true)]
    public async Task ConsumerConnectedToTheBus_ByFactoryOrAsAnInstance_EachTaskHasItsRun(Transport transport, bool instance)
    {
        await using var bus = await BusFixture.StartAsync(transport, _ => { });
        var handle = instance ? bus.Bus.ConnectInstance(new Conn42Consumer()) : bus.Bus.ConnectConsumer(() => new Conn42Consumer());
        try
        {
            var (okTask, badTask, badN) = await SendPairAsync(bus, bus.Bus.Address, n => new Conn42(n, false), n => new Conn42(n, true));
            Assert.That(okTask.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Conn42Consumer), TaskRunState.Succeeded) }));
            Assert.That(badTask.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Conn42Consumer), TaskRunState.Failed) }));
            Assert.That((okTask.State, badTask.State), Is.EqualTo((TaskState.Succeeded, TaskState.Failed)));
            Assert.That(badTask.Runs.Single().ErrorMessage, Does.StartWith("System.InvalidOperationException: conn " + badN + " broken"));
        }
        finally
        {
            handle.Disconnect();
        }
    }

    /// <summary>
    /// A state machine saga connected to the bus endpoint (<c>bus.ConnectStateMachineSaga</c>, the in-memory repository):
    /// each event a run named by the saga's instance type, as a configured saga's; the event it fails FAILED with its error.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task StateMachineSagaConnectedToTheBus_EachEventHasItsRun(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, _ => { });
        var handle = bus.Bus.ConnectStateMachineSaga(new Conn42Machine(), new InMemorySagaRepository<Conn42State>());
        try
        {
            var endpoint = await bus.Bus.GetSendEndpoint(bus.Bus.Address);
            var (good, bad) = (NewId.NextGuid(), NewId.NextGuid());
            var ids = new List<Guid>();
            foreach (var saga in new[] { good, bad })
            {
                var opened = NewId.NextGuid();
                await endpoint.Send(new Open42(saga), x => x.MessageId = opened);
                await WaitFor(bus, opened, t => t.State == TaskState.Succeeded, "the saga opened", 60);
                ids.Add(opened);
            }

            var (closed, refused) = (NewId.NextGuid(), NewId.NextGuid());
            await endpoint.Send(new Close42(good, false), x => x.MessageId = closed);
            await endpoint.Send(new Close42(bad, true), x => x.MessageId = refused);
            var closedTask = await WaitFor(bus, closed, t => t.State is TaskState.Succeeded or TaskState.Failed, "the close ended", 60);
            var refusedTask = await WaitFor(bus, refused, t => t.State is TaskState.Succeeded or TaskState.Failed, "the refused close ended", 60);
            TestContext.Out.WriteLine(Describe(closedTask));
            TestContext.Out.WriteLine(Describe(refusedTask));
            foreach (var id in ids)
            {
                Assert.That((await bus.Host.TaskAsync(id)).Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Conn42State), TaskRunState.Succeeded) }));
            }

            Assert.That(closedTask.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Conn42State), TaskRunState.Succeeded) }));
            Assert.That(refusedTask.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Conn42State), TaskRunState.Failed) }));
            Assert.That(refusedTask.Runs.Single().ErrorMessage, Does.Contain("saga " + bad + " cannot close"));
        }
        finally
        {
            handle.Disconnect();
        }
    }

    /// <summary>
    /// A handler connected to a running receive endpoint with a retry (<c>e.UseMessageRetry(r =&gt; r.Immediate(2))</c>, a
    /// configured consumer of the same type there, <see cref="Quiet42Consumer"/>): before, the always-failing task read
    /// SUCCEEDED (the consumer's run) while its message sat in <c>_error</c>. MassTransit holds the handler's faults back
    /// until its retry ends and reports the last one, so its retried attempts are one run: FAILED with the last attempt's
    /// error, or SUCCEEDED; in its own lane beside the consumer's SUCCEEDED runs, and no second run of the consumer's.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task HandlerOnAStartedEndpoint_UnderTheEndpointsRetry_ItsAttemptsAreOneRun_FailedOrSucceeded(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x =>
        {
            x.AddConsumer<Done42Consumer>();
            x.AddConsumer<Quiet42Consumer>().ExcludeFromConfigureEndpoints();
        });
        var queue = "late42h-" + NextId();
        var connected = bus.Host.Services.GetRequiredService<IReceiveEndpointConnector>()
            .ConnectReceiveEndpoint(queue, (context, e) =>
            {
                e.UseMessageRetry(r => r.Immediate(2));
                e.ConfigureConsumer<Quiet42Consumer>(context);
            });
        await connected.Ready;
        var attempts = new ConcurrentDictionary<int, int>();
        var handle = connected.ReceiveEndpoint.ConnectHandler<Late42>(async c =>
        {
            var attempt = attempts.AddOrUpdate(c.Message.N, 1, (_, a) => a + 1);
            if (c.Message.Fail || attempt == 1)
            {
                throw new InvalidOperationException("late " + c.Message.N + " attempt " + attempt);
            }

            await c.Publish(new Done42(c.Message.N));
        });
        try
        {
            var (once, always) = (NewId.NextGuid(), NewId.NextGuid());
            var (onceN, alwaysN) = (NextId(), NextId());
            var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:" + queue));
            await endpoint.Send(new Late42(onceN, false), x => x.MessageId = once);
            await endpoint.Send(new Late42(alwaysN, true), x => x.MessageId = always);

            const string consumer = "ConnectedHandler<Late42>";
            // The consumer's run alone makes the task SUCCEEDED: wait for the handler's as well.
            var onceTask = await WaitFor(bus, once, t => t.State == TaskState.Succeeded && t.Runs.Any(r => r.ConsumerType == consumer), "the task failing once succeeded", 60);
            var alwaysTask = await WaitFor(bus, always, t => t.State == TaskState.Failed, "the task failing always failed", 60);
            await SettledAsync(bus.Host, nameof(Late42), nameof(Done42));
            var tasks = await bus.Host.TasksAsync();
            foreach (var t in tasks)
            {
                TestContext.Out.WriteLine(Describe(t));
            }

            Assert.That(onceTask.Runs.Where(r => r.ConsumerType == consumer).Select(r => (r.Retries, r.State)), Is.EqualTo(new[] { (0, TaskRunState.Succeeded) }));
            var failed = alwaysTask.Runs.Single(r => r.ConsumerType == consumer);
            Assert.That((failed.Retries, failed.State), Is.EqualTo((0, TaskRunState.Failed)));
            Assert.That(failed.ErrorMessage, Does.Contain($"late {alwaysN} attempt 3"), "the last attempt's error");
            Assert.That(attempts[alwaysN], Is.EqualTo(3), "MassTransit tried it three times");
            foreach (var t in new[] { onceTask, alwaysTask })
            {
                Assert.That(t.Runs.Where(r => r.ConsumerType != consumer).Select(r => (r.ConsumerType, r.State)),
                    Is.Not.Empty.And.All.EqualTo((nameof(Quiet42Consumer), TaskRunState.Succeeded)));
            }

            var done = tasks.Single(t => t.Name == nameof(Done42));
            Assert.That(done.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Done42Consumer), TaskRunState.Succeeded) }));
        }
        finally
        {
            handle.Disconnect();
        }
    }

    /// <summary>Sends a message that succeeds and one that fails to <paramref name="address"/>; both tasks once ended.</summary>
    private static async Task<(TaskLog Ok, TaskLog Bad, int BadN)> SendPairAsync<T>(BusFixture bus, Uri address, Func<int, T> ok, Func<int, T> bad)
        where T : class
    {
        var (okId, badId) = (NewId.NextGuid(), NewId.NextGuid());
        var (okN, badN) = (NextId(), NextId());
        var endpoint = await bus.Bus.GetSendEndpoint(address);
        await endpoint.Send(ok(okN), x => x.MessageId = okId);
        await endpoint.Send(bad(badN), x => x.MessageId = badId);
        var okTask = await WaitFor(bus, okId, t => t.State is TaskState.Succeeded or TaskState.Failed && t.Runs.Count > 0, "the handled task ended", 60);
        var badTask = await WaitFor(bus, badId, t => t.State is TaskState.Succeeded or TaskState.Failed && t.Runs.Count > 0, "the failed task ended", 60);
        TestContext.Out.WriteLine(Describe(okTask));
        TestContext.Out.WriteLine(Describe(badTask));
        return (okTask, badTask, badN);
    }
}
