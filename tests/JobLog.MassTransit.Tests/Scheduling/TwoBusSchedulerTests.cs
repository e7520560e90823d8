using JobLog.MassTransit.Tests.Features;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Scheduling;

public sealed record OtherBusJob(int N);

public sealed class OtherBusJobConsumer : IConsumer<OtherBusJob>
{
    public Task Consume(ConsumeContext<OtherBusJob> context) => Task.CompletedTask;
}

/// <summary>
/// An application with two buses (<c>AddMassTransit&lt;ISecondBus&gt;</c>), each on its own RabbitMQ virtual host, the
/// second one using the JobLog scheduler (ETAs and <c>UseScheduledRedelivery</c>).
/// </summary>
public class TwoBusSchedulerTests
{
    /// <summary>
    /// Before the fix, with the scheduler on the second bus only, the dispatcher was started by the first bus (the
    /// container's bus observers are connected to every bus) and sent the stored messages through it: confirmed by the
    /// first virtual host, never delivered (the task WAITING, the redelivered one RETRIED for ever). With the scheduler
    /// on both buses, the second call was a no-op: the second bus had no scheduler, its redelivery faulted and its ETA
    /// publish went to RabbitMQ's missing delayed exchange, closing the channel (the publish never returned).
    /// </summary>
    [TestCase(false, TestName = "TwoBuses_SchedulerOnTheSecondBusOnly_DeliversItsEtaAndRedelivery")]
    [TestCase(true, TestName = "TwoBuses_SchedulerOnBothBuses_DeliversTheSecondBussEtaAndRedelivery")]
    public async Task TwoBuses_TheSecondBussScheduledMessages_AreDeliveredToItsBroker(bool alsoOnFirst)
    {
        await using var first = await RabbitMqVhost.CreateAsync();
        await using var second = await RabbitMqVhost.CreateAsync();
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s =>
        {
            s.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            s.AddMassTransit(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                if (alsoOnFirst)
                {
                    x.AddJobLogScheduler(o => o.PollInterval = TimeSpan.FromSeconds(1));
                }

                x.AddConsumer<ChargeCardConsumer>();
                x.UsingTestVhost(first);
            });
            s.AddMassTransit<ISecondBus>(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddJobLogScheduler(o => o.PollInterval = TimeSpan.FromSeconds(1));
                x.AddConsumer<RedeliveredJobConsumer>();
                x.AddConsumer<OtherBusJobConsumer>();
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(second);
                    cfg.UseScheduledRedelivery(r => r.Intervals(TimeSpan.FromSeconds(1)));
                    cfg.UseTaskLogging(context);
                    cfg.ConfigureEndpoints(context);
                });
            });
        });
        var bus = host.Services.GetRequiredService<ISecondBus>();
        var redelivered = NewId.NextGuid();
        var eta = NewId.NextGuid();
        var direct = NewId.NextGuid();
        // Bounded: before the fix the ETA publish retried against a closed channel for ever.
        using var publishing = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await bus.Publish(new RedeliveredJob(1), x => x.MessageId = redelivered, publishing.Token);
        await bus.Publish(new OtherBusJob(3), x =>
        {
            x.MessageId = eta;
            x.SetTaskOptions(t => t.Countdown = TimeSpan.FromSeconds(1));
        }, publishing.Token);
        await host.Services.GetRequiredService<IBus>().Publish(new ChargeCard(1, 2m), x => x.MessageId = direct, publishing.Token);

        List<TaskLog> tasks = [];
        try
        {
            await LedgerHost.EventuallyAsync(async () =>
            {
                tasks = await host.TasksAsync();
                return new[] { redelivered, eta, direct }.All(id => tasks.Any(t => t.Id == id && t.State == TaskState.Succeeded));
            }, TimeSpan.FromSeconds(30), "the second bus's ETA and redelivery, and the first bus's publish, consumed");
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException(ex.Message + "; ledger: " + string.Join(" | ", tasks.Select(PipelineFeatureTests.Describe)), ex);
        }

        var runs = tasks.Single(t => t.Id == redelivered).Runs.OrderBy(r => r.Retries).ToList();
        Assert.That(runs.Select(r => (r.Retries, r.State, r.QueueName)),
            Is.EqualTo(new[] { (0, TaskRunState.Retried, "redelivered-job"), (1, TaskRunState.Succeeded, "redelivered-job") }));
        Assert.That(runs[0].EstimatedTimeOfNextRetry, Is.Not.Null);
        var scheduled = await host.QueryAsync(db => db.ScheduledMessages.AsNoTracking().ToListAsync());
        Assert.That(scheduled.Select(m => (m.State, m.Destination.Contains("/" + second.Name + "/", StringComparison.Ordinal))),
            Is.EqualTo(new[] { (ScheduledMessageState.Sent, true), (ScheduledMessageState.Sent, true) }));
    }

    /// <summary>Sees, after JobLog's dispatch observer (connected after it), where an ETA send of the bus is going.</summary>
    private sealed class EtaSendObserver : ISendObserver
    {
        public TaskCompletionSource<(string? DeferredTo, TimeSpan? Delay)> Seen { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task PreSend<T>(SendContext<T> context)
            where T : class
        {
            if (context.Message is ChargeCard)
            {
                Seen.TrySetResult((context.Headers.Get<string>("JobLog-Scheduled-Time"), context.Delay));
            }

            return Task.CompletedTask;
        }

        public Task PostSend<T>(SendContext<T> context)
            where T : class => Task.CompletedTask;

        public Task SendFault<T>(SendContext<T> context, Exception exception)
            where T : class => Task.CompletedTask;
    }

    /// <summary>
    /// The first bus has no <c>AddJobLogScheduler</c>, the second has. Before the fix the first bus's ETA send was deferred
    /// to the JobLog scheduler all the same (the registration is in the shared container): to a <c>joblog-scheduler</c>
    /// exchange its broker does not have (<c>NOT_FOUND - no exchange 'joblog-scheduler'</c>), instead of the transport's
    /// delay (which works on a broker with the delayed-message plugin, and does not on one without, as without JobLog).
    /// </summary>
    [Test]
    public async Task TwoBuses_ABusWithoutTheScheduler_LeavesItsEtaSendToItsTransportsDelay()
    {
        await using var first = await RabbitMqVhost.CreateAsync();
        await using var second = await RabbitMqVhost.CreateAsync();
        var observer = new EtaSendObserver();
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s =>
        {
            s.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            s.AddMassTransit(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddConsumer<ChargeCardConsumer>();
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(first);
                    cfg.UseTaskLogging(context);
                    cfg.ConnectSendObserver(observer);
                    cfg.ConfigureEndpoints(context);
                });
            });
            s.AddMassTransit<ISecondBus>(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddJobLogScheduler(o => o.PollInterval = TimeSpan.FromSeconds(1));
                x.AddConsumer<OtherBusJobConsumer>();
                x.UsingTestVhost(second);
            });
        });

        var endpoint = await host.Services.GetRequiredService<IBus>().GetSendEndpoint(new Uri("queue:charge-card"));
        using var sending = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var send = endpoint.Send(new ChargeCard(1, 2m), x => x.SetTaskOptions(t => t.Countdown = TimeSpan.FromSeconds(1)), sending.Token);
        var seen = await observer.Seen.Task.WaitAsync(TimeSpan.FromSeconds(120));

        // Without the delayed-message plugin the transport's delay does not complete, as MassTransit's own does not: not
        // what is tested here. The send ends cancelled, or first with the broker's refusal of the x-delayed-message
        // exchange (OperationInterruptedException, AlreadyClosedException among them), whichever comes first.
        await sending.CancelAsync();
        try
        {
            await send;
        }
        catch (Exception ex) when (ex is OperationCanceledException or global::RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
        }

        Assert.That(seen.DeferredTo, Is.Null, "not deferred to a JobLog scheduler this bus does not have");
        Assert.That(seen.Delay, Is.Not.Null, "the transport's own delay");
    }
}
