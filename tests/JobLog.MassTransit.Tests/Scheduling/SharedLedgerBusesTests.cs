using JobLog.MassTransit.Scheduling;
using JobLog.MassTransit.Tests.Features;
using JobLog.Scheduling;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Scheduling;

/// <summary>
/// Several processes on one ledger with different sets of buses: process A runs two buses (two RabbitMQ virtual hosts),
/// process B only the first. Both run the JobLog scheduler. A message A's second bus scheduled must reach the second
/// virtual host, whichever process is running when it falls due.
/// </summary>
public class SharedLedgerBusesTests
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(500);

    private static Task<LedgerHost> StartAsync(TestLedger ledger, RabbitMqVhost first, RabbitMqVhost? second, WarningLog? warnings = null) =>
        LedgerHost.StartAsync(TestLedger.ExistingPostgres(ledger.ConnectionString), services: s =>
        {
            if (warnings is not null)
            {
                s.AddSingleton<ILoggerProvider>(warnings);
            }

            s.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            s.AddMassTransit(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddJobLogScheduler(o => o.PollInterval = Poll);
                x.AddConsumer<ChargeCardConsumer>();
                x.UsingTestVhost(first);
            });
            if (second is not null)
            {
                s.AddMassTransit<ISecondBus>(x =>
                {
                    x.SetKebabCaseEndpointNameFormatter();
                    x.AddJobLogScheduler(o => o.PollInterval = Poll);
                    x.AddConsumer<OtherBusJobConsumer>();
                    x.UsingTestVhost(second);
                });
            }
        });

    /// <summary>
    /// Before the fix, B's dispatcher claimed the message when it fell due and, having no bus for the second virtual host,
    /// sent it through its first bus: confirmed by the first virtual host, marked sent, never delivered.
    /// </summary>
    [Test]
    public async Task SharedLedger_AProcessWithoutTheDestinationsBus_LeavesTheScheduledMessageToAProcessThatHasIt()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        await using var first = await RabbitMqVhost.CreateAsync();
        await using var second = await RabbitMqVhost.CreateAsync();
        var warningsB = new WarningLog();
        await using var processB = await StartAsync(ledger, first, null, warningsB);

        // Process A schedules a message on its second bus; its buses stop before it falls due (the dispatcher stops with
        // them). A new host in this test process would meet MassTransit's static log context of the disposed one.
        var eta = NewId.NextGuid();
        await using var processA = await StartAsync(ledger, first, second);
        using (var publishing = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            await processA.Services.GetRequiredService<ISecondBus>().Publish(new OtherBusJob(1), x =>
            {
                x.MessageId = eta;
                x.SetTaskOptions(t => t.Countdown = TimeSpan.FromSeconds(3));
            }, publishing.Token);
        }

        ScheduledMessageLog? stored = null;
        await LedgerHost.EventuallyAsync(async () =>
        {
            stored = await processA.QueryAsync(db => db.ScheduledMessages.AsNoTracking().SingleOrDefaultAsync(m => m.MessageId == eta));
            return stored is not null;
        }, TimeSpan.FromSeconds(20), "the ETA message stored by A's scheduler");
        Assert.That(stored!.Destination, Does.Contain("/" + second.Name + "/"));
        var busesA = processA.Services.GetServices<global::MassTransit.Transports.IBusInstance>().Select(b => b.BusControl).ToList();
        Assert.That(busesA, Has.Count.EqualTo(2));
        foreach (var bus in busesA)
        {
            await bus.StopAsync(TimeSpan.FromSeconds(20));
        }

        // B alone runs when it falls due; B's dispatcher goes round at least once after that.
        var dispatcherB = processB.Services.GetRequiredService<ScheduledMessageDispatcher>();
        var due = stored.ScheduledTime;
        await LedgerHost.EventuallyAsync(
            () => Task.FromResult(DateTime.UtcNow > due && dispatcherB.SleepingUntil != DateTime.MaxValue && dispatcherB.SleepingUntil > due + Poll),
            TimeSpan.FromSeconds(20), "B's dispatcher went round after the message fell due");

        // Nobody runs the second bus now: B says so (it cannot tell a stopped process from a slow one, only that it waits).
        await LedgerHost.EventuallyAsync(() => Task.FromResult(warningsB.Lines.Any(l => l.Contains("/" + second.Name + "/", StringComparison.Ordinal))),
            TimeSpan.FromSeconds(20), "B warned that a message for the second virtual host waits: " + string.Join(" | ", warningsB.Lines));
        Assert.That(warningsB.Lines.First(l => l.Contains("/" + second.Name + "/", StringComparison.Ordinal)),
            Does.StartWith("JobLog scheduler: 1 stored messages fell due"));

        // A comes back: the message is delivered on the second virtual host.
        foreach (var bus in busesA)
        {
            await bus.StartAsync(TimeSpan.FromSeconds(20));
        }

        List<TaskLog> tasks = [];
        try
        {
            await LedgerHost.EventuallyAsync(async () =>
            {
                tasks = await processA.TasksAsync();
                return tasks.Any(t => t.Id == eta && t.State == TaskState.Succeeded);
            }, TimeSpan.FromSeconds(30), "the second bus's ETA message consumed");
        }
        catch (TimeoutException ex)
        {
            var rows = await processA.QueryAsync(db => db.ScheduledMessages.AsNoTracking().ToListAsync());
            throw new TimeoutException(
                ex.Message + "; scheduled: " + string.Join(" | ", rows.Select(r => $"{r.State} by {r.SentBy} to {r.Destination}"))
                + "; ledger: " + string.Join(" | ", tasks.Select(PipelineFeatureTests.Describe)), ex);
        }

        var run = tasks.Single(t => t.Id == eta).Runs.Single();
        Assert.That(run.QueueName, Is.EqualTo("other-bus-job"));
    }
}

/// <summary>The JobLog scheduler's warnings a process logged.</summary>
public sealed class WarningLog : ILoggerProvider
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _lines = new();

    public IReadOnlyList<string> Lines => [.. _lines];

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(WarningLog log, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Warning && category.StartsWith("JobLog", StringComparison.Ordinal))
            {
                log._lines.Enqueue(formatter(state, exception));
            }
        }
    }
}
