using JobLog.Testing;
using MassTransit;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Features;

public sealed record QuoteAsk(string Sku, bool Fail = false);

public sealed record QuoteGiven(string Sku);

public sealed record QuoteRefused(string Sku);

public sealed record QuotePending(string Sku);

/// <summary>
/// Answers with the response its requester accepts (<c>IsResponseAccepted&lt;T&gt;</c>, from the request's accept header),
/// or, for a sku starting with <c>stubborn</c>, with <see cref="QuotePending"/> whatever the requester accepts.
/// </summary>
public sealed class QuoteAskConsumer : IConsumer<QuoteAsk>
{
    public async Task Consume(ConsumeContext<QuoteAsk> context)
    {
        var sku = context.Message.Sku;
        if (context.Message.Fail)
        {
            throw new InvalidOperationException($"no price for {sku}");
        }

        if (sku.StartsWith("stubborn", StringComparison.Ordinal))
        {
            await context.RespondAsync(new QuotePending(sku));
        }
        else if (sku.StartsWith("refuse", StringComparison.Ordinal) && context.IsResponseAccepted<QuoteRefused>())
        {
            await context.RespondAsync(new QuoteRefused(sku));
        }
        else if (sku.StartsWith("pending", StringComparison.Ordinal) && context.IsResponseAccepted<QuotePending>())
        {
            await context.RespondAsync(new QuotePending(sku));
        }
        else
        {
            await context.RespondAsync(new QuoteGiven(sku));
        }
    }
}

/// <summary>Requests with several response types, accepted types, a faulting consumer behind a retry (session 30).</summary>
public class Session30RequestTests
{
    private static string Describe(TaskLog t) =>
        $"{t.Name} {t.State} parent={t.ParentRunId} runs=" + string.Join("; ", t.Runs.OrderBy(r => r.Start).Select(r => $"{r.ConsumerType} #{r.Retries} {r.State} {r.ErrorMessage?.Split('\n')[0]}"));

    private static async Task<TaskLog> WaitFor(BusFixture bus, Guid id, Func<TaskLog, bool> done, string because)
    {
        TaskLog? task = null;
        await LedgerHost.EventuallyAsync(async () => done(task = await bus.Host.TaskAsync(id)), TimeSpan.FromSeconds(30), because);
        return task!;
    }

    private static async Task<TaskLog> AnswerTo(BusFixture bus, TaskLog request, string because)
    {
        var run = request.Runs.Single(r => r.ConsumerType == nameof(QuoteAskConsumer));
        TaskLog? answer = null;
        await LedgerHost.EventuallyAsync(async () => (answer = (await bus.Host.TasksAsync()).SingleOrDefault(t => t.ParentRunId == run.Id)) is { Runs.Count: > 0 },
            TimeSpan.FromSeconds(30), because);
        return answer!;
    }

    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task GetResponseOfThreeTypes_EachAnswer_IsTheRequestsChild_ReceivedByTheRequestClient(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x =>
        {
            x.AddConsumer<QuoteAskConsumer>();
            x.AddRequestClient<QuoteAsk>(RequestTimeout.After(s: 20));
        });
        var client = bus.Harness.GetRequestClient<QuoteAsk>();
        var expected = new[] { ("given-1", nameof(QuoteGiven)), ("refuse-1", nameof(QuoteRefused)), ("pending-1", nameof(QuotePending)) };
        foreach (var (sku, answerName) in expected)
        {
            var id = NewId.NextGuid();
            var response = await client.GetResponse<QuoteGiven, QuoteRefused, QuotePending>(new QuoteAsk(sku), x => x.UseExecute(c => c.MessageId = id));
            var got = response.Message switch
            {
                QuoteGiven => nameof(QuoteGiven),
                QuoteRefused => nameof(QuoteRefused),
                QuotePending => nameof(QuotePending),
                _ => "?",
            };
            Assert.That(got, Is.EqualTo(answerName), "the requester's view");
            var request = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, sku + " answered");
            var answer = await AnswerTo(bus, request, sku + "'s answer received");
            TestContext.Out.WriteLine(Describe(request) + " -> " + Describe(answer));
            Assert.That((answer.Name, answer.State, answer.Runs.Single().ConsumerType), Is.EqualTo((answerName, TaskState.Succeeded, "RequestClient")), "the ledger's view");
        }
    }

    /// <summary>
    /// The consumer answers with a type its requester did not ask for (the requester accepts QuoteGiven or QuoteRefused,
    /// the consumer sends QuotePending). MassTransit drops the answer at the bus endpoint, and the requester times out.
    /// Before, the answer's run said the requester had given up (EXPIRED), while it was waiting: it does not accept the
    /// type, an application error (FAILED).
    /// </summary>
    [Test]
    public async Task AnswerOfATypeTheRequesterDoesNotAccept_IsFailed_SayingSo_NotAsARequesterThatGaveUp()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
        {
            x.AddConsumer<QuoteAskConsumer>();
            x.AddRequestClient<QuoteAsk>(RequestTimeout.After(s: 3));
        });
        var client = bus.Harness.GetRequestClient<QuoteAsk>();
        var id = NewId.NextGuid();
        Assert.ThrowsAsync<RequestTimeoutException>(() => client.GetResponse<QuoteGiven, QuoteRefused>(new QuoteAsk("stubborn-1"), x => x.UseExecute(c => c.MessageId = id)));
        var request = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "answered");
        var answer = await AnswerTo(bus, request, "the unaccepted answer's receipt");
        TestContext.Out.WriteLine(Describe(request) + " -> " + Describe(answer));
        var run = answer.Runs.Single();
        Assert.That((answer.Name, run.ConsumerType, run.State), Is.EqualTo((nameof(QuotePending), "RequestClient", TaskRunState.Failed)));
        Assert.That(run.ErrorMessage, Does.Contain("does not accept this type").And.Contain(nameof(QuoteGiven)).And.Contain(nameof(QuoteRefused)),
            "the requester was waiting: it did not accept this type");
    }

    [Test]
    public async Task RequestWhoseConsumerFaultsAfterItsRetries_IsFailedWithItsRetries_TheRequesterGetsTheFault()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
        {
            x.AddConsumer<QuoteAskConsumer>();
            x.AddRequestClient<QuoteAsk>(RequestTimeout.After(s: 20));
        }, retries: 2);
        var client = bus.Harness.GetRequestClient<QuoteAsk>();
        var id = NewId.NextGuid();
        var fault = Assert.ThrowsAsync<RequestFaultException>(() => client.GetResponse<QuoteGiven, QuoteRefused, QuotePending>(new QuoteAsk("broken", Fail: true),
            x => x.UseExecute(c => c.MessageId = id)));
        var request = await WaitFor(bus, id, t => t.State == TaskState.Failed, "faulted");
        TestContext.Out.WriteLine(Describe(request));
        Assert.That(request.Runs.OrderBy(r => r.Retries).Select(r => (r.Retries, r.State)),
            Is.EqualTo(new[] { (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, TaskRunState.Failed) }));
        Assert.That(request.Runs.Single(r => r.State == TaskRunState.Failed).ErrorMessage, Does.Contain("no price for broken"));
        Assert.That(fault!.Fault!.Exceptions.Single().Message, Is.EqualTo("no price for broken"), "the requester's view");
        var tasks = await bus.Host.TasksAsync();
        Assert.That(tasks.Select(t => t.Name), Is.EquivalentTo(new[] { nameof(QuoteAsk) }), "the fault response is no task");
    }
}
