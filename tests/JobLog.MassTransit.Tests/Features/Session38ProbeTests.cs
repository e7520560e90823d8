using System.Collections.Concurrent;
using JobLog.MassTransit.Tests.Scheduling;
using JobLog.Testing;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public enum GatedAnswer
{
    Given,
    Pending,
    Fault,
}

/// <summary>A request whose consumer waits for the test's gate of <paramref name="Id"/> before it answers as told.</summary>
public sealed record GatedAsk(int Id, GatedAnswer Answer);

public sealed record GatedGiven(int Id);

public sealed record GatedPending(int Id);

public sealed class GatedAskConsumer : IConsumer<GatedAsk>
{
    public static readonly ConcurrentDictionary<int, TaskCompletionSource> Gates = new();

    public static readonly ConcurrentDictionary<int, bool> Started = new();

    public async Task Consume(ConsumeContext<GatedAsk> context)
    {
        var id = context.Message.Id;
        Started[id] = true;
        if (Gates.TryGetValue(id, out var gate))
        {
            await gate.Task.WaitAsync(TimeSpan.FromSeconds(120));
        }

        switch (context.Message.Answer)
        {
            case GatedAnswer.Fault:
                throw new InvalidOperationException("no answer for " + id);
            case GatedAnswer.Pending:
                await context.RespondAsync(new GatedPending(id));
                break;
            default:
                await context.RespondAsync(new GatedGiven(id));
                break;
        }
    }
}

public sealed record Hop(int N);

/// <summary>On the first bus: sends <see cref="OtherBusJob"/> through the second bus.</summary>
public sealed class HopConsumer(ISecondBus second) : IConsumer<Hop>
{
    public async Task Consume(ConsumeContext<Hop> context)
    {
        var endpoint = await second.GetSendEndpoint(new Uri("queue:hop-back"));
        await endpoint.Send(new HopBack(context.Message.N), context.CancellationToken);
    }
}

public sealed record HopBack(int N);

/// <summary>On the second bus: publishes <see cref="Landed"/> through the first bus.</summary>
public sealed class HopBackConsumer(IBus first) : IConsumer<HopBack>
{
    public Task Consume(ConsumeContext<HopBack> context) => first.Publish(new Landed(context.Message.N), context.CancellationToken);
}

public sealed record Landed(int N);

public sealed class LandedConsumer : IConsumer<Landed>
{
    public Task Consume(ConsumeContext<Landed> context) => Task.CompletedTask;
}

public sealed record StartGatedCheck(Guid OrderId, int N, GatedAnswer Answer);

public sealed class GatedCheck : SagaStateMachineInstance
{
    public Guid CorrelationId { get; set; }

    public string CurrentState { get; set; } = "";

    public Guid? AskRequestId { get; set; }
}

/// <summary>A saga that asks <see cref="GatedAskConsumer"/> (timeout 2 s, on the bus's scheduler) and ends Done, TimedOut or Failed.</summary>
public sealed class GatedCheckMachine : MassTransitStateMachine<GatedCheck>
{
    public GatedCheckMachine()
    {
        InstanceState(x => x.CurrentState);
        Event(() => Start, e => e.CorrelateById(m => m.Message.OrderId));
        Request(() => Ask, x => x.AskRequestId, r =>
        {
            r.ServiceAddress = new Uri("queue:gated-ask");
            r.Timeout = TimeSpan.FromSeconds(2);
        });
        Initially(When(Start)
            .Request(Ask, c => new GatedAsk(c.Message.N, c.Message.Answer))
            .TransitionTo(Ask.Pending));
        During(Ask.Pending,
            When(Ask.Completed).TransitionTo(Done),
            When(Ask.TimeoutExpired).TransitionTo(TimedOut),
            When(Ask.Faulted).TransitionTo(Failed));
    }

    public State Done { get; private set; } = null!;

    public State TimedOut { get; private set; } = null!;

    public State Failed { get; private set; } = null!;

    public Event<StartGatedCheck> Start { get; private set; } = null!;

    public Request<GatedCheck, GatedAsk, GatedGiven> Ask { get; private set; } = null!;
}

/// <summary>
/// Session 38's probes of real MassTransit applications (docs/reviews/session38-apps.md): a responder that faults after
/// its client timed out, a request with its own TimeToLive, a saga's <c>Request</c> on the JobLog scheduler, a second bus
/// without JobLog.
/// </summary>
public class Session38ProbeTests
{
    private static int NextId() => Random.Shared.Next(1000, int.MaxValue);

    private static async Task<TaskLog> AnswerTo(BusFixture bus, TaskLog request, string because)
    {
        var run = request.Runs.Single(r => r.ConsumerType == nameof(GatedAskConsumer));
        TaskLog? answer = null;
        await LedgerHost.EventuallyAsync(
            async () => (answer = (await bus.Host.TasksAsync()).SingleOrDefault(t => t.ParentRunId == run.Id)) is { State: not TaskState.Waiting, Runs.Count: > 0 },
            TimeSpan.FromSeconds(60), because);
        return answer!;
    }

    /// <summary>
    /// The client gives up (its timeout, 2 s), then the consumer faults. MassTransit sends the fault to the response
    /// address, where nothing waits for it any more. The request is FAILED with the consumer's error; the fault is no task
    /// (as any fault nobody here consumes) and nothing is left WAITING or ACTIVE.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task Request_WhoseResponderFaultsAfterTheClientTimedOut_IsFailedWithTheError_NothingLeftWaiting(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<GatedAskConsumer>());
        var n = NextId();
        var gate = GatedAskConsumer.Gates[n] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var id = NewId.NextGuid();
        var client = bus.Bus.CreateRequestClient<GatedAsk>(RequestTimeout.After(s: 2));
        Assert.ThrowsAsync<RequestTimeoutException>(() => client.GetResponse<GatedGiven>(new GatedAsk(n, GatedAnswer.Fault), x => x.UseExecute(c => c.MessageId = id)));
        await LedgerHost.EventuallyAsync(() => Task.FromResult(GatedAskConsumer.Started.ContainsKey(n)), TimeSpan.FromSeconds(60), "the consumer started");
        gate.SetResult();

        var task = await WaitFor(bus, id, t => t.State == TaskState.Failed, "the request faulted", 60);
        await SettledAsync(bus.Host, nameof(GatedAsk));
        var tasks = await bus.Host.TasksAsync();
        foreach (var t in tasks)
        {
            TestContext.Out.WriteLine(Describe(t));
        }

        var run = task.Runs.Single();
        Assert.That((run.ConsumerType, run.State, run.Retries), Is.EqualTo((nameof(GatedAskConsumer), TaskRunState.Failed, 0)));
        Assert.That(run.ErrorMessage, Does.Contain("no answer for " + n));
        Assert.That(tasks.Where(t => t.Id != id).Select(Describe), Is.Empty, "the fault sent to the gone requester is no task");
        if (bus.Vhost is not null)
        {
            await LedgerHost.EventuallyAsync(async () => await bus.Vhost.MessagesInQueueAsync("gated-ask_error") == 1, because: "the request in gated-ask_error");
        }
    }

    /// <summary>
    /// A request whose own TimeToLive (<c>x.TimeToLive</c>, 2 s) is shorter than its client's timeout (10 minutes): in
    /// MassTransit 8.5.12 the client gives up at the TimeToLive (<see cref="RequestTimeoutException"/>), not at the timeout.
    /// The consumer took it in time and answers after that: the request is SUCCEEDED (with the TimeToLive as its expiry) and
    /// the answer, whichever type, is EXPIRED as one nobody waited for any more; an answer of a type the client does not
    /// accept is not called a contract error, since the client had given up (JobLog remembers a request's accept list
    /// until its TimeToLive, which is the client's wait).
    /// </summary>
    [TestCase(GatedAnswer.Given, TestName = "Request_WithATimeToLiveShorterThanItsTimeout_TheClientGivesUpAtIt_TheLaterAnswerIsExpired")]
    [TestCase(GatedAnswer.Pending, TestName = "Request_WithATimeToLiveShorterThanItsTimeout_TheClientGivesUpAtIt_TheLaterAnswerOfATypeNotAcceptedIsExpired")]
    public async Task Request_WithATimeToLiveShorterThanItsTimeout(GatedAnswer answer)
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<GatedAskConsumer>());
        var n = NextId();
        var gate = GatedAskConsumer.Gates[n] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var id = NewId.NextGuid();
        var client = bus.Bus.CreateRequestClient<GatedAsk>(RequestTimeout.After(m: 10));
        var response = client.GetResponse<GatedGiven>(new GatedAsk(n, answer), x =>
        {
            x.TimeToLive = RequestTimeout.After(s: 2);
            x.UseExecute(c => c.MessageId = id);
        });
        await LedgerHost.EventuallyAsync(() => Task.FromResult(GatedAskConsumer.Started.ContainsKey(n)), TimeSpan.FromSeconds(60), "the consumer started");
        await bus.Host.FlushAsync();
        var sent = await Find(bus, id);
        Assert.That(sent?.Expires - sent?.DispatchedAt, Is.EqualTo(TimeSpan.FromSeconds(2)), "the request's own TimeToLive is its expiry");

        // Within two minutes, far before the 10-minute timeout: a client waiting for its timeout fails with a TimeoutException.
        Assert.ThrowsAsync<RequestTimeoutException>(async () => await response.WaitAsync(TimeSpan.FromSeconds(120)), "the client gave up at the TimeToLive");
        gate.SetResult();

        var request = await WaitFor(bus, id, t => t.State == TaskState.Succeeded, "the request answered", 60);
        var answerTask = await AnswerTo(bus, request, "the answer's end");
        TestContext.Out.WriteLine(Describe(request) + " -> " + Describe(answerTask));
        var received = answerTask.Runs.Single();
        var name = answer == GatedAnswer.Given ? nameof(GatedGiven) : nameof(GatedPending);
        Assert.That((answerTask.Name, answerTask.State, received.ConsumerType, received.State), Is.EqualTo((name, TaskState.Expired, "RequestClient", TaskRunState.Expired)));
        Assert.That(received.ErrorMessage, Does.StartWith("Not received: ").And.Contain("given up"));
    }

    /// <summary>
    /// A state machine's <c>Request</c> on RabbitMQ without the delayed-message plugin: its timeout is scheduled on the
    /// JobLog scheduler. The answered request's timeout is cancelled (EXPIRED, never run); the one whose consumer waits
    /// past it fires (the saga goes to TimedOut) and its late answer ends too; the faulted one's <c>Fault&lt;GatedAsk&gt;</c>,
    /// which the saga consumes, is a task linked to the consumer's FAILED run. No run ACTIVE, nothing WAITING.
    /// </summary>
    [Test]
    public async Task SagaRequest_OnTheJobLogScheduler_Answered_TimedOut_Faulted()
    {
        await using var bus = await SchedulerBus.StartAsync(TestLedger.Sqlite(), x =>
        {
            x.AddConsumer<GatedAskConsumer>();
            x.AddSagaStateMachine<GatedCheckMachine, GatedCheck>().InMemoryRepository();
        });
        var (quick, slow, broken) = (NewId.NextGuid(), NewId.NextGuid(), NewId.NextGuid());
        var (quickN, slowN, brokenN) = (NextId(), NextId(), NextId());
        var gate = GatedAskConsumer.Gates[slowN] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await bus.Bus.Publish(new StartGatedCheck(quick, quickN, GatedAnswer.Given));
        await bus.Bus.Publish(new StartGatedCheck(slow, slowN, GatedAnswer.Given));
        await bus.Bus.Publish(new StartGatedCheck(broken, brokenN, GatedAnswer.Fault));

        static bool Ended(TaskLog t) => t.State is not (TaskState.Waiting or TaskState.Active);
        static List<TaskLog> Timeouts(List<TaskLog> tasks) => tasks.Where(t => t.Name.Contains("RequestTimeoutExpired", StringComparison.Ordinal)).ToList();
        List<TaskLog> tasks = [];
        await LedgerHost.EventuallyAsync(async () =>
        {
            tasks = await bus.Host.TasksAsync();
            return Timeouts(tasks).Count(t => t.State == TaskState.Succeeded) == 1;
        }, TimeSpan.FromSeconds(90), "the slow request's timeout fired");
        gate.SetResult();
        await LedgerHost.EventuallyAsync(async () =>
        {
            tasks = await bus.Host.TasksAsync();
            return tasks.Count(g => g.Name == nameof(GatedGiven)) == 2 && tasks.Where(g => g.Name == nameof(GatedGiven)).All(Ended)
                && Timeouts(tasks).Count == 3 && Timeouts(tasks).All(Ended)
                && tasks.Where(t => !t.IsInternal).All(Ended)
                && tasks.SelectMany(t => t.Runs).All(r => r.State != TaskRunState.Active);
        }, TimeSpan.FromSeconds(90), "every request settled, the late answer received");
        foreach (var t in tasks.OrderBy(t => t.DispatchedAt))
        {
            TestContext.Out.WriteLine($"{t.Id} internal={t.IsInternal} err={t.ErrorMessage?.Split('\n')[0]} " + Describe(t));
        }

        var asks = tasks.Where(t => t.Name == nameof(GatedAsk)).ToList();
        var failedAsk = asks.Single(t => t.State == TaskState.Failed);
        Assert.Multiple(() =>
        {
            Assert.That(tasks.SelectMany(t => t.Runs).Where(r => r.State == TaskRunState.Active), Is.Empty, "no run left ACTIVE");
            Assert.That(tasks.Where(t => t.State is TaskState.Waiting or TaskState.Active).Select(Describe), Is.Empty, "nothing left waiting");
            Assert.That(asks.Select(t => t.State), Is.EquivalentTo(new[] { TaskState.Succeeded, TaskState.Succeeded, TaskState.Failed }));
            var startRuns = tasks.Where(t => t.Name == nameof(StartGatedCheck)).SelectMany(t => t.Runs).Where(r => r.ConsumerType == nameof(GatedCheck)).Select(r => (Guid?)r.Id).ToList();
            Assert.That(asks.Select(t => t.ParentRunId), Is.EquivalentTo(startRuns), "each request is the child of the saga run that sent it");
            var timeouts = Timeouts(tasks);
            Assert.That(timeouts.Select(t => t.ParentRunId), Is.EquivalentTo(startRuns), "each timeout is scheduled by the saga run that sent the request");
            Assert.That(timeouts.Select(t => t.IsInternal), Has.All.True, "MassTransit's own message");
            Assert.That(timeouts.Select(t => t.State), Is.EquivalentTo(new[] { TaskState.Expired, TaskState.Expired, TaskState.Succeeded }),
                "the answered and the faulted requests' timeouts cancelled, the slow one's fired");
            Assert.That(timeouts.Where(t => t.State == TaskState.Expired).Select(t => t.ErrorMessage), Has.All.StartWith("Cancelled: CancelScheduledSend("));
            Assert.That(timeouts.Where(t => t.State == TaskState.Expired).SelectMany(t => t.Runs), Is.Empty, "a cancelled timeout never ran");
            var fired = timeouts.Single(t => t.State == TaskState.Succeeded).Runs.Single();
            Assert.That((fired.ConsumerType, fired.State), Is.EqualTo((nameof(GatedCheck), TaskRunState.Succeeded)));
            Assert.That(fired.Output, Does.Contain("→ TimedOut"), "the timeout moved the saga");
            var answers = tasks.Where(t => t.Name == nameof(GatedGiven)).ToList();
            Assert.That(answers.SelectMany(t => t.Runs).Select(r => (r.ConsumerType, r.State)),
                Is.EquivalentTo(new[] { (nameof(GatedCheck), TaskRunState.Succeeded), (nameof(GatedCheck), TaskRunState.Succeeded) }));
            Assert.That(answers.SelectMany(t => t.Runs).Select(r => r.Output), Has.One.Contain("→ Done"), "the quick answer completed its saga");
            var fault = tasks.SingleOrDefault(t => t.Name.StartsWith("Fault", StringComparison.Ordinal));
            Assert.That(fault?.ParentRunId, Is.EqualTo(failedAsk.Runs.Single().Id), "the fault the saga consumes is the failed run's child");
            Assert.That(fault?.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(GatedCheck), TaskRunState.Succeeded) }));
            Assert.That(fault?.Runs.Single().Output, Does.Contain("→ Failed"));
        });
    }

    /// <summary>
    /// Two buses, JobLog on the first only. The first bus's consumer sends through the second; the second's consumer
    /// publishes through the first. What the first bus dispatches and consumes is recorded; nothing the second bus sends
    /// or consumes is, and nothing is left WAITING for a run that bus would never record.
    /// </summary>
    [Test]
    public async Task TwoBuses_JobLogOnTheFirstOnly_RecordsTheFirstBussTasks_NothingOfTheSecondLeftWaiting()
    {
        await using var first = await RabbitMqVhost.CreateAsync();
        await using var second = await RabbitMqVhost.CreateAsync();
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s =>
        {
            s.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            s.AddMassTransit(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddConsumer<HopConsumer>();
                x.AddConsumer<LandedConsumer>();
                x.UsingTestVhost(first);
            });
            s.AddMassTransit<ISecondBus>(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddConsumer<HopBackConsumer>();
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(second);
                    cfg.ConfigureEndpoints(context);
                });
            });
        });
        var id = NewId.NextGuid();
        await host.Services.GetRequiredService<IBus>().Publish(new Hop(5), x => x.MessageId = id);

        List<TaskLog> tasks = [];
        await LedgerHost.EventuallyAsync(async () =>
        {
            tasks = await host.TasksAsync();
            return tasks.Any(t => t.Name == nameof(Landed) && t.State == TaskState.Succeeded) && tasks.Single(t => t.Id == id).State == TaskState.Succeeded;
        }, TimeSpan.FromSeconds(60), "the hop and its landing consumed");
        await host.FlushAsync();
        tasks = await host.TasksAsync();
        foreach (var t in tasks.OrderBy(t => t.DispatchedAt))
        {
            TestContext.Out.WriteLine(Describe(t));
        }

        var hop = tasks.Single(t => t.Id == id);
        var landed = tasks.Single(t => t.Name == nameof(Landed));
        Assert.Multiple(() =>
        {
            Assert.That(hop.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(HopConsumer), TaskRunState.Succeeded) }));
            Assert.That(landed.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (nameof(LandedConsumer), TaskRunState.Succeeded) }));
            Assert.That(tasks.Select(t => t.Name), Is.EquivalentTo(new[] { nameof(Hop), nameof(Landed) }), "nothing of the second bus's");
            Assert.That(tasks.Where(t => t.State is TaskState.Waiting or TaskState.Active), Is.Empty, "nothing left waiting");
        });
    }

    /// <summary>
    /// The in-memory bus stops (its hosted service, <c>ConsumerStopTimeout</c> 2 s) while its consumer waits on
    /// <c>context.CancellationToken</c>: the token is cancelled and the run ends, never left ACTIVE, not SUCCEEDED.
    /// </summary>
    [Test]
    public async Task InMemoryBus_StoppedUnderAConsumerObservingItsToken_TheRunEnds()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
        {
            x.AddConsumer<TokenWatchingConsumer>();
            ((IServiceCollection)x).Configure<MassTransitHostOptions>(o => o.ConsumerStopTimeout = TimeSpan.FromSeconds(2));
        });
        var id = NewId.NextGuid();
        var n = NextId();
        var started = TokenWatchingConsumer.Started[n] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await bus.Bus.Publish(new WatchToken(n), x => x.MessageId = id);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(120));
        await WaitFor(bus, id, t => t.Runs.Any(), "the run began", 60);
        foreach (var service in bus.Host.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().Where(s => s.GetType().FullName!.StartsWith("MassTransit", StringComparison.Ordinal)))
        {
            await service.StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(120));
        }

        var task = await WaitFor(bus, id, t => t.Runs.All(r => r.State != TaskRunState.Active), "the run ended", 60);
        TestContext.Out.WriteLine($"err={task.ErrorMessage} " + Describe(task));
        var run = task.Runs.Single();
        Assert.That((run.State, run.Stop is null), Is.Not.EqualTo((TaskRunState.Active, true)));
        Assert.That(run.State, Is.Not.EqualTo(TaskRunState.Succeeded), "the consumer did not finish");
        Assert.That(TokenWatchingConsumer.Cancelled.ContainsKey(n), Is.True, "the consumer saw its token cancelled");
    }
}

public sealed record WatchToken(int N);

public sealed class TokenWatchingConsumer : IConsumer<WatchToken>
{
    public static readonly ConcurrentDictionary<int, TaskCompletionSource> Started = new();

    public static readonly ConcurrentDictionary<int, bool> Cancelled = new();

    public async Task Consume(ConsumeContext<WatchToken> context)
    {
        Started.GetValueOrDefault(context.Message.N)?.TrySetResult();
        try
        {
            await Task.Delay(TimeSpan.FromMinutes(10), context.CancellationToken);
        }
        catch (OperationCanceledException)
        {
            Cancelled[context.Message.N] = true;
            throw;
        }
    }
}
