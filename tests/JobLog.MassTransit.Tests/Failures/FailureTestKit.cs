using System.Collections.Concurrent;
using JobLog.Failures;
using JobLog.Testing;
using MassTransit;
using MassTransit.Testing;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace JobLog.MassTransit.Tests.Failures;

public sealed record Toggled(int N, string Secret);

/// <summary>Fails until <see cref="Open"/> is set; counts the successful consumptions of each message.</summary>
public sealed class Gate
{
    public volatile bool Open;

    public ConcurrentDictionary<Guid, int> Succeeded { get; } = new();

    public ConcurrentDictionary<Guid, int> Attempts { get; } = new();

    /// <summary>The transport headers of each message's last attempt.</summary>
    public ConcurrentDictionary<Guid, Dictionary<string, object?>> TransportHeaders { get; } = new();
}

public sealed class ToggledConsumer(Gate gate) : IConsumer<Toggled>
{
    public Task Consume(ConsumeContext<Toggled> context)
    {
        gate.Attempts.AddOrUpdate(context.MessageId!.Value, 1, (_, n) => n + 1);
        gate.TransportHeaders[context.MessageId!.Value] = context.ReceiveContext.TransportHeaders.GetAll().ToDictionary(h => h.Key, h => (object?)h.Value);
        if (!gate.Open)
        {
            throw new InvalidOperationException("The gate is closed for " + context.Message.N);
        }

        gate.Succeeded.AddOrUpdate(context.MessageId!.Value, 1, (_, n) => n + 1);
        return Task.CompletedTask;
    }
}

/// <summary>A host with JobLog and a bus (in memory or on a RabbitMQ vhost the caller owns), the gate and Data Protection keys in a directory.</summary>
internal static class FailureTestKit
{
    public static string KeysDirectory(TestLedger ledger) => (ledger.File ?? Path.Combine(Path.GetTempPath(), ledger.DatabaseName ?? "pg")) + ".keys";

    public static Task<LedgerHost> StartAsync(
        TestLedger ledger, Gate gate, RabbitMqVhost? vhost, Action<JobLogOptions>? options = null, Action<IServiceCollection>? more = null) =>
        StartCoreAsync(ledger, gate, vhost, options, more);

    private static async Task<LedgerHost> StartCoreAsync(
        TestLedger ledger, Gate gate, RabbitMqVhost? vhost, Action<JobLogOptions>? options, Action<IServiceCollection>? more)
    {
        var host = await LedgerHost.StartAsync(
            ledger,
            o =>
            {
                o.Failures.RetriesPerSecond = 5000;
                o.Failures.RetryPollInterval = TimeSpan.FromMilliseconds(100);
                options?.Invoke(o);
            },
            services =>
            {
                more?.Invoke(services);
                services.AddDataProtection().PersistKeysToFileSystem(new DirectoryInfo(KeysDirectory(ledger)));
                services.AddSingleton(gate);
                services.AddMassTransitTestHarness(x =>
                {
                    x.SetKebabCaseEndpointNameFormatter();
                    x.SetTestTimeouts(testTimeout: TimeSpan.FromSeconds(120), testInactivityTimeout: TimeSpan.FromSeconds(5));
                    x.AddConsumer<ToggledConsumer>();
                    if (vhost is null)
                    {
                        x.UsingInMemory((context, cfg) =>
                        {
                            cfg.UseTaskLogging(context);
                            cfg.ConfigureEndpoints(context);
                        });
                    }
                    else
                    {
                        x.UsingRabbitMq((context, cfg) =>
                        {
                            cfg.Host(RabbitMqVhost.Host, vhost.Name, h =>
                            {
                                h.Username("guest");
                                h.Password("guest");
                            });
                            cfg.UseTaskLogging(context);
                            cfg.ConfigureEndpoints(context);
                        });
                    }
                });
            });
        await host.Services.GetTestHarness().Start();
        return host;
    }

    /// <summary>Publishes <paramref name="count"/> messages; returns their ids.</summary>
    public static async Task<List<Guid>> PublishAsync(LedgerHost host, int count, string secret)
    {
        var bus = host.Services.GetRequiredService<IBus>();
        var ids = Enumerable.Range(0, count).Select(_ => NewId.NextGuid()).ToList();
        for (var i = 0; i < count; i += 100)
        {
            await Task.WhenAll(ids.Skip(i).Take(100).Select((id, j) => bus.Publish(new Toggled(i + j, secret), x => x.MessageId = id)));
        }

        return ids;
    }

    public static Task WaitAsync(LedgerHost host, Func<JobLogDbContext, Task<bool>> condition, string because, int seconds = 60) =>
        LedgerHost.EventuallyAsync(() => host.QueryAsync(condition), TimeSpan.FromSeconds(seconds), because);

    /// <summary>
    /// Waits until each of <paramref name="ids"/> is FAILED with its message kept. Polled first as two counts over the
    /// ledger, then, once they are reached, for these ids: the two queries over 5,000 ids took 0.5 to 3 s each poll at
    /// load 50 (every 50 ms, so nearly all the time), the test's own process competing with the consumers it waited for;
    /// the counts take ~10 ms. On a timeout, says how far it got.
    /// </summary>
    public static async Task WaitFailedAndKeptAsync(LedgerHost host, IReadOnlyCollection<Guid> ids, int seconds = 60)
    {
        var seen = "nothing read";
        try
        {
            await WaitAsync(
                host,
                async db =>
                {
                    var failed = await db.TaskLogs.CountAsync(t => t.State == TaskState.Failed);
                    var kept = await db.KeptMessages.CountAsync();
                    seen = $"{failed} tasks failed and {kept} messages kept in the ledger";
                    return failed >= ids.Count && kept >= ids.Count
                        && await db.TaskLogs.CountAsync(t => ids.Contains(t.Id) && t.State == TaskState.Failed) == ids.Count
                        && await db.KeptMessages.Select(k => k.TaskId).Distinct().CountAsync(id => ids.Contains(id)) == ids.Count;
                },
                $"{ids.Count} tasks failed and kept",
                seconds);
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException($"{ex.Message} ({seen})", ex);
        }
    }

    public static async Task<RetryProgress> WaitRetryDoneAsync(LedgerHost host, Guid requestId, int seconds = 60)
    {
        var actions = host.Services.GetRequiredService<IFailureActions>();
        RetryProgress? progress = null;
        await LedgerHost.EventuallyAsync(
            async () => (progress = await actions.GetRetryProgressAsync(requestId)) is { Completed: true },
            TimeSpan.FromSeconds(seconds),
            "the retry request completed");
        return progress!;
    }
}
