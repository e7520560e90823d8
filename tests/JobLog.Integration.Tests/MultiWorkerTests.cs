using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using NUnit.Framework;

namespace JobLog.Integration.Tests;

/// <summary>
/// Several Worker processes on one PostgreSQL ledger and one RabbitMQ vhost (issue 4): the scheduler shares its work,
/// survives restarts, and a worker killed mid-consume loses nothing.
/// </summary>
[NonParallelizable]
public class MultiWorkerTests
{
    private static readonly Uri ChargeCardQueue = new("queue:charge-card");
    private readonly List<IAsyncDisposable> _cleanup = [];

    [TearDown]
    public async Task TearDown()
    {
        if (TestContext.CurrentContext.Result.Outcome.Status == NUnit.Framework.Interfaces.TestStatus.Failed)
        {
            foreach (var worker in _cleanup.OfType<WorkerProcess>())
            {
                await TestContext.Out.WriteLineAsync($"--- worker {worker.Name} (pid {worker.Pid}) ---\n{worker.Tail(80)}");
            }
        }

        // Workers first (they hold connections to the database and the vhost), then the ledger and the vhost.
        for (var i = _cleanup.Count - 1; i >= 0; i--)
        {
            await _cleanup[i].DisposeAsync();
        }

        _cleanup.Clear();
    }

    private async Task<(TestLedger Ledger, RabbitMqVhost Vhost, Producer Producer)> StartProducerAsync()
    {
        var vhost = await RabbitMqVhost.CreateAsync();
        _cleanup.Add(vhost);
        var ledger = await TestLedger.PostgresAsync();
        var producer = await Producer.StartAsync(ledger, vhost);
        _cleanup.Add(producer);
        return (ledger, vhost, producer);
    }

    private async Task<WorkerProcess> StartWorkerAsync(string name, TestLedger ledger, RabbitMqVhost vhost)
    {
        var worker = await WorkerProcess.StartAsync(name, ledger, vhost);
        _cleanup.Add(worker);
        return worker;
    }

    [Test]
    public async Task TwoWorkers_AThousandMessagesDueAtTheSameMoment_AreEachDeliveredExactlyOnce()
    {
        var (ledger, vhost, producer) = await StartProducerAsync();
        var workers = await Task.WhenAll(StartWorkerAsync("A", ledger, vhost), StartWorkerAsync("B", ledger, vhost));
        var due = Microseconds(DateTime.UtcNow.AddSeconds(10));
        var messages = Enumerable.Range(1, 1000).Select(i => (Id: NewId.NextGuid(), At: due, Message: new ChargeCard(i, 1m))).ToList();
        var ids = messages.Select(m => m.Id).ToHashSet();

        await producer.ScheduleAsync(ChargeCardQueue, messages);

        await LedgerHost.EventuallyAsync(
            async () => await producer.CountAsync(db => db.TaskLogs.CountAsync(t => ids.Contains(t.Id) && t.State == TaskState.Succeeded)) == 1000,
            TimeSpan.FromSeconds(180),
            "every scheduled task succeeded");
        await QueuesDrainedAsync(vhost);

        var tasks = await producer.TasksAsync(ids);
        Assert.That(tasks, Has.Count.EqualTo(1000));
        Assert.That(tasks.Sum(t => t.Runs.Count), Is.EqualTo(1000), "each message was consumed exactly once");
        Assert.That(tasks.All(t => t.Runs.Single().Retries == 0 && !t.Runs.Single().Redelivered));
        Assert.That(tasks.All(t => t.EstimatedTimeOfFirstArrival == due), "the ETA is the scheduled time");
        Assert.That(tasks.All(t => t.Runs.Single().Start >= due), "no message was consumed before it was due");

        var rows = await producer.Host.QueryAsync(db => db.ScheduledMessages.AsNoTracking().ToListAsync());
        Assert.That(rows.Where(r => ids.Contains(r.MessageId!.Value)).Select(r => (r.State, r.Attempts)),
            Is.All.EqualTo((ScheduledMessageState.Sent, 1)), "each stored message was sent once, at the first attempt");
        var senders = rows.GroupBy(r => r.SentBy).ToDictionary(g => g.Key ?? "?", g => g.Count());
        Assert.That(senders.Keys, Is.SubsetOf(workers.Select(w => w.DispatcherName)));
        TestContext.Out.WriteLine("sent by: " + string.Join(", ", senders.Select(s => $"{s.Key}: {s.Value}")));
        Assert.That(workers.Where(w => w.HasOutput("JobLog could not") || w.HasOutput("JobLog dropped")).Select(w => w.Name), Is.Empty,
            "both workers' ledger writers (batched statements on one PostgreSQL) committed everything at the first try");
    }

    [Test]
    public async Task TwoWorkers_OneKilledMidConsume_LosesNoMessage_AndItsOrphanedRunIsExpired()
    {
        var (ledger, vhost, producer) = await StartProducerAsync();
        var workers = await Task.WhenAll(StartWorkerAsync("A", ledger, vhost), StartWorkerAsync("B", ledger, vhost));

        // Scheduled messages stored by either worker before one of them dies: the survivor sends them all. Due well after
        // the kill (15 s was not: under load the steps before it took longer, and the victim could send some first).
        var due = DateTime.UtcNow.AddSeconds(60);
        var scheduled = Enumerable.Range(1, 40).Select(i => (Id: NewId.NextGuid(), At: due, Message: new ChargeCard(i, 2m))).ToList();
        var scheduledIds = scheduled.Select(m => m.Id).ToHashSet();
        await producer.ScheduleAsync(ChargeCardQueue, scheduled);
        await LedgerHost.EventuallyAsync(
            async () => await producer.CountAsync(db => db.ScheduledMessages.CountAsync(s => scheduledIds.Contains(s.MessageId!.Value))) == 40,
            TimeSpan.FromSeconds(30),
            "the scheduled messages are stored");

        // A slow task; whichever worker takes it is killed while its run is ACTIVE in the ledger.
        var id = NewId.NextGuid();
        var title = "report-" + id.ToString("N")[..8];
        await producer.Bus.Publish(new BuildReport(title, 12), x => x.MessageId = id);
        await LedgerHost.EventuallyAsync(
            async () => await producer.CountAsync(db => db.TaskRunLogs.CountAsync(r => r.TaskId == id && r.State == TaskRunState.Active)) == 1,
            TimeSpan.FromSeconds(60),
            "the slow run is ACTIVE");
        await LedgerHost.EventuallyAsync(
            () => Task.FromResult(workers.Any(w => w.HasOutput("Building report " + title))),
            TimeSpan.FromSeconds(30),
            "the consuming worker logged the report");
        var victim = workers.Single(w => w.HasOutput("Building report " + title));
        var survivor = workers.Single(w => w != victim);

        await victim.KillAsync();

        Assert.That(victim.ExitCode, Is.EqualTo(137), "killed by SIGKILL");
        var task = await WaitForTaskAsync(producer, id, t => t.State == TaskState.Succeeded, TimeSpan.FromSeconds(120), "the report was redelivered and built");
        var runs = task.Runs.OrderBy(r => r.Retries).ToList();
        Assert.That(runs.Select(r => (r.Retries, r.State, r.Redelivered)), Is.EqualTo(new[]
        {
            (0, TaskRunState.Expired, false), (1, TaskRunState.Succeeded, true),
        }));
        Assert.That(runs[0].ErrorMessage, Does.StartWith("Orphaned"));
        Assert.That(runs[0].Stop, Is.EqualTo(runs[1].Start), "the orphan is closed when the redelivery starts");
        Assert.That(survivor.HasOutput("Report " + title + " done"), "the survivor built the report");

        await LedgerHost.EventuallyAsync(
            async () => await producer.CountAsync(db => db.TaskLogs.CountAsync(t => scheduledIds.Contains(t.Id) && t.State == TaskState.Succeeded)) == 40,
            TimeSpan.FromSeconds(120),
            "every scheduled task succeeded");
        await QueuesDrainedAsync(vhost);
        var tasks = await producer.TasksAsync(scheduledIds);
        Assert.That(tasks.Select(t => t.Runs.Count), Is.All.EqualTo(1), "each scheduled message was delivered once");
        var rows = await producer.Host.QueryAsync(db => db.ScheduledMessages.AsNoTracking().Where(s => scheduledIds.Contains(s.MessageId!.Value)).ToListAsync());
        Assert.That(rows.Select(r => (r.State, r.SentBy)), Is.All.EqualTo((ScheduledMessageState.Sent, survivor.DispatcherName)));
    }

    [Test]
    public async Task Worker_RestartedWhileMessagesArePending_DeliversAllOfThem_NoneTwice()
    {
        var (ledger, vhost, producer) = await StartProducerAsync();
        var first = await StartWorkerAsync("first", ledger, vhost);
        var start = DateTime.UtcNow.AddSeconds(4);
        // The last 50 are due a minute later, so some are pending when the first worker stops however slow the machine
        // (all 300 were due within 10 s: under load they could all be sent before the stop).
        var messages = Enumerable.Range(0, 300)
            .Select(i => (Id: NewId.NextGuid(), At: start.AddMilliseconds(i * 20).AddSeconds(i >= 250 ? 60 : 0), Message: new ChargeCard(i, 3m))).ToList();
        var ids = messages.Select(m => m.Id).ToHashSet();
        await producer.ScheduleAsync(ChargeCardQueue, messages);
        await LedgerHost.EventuallyAsync(
            async () => await producer.CountAsync(db => db.ScheduledMessages.CountAsync(s => ids.Contains(s.MessageId!.Value))) == 300,
            TimeSpan.FromSeconds(30),
            "the scheduled messages are stored");

        // Stop while it is dispatching: sends in flight finish and are marked, the rest waits in the ledger.
        await LedgerHost.EventuallyAsync(
            async () => await producer.CountAsync(db => db.ScheduledMessages.CountAsync(s => s.State == ScheduledMessageState.Sent)) > 0,
            TimeSpan.FromSeconds(30),
            "the first messages are sent");
        await first.StopAsync(TimeSpan.FromSeconds(60));
        Assert.That(first.ExitCode, Is.EqualTo(0), "a graceful stop\n" + first.Tail());
        var stranded = await producer.CountAsync(db => db.ScheduledMessages.CountAsync(s => s.State == ScheduledMessageState.Dispatching));
        var pending = await producer.CountAsync(db => db.ScheduledMessages.CountAsync(s => s.State == ScheduledMessageState.Pending));
        Assert.That(stranded, Is.Zero, "a graceful stop gives back what it claimed and did not send");
        Assert.That(pending, Is.GreaterThan(0), "messages were still pending when the worker stopped");

        await StartWorkerAsync("second", ledger, vhost);

        await LedgerHost.EventuallyAsync(
            async () => await producer.CountAsync(db => db.TaskLogs.CountAsync(t => ids.Contains(t.Id) && t.State == TaskState.Succeeded)) == 300,
            TimeSpan.FromSeconds(120),
            "every scheduled task succeeded");
        await QueuesDrainedAsync(vhost);
        var tasks = await producer.TasksAsync(ids);
        Assert.That(tasks.Select(t => t.Runs.Count), Is.All.EqualTo(1), "each message was delivered exactly once");
        Assert.That(tasks.All(t => t.Runs.Single().Start >= t.EstimatedTimeOfFirstArrival), "none before its time");
        TestContext.Out.WriteLine($"pending at the restart: {pending} of 300");
    }

    /// <summary>PostgreSQL keeps microseconds: a time compared exactly after a round trip must not have finer ticks.</summary>
    private static DateTime Microseconds(DateTime time) => new(time.Ticks / 10 * 10, DateTimeKind.Utc);

    private static async Task<TaskLog> WaitForTaskAsync(Producer producer, Guid id, Func<TaskLog, bool> done, TimeSpan timeout, string because)
    {
        TaskLog? task = null;
        await LedgerHost.EventuallyAsync(
            async () =>
            {
                task = (await producer.TasksAsync([id])).SingleOrDefault();
                return task is not null && done(task);
            },
            timeout,
            because);
        return task!;
    }

    /// <summary>Waits until no queue of the vhost holds a message (ready or unacknowledged): nothing more can arrive.</summary>
    private static async Task QueuesDrainedAsync(RabbitMqVhost vhost)
    {
        var last = "";
        try
        {
            await LedgerHost.EventuallyAsync(
                async () =>
                {
                    last = await RabbitMqVhost.RabbitMqCtlAsync("list_queues", "-q", "-p", vhost.Name, "name", "messages");
                    return last.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                        .Select(line => line.Split('\t', StringSplitOptions.TrimEntries))
                        .Where(parts => parts.Length == 2 && int.TryParse(parts[1], out _)
                            && !parts[0].EndsWith("_error", StringComparison.Ordinal) && !parts[0].EndsWith("_skipped", StringComparison.Ordinal))
                        .All(parts => parts[1] == "0");
                },
                TimeSpan.FromSeconds(60),
                "every queue is empty");
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException("queues still hold messages:\n" + last, ex);
        }
    }
}
