using JobLog.Failures;
using JobLog.MassTransit.Tests.Failures;
using JobLog.MassTransit.Tests.Jobs;
using JobLog.Testing;
using MassTransit;
using MassTransit.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Apps45;

/// <summary>
/// Retry and resolve of a failure from the ledger (<see cref="IFailureActions"/>, what the dashboard, API and CLI call) in
/// each kind of MassTransit application: what is kept, what a retry sends, and whether it does what a user expects, or
/// is refused with a reason that says why.
/// </summary>
[TestFixture]
public sealed class FailedAppRetryTests
{
    private Switch45 _switch = new();

    [SetUp]
    public void SetUp() => _switch = new Switch45();

    private Task<BusFixture> StartAsync(Action<IBusRegistrationConfigurator> consumers, Transport transport = Transport.InMemory,
        Action<IBusRegistrationContext, IBusFactoryConfigurator>? configureBus = null, TestLedger? ledger = null) =>
        BusFixture.StartAsync(transport, consumers, options: o =>
        {
            o.Failures.RetriesPerSecond = 5000;
            o.Failures.RetryPollInterval = TimeSpan.FromMilliseconds(100);
        }, ledger: ledger, configureBus: configureBus, configureServices: s => s.AddSingleton(_switch));

    [TestCase(LedgerProvider.Sqlite)]
    [TestCase(LedgerProvider.PostgreSql)]
    public async Task CourierRoutingSlip_WhoseActivityFailed_IsRefused_SayingCourierCompensatedIt_AndCanBeResolved(LedgerProvider provider)
    {
        // Courier catches the activity's exception, faults the routing slip and compensates what completed: the delivery
        // does not fail, so no message is kept, and the execute message (with its routing slip) sent again would run
        // Charge on a slip whose Reserve is already compensated. The refusal must say so, not only "no kept message".
        await using var bus = await StartAsync(x =>
        {
            x.AddActivity<Reserve45Activity, Reserve45Arguments, Reserve45Log>();
            x.AddExecuteActivity<Charge45Activity, Charge45Arguments>();
        }, ledger: provider == LedgerProvider.Sqlite ? TestLedger.Sqlite() : await TestLedger.PostgresAsync());
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddActivity("Reserve", new Uri($"queue:{KebabCaseEndpointNameFormatter.Instance.ExecuteActivity<Reserve45Activity, Reserve45Arguments>()}"), new { OrderId = 1 });
        builder.AddActivity("Charge", new Uri($"queue:{KebabCaseEndpointNameFormatter.Instance.ExecuteActivity<Charge45Activity, Charge45Arguments>()}"), new { OrderId = 1 });
        var slip = builder.Build();
        await bus.Bus.Execute(slip);
        var failed = await Retry45.WaitAsync(bus.Host, slip.TrackingNumber, t => t.State == TaskState.Failed, "the routing slip failed");
        await LedgerHost.EventuallyAsync(() => Task.FromResult(_switch.Of("reserve compensated") == 1), TimeSpan.FromSeconds(30), "Reserve compensated");

        _switch.Open = true;
        var (receipt, items) = await Retry45.RetryAsync(bus.Host, slip.TrackingNumber);
        var resolved = await bus.Host.Services.GetRequiredService<IFailureActions>().ResolveAsync(
            new FailureActionRequest([slip.TrackingNumber], "apps45"), FailureResolution.Resolved);

        Assert.That((receipt.Accepted, receipt.Skipped), Is.EqualTo((0, 1)), Retry45.Describe(failed));
        Assert.That(items.Single().Reason, Does.Contain("routing slip").And.Contain("compensat"));
        Assert.That(resolved.Accepted, Is.EqualTo(1));
        Assert.That((_switch.Of("reserve"), _switch.Of("charge")), Is.EqualTo((1, 1)), "nothing ran again");
    }

    /// <summary>Opens an order saga, then publishes its Paid event, which fails and is kept; returns the order and the event's id.</summary>
    private static async Task<(Guid OrderId, Guid PaidId)> OpenThenFailPaidAsync(BusFixture bus)
    {
        var orderId = NewId.NextGuid();
        await bus.Bus.Publish(new Opened45(orderId));
        await LedgerHost.EventuallyAsync(() => bus.Host.QueryAsync(db => db.TaskRunLogs.AnyAsync(r => r.Output != null && r.Output.Contains("→ Open"))),
            TimeSpan.FromSeconds(30), "the saga opened");
        var paidId = NewId.NextGuid();
        await bus.Bus.Publish(new Paid45(orderId), x => x.MessageId = paidId);
        await Retry45.WaitAsync(bus.Host, paidId, t => t.State == TaskState.Failed, "the Paid event failed");
        await Retry45.WaitKeptAsync(bus.Host, paidId);
        return (orderId, paidId);
    }

    [Test]
    public async Task SagaEvent_WhoseHandlerFaulted_IsRetried_ToTheSameInstance_WhichTakesItFromTheStateItWasIn()
    {
        await using var bus = await StartAsync(x => x.AddSagaStateMachine<Order45Machine, Order45State>().InMemoryRepository());
        var (orderId, paidId) = await OpenThenFailPaidAsync(bus);

        _switch.Open = true;
        var (receipt, _) = await Retry45.RetryAsync(bus.Host, paidId);
        var task = await Retry45.WaitAsync(bus.Host, paidId, t => t.State == TaskState.Succeeded, "the retried event succeeded");

        Assert.That(receipt.Accepted, Is.EqualTo(1));
        var runs = task.Runs.OrderBy(r => r.Retries).ToList();
        Assert.That(runs.Select(r => (r.State, r.Retries)), Is.EqualTo(new[] { (TaskRunState.Failed, 0), (TaskRunState.Succeeded, 1) }), Retry45.Describe(task));
        Assert.That(runs[1].Output, Does.Contain($"Saga Order45State {orderId}: Open → PaidState"), "the same instance, from the state it was in");
        Assert.That(_switch.Of("paid ok"), Is.EqualTo(1));
    }

    [Test]
    public async Task SagaEvent_WhoseInstanceMovedOnMeanwhile_IsRetried_AndFailsAsNotAccepted_SayingSo()
    {
        await using var bus = await StartAsync(x => x.AddSagaStateMachine<Order45Machine, Order45State>().InMemoryRepository());
        var (orderId, paidId) = await OpenThenFailPaidAsync(bus);
        var cancelledId = NewId.NextGuid();
        await bus.Bus.Publish(new Cancelled45(orderId), x => x.MessageId = cancelledId);
        await Retry45.WaitAsync(bus.Host, cancelledId, t => t.State == TaskState.Succeeded, "the saga cancelled");

        _switch.Open = true;
        var (receipt, _) = await Retry45.RetryAsync(bus.Host, paidId);
        var task = await Retry45.WaitAsync(bus.Host, paidId, t => t.Runs.Count == 2 && t.State == TaskState.Failed, "the retried event ran");

        Assert.That(receipt.Accepted, Is.EqualTo(1));
        var retried = task.Runs.Single(r => r.Retries == 1);
        Assert.That(retried.ErrorMessage, Does.StartWith("Not accepted"), Retry45.Describe(task));
        Assert.That(_switch.Of("paid ok"), Is.Zero, "the handler did not run in the wrong state");
    }

    [Test]
    public async Task JobConsumer_WhoseJobFailedForGood_IsRefused_NamingTheJobServicesRetry_WhichRunsItAgainAsANewRunOfTheTask()
    {
        // The job service runs the job outside any delivery's failure (the job saga faults it), so nothing is kept, and the
        // job's message (or a JobSubmitted) sent again would be a second job or nothing. A user expects the job to run again:
        // the refusal names how (the job service's RetryJob), and that is recorded as a new run of the job's task.
        await using var host = await JobBus.StartAsync(
            o =>
            {
                o.Failures.RetriesPerSecond = 5000;
                o.Failures.RetryPollInterval = TimeSpan.FromMilliseconds(100);
            },
            x => x.AddConsumer<Report45Consumer>(c => c.Options<JobOptions<Report45>>(o => o.SetRetry(r => r.None()))),
            s => s.AddSingleton(_switch));
        var bus = host.Services.GetTestHarness().Bus;
        var jobId = await bus.SubmitJob(new Report45(1), CancellationToken.None);
        var failed = await Retry45.WaitAsync(host, jobId, t => t.State == TaskState.Failed, "the job failed");

        _switch.Open = true;
        var (receipt, items) = await Retry45.RetryAsync(host, jobId);
        await bus.RetryJob(jobId);
        var task = await Retry45.WaitAsync(host, jobId, t => t.State == TaskState.Succeeded, "the job ran again and succeeded");

        Assert.That(receipt.Accepted, Is.Zero, Retry45.Describe(failed));
        Assert.That(items.Single().Reason, Does.StartWith("no kept message: a job of MassTransit's job service").And.Contain("RetryJob"));
        Assert.That(_switch.Of("report ok"), Is.EqualTo(1), Retry45.Describe(task));
        Assert.That(task.Runs.OrderBy(r => r.Retries).Select(r => r.State), Is.EqualTo(new[] { TaskRunState.Failed, TaskRunState.Succeeded }), Retry45.Describe(task));
    }

    [Test]
    public async Task BatchConsumer_WhoseBatchFaulted_HasEachMessageKept_RetriedOneAlone_ThenTheOthersTogether()
    {
        await using var bus = await StartAsync(x => x.AddConsumer<Line45BatchConsumer>(c =>
            c.Options<BatchOptions>(o => o.SetMessageLimit(3).SetTimeLimit(TimeSpan.FromMilliseconds(500)))));
        var ids = Enumerable.Range(0, 3).Select(_ => NewId.NextGuid()).ToList();
        await bus.Bus.PublishBatch(ids.Select((_, i) => new Line45(i)), x => x.MessageId = ids[x.Message.N]);
        foreach (var id in ids)
        {
            await Retry45.WaitAsync(bus.Host, id, t => t.State == TaskState.Failed, "each message of the batch failed");
            await Retry45.WaitKeptAsync(bus.Host, id);
        }

        _switch.Open = true;
        var (one, _) = await Retry45.RetryAsync(bus.Host, ids[0]);
        await Retry45.WaitAsync(bus.Host, ids[0], t => t.State == TaskState.Succeeded, "the first retried alone");
        var (two, _) = await Retry45.RetryAsync(bus.Host, ids[1], ids[2]);
        var tasks = new List<TaskLog>();
        foreach (var id in ids.Skip(1))
        {
            tasks.Add(await Retry45.WaitAsync(bus.Host, id, t => t.State == TaskState.Succeeded, "the other two retried"));
        }

        Assert.That((one.Accepted, two.Accepted), Is.EqualTo((1, 2)));
        Assert.That((_switch.Of("line 0"), _switch.Of("line 1"), _switch.Of("line 2")), Is.EqualTo((2, 2, 2)), "each consumed once more");
        Assert.That(tasks.Select(t => t.Runs.Single(r => r.State == TaskRunState.Succeeded).Output), Has.All.StartWith("Batch of "));
    }

    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task MessageConsumedByTwoEndpoints_OneFailed_IsRetriedAtTheFailedEndpointOnly(Transport transport)
    {
        await using var bus = await StartAsync(x =>
        {
            x.AddConsumer<Shipped45LedgerConsumer>();
            x.AddConsumer<Shipped45MailConsumer>();
        }, transport);
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new Shipped45(1), x => x.MessageId = id);
        await Retry45.WaitAsync(bus.Host, id, t => t.State == TaskState.Failed && t.Runs.Count == 2, "the mail consumer failed, the ledger one not");
        await Retry45.WaitKeptAsync(bus.Host, id);

        _switch.Open = true;
        var (receipt, _) = await Retry45.RetryAsync(bus.Host, id);
        var task = await Retry45.WaitAsync(bus.Host, id, t => t.State == TaskState.Succeeded, "the retry succeeded");

        Assert.That(receipt.Accepted, Is.EqualTo(1));
        Assert.That((_switch.Of("ledger"), _switch.Of("mail"), _switch.Of("mail ok")), Is.EqualTo((1, 2, 1)), Retry45.Describe(task));
        Assert.That(task.Runs.Select(r => (r.ConsumerType, r.Retries, r.State)).Order(), Is.EqualTo(new[]
        {
            ("Shipped45LedgerConsumer", 0, TaskRunState.Succeeded),
            ("Shipped45MailConsumer", 0, TaskRunState.Failed),
            ("Shipped45MailConsumer", 1, TaskRunState.Succeeded),
        }));
    }

    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task MessageThroughTheInMemoryOutbox_WhoseConsumerFailed_IsRetried_AndWhatItPublishesGoesOutOnce_UnderTheNewRun(Transport transport)
    {
        await using var bus = await StartAsync(x =>
        {
            x.AddConsumer<Invoice45Consumer>();
            x.AddConsumer<Invoiced45Consumer>();
        }, transport, (context, cfg) => cfg.UseInMemoryOutbox(context));
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new Invoice45(1), x => x.MessageId = id);
        await Retry45.WaitAsync(bus.Host, id, t => t.State == TaskState.Failed, "the invoice failed");
        await Retry45.WaitKeptAsync(bus.Host, id);

        _switch.Open = true;
        var (receipt, _) = await Retry45.RetryAsync(bus.Host, id);
        var task = await Retry45.WaitAsync(bus.Host, id, t => t.State == TaskState.Succeeded, "the retry succeeded");
        await LedgerHost.EventuallyAsync(() => Task.FromResult(_switch.Of("invoiced") > 0), TimeSpan.FromSeconds(30), "the invoice published");
        var retriedRun = task.Runs.Single(r => r.State == TaskRunState.Succeeded).Id;
        var children = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Where(t => t.Name == "Invoiced45").ToListAsync());

        Assert.That(receipt.Accepted, Is.EqualTo(1));
        Assert.That(_switch.Of("invoiced"), Is.EqualTo(1), "the failed attempt's publish never left the outbox");
        Assert.That(children.Select(c => c.ParentRunId), Is.EqualTo(new Guid?[] { retriedRun }));
    }

    [Test]
    public async Task Request_WhoseRequesterIsGone_IsRetried_TheResponseGoesNowhere_AndNothingHangs()
    {
        // The requester: a second bus on the same vhost whose temporary response queue is deleted when it stops.
        await using var bus = await StartAsync(x => x.AddConsumer<Quote45Consumer>(), Transport.RabbitMq);
        var requester = Bus.Factory.CreateUsingRabbitMq(cfg => cfg.Host(RabbitMqVhost.Host, bus.Vhost!.Name, h =>
        {
            h.Username("guest");
            h.Password("guest");
        }));
        await requester.StartAsync();
        var id = NewId.NextGuid();
        try
        {
            var client = requester.CreateRequestClient<Quote45>(new Uri("queue:quote45"), RequestTimeout.After(s: 30));
            Assert.ThrowsAsync<RequestFaultException>(() => client.GetResponse<Quoted45>(new Quote45(1), x => x.UseExecute(c => c.MessageId = id)));
        }
        finally
        {
            await requester.StopAsync();
        }

        await Retry45.WaitAsync(bus.Host, id, t => t.State == TaskState.Failed, "the request failed");
        await Retry45.WaitKeptAsync(bus.Host, id);

        _switch.Open = true;
        var (receipt, _) = await Retry45.RetryAsync(bus.Host, id);
        var progress = await FailureTestKit.WaitRetryDoneAsync(bus.Host, receipt.RequestId);
        var task = await Retry45.WaitAsync(bus.Host, id, t => t.State == TaskState.Succeeded, "the retried request succeeded");

        Assert.That(progress, Is.EqualTo(new RetryProgress(receipt.RequestId, 1, 1, 0, 0, true)));
        Assert.That(_switch.Of("quote ok"), Is.GreaterThanOrEqualTo(1), Retry45.Describe(task));
        // Found, not fixed (docs/reviews/session45-apps.md): on RabbitMQ the response to the gone requester's temporary
        // exchange fails its publish (the channel is closed), the retried delivery is cancelled and redelivered, and the
        // consumer runs twice (runs #1 RETRIED "The operation was canceled", #2 SUCCEEDED). Nothing is left open.
        Assert.That(task.Runs.OrderBy(r => r.Retries).Last().State, Is.EqualTo(TaskRunState.Succeeded), Retry45.Describe(task));
        Assert.That(task.Runs.Where(r => r.State == TaskRunState.Active), Is.Empty);
        var (again, _) = await Retry45.RetryAsync(bus.Host, id);
        Assert.That(again.Accepted, Is.Zero, "a succeeded request is not retried");
    }
}
