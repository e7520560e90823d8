using System.Collections.Concurrent;
using JobLog.MassTransit.Tests.Scheduling;
using JobLog.Testing;
using MassTransit;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public sealed record QuoteRequest(int Id, bool Reject);

public sealed record QuoteAccepted(int Id);

public sealed record QuoteRejected(int Id, string Reason);

/// <summary>Answers a quote with one of two response types; holds a quote whose gate is set until the test opens it.</summary>
public sealed class QuoteConsumer : IConsumer<QuoteRequest>
{
    public static readonly ConcurrentDictionary<int, TaskCompletionSource> Gates = new();

    public static readonly ConcurrentDictionary<int, bool> Started = new();

    public async Task Consume(ConsumeContext<QuoteRequest> context)
    {
        Started[context.Message.Id] = true;
        if (Gates.TryGetValue(context.Message.Id, out var gate))
        {
            await gate.Task.WaitAsync(TimeSpan.FromSeconds(120));
        }

        if (context.Message.Reject)
        {
            await context.RespondAsync(new QuoteRejected(context.Message.Id, "out of stock"));
        }
        else
        {
            await context.RespondAsync(new QuoteAccepted(context.Message.Id));
        }
    }
}

/// <summary>A user's own send and publish observer that refuses a message before it is sent (as a validation observer would).</summary>
public sealed class RefusingObserver : ISendObserver, IPublishObserver
{
    public Task PreSend<T>(SendContext<T> context)
        where T : class => Refuse(context);

    public Task PostSend<T>(SendContext<T> context)
        where T : class => Task.CompletedTask;

    public Task SendFault<T>(SendContext<T> context, Exception exception)
        where T : class => Task.CompletedTask;

    public Task PrePublish<T>(PublishContext<T> context)
        where T : class => Refuse(context);

    public Task PostPublish<T>(PublishContext<T> context)
        where T : class => Task.CompletedTask;

    public Task PublishFault<T>(PublishContext<T> context, Exception exception)
        where T : class => Task.CompletedTask;

    private static Task Refuse<T>(SendContext<T> context)
        where T : class =>
        context.Message is QuoteRequest { Id: < 0 } ? throw new InvalidOperationException("negative quote id refused") : Task.CompletedTask;
}

/// <summary>A user's own consume observer that counts what it sees.</summary>
public sealed class CountingConsumeObserver : IConsumeObserver
{
    public int Pre;
    public int Post;
    public int Faults;

    public Task PreConsume<T>(ConsumeContext<T> context)
        where T : class
    {
        Interlocked.Increment(ref Pre);
        return Task.CompletedTask;
    }

    public Task PostConsume<T>(ConsumeContext<T> context)
        where T : class
    {
        Interlocked.Increment(ref Post);
        return Task.CompletedTask;
    }

    public Task ConsumeFault<T>(ConsumeContext<T> context, Exception exception)
        where T : class
    {
        Interlocked.Increment(ref Faults);
        return Task.CompletedTask;
    }
}

/// <summary>
/// Request clients and a user's own observers on the real RabbitMQ, as an application writes them: a request with two
/// response types, a request whose caller gives up (its token cancelled) while the consumer works, a send observer of the
/// application's that refuses a message, a consume observer of the application's beside JobLog's.
/// </summary>
public class RabbitMqRequestAndObserverTests : OneSchedulerBusTests
{
    [Test]
    public async Task Request_WithTwoResponseTypes_TheResponseSentIsATaskOfItsType_ReceivedByTheRequestClient()
    {
        var bus = await StartBusAsync(x =>
        {
            x.AddConsumer<QuoteConsumer>();
            x.AddRequestClient<QuoteRequest>();
        });
        var (accepted, rejected) = (NewId.NextGuid(), NewId.NextGuid());
        var client = bus.Bus.CreateRequestClient<QuoteRequest>();
        var first = await client.GetResponse<QuoteAccepted, QuoteRejected>(new QuoteRequest(1, false), x => x.UseExecute(c => c.MessageId = accepted));
        var second = await client.GetResponse<QuoteAccepted, QuoteRejected>(new QuoteRequest(2, true), x => x.UseExecute(c => c.MessageId = rejected));
        Assert.That((first.Is(out Response<QuoteAccepted>? _), second.Is(out Response<QuoteRejected>? _)), Is.EqualTo((true, true)));

        foreach (var (request, response) in new[] { (accepted, nameof(QuoteAccepted)), (rejected, nameof(QuoteRejected)) })
        {
            var task = await bus.WaitForTaskAsync(request, t => t.State == TaskState.Succeeded, "the request consumed");
            var run = task.Runs.Single();
            await LedgerHost.EventuallyAsync(async () => (await bus.Host.TasksAsync()).Any(t => t.ParentRunId == run.Id && t.State == TaskState.Succeeded),
                TimeSpan.FromSeconds(20), "the response received");
            var child = (await bus.Host.TasksAsync()).Single(t => t.ParentRunId == run.Id);
            TestContext.Out.WriteLine(Describe(task) + " -> " + Describe(child));
            Assert.That((child.Name, child.Runs.Single().ConsumerType), Is.EqualTo((response, "RequestClient")));
        }
    }

    [Test]
    public async Task Request_WhoseCallerCancelsWhileTheConsumerWorks_TheRequestSucceeds_TheResponseNobodyWaitsForIsExpired()
    {
        var bus = await StartBusAsync(x => x.AddConsumer<QuoteConsumer>());
        var id = NewId.NextGuid();
        var quote = Random.Shared.Next(1000, int.MaxValue);
        var gate = QuoteConsumer.Gates[quote] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var caller = new CancellationTokenSource();
        var client = bus.Bus.CreateRequestClient<QuoteRequest>();
        var pending = client.GetResponse<QuoteAccepted>(new QuoteRequest(quote, false), x => x.UseExecute(c => c.MessageId = id), caller.Token);
        await LedgerHost.EventuallyAsync(() => Task.FromResult(QuoteConsumer.Started.ContainsKey(quote)), TimeSpan.FromSeconds(20), "the consumer started");

        await caller.CancelAsync();
        Assert.That(async () => await pending, Throws.InstanceOf<OperationCanceledException>());
        gate.SetResult();

        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "the request consumed");
        var run = task.Runs.Single();
        TaskLog? response = null;
        await LedgerHost.EventuallyAsync(async () => (response = (await bus.Host.TasksAsync()).SingleOrDefault(t => t.ParentRunId == run.Id))?.State == TaskState.Expired,
            TimeSpan.FromSeconds(20), "the response nobody waited for any more is EXPIRED");
        TestContext.Out.WriteLine(Describe(task) + " -> " + Describe(response));
        var received = response!.Runs.Single();
        Assert.That((response.Name, received.ConsumerType, received.State), Is.EqualTo((nameof(QuoteAccepted), "RequestClient", TaskRunState.Expired)));
        Assert.That(received.ErrorMessage, Does.StartWith("Not received: it arrived at "));
    }

    /// <summary>
    /// A response sent to a queue whose consumers do not take its type (a misconfigured ResponseAddress), not to a
    /// request client that gave up: MassTransit moves it to the queue's <c>_skipped</c>: a FAILED run (a misconfiguration someone has to mend). Before, its run read "Not received:
    /// … its request client had given up", which sent the reader looking for a timeout that never happened.
    /// </summary>
    [Test]
    public async Task Response_SentToAQueueWhereNothingConsumesItsType_IsFailed_SayingSoAndWhereItWent()
    {
        var bus = await StartBusAsync(x => x.AddConsumer<QuoteConsumer>());
        var id = NewId.NextGuid();
        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:quote"));
        await endpoint.Send(new QuoteRequest(Random.Shared.Next(1000, int.MaxValue), false), x =>
        {
            x.MessageId = id;
            x.RequestId = NewId.NextGuid();
            x.ResponseAddress = new Uri("queue:quote");
        });

        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "the request consumed");
        var run = task.Runs.Single();
        TaskLog? response = null;
        await LedgerHost.EventuallyAsync(async () => (response = (await bus.Host.TasksAsync()).SingleOrDefault(t => t.ParentRunId == run.Id))?.State == TaskState.Failed,
            TimeSpan.FromSeconds(20), "the response nothing consumed is FAILED");
        TestContext.Out.WriteLine(Describe(task) + " -> " + Describe(response) + " err=" + response!.Runs.Single().ErrorMessage);
        var received = response.Runs.Single();
        Assert.That((response.Name, received.QueueName, received.State), Is.EqualTo((nameof(QuoteAccepted), "quote", TaskRunState.Failed)));
        Assert.That(received.ErrorMessage, Does.StartWith("Skipped: no consumer on quote takes this message (urn:message:")
            .And.Contain("QuoteAccepted").And.Contain("quote_skipped").And.Not.Contain("gave up"));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task UsersSendObserver_RefusingAMessage_TheSendThrows_ItsTaskIsNoneOrExpiredNamingTheObserver_AUsersConsumeObserverSeesWhatJobLogRecords(bool connectedAfterStart)
    {
        var consumed = new CountingConsumeObserver();
        var refusing = new RefusingObserver();
        var bus = await StartBusAsync(x => x.AddConsumer<QuoteConsumer>(), (_, cfg) =>
        {
            if (!connectedAfterStart)
            {
                cfg.ConnectSendObserver(refusing);
                cfg.ConnectPublishObserver(refusing);
                cfg.ConnectConsumeObserver(consumed);
            }
        });
        if (connectedAfterStart)
        {
            bus.Bus.ConnectSendObserver(refusing);
            bus.Bus.ConnectPublishObserver(refusing);
            bus.Bus.ConnectConsumeObserver(consumed);
        }

        var (refused, refusedPublish, fine) = (NewId.NextGuid(), NewId.NextGuid(), NewId.NextGuid());
        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:quote"));
        Assert.That(async () => await endpoint.Send(new QuoteRequest(-1, false), x => x.MessageId = refused), Throws.InvalidOperationException);
        Assert.That(async () => await bus.Bus.Publish(new QuoteRequest(-2, false), x => x.MessageId = refusedPublish), Throws.InvalidOperationException);
        await endpoint.Send(new QuoteRequest(3, false), x => x.MessageId = fine);

        var task = await bus.WaitForTaskAsync(fine, t => t.State == TaskState.Succeeded, "the accepted message consumed");
        await bus.Host.FlushAsync();
        var tasks = await bus.Host.TasksAsync();
        foreach (var t in tasks)
        {
            TestContext.Out.WriteLine(t.Id + " " + Describe(t) + " error=" + t.ErrorMessage);
        }

        // Refused by an observer connected before JobLog's, the message never reached JobLog: no task. Connected after it
        // (bus.ConnectSendObserver once the bus runs), JobLog had recorded the dispatch; the refusal is certain (an
        // observer's PreSend runs before the transport is given the message), so the task is EXPIRED, its one run saying
        // which observer refused it. Before, it stayed WAITING with "Dispatch failed: …" until its stale limit, as a send
        // the broker may still have taken.
        foreach (var (id, observer, verb) in new[] { (refused, "RefusingObserver.PreSend", "send"), (refusedPublish, "RefusingObserver.PrePublish", "publish") })
        {
            var t = tasks.SingleOrDefault(t => t.Id == id);
            (TaskState, int, string?, string?)? seen = t is null ? null : (t.State, t.Runs.Count, t.Runs.FirstOrDefault()?.ConsumerType, t.Runs.FirstOrDefault()?.ErrorMessage?.Split('\n')[0]);
            (TaskState, int, string?, string?)? expected = connectedAfterStart
                ? (TaskState.Expired, 1, "(dispatch)",
                    $"Not sent: refused by the observer {observer} before it reached the transport (the {verb} threw to its caller): System.InvalidOperationException: negative quote id refused")
                : null;
            Assert.That(seen, Is.EqualTo(expected));
        }

        Assert.That((consumed.Pre, consumed.Post, consumed.Faults), Is.EqualTo((1, 1, 0)), Describe(task));
    }
}
