using JobLog.MassTransit.Tests.Features;
using JobLog.Testing;
using MassTransit;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Hostile;

/// <summary>
/// A response that arrives after its requester timed out (<see cref="RequestTimeoutException"/>): the request was
/// consumed and answered (SUCCEEDED), and the answer, which nobody waits for any more, is EXPIRED, saying so, never
/// left WAITING nor called a failure of the consumer.
/// </summary>
public class LateResponseTests
{
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task ResponseAfterTheRequestersTimeout_TheRequestSucceeds_TheLateResponseIsExpired(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<QuoteConsumer>());
        var id = NewId.NextGuid();
        var quote = Random.Shared.Next(1000, int.MaxValue);
        var gate = QuoteConsumer.Gates[quote] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var client = bus.Bus.CreateRequestClient<QuoteRequest>(RequestTimeout.After(s: 3));

        // The consumer takes the request (its time to live is the timeout, 3 s) and answers once the gate opens, after the
        // requester gave up. (Setting a longer TimeToLive in the request pipe also held MassTransit's requester past the
        // timeout here: it then got the consumer's fault, 30 s later.)
        var pending = client.GetResponse<QuoteAccepted>(
            new QuoteRequest(quote, false),
            x => x.UseExecute(c => c.MessageId = id));
        Exception? caught = null;
        try
        {
            await pending;
        }
        catch (Exception ex)
        {
            caught = ex;
        }

        Assert.That(caught, Is.InstanceOf<RequestTimeoutException>(), "the requester gave up before the consumer answered");
        await LedgerHost.EventuallyAsync(() => Task.FromResult(QuoteConsumer.Started.ContainsKey(quote)), TimeSpan.FromSeconds(60), "the consumer started");
        gate.SetResult();

        TaskLog? task = null;
        await LedgerHost.EventuallyAsync(async () => (task = await bus.Host.TaskAsync(id)) is { State: TaskState.Succeeded }, TimeSpan.FromSeconds(60), "the request consumed and answered");
        var run = task!.Runs.Single();
        TaskLog? response = null;
        await LedgerHost.EventuallyAsync(
            async () => (response = (await bus.Host.TasksAsync()).SingleOrDefault(t => t.ParentRunId == run.Id)) is { State: not TaskState.Waiting, Runs.Count: > 0 },
            TimeSpan.FromSeconds(60),
            "the late response has its end");
        TestContext.Out.WriteLine($"{task.Name} {task.State} {run.ConsumerType} {run.State} -> {response!.Name} {response.State}: "
            + string.Join("; ", response.Runs.Select(r => $"{r.ConsumerType} {r.State} {r.ErrorMessage?.Split('\n')[0]}")));
        Assert.That((run.ConsumerType, run.State), Is.EqualTo((nameof(QuoteConsumer), TaskRunState.Succeeded)), "the consumer did its work");
        var received = response.Runs.Single();
        Assert.That((response.Name, response.State, received.ConsumerType, received.State),
            Is.EqualTo((nameof(QuoteAccepted), TaskState.Expired, "RequestClient", TaskRunState.Expired)));
        Assert.That(received.ErrorMessage, Does.StartWith("Not received: "));
    }
}
