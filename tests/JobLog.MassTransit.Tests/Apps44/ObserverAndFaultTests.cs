using JobLog.Testing;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Apps44;

public sealed record Val44(int N, bool Valid);

public sealed record ValDone44(int N);

public sealed record Conn44(int N);

public sealed class Val44Consumer : IConsumer<Val44>
{
    public Task Consume(ConsumeContext<Val44> context) => context.Publish(new ValDone44(context.Message.N));
}

public sealed class ValDone44Consumer : IConsumer<ValDone44>
{
    public Task Consume(ConsumeContext<ValDone44> context) => Task.CompletedTask;
}

/// <summary>An application's validating consume observer: its <c>PreConsume</c> throws for a message it finds invalid.</summary>
public sealed class Validating44Observer : IConsumeObserver
{
    public Task PreConsume<T>(ConsumeContext<T> context) where T : class =>
        context.Message is Val44 { Valid: false } m ? throw new ArgumentException("val " + m.N + " is not valid") : Task.CompletedTask;

    public Task PostConsume<T>(ConsumeContext<T> context) where T : class => Task.CompletedTask;

    public Task ConsumeFault<T>(ConsumeContext<T> context, Exception exception) where T : class => Task.CompletedTask;
}

public sealed class Conn44Consumer : IConsumer<Conn44>
{
    public Task Consume(ConsumeContext<Conn44> context) => throw new InvalidOperationException("conn " + context.Message.N + " broken");
}

public sealed class Conn44FaultConsumer : IConsumer<Fault<Conn44>>
{
    public Task Consume(ConsumeContext<Fault<Conn44>> context) => Task.CompletedTask;
}

/// <summary>
/// An application's consume observer that throws (a validating <c>PreConsume</c>), and a configured consumer of the
/// <c>Fault&lt;T&gt;</c> of a consumer connected to the running bus.
/// </summary>
public class ObserverAndFaultTests
{
    private static int NextId() => Random.Shared.Next(1000, int.MaxValue);

    /// <summary>
    /// A consume observer registered in the container (<c>AddConsumeObserver</c>) or connected to the running bus
    /// (<c>ConnectConsumeObserver</c>) whose <c>PreConsume</c> throws for an invalid message: that delivery is FAILED
    /// with the observer's error (the message goes to <c>_error</c>), nothing is left WAITING or ACTIVE; a valid message
    /// beside it is SUCCEEDED with its child linked.
    /// </summary>
    [TestCase(Transport.InMemory, false)]
    [TestCase(Transport.InMemory, true)]
    [TestCase(Transport.RabbitMq, false)]
    [TestCase(Transport.RabbitMq, true)]
    public async Task ValidatingConsumeObserver_ThatThrowsInPreConsume_TheDeliveryIsFailedWithItsError(Transport transport, bool connectedAfterStart)
    {
        await using var bus = await BusFixture.StartAsync(transport, x =>
        {
            x.AddConsumer<Val44Consumer>();
            x.AddConsumer<ValDone44Consumer>();
            if (!connectedAfterStart)
            {
                x.AddConsumeObserver<Validating44Observer>();
            }
        });
        var handle = connectedAfterStart ? bus.Bus.ConnectConsumeObserver(new Validating44Observer()) : null;
        try
        {
            var (ok, bad) = (NewId.NextGuid(), NewId.NextGuid());
            var (okN, badN) = (NextId(), NextId());
            await bus.Bus.Publish(new Val44(okN, true), x => x.MessageId = ok);
            await bus.Bus.Publish(new Val44(badN, false), x => x.MessageId = bad);
            var okTask = await WaitFor(bus, ok, t => t.State == TaskState.Succeeded, "the valid one succeeded", 60);
            var badTask = await WaitFor(bus, bad, t => t.State is not (TaskState.Waiting or TaskState.Active), "the invalid one ended", 60);
            await SettledAsync(bus.Host, nameof(Val44), nameof(ValDone44));
            var tasks = await bus.Host.TasksAsync();
            foreach (var t in tasks)
            {
                TestContext.Out.WriteLine(Describe(t));
            }

            badTask = tasks.Single(t => t.Id == bad);
            Assert.That(okTask.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Val44Consumer), TaskRunState.Succeeded) }));
            Assert.That(badTask.State, Is.EqualTo(TaskState.Failed), Describe(badTask));
            Assert.That(badTask.Runs.Select(r => r.State), Is.EqualTo(new[] { TaskRunState.Failed }), Describe(badTask));
            Assert.That(badTask.Runs.Single().ErrorMessage, Does.Contain("val " + badN + " is not valid"));
            var done = tasks.Single(t => t.Name == nameof(ValDone44));
            Assert.That((done.ParentRunId, done.State), Is.EqualTo(((Guid?)okTask.Runs.Single().Id, TaskState.Succeeded)));
            Assert.That(tasks.Where(t => t.State is TaskState.Waiting or TaskState.Active), Is.Empty, "nothing left waiting");
            if (bus.Vhost is { } vhost)
            {
                await LedgerHost.EventuallyAsync(async () => await vhost.MessagesInQueueAsync("val44_error") == 1, because: "the invalid one in val44_error");
            }
        }
        finally
        {
            handle?.Disconnect();
        }
    }

    /// <summary>
    /// A consumer connected to the running bus (<c>ConnectConsumer</c>) fails; the application's configured
    /// <c>IConsumer&lt;Fault&lt;T&gt;&gt;</c> consumes MassTransit's fault: the fault is a SUCCEEDED task with that
    /// consumer's run, the faulted task FAILED with the connected consumer's run and error, nothing left WAITING. The
    /// fault's parent is that FAILED run (as for a configured consumer's fault) or, by the connected consumers' documented
    /// limit (their run is recorded after the attempt, and MassTransit publishes the fault before it reports the attempt),
    /// none: never a run of another task. Found in session 44: none.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task FaultOfAConsumerConnectedToTheBus_ConsumedByAConfiguredFaultConsumer_IsATask_NeverLinkedToAnotherRun(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<Conn44FaultConsumer>());
        var handle = bus.Bus.ConnectConsumer(() => new Conn44Consumer());
        try
        {
            var (id, n) = (NewId.NextGuid(), NextId());
            var endpoint = await bus.Bus.GetSendEndpoint(bus.Bus.Address);
            await endpoint.Send(new Conn44(n), x => x.MessageId = id);
            var task = await WaitFor(bus, id, t => t.State == TaskState.Failed, "the connected consumer's task failed", 60);
            await LedgerHost.EventuallyAsync(
                async () => (await bus.Host.TasksAsync()).Any(t => t.Name == "Fault<Conn44>" && t.State == TaskState.Succeeded),
                TimeSpan.FromSeconds(60), "the fault consumed");
            await SettledAsync(bus.Host, nameof(Conn44), "Fault<Conn44>");
            var tasks = await bus.Host.TasksAsync();
            foreach (var t in tasks)
            {
                TestContext.Out.WriteLine(Describe(t));
            }

            task = tasks.Single(t => t.Id == id);
            Assert.That(task.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Conn44Consumer), TaskRunState.Failed) }));
            Assert.That(task.Runs.Single().ErrorMessage, Does.Contain("conn " + n + " broken"));
            var fault = tasks.Single(t => t.Name == "Fault<Conn44>");
            Assert.That(fault.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Conn44FaultConsumer), TaskRunState.Succeeded) }));
            // The connected run is recorded from MassTransit's report, which comes after the fault is published
            // (BaseConsumeContext.NotifyFaulted: GenerateFault, then the receive observers): no run is around the fault.
            Assert.That(fault.ParentRunId, Is.Null.Or.EqualTo(task.Runs.Single().Id), "the fault's parent is the failed run or none");
            Assert.That(tasks.Where(t => t.State is TaskState.Waiting or TaskState.Active), Is.Empty, "nothing left waiting");
        }
        finally
        {
            handle.Disconnect();
        }
    }
}
