using System.Collections.Concurrent;
using JobLog.Testing;
using MassTransit;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Apps43;

public sealed record Obs43(int N, bool Fail);

public sealed record ObsDone43(int N);

public sealed class Obs43Consumer : IConsumer<Obs43>
{
    public async Task Consume(ConsumeContext<Obs43> context)
    {
        if (context.Message.Fail)
        {
            throw new InvalidOperationException("obs " + context.Message.N + " broken");
        }

        await context.Publish(new ObsDone43(context.Message.N));
    }
}

public sealed class ObsDone43Consumer : IConsumer<ObsDone43>
{
    public Task Consume(ConsumeContext<ObsDone43> context) => Task.CompletedTask;
}

/// <summary>Counts what an application's own observers see: consumed, faulted, received, published, sent.</summary>
public sealed class Counting43Observer : IConsumeObserver, IReceiveObserver, IPublishObserver, ISendObserver
{
    public readonly ConcurrentBag<string> Seen = [];

    public Task PreConsume<T>(ConsumeContext<T> context) where T : class => Task.CompletedTask;

    public Task PostConsume<T>(ConsumeContext<T> context) where T : class => Note("consumed " + typeof(T).Name);

    public Task ConsumeFault<T>(ConsumeContext<T> context, Exception exception) where T : class => Note("faulted " + typeof(T).Name);

    public Task PreReceive(ReceiveContext context) => Task.CompletedTask;

    public Task PostReceive(ReceiveContext context) => Task.CompletedTask;

    public Task PostConsume<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType) where T : class => Note("reported " + typeof(T).Name);

    public Task ConsumeFault<T>(ConsumeContext<T> context, TimeSpan duration, string consumerType, Exception exception) where T : class =>
        Note("reported fault " + typeof(T).Name);

    public Task ReceiveFault(ReceiveContext context, Exception exception) => Task.CompletedTask;

    public Task PrePublish<T>(PublishContext<T> context) where T : class => Task.CompletedTask;

    public Task PostPublish<T>(PublishContext<T> context) where T : class => Note("published " + typeof(T).Name);

    public Task PublishFault<T>(PublishContext<T> context, Exception exception) where T : class => Task.CompletedTask;

    public Task PreSend<T>(SendContext<T> context) where T : class => Task.CompletedTask;

    public Task PostSend<T>(SendContext<T> context) where T : class => Note("sent " + typeof(T).Name);

    public Task SendFault<T>(SendContext<T> context, Exception exception) where T : class => Task.CompletedTask;

    private Task Note(string what)
    {
        Seen.Add(what);
        return Task.CompletedTask;
    }
}

/// <summary>
/// Observers an application connects to the running bus beside JobLog's (<c>ConnectConsumeObserver</c>,
/// <c>ConnectReceiveObserver</c>, <c>ConnectPublishObserver</c>, <c>ConnectSendObserver</c>): they see what they saw
/// without JobLog, and the ledger reads as without them.
/// </summary>
public class UserObserverTests
{
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task ApplicationsObserversConnectedToTheBus_BesideJobLogs_NeitherChangesTheOther(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x =>
        {
            x.AddConsumer<Obs43Consumer>();
            x.AddConsumer<ObsDone43Consumer>();
        });
        var observer = new Counting43Observer();
        var handles = new[]
        {
            bus.Bus.ConnectConsumeObserver(observer), bus.Bus.ConnectReceiveObserver(observer),
            bus.Bus.ConnectPublishObserver(observer), bus.Bus.ConnectSendObserver(observer),
        };
        try
        {
            var (ok, bad) = (NewId.NextGuid(), NewId.NextGuid());
            var (okN, badN) = (Random.Shared.Next(1000, int.MaxValue), Random.Shared.Next(1000, int.MaxValue));
            await bus.Bus.Publish(new Obs43(okN, false), x => x.MessageId = ok);
            await bus.Bus.Publish(new Obs43(badN, true), x => x.MessageId = bad);
            var okTask = await WaitFor(bus, ok, t => t.State == TaskState.Succeeded, "the good one succeeded", 60);
            var badTask = await WaitFor(bus, bad, t => t.State == TaskState.Failed, "the bad one failed", 60);
            await SettledAsync(bus.Host, nameof(Obs43), nameof(ObsDone43));
            var tasks = await bus.Host.TasksAsync();
            foreach (var t in tasks)
            {
                TestContext.Out.WriteLine(Describe(t));
            }

            TestContext.Out.WriteLine(string.Join(", ", observer.Seen.OrderBy(s => s)));
            Assert.That(okTask.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Obs43Consumer), TaskRunState.Succeeded) }));
            Assert.That(badTask.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(Obs43Consumer), TaskRunState.Failed) }));
            Assert.That(badTask.Runs.Single().ErrorMessage, Does.Contain("obs " + badN + " broken"));
            var done = tasks.Single(t => t.Name == nameof(ObsDone43));
            Assert.That((done.ParentRunId, done.State), Is.EqualTo(((Guid?)okTask.Runs.Single().Id, TaskState.Succeeded)));
            Assert.That(tasks.Where(t => !t.IsInternal).Select(t => t.Name).OrderBy(n => n), Is.EqualTo(new[] { nameof(Obs43), nameof(Obs43), nameof(ObsDone43) }));
            Assert.That(observer.Seen, Has.Member("consumed Obs43").And.Member("faulted Obs43").And.Member("reported Obs43")
                .And.Member("reported fault Obs43").And.Member("published Obs43").And.Member("published ObsDone43").And.Member("consumed ObsDone43"));
        }
        finally
        {
            foreach (var handle in handles)
            {
                handle.Disconnect();
            }
        }
    }
}
