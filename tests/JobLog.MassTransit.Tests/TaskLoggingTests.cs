using JobLog.Testing;
using MassTransit;
using MassTransit.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests;

/// <summary>The issue's scenarios, on the MassTransit test harness (in memory) and on the real RabbitMQ.</summary>
[TestFixture(Transport.InMemory)]
[TestFixture(Transport.RabbitMq)]
public class TaskLoggingTests(Transport transport)
{
    private BusFixture? _bus;

    [TearDown]
    public async Task TearDown()
    {
        if (_bus is not null)
        {
            await _bus.DisposeAsync();
            _bus = null;
        }
    }

    private async Task<BusFixture> Start(
        Action<IBusRegistrationConfigurator> consumers, int retries = 0, Action<JobLogOptions>? options = null, TimeSpan? retryInterval = null)
    {
        _bus = await BusFixture.StartAsync(transport, consumers, retries, options, retryInterval: retryInterval);
        return _bus;
    }

    private static Task<TaskLog> WaitForTask(BusFixture bus, Guid id, Func<TaskLog, bool> done, string because)
    {
        TaskLog? task = null;
        return LedgerHost.EventuallyAsync(
            async () =>
            {
                task = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleOrDefaultAsync(t => t.Id == id));
                return task is not null && done(task);
            },
            because: because).ContinueWith(t =>
            {
                if (t.IsFaulted)
                {
                    var runs = task is null ? "no task row" : string.Join("; ", task.Runs.OrderBy(r => r.Start).Select(r => $"{r.ConsumerType} #{r.Retries} {r.State}"));
                    throw new TimeoutException($"{because}: last seen {task?.State.ToString() ?? "nothing"} ({runs})", t.Exception);
                }

                return task!;
            }, TaskScheduler.Default);
    }

    [Test]
    public async Task Consume_Succeeds_RecordsOneSucceededTaskWithOneRun()
    {
        var bus = await Start(x => x.AddConsumer<ChargeCardConsumer>());
        var id = NewId.NextGuid();

        await bus.Bus.Publish(new ChargeCard(42, 10m), x => x.MessageId = id);

        var task = await WaitForTask(bus, id, t => t.State == TaskState.Succeeded, "task succeeded");
        var run = task.Runs.Single();
        Assert.That((run.State, run.Retries, run.ConsumerType), Is.EqualTo((TaskRunState.Succeeded, 0, "ChargeCardConsumer")));
        Assert.That((task.Start, task.Stop), Is.EqualTo(((DateTime?)run.Start, run.Stop)));
        Assert.That(task.Name, Is.EqualTo("ChargeCard"));
        Assert.That(task.Input, Is.EqualTo("CustomerId=42, Amount=10"));
        Assert.That(task.TaskArgs, Is.EqualTo("[42,10]"));
        Assert.That(task.TaskKwargs, Is.EqualTo("""{"CustomerId":42,"Amount":10}"""));
        Assert.That(task.ParentRunId, Is.Null);
        Assert.That(run.QueueName, Is.EqualTo("charge-card"));
        Assert.That(run.Output, Does.Contain("charging customer 42"));
        Assert.That(run.WaitingTime, Is.Not.Null.And.GreaterThanOrEqualTo(0));
    }

    [Test]
    public async Task Consume_WhenRetriedTwiceThenSucceeds_RecordsThreeRuns()
    {
        var bus = await Start(x => x.AddConsumer<FlakyJobConsumer>(), retries: 3);
        var id = NewId.NextGuid();

        await bus.Bus.Publish(new FlakyJob(2), x => x.MessageId = id);

        var task = await WaitForTask(bus, id, t => t.State == TaskState.Succeeded, "task succeeded after retries");
        var runs = task.Runs.OrderBy(r => r.Retries).ToList();
        Assert.That(runs.Select(r => (r.State, r.Retries)), Is.EqualTo(new[]
        {
            (TaskRunState.Retried, 0), (TaskRunState.Retried, 1), (TaskRunState.Succeeded, 2),
        }));
        Assert.That(runs[0].ErrorMessage, Does.Contain("System.InvalidOperationException: flaky failure 1").And.Contain(" at "));
        Assert.That(runs[0].EstimatedTimeOfNextRetry, Is.Not.Null.And.GreaterThanOrEqualTo(runs[0].Stop!.Value));
        Assert.That(runs[1].EstimatedTimeOfNextRetry, Is.EqualTo(runs[2].Start));
        Assert.That(runs[2].ErrorMessage, Is.Null);
    }

    [Test]
    public async Task Consume_WhenRetried_TheRunsErrorIsTheConsumersExceptionWithoutTheFramesOfJobLogsWaits()
    {
        var bus = await Start(x => x.AddConsumer<FlakyJobConsumer>(), retries: 1);
        var id = NewId.NextGuid();

        await bus.Bus.Publish(new FlakyJob(1), x => x.MessageId = id);

        // JobLog's run and slot filters pass a failed attempt on without throwing its exception again, so the frames of their
        // waits are not in the trace the run records (each throw again added one and cost exception dispatches on every
        // retry). The slot filter's own frame stays where it called the consumer.
        var task = await WaitForTask(bus, id, t => t.State == TaskState.Succeeded, "task succeeded after a retry");
        var retried = task.Runs.Single(r => r.State == TaskRunState.Retried);
        Assert.That(retried.ErrorMessage, Does.StartWith("System.InvalidOperationException: flaky failure 1"));
        Assert.That(retried.ErrorMessage, Does.Contain(typeof(FlakyJobConsumer).FullName + ".Consume("));
        Assert.That(retried.ErrorMessage, Does.Not.Contain("TaskRunFilter").And.Not.Contain("NotingTheConsumersExceptionAsync"));
    }

    [Test]
    public async Task Consume_WithIntervalRetryAndTheRetryObserver_RecordsTheNextRetryTimeBeforeTheRetry()
    {
        var bus = await Start(x => x.AddConsumer<FlakyJobConsumer>(), retries: 1, retryInterval: TimeSpan.FromSeconds(30));
        var id = NewId.NextGuid();

        await bus.Bus.Publish(new FlakyJob(1), x => x.MessageId = id);

        // The retry waits 30 s; the RETRIED run carries its next attempt's time long before that attempt exists.
        var retried = await WaitForTask(bus, id, t => t.Runs.Any(r => r.EstimatedTimeOfNextRetry is not null), "retry time recorded");
        var first = retried.Runs.Single();
        Assert.That(first.State, Is.EqualTo(TaskRunState.Retried));
        Assert.That(retried.State, Is.EqualTo(TaskState.Retried));
        Assert.That(first.EstimatedTimeOfNextRetry!.Value - first.Stop!.Value, Is.EqualTo(TimeSpan.FromSeconds(30)).Within(TimeSpan.FromSeconds(1)));
    }

    [Test]
    public async Task Consume_WhenAlwaysFailingWithTwoRetries_RecordsRetriedRetriedFailed_AndTheMessageGoesToError()
    {
        var bus = await Start(x => x.AddConsumer<DoomedJobConsumer>(), retries: 2);
        var id = NewId.NextGuid();

        await bus.Bus.Publish(new DoomedJob("no card"), x => x.MessageId = id);

        var task = await WaitForTask(bus, id, t => t.State == TaskState.Failed, "task failed");
        Assert.That(task.Runs.OrderBy(r => r.Retries).Select(r => (r.State, r.Retries)), Is.EqualTo(new[]
        {
            (TaskRunState.Retried, 0), (TaskRunState.Retried, 1), (TaskRunState.Failed, 2),
        }));
        Assert.That(task.Runs.Single(r => r.Retries == 2).EstimatedTimeOfNextRetry, Is.Null);
        Assert.That(task.Stop, Is.EqualTo(task.Runs.Single(r => r.Retries == 2).Stop));
        Assert.That(await bus.Harness.Published.Any<Fault<DoomedJob>>(), Is.True, "the fault was published");
        if (bus.Vhost is not null)
        {
            await LedgerHost.EventuallyAsync(async () => await bus.Vhost.MessagesInQueueAsync("doomed-job_error") == 1, because: "message in doomed-job_error");
        }

        Assert.That(await bus.Host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Name.StartsWith("Fault"))), Is.Zero, "Fault<T> is not a task");
    }

    [Test]
    public async Task Message_WithTimeToLiveSentToAQueueNobodyConsumes_IsExpiredByTheSweeper()
    {
        var bus = await Start(_ => { });
        var id = NewId.NextGuid();
        var endpoint = await bus.Bus.GetSendEndpoint(new Uri("queue:nobody-home"));

        await endpoint.Send(new Report("q3"), x =>
        {
            x.MessageId = id;
            x.SetTaskOptions(t =>
            {
                t.Expires = TimeSpan.FromSeconds(1);
                t.StaleTimeLimit = TimeSpan.FromSeconds(2);
            });
        });
        await bus.Host.FlushAsync();
        var waiting = await bus.Host.TaskAsync(id);
        Assert.That(waiting.State, Is.EqualTo(TaskState.Waiting));
        Assert.That(waiting.Expires - waiting.DispatchedAt, Is.EqualTo(TimeSpan.FromSeconds(1)));
        Assert.That(waiting.Stale - waiting.DispatchedAt, Is.EqualTo(TimeSpan.FromSeconds(2)));
        Assert.That(waiting.QueueName, Is.EqualTo("nobody-home"));

        await Task.Delay(TimeSpan.FromSeconds(2.2));
        var result = await bus.Host.Services.GetRequiredService<JobLog.Sweeping.TaskLogSweeper>().SweepOnceAsync(CancellationToken.None);

        var task = await bus.Host.TaskAsync(id);
        Assert.That(result.Expired, Is.EqualTo(1));
        Assert.That((task.State, task.IsSetAsStale), Is.EqualTo((TaskState.Expired, true)));
    }

    [Test]
    public async Task Publish_InsideAConsumer_LinksTheChildTaskToTheParentRun()
    {
        var bus = await Start(x =>
        {
            x.AddConsumer<ParentJobConsumer>();
            x.AddConsumer<ChildJobConsumer>();
        });
        var parentId = NewId.NextGuid();

        await bus.Bus.Publish(new ParentJob(7), x => x.MessageId = parentId);

        var parent = await WaitForTask(bus, parentId, t => t.State == TaskState.Succeeded, "parent succeeded");
        TaskLog? child = null;
        await LedgerHost.EventuallyAsync(async () =>
        {
            child = await bus.Host.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs)
                .SingleOrDefaultAsync(t => t.Name == "ChildJob" && t.State == TaskState.Succeeded));
            return child is not null;
        }, because: "child task succeeded");
        Assert.That(child!.ParentRunId, Is.EqualTo(parent.Runs.Single().Id));
        Assert.That(child.ConversationId, Is.EqualTo(parent.ConversationId));
    }

    [Test]
    public async Task Ledger_Unreachable_MessagesAreStillConsumed_AndTheLedgerCatchesUp()
    {
        var bus = await Start(x => x.AddConsumer<ChargeCardConsumer>(), options: o =>
        {
            o.AcknowledgeTimeout = TimeSpan.FromMilliseconds(500);
            o.CommandTimeout = TimeSpan.FromSeconds(1);
            o.MaxRetryDelay = TimeSpan.FromMilliseconds(300);
        });
        await using var blocker = new Microsoft.Data.Sqlite.SqliteConnection(bus.Host.Ledger.ConnectionString);
        await blocker.OpenAsync();
        await using (var begin = blocker.CreateCommand())
        {
            begin.CommandText = "BEGIN EXCLUSIVE";
            await begin.ExecuteNonQueryAsync();
        }

        const int count = 30;
        for (var i = 0; i < count; i++)
        {
            await bus.Bus.Publish(new ChargeCard(i, 1m));
        }

        await LedgerHost.EventuallyAsync(
            () => Task.FromResult(bus.Harness.Consumed.Select<ChargeCard>().Count() == count),
            TimeSpan.FromSeconds(60),
            "every message consumed while the ledger is locked");
        var storedWhileLocked = await bus.Host.QueryAsync(db => db.TaskLogs.CountAsync());
        Assert.That(storedWhileLocked, Is.Zero, "nothing could be written while locked");

        await using (var rollback = blocker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK";
            await rollback.ExecuteNonQueryAsync();
        }

        await bus.Host.FlushAsync();
        Assert.That(await bus.Host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.State == TaskState.Succeeded)), Is.EqualTo(count));
        Assert.That(await bus.Host.QueryAsync(db => db.TaskRunLogs.CountAsync(r => r.State == TaskRunState.Succeeded)), Is.EqualTo(count));
    }

    [Test]
    public async Task Message_WithPasswordDeepInside_IsMaskedInInputArgsAndKwargs()
    {
        var bus = await Start(x => x.AddConsumer<SignUpConsumer>());
        var id = NewId.NextGuid();

        await bus.Bus.Publish(new SignUp("ann", new SignUpDetails("a@example.com", new Account("hunter2", "pet"))), x => x.MessageId = id);

        var task = await WaitForTask(bus, id, t => t.State == TaskState.Succeeded, "task succeeded");
        var stored = string.Join("|", task.Input, task.TaskArgs, task.TaskKwargs,
            string.Join("|", task.Runs.Select(r => r.Input + r.TaskArgs + r.TaskKwargs)));
        Assert.That(stored, Does.Not.Contain("hunter2"));
        Assert.That(task.TaskKwargs, Does.Contain("\"Password\":\"[Filtered]\"").And.Contain("a@example.com"));
    }

    [Test]
    public async Task Message_OfFiveMegabytes_IsConsumed_AndStoredBounded()
    {
        var bus = await Start(x =>
        {
            x.AddConsumer<BigJobConsumer>();
            x.AddConsumer<ChargeCardConsumer>();
        });
        var id = NewId.NextGuid();

        await bus.Bus.Publish(new BigJob(new string('x', 5 * 1024 * 1024)), x => x.MessageId = id);

        var task = await WaitForTask(bus, id, t => t.State == TaskState.Succeeded, "big task succeeded");
        Assert.That(task.Input!.Length, Is.LessThanOrEqualTo(10_000));
        Assert.That(task.TaskKwargs!.Length, Is.LessThanOrEqualTo(10_000));
        Assert.That(task.TaskArgs!.Length, Is.LessThanOrEqualTo(10_000));
        Assert.That(task.Runs.Single().TaskKwargs!.Length, Is.LessThanOrEqualTo(10_000));

        var after = NewId.NextGuid();
        await bus.Bus.Publish(new ChargeCard(1, 1m), x => x.MessageId = after);
        await WaitForTask(bus, after, t => t.State == TaskState.Succeeded, "the bus keeps working");
    }
}
