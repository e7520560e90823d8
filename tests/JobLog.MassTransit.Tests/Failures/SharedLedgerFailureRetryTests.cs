using JobLog.Failures;
using JobLog.MassTransit.Tests.Features;
using JobLog.MassTransit.Tests.Scheduling;
using JobLog.Testing;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Failures;

/// <summary>
/// Retrying from the ledger with several processes on one ledger and different sets of buses: process A runs two buses
/// (two RabbitMQ virtual hosts), process B only the first.
/// </summary>
public class SharedLedgerFailureRetryTests
{
    private static Task<LedgerHost> StartAsync(TestLedger ledger, Gate gate, RabbitMqVhost first, RabbitMqVhost? second, WarningLog? warnings = null) =>
        LedgerHost.StartAsync(TestLedger.ExistingPostgres(ledger.ConnectionString), o =>
        {
            o.Failures.RetriesPerSecond = 5000;
            o.Failures.RetryPollInterval = TimeSpan.FromMilliseconds(50);
        }, services: s =>
        {
            if (warnings is not null)
            {
                s.AddSingleton<ILoggerProvider>(warnings);
            }

            s.AddSingleton(gate);
            s.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            s.AddMassTransit(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddConsumer<ToggledConsumer>();
                x.UsingTestVhost(first);
            });
            if (second is not null)
            {
                s.AddMassTransit<ISecondBus>(x =>
                {
                    x.SetKebabCaseEndpointNameFormatter();
                    x.AddConsumer<ToggledConsumer>();
                    x.UsingTestVhost(second);
                });
            }
        });

    /// <summary>
    /// One retry request for a message of each virtual host while only B runs. Before the fix B's sender claimed both (one
    /// claim statement) and sent the second virtual host's through its first bus: confirmed there, dropped, counted sent;
    /// A, back, had nothing left to send and the task stayed FAILED. While it waits for A, B says so (before session 26, in
    /// silence).
    /// </summary>
    [Test]
    public async Task Retry_ClaimedByAProcessWithoutTheMessagesBus_IsLeftToAProcessThatHasIt()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        await using var first = await RabbitMqVhost.CreateAsync();
        await using var second = await RabbitMqVhost.CreateAsync();
        var (gateA, gateB) = (new Gate(), new Gate());
        var warningsB = new WarningLog();
        await using var processB = await StartAsync(ledger, gateB, first, null, warningsB);
        await using var processA = await StartAsync(ledger, gateA, first, second);
        var (onFirst, onSecond) = (NewId.NextGuid(), NewId.NextGuid());
        await processA.Services.GetRequiredService<IBus>().Publish(new Toggled(1, "s"), x => x.MessageId = onFirst);
        await processA.Services.GetRequiredService<ISecondBus>().Publish(new Toggled(2, "s"), x => x.MessageId = onSecond);
        await FailureTestKit.WaitFailedAndKeptAsync(processA, [onFirst, onSecond]);

        // A's buses (and their retry senders) stop; only B runs when the retry is asked for.
        var busesA = processA.Services.GetServices<global::MassTransit.Transports.IBusInstance>().Select(b => b.BusControl).ToList();
        Assert.That(busesA, Has.Count.EqualTo(2));
        foreach (var bus in busesA)
        {
            await bus.StopAsync(TimeSpan.FromSeconds(20));
        }

        gateA.Open = gateB.Open = true;
        var actions = processB.Services.GetRequiredService<IFailureActions>();
        var receipt = await actions.RetryAsync(new FailureActionRequest([onFirst, onSecond], "tester"));
        Assert.That(receipt.Accepted, Is.EqualTo(2));
        await LedgerHost.EventuallyAsync(async () => (await processB.TasksAsync()).Any(t => t.Id == onFirst && t.State == TaskState.Succeeded),
            TimeSpan.FromSeconds(20), "B retried the first virtual host's message");
        await LedgerHost.EventuallyAsync(() => Task.FromResult(warningsB.Lines.Any(l => l.Contains(second.Name, StringComparison.Ordinal))),
            TimeSpan.FromSeconds(20), "B warned that a retry for the second virtual host waits");
        TestContext.Out.WriteLine(string.Join("\n", warningsB.Lines));

        foreach (var bus in busesA)
        {
            await bus.StartAsync(TimeSpan.FromSeconds(20));
        }

        try
        {
            await LedgerHost.EventuallyAsync(async () => (await processA.TasksAsync()).Any(t => t.Id == onSecond && t.State == TaskState.Succeeded),
                TimeSpan.FromSeconds(20), "the second virtual host's retry was consumed");
        }
        catch (TimeoutException ex)
        {
            var progress = await actions.GetRetryProgressAsync(receipt.RequestId);
            throw new TimeoutException($"{ex.Message}: {progress}", ex);
        }

        Assert.That((gateA.Succeeded.GetValueOrDefault(onSecond), gateB.Succeeded.GetValueOrDefault(onSecond)), Is.EqualTo((1, 0)),
            "consumed by A's second bus (A's gate), not by a consumer on the first virtual host (B's gate)");
        Assert.That(await first.MessagesInQueueAsync("toggled"), Is.EqualTo(0), "nothing of the second bus on the first vhost");
        Assert.That((await actions.GetRetryProgressAsync(receipt.RequestId))?.Completed, Is.True);
    }
}
