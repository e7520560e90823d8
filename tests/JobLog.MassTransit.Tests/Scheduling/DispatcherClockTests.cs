using JobLog.MassTransit.Scheduling;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Scheduling;

/// <summary>
/// The dispatcher's sleep on a fake clock (in memory, SQLite): it sleeps until the next due message, not a fixed
/// poll, and a message stored for earlier wakes it. The fallback poll is set to a day, so only those two can wake it.
/// </summary>
public class DispatcherClockTests
{
    private LedgerHost? _host;
    private FakeTimeProvider _time = null!;

    [SetUp]
    public async Task SetUp()
    {
        _time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        _host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: services =>
        {
            services.Replace(ServiceDescriptor.Singleton<TimeProvider>(_time));
            services.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            services.AddMassTransit(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddJobLogScheduler(o => o.PollInterval = TimeSpan.FromDays(1));
                x.AddConsumer<ChargeCardConsumer>();
                x.UsingInMemory((context, cfg) =>
                {
                    cfg.UseTaskLogging(context);
                    cfg.ConfigureEndpoints(context);
                });
            });
        });
    }

    [TearDown]
    public async Task TearDown()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
            _host = null;
        }
    }

    private ScheduledMessageDispatcher Dispatcher => _host!.Services.GetRequiredService<ScheduledMessageDispatcher>();

    private async Task<Guid> ScheduleAsync(TimeSpan after)
    {
        var id = NewId.NextGuid();
        await using var scope = _host!.Services.CreateAsyncScope();
        await scope.ServiceProvider.GetRequiredService<IMessageScheduler>().ScheduleSend(
            new Uri("queue:charge-card"), _time.GetUtcNow().UtcDateTime + after, new ChargeCard(1, 1m),
            Pipe.Execute<SendContext<ChargeCard>>(x => x.MessageId = id));
        await LedgerHost.EventuallyAsync(
            async () => await _host.QueryAsync(db => db.ScheduledMessages.AnyAsync(s => s.MessageId == id)),
            because: "the scheduler stored the message");
        return id;
    }

    private Task SleepingUntilAsync(DateTime until, string because) =>
        LedgerHost.EventuallyAsync(() => Task.FromResult(Dispatcher.SleepingUntil == until), because: because);

    private async Task<int> RunsAsync(Guid id) => await _host!.QueryAsync(db => db.TaskRunLogs.CountAsync(r => r.TaskId == id));

    [Test]
    public async Task Dispatcher_SleepsExactlyUntilTheNextDueMessage()
    {
        var due = _time.GetUtcNow().UtcDateTime.AddMinutes(10);
        var id = await ScheduleAsync(TimeSpan.FromMinutes(10));
        await SleepingUntilAsync(due, "asleep until the message is due");

        _time.Advance(TimeSpan.FromMinutes(10) - TimeSpan.FromTicks(10));
        await SleepingUntilAsync(due, "still asleep a microsecond before");
        Assert.That(await RunsAsync(id), Is.Zero);

        _time.Advance(TimeSpan.FromTicks(10));
        await LedgerHost.EventuallyAsync(async () => await RunsAsync(id) == 1, because: "sent and consumed when due");
    }

    [Test]
    public async Task Dispatcher_AsleepForALaterMessage_WakesWhenAnEarlierOneIsStored()
    {
        var now = _time.GetUtcNow().UtcDateTime;
        var later = await ScheduleAsync(TimeSpan.FromHours(1));
        await SleepingUntilAsync(now.AddHours(1), "asleep until the later message");

        var earlier = await ScheduleAsync(TimeSpan.FromMinutes(1));
        await SleepingUntilAsync(now.AddMinutes(1), "woken, and asleep until the earlier message");
        _time.Advance(TimeSpan.FromMinutes(1));

        await LedgerHost.EventuallyAsync(async () => await RunsAsync(earlier) == 1, because: "the earlier message was sent when due");
        await SleepingUntilAsync(now.AddHours(1), "asleep again until the later message");
        Assert.That(await RunsAsync(later), Is.Zero);
        _time.Advance(TimeSpan.FromMinutes(59));
        await LedgerHost.EventuallyAsync(async () => await RunsAsync(later) == 1, because: "the later message was sent when due");
    }
}
