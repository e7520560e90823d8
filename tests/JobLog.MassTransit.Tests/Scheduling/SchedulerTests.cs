using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Scheduling;

/// <summary>Issue 4 on the real RabbitMQ (no delayed-message plugin), with the ledger on SQLite and on PostgreSQL.</summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class SchedulerTests(LedgerProvider provider)
{
    private SchedulerBus? _bus;
    private RabbitMqVhost? _sharedVhost;

    [TearDown]
    public async Task TearDown()
    {
        if (_bus is not null)
        {
            await _bus.DisposeAsync();
            _bus = null;
        }

        if (_sharedVhost is not null)
        {
            await _sharedVhost.DisposeAsync();
            _sharedVhost = null;
        }
    }

    private async Task<SchedulerBus> Start(
        Action<IBusRegistrationConfigurator> registrations,
        Action<IBusRegistrationContext, IRabbitMqBusFactoryConfigurator>? configureBus = null,
        WarningLog? warnings = null)
    {
        _bus = await SchedulerBus.StartAsync(await Ledgers.CreateAsync(provider), registrations, configureBus, warnings: warnings);
        return _bus;
    }

    [Test]
    public async Task SetTaskOptions_Countdown3s_IsConsumedNoEarlierThan3sAfterDispatch_AndTheTaskEtaIsDispatchPlus3s()
    {
        var bus = await Start(x => x.AddConsumer<ChargeCardConsumer>());
        var id = NewId.NextGuid();

        await bus.Bus.Publish(new ChargeCard(7, 3m), x =>
        {
            x.MessageId = id;
            x.SetTaskOptions(t => t.Countdown = TimeSpan.FromSeconds(3));
        });

        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "the deferred task succeeded");
        var run = task.Runs.Single();
        Assert.That(task.EstimatedTimeOfFirstArrival, Is.EqualTo(task.DispatchedAt.AddSeconds(3)));
        Assert.That(run.Start, Is.GreaterThanOrEqualTo(task.DispatchedAt.AddSeconds(3)), "consumed before its countdown ran out");
        Assert.That((run.State, run.Retries, run.QueueName), Is.EqualTo((TaskRunState.Succeeded, 0, "charge-card")));
        Assert.That(task.QueueName, Does.Contain("ChargeCard"), "the task keeps its real destination, not the scheduler's queue");

        // The dispatcher marks the row after the broker's confirm, which can come after the consumer finished.
        ScheduledMessageLog? scheduled = null;
        await LedgerHost.EventuallyAsync(async () => (scheduled = await bus.ScheduledAsync(id))?.State == ScheduledMessageState.Sent,
            because: "the message waited in the scheduler's table and was marked sent");
        Assert.That((scheduled!.State, scheduled.MessageId, scheduled.ScheduledTime), Is.EqualTo((ScheduledMessageState.Sent, (Guid?)id, task.EstimatedTimeOfFirstArrival)));
        Assert.That(scheduled.SentAt, Is.GreaterThanOrEqualTo(scheduled.ScheduledTime));
    }

    /// <summary>
    /// Publishes two copies of one MessageId with the JobLog scheduler, the first due after <paramref name="first"/>, the
    /// second after one second; returns once the scheduler warned about the second.
    /// </summary>
    private async Task<(SchedulerBus Bus, Guid Id, WarningLog Warnings)> DeferTheSameMessageIdTwiceAsync(TimeSpan first)
    {
        var warnings = new WarningLog();
        var bus = await Start(x => x.AddConsumer<ChargeCardConsumer>(), warnings: warnings);
        var id = NewId.NextGuid();
        foreach (var (amount, countdown) in new[] { (3m, first), (4m, TimeSpan.FromSeconds(1)) })
        {
            await bus.Bus.Publish(new ChargeCard(7, amount), x =>
            {
                x.MessageId = id;
                x.SetTaskOptions(t => t.Countdown = countdown);
            });
        }

        await LedgerHost.EventuallyAsync(() => Task.FromResult(warnings.Lines.Any(l => l.Contains(id.ToString(), StringComparison.Ordinal))),
            TimeSpan.FromSeconds(20), "the second copy was warned about: " + string.Join(" | ", warnings.Lines));
        return (bus, id, warnings);
    }

    /// <summary>
    /// A deferred message is stored under its MessageId: a second copy (the same explicit MessageId sent again with a
    /// countdown, or an outbox delivering it twice) is not stored again. Before, the scheduler acknowledged it in silence.
    /// </summary>
    [Test]
    public async Task SetTaskOptions_Countdown_TheSameMessageIdSentTwice_IsDeliveredOnce_TheSecondCopyIsWarnedAbout()
    {
        var (bus, id, warnings) = await DeferTheSameMessageIdTwiceAsync(TimeSpan.FromSeconds(2));
        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "the first copy consumed when due");
        var line = warnings.Lines.Single(l => l.Contains(id.ToString(), StringComparison.Ordinal));
        TestContext.Out.WriteLine(line);
        Assert.That(line, Does.Contain("already holds").And.Contain("not stored again"));
        await LedgerHost.EventuallyAsync(async () => (await bus.ScheduledAsync(id))?.State == ScheduledMessageState.Sent,
            because: "the stored copy was sent");
        var held = (await bus.ScheduledAsync(id))!;
        Assert.That(line, Does.Contain($"due {held.ScheduledTime:O}): this copy"), "the warning names the time of the copy held");
        Assert.That(task.Runs.Single().State, Is.EqualTo(TaskRunState.Succeeded), "delivered once");
        Assert.That(task.Runs.Single().Start, Is.GreaterThanOrEqualTo(held.ScheduledTime), "delivered when the copy held was due");
    }

    /// <summary>
    /// The task's ETA is that of the copy the scheduler holds, the one delivered: before, it was the ETA of the send
    /// recorded last (here the dropped copy, due a second earlier), from the warning until the task's end.
    /// </summary>
    [Test]
    public async Task SetTaskOptions_Countdown_TheSameMessageIdSentTwice_TheTaskShowsTheEtaOfTheCopyHeld()
    {
        var (bus, id, _) = await DeferTheSameMessageIdTwiceAsync(TimeSpan.FromSeconds(3));
        var held = (await bus.ScheduledAsync(id))!;
        await bus.Host.FlushAsync();
        TaskLog? waiting = null;
        await LedgerHost.EventuallyAsync(
            async () => (waiting = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().SingleOrDefaultAsync(t => t.Id == id)))
                ?.EstimatedTimeOfFirstArrival is { } eta && Math.Abs((eta - held.ScheduledTime).TotalMilliseconds) < 0.01,
            TimeSpan.FromSeconds(10), $"the waiting task shows the held copy's ETA {held.ScheduledTime:O}, not the other copy's");
        TestContext.Out.WriteLine($"held {held.ScheduledTime:O}, task {waiting!.EstimatedTimeOfFirstArrival:O} ({waiting.State})");

        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "the held copy consumed when due");
        Assert.That(task.EstimatedTimeOfFirstArrival, Is.EqualTo(held.ScheduledTime).Within(TimeSpan.FromMilliseconds(0.01)), "still the held copy's ETA once consumed");
        Assert.That(task.Runs.Single().Start, Is.GreaterThanOrEqualTo(held.ScheduledTime), "consumed no earlier than the ETA shown");
    }

    [Test]
    public async Task SetTaskOptions_EtaOnASendToAQueue_IsConsumedAtItsEta_WithTheSameMessageId()
    {
        var bus = await Start(x => x.AddConsumer<TenantJobConsumer>());
        var id = NewId.NextGuid();
        var eta = DateTimeOffset.UtcNow.AddSeconds(2);
        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:tenant-job"));

        await endpoint.Send(new TenantJob(5), x =>
        {
            x.MessageId = id;
            x.Headers.Set("X-Tenant", "acme");
            x.SetTaskOptions(t => t.Eta = eta);
        });

        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "the deferred send was consumed");
        Assert.That(task.EstimatedTimeOfFirstArrival, Is.EqualTo(eta.UtcDateTime).Within(TimeSpan.FromMilliseconds(0.01)));
        Assert.That(task.Runs.Single().Start, Is.GreaterThanOrEqualTo(eta.UtcDateTime));
        Assert.That(task.QueueName, Is.EqualTo("tenant-job"));
        Assert.That(await bus.Host.QueryAsync(db => db.TaskLogs.CountAsync()), Is.EqualTo(1), "the scheduler's send of it is not a second task");
        Assert.That(TenantJobConsumer.Tenants.TryGetValue(id, out var tenant) ? tenant : null, Is.EqualTo("acme"),
            "the message arrives with its MessageId and its headers");
    }

    [Test]
    public async Task ScheduleSend_RecordsTheInnerMessageAsTheTask_WithTheScheduledTimeAsEta()
    {
        var bus = await Start(x => x.AddConsumer<ChargeCardConsumer>());
        var id = NewId.NextGuid();
        var at = DateTime.UtcNow.AddSeconds(2);
        var destination = new Uri("queue:charge-card");

        var handle = await bus.InScopeAsync(sp => sp.GetRequiredService<IMessageScheduler>()
            .ScheduleSend(destination, at, new ChargeCard(8, 1m), Pipe.Execute<SendContext<ChargeCard>>(x => x.MessageId = id)));

        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "the scheduled task succeeded");
        Assert.That(task.Name, Is.EqualTo("ChargeCard"), "the task is the scheduled message, not the ScheduleMessage command");
        Assert.That(task.Input, Is.EqualTo("CustomerId=8, Amount=1"));
        Assert.That(task.QueueName, Is.EqualTo("charge-card"));
        Assert.That(task.EstimatedTimeOfFirstArrival, Is.EqualTo(at).Within(TimeSpan.FromMilliseconds(0.01)));
        Assert.That(task.Runs.Single().Start, Is.GreaterThanOrEqualTo(at));
        var tasks = await bus.Host.TasksAsync();
        Assert.That(tasks.Select(t => t.Name), Has.None.Contains("Schedule"), "the scheduler protocol is not recorded as tasks");
        Assert.That((await bus.ScheduledAsync(handle.TokenId))!.MessageId, Is.EqualTo(id));
    }

    [Test]
    public async Task ScheduleSend_InsideAConsumer_UsesTheEndpointsScheduler_AndLinksTheScheduledTaskToTheRun()
    {
        var bus = await Start(x =>
        {
            x.AddConsumer<PlanJobConsumer>();
            x.AddConsumer<TenantJobConsumer>();
        });
        var id = NewId.NextGuid();

        await bus.Bus.Publish(new PlanJob(11), x => x.MessageId = id);

        var parent = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "the planning task succeeded");
        TaskLog? child = null;
        await LedgerHost.EventuallyAsync(
            async () => (child = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs)
                .SingleOrDefaultAsync(t => t.Name == "TenantJob")))?.State == TaskState.Succeeded,
            because: "the task scheduled by the consumer was consumed");
        Assert.That(child!.ParentRunId, Is.EqualTo(parent.Runs.Single().Id));
        Assert.That(child.Runs.Single().Start, Is.GreaterThanOrEqualTo(child.EstimatedTimeOfFirstArrival!.Value));
        Assert.That(child.EstimatedTimeOfFirstArrival, Is.GreaterThan(child.DispatchedAt));
    }

    [Test]
    public async Task SchedulePublish_IsConsumedWhenDue()
    {
        var bus = await Start(x => x.AddConsumer<ChargeCardConsumer>());
        var id = NewId.NextGuid();
        var at = DateTime.UtcNow.AddSeconds(1);

        await bus.InScopeAsync(sp => sp.GetRequiredService<IMessageScheduler>()
            .SchedulePublish(at, new ChargeCard(9, 2m), Pipe.Execute<SendContext<ChargeCard>>(x => x.MessageId = id)));

        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "the scheduled publish was consumed");
        Assert.That(task.Runs.Single().Start, Is.GreaterThanOrEqualTo(at));
        Assert.That(task.EstimatedTimeOfFirstArrival, Is.EqualTo(at).Within(TimeSpan.FromMilliseconds(0.01)));
    }

    [Test]
    public async Task ScheduleSend_ThenCancelScheduledSend_IsNeverDelivered_AndTheTaskIsExpiredAsCancelled()
    {
        var bus = await Start(x => x.AddConsumer<ChargeCardConsumer>());
        var cancelled = NewId.NextGuid();
        var sentinel = NewId.NextGuid();
        var destination = new Uri("queue:charge-card");
        var at = DateTime.UtcNow.AddSeconds(3);

        var handle = await bus.InScopeAsync(async sp =>
        {
            var scheduler = sp.GetRequiredService<IMessageScheduler>();
            var scheduled = await scheduler.ScheduleSend(destination, at, new ChargeCard(1, 1m), Pipe.Execute<SendContext<ChargeCard>>(x => x.MessageId = cancelled));
            await scheduler.CancelScheduledSend(destination, scheduled.TokenId);

            // Due after the cancelled one: once it is consumed, the dispatcher has gone past the cancelled message's time.
            await scheduler.ScheduleSend(destination, at.AddSeconds(1), new ChargeCard(2, 2m), Pipe.Execute<SendContext<ChargeCard>>(x => x.MessageId = sentinel));
            return scheduled;
        });

        await bus.WaitForTaskAsync(sentinel, t => t.State == TaskState.Succeeded, "the later message was delivered");
        var task = await bus.WaitForTaskAsync(cancelled, t => t.State == TaskState.Expired, "the cancelled task is EXPIRED");
        Assert.That(task.Runs, Is.Empty, "a cancelled message is never delivered");
        Assert.That(task.IsSetAsStale, Is.True);
        Assert.That(task.ErrorMessage, Does.StartWith("Cancelled: CancelScheduledSend(" + handle.TokenId));
        Assert.That(task.Stop, Is.Not.Null);
        var row = await bus.ScheduledAsync(handle.TokenId);
        Assert.That((row!.State, row.SentAt, row.Body), Is.EqualTo((ScheduledMessageState.Cancelled, (DateTime?)null, (byte[]?)null)));
    }

    [Test]
    public async Task UseScheduledRedelivery_WithAConsumerFailingTwice_RecordsThreeRuns_TheRetriedOnesWithTheirRedeliveryTime()
    {
        var bus = await Start(
            x => x.AddConsumer<RedeliveredJobConsumer>(),
            (_, cfg) => cfg.UseScheduledRedelivery(r => r.Intervals(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2))));
        var id = NewId.NextGuid();

        await bus.Bus.Publish(new RedeliveredJob(2), x => x.MessageId = id);

        var task = await bus.WaitForTaskAsync(id, t => t.State == TaskState.Succeeded, "the flaky task succeeded after two redeliveries");
        var runs = task.Runs.OrderBy(r => r.Retries).ToList();
        Assert.That(runs.Select(r => (r.Retries, r.State)), Is.EqualTo(new[]
        {
            (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, TaskRunState.Succeeded),
        }));
        // Each redelivery is a message in the scheduler's table, due when MassTransit said: a retried run's time is that
        // message's, exactly. (Not "stop + interval within a second": the time from JobLog's stop to MassTransit's
        // schedule is the pipeline's, which a loaded machine stretches past a second; session 32 saw 1.34 s.)
        var redeliveries = await bus.Host.QueryAsync(db => db.ScheduledMessages.AsNoTracking().OrderBy(s => s.ScheduledTime).ToListAsync());
        Assert.That(redeliveries, Has.Count.EqualTo(2), "two scheduled redeliveries");
        var intervals = new[] { TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2) };
        for (var i = 0; i < 2; i++)
        {
            Assert.That(runs[i].EstimatedTimeOfNextRetry, Is.EqualTo(redeliveries[i].ScheduledTime), $"run {i} is retried when its redelivery is due");
            Assert.That(runs[i].EstimatedTimeOfNextRetry!.Value, Is.GreaterThanOrEqualTo(runs[i].Stop!.Value + intervals[i]), $"run {i}: after stop + {intervals[i]}");
            Assert.That(runs[i + 1].Start, Is.GreaterThanOrEqualTo(runs[i].EstimatedTimeOfNextRetry!.Value), $"run {i + 1} came when due");
            TestContext.Out.WriteLine($"run {i}: stop to the redelivery's schedule {runs[i].EstimatedTimeOfNextRetry - runs[i].Stop - intervals[i]} past the interval");
        }

        Assert.That(runs.Skip(1).All(r => !r.Redelivered), "scheduled redeliveries are new broker messages, not broker redeliveries");
        var tasks = await bus.Host.TasksAsync();
        Assert.That(tasks.Select(t => t.Id), Is.EqualTo(new[] { id }), "redeliveries are no new tasks");
    }

    [Test]
    public async Task Scheduler_RestartedWhileMessagesArePending_DeliversEachOfThemOnce()
    {
        var ledger = await Ledgers.CreateAsync(provider);
        var vhost = _sharedVhost = await RabbitMqVhost.CreateAsync();
        var first = await SchedulerBus.StartAsync(ledger, x => x.AddConsumer<ChargeCardConsumer>(), vhost: vhost);
        var start = DateTime.UtcNow.AddSeconds(2);
        var ids = Enumerable.Range(0, 100).Select(_ => NewId.NextGuid()).ToList();
        try
        {
            await first.InScopeAsync(async sp =>
            {
                var scheduler = sp.GetRequiredService<IMessageScheduler>();
                // The last 20 are due a minute later, so some are pending at the restart however slow the machine (all 100
                // were due within 5 s: under load all fell due before the first dispatcher began, which sent them in one batch).
                await Task.WhenAll(ids.Select((id, i) => scheduler.ScheduleSend(new Uri("queue:charge-card"), start.AddMilliseconds(i * 30).AddSeconds(i >= 80 ? 60 : 0),
                    new ChargeCard(i, 1m), Pipe.Execute<SendContext<ChargeCard>>(x => x.MessageId = id))));
                return 0;
            });
            await LedgerHost.EventuallyAsync(async () => await first.Host.QueryAsync(db => db.ScheduledMessages.CountAsync()) == 100, because: "all stored");
            await LedgerHost.EventuallyAsync(
                async () => await first.Host.QueryAsync(db => db.ScheduledMessages.CountAsync(s => s.State == ScheduledMessageState.Sent)) > 0,
                because: "dispatching began");
        }
        finally
        {
            await first.StopAsync();
        }

        _bus = await SchedulerBus.StartAsync(ledger, x => x.AddConsumer<ChargeCardConsumer>(), vhost: vhost);
        var pending = await _bus.Host.QueryAsync(db => db.ScheduledMessages.CountAsync(s => s.State == ScheduledMessageState.Pending));
        Assert.That(pending, Is.GreaterThan(0), "messages were pending across the restart");

        await LedgerHost.EventuallyAsync(
            async () => await _bus.Host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.State == TaskState.Succeeded)) == 100,
            because: "every scheduled task succeeded");
        await LedgerHost.EventuallyAsync(async () => await vhost.MessagesInQueueAsync("charge-card") == 0, because: "the queue is empty");
        var runs = await _bus.Host.QueryAsync(db => db.TaskRunLogs.GroupBy(r => r.TaskId).Select(g => g.Count()).ToListAsync());
        Assert.That(runs, Has.Count.EqualTo(100).And.All.EqualTo(1), "each message was delivered once");
        Assert.That(await _bus.Host.QueryAsync(db => db.ScheduledMessages.CountAsync(s => s.State == ScheduledMessageState.Sent)), Is.EqualTo(100));
        TestContext.Out.WriteLine($"pending at the restart: {pending} of 100");
    }
}
