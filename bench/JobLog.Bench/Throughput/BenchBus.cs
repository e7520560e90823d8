using System.Diagnostics;
using JobLog.Bench.Infrastructure;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace JobLog.Bench.Throughput;

/// <summary>The benchmark's message: what a payment service might publish.</summary>
public sealed record ChargeCard(int CustomerId, decimal Amount, string Currency, string Reference);

/// <summary>Counts consumed messages and completes when the armed target is reached.</summary>
internal sealed class ConsumedCounter
{
    private int _count;
    private int _target = int.MaxValue;
    private TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Attempts that throw before the one that succeeds (0 or 2).</summary>
    public int FailedAttempts { get; init; }

    public int Count => Volatile.Read(ref _count);

    public Task Arm(int target)
    {
        _done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _count, 0);
        Volatile.Write(ref _target, target);
        return _done.Task;
    }

    public void Consumed()
    {
        if (Interlocked.Increment(ref _count) == Volatile.Read(ref _target))
        {
            _done.TrySetResult();
        }
    }
}

/// <summary>A trivial consumer; with <see cref="ConsumedCounter.FailedAttempts"/> it throws on the first attempts.</summary>
internal sealed class ChargeCardConsumer(ConsumedCounter counter) : IConsumer<ChargeCard>
{
    public Task Consume(ConsumeContext<ChargeCard> context)
    {
        if (counter.FailedAttempts > 0 && context.GetRetryAttempt() < counter.FailedAttempts)
        {
            throw new InvalidOperationException("Card declined (benchmark: fails before the last attempt).");
        }

        counter.Consumed();
        return Task.CompletedTask;
    }
}

/// <summary>One process's bus, with or without JobLog, on the in-memory transport or a RabbitMQ vhost.</summary>
internal static class BenchBus
{
    public static IHost Build(
        TransportKind transport,
        RabbitProfile profile,
        int retries,
        ConsumedCounter counter,
        string? vhost,
        Action<JobLogOptions>? jobLog)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            DisableDefaults = true,
            EnvironmentName = "Production",
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        // The failing consumer of the retry workload would print every fault.
        builder.Logging.AddFilter("MassTransit", LogLevel.Critical);
        builder.Services.AddSingleton(counter);
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(60));
        builder.Services.AddOptions<MassTransitHostOptions>().Configure(o =>
        {
            o.WaitUntilStarted = true;
            o.StartTimeout = TimeSpan.FromSeconds(30);
            o.StopTimeout = TimeSpan.FromSeconds(30);
        });

        if (jobLog is not null)
        {
            builder.Services.AddJobLog(o =>
            {
                o.Sweeper.Enabled = false;
                jobLog(o);
            });
        }

        builder.Services.AddMassTransit(x =>
        {
            x.SetKebabCaseEndpointNameFormatter();
            x.AddConsumer<ChargeCardConsumer>();
            if (transport == TransportKind.InMemory)
            {
                x.UsingInMemory((context, cfg) => Configure(context, cfg, retries, jobLog is not null));
            }
            else
            {
                x.UsingRabbitMq((context, cfg) =>
                {
                    cfg.Host(ThrowawayVhost.Host, vhost ?? "/", h =>
                    {
                        h.Username("guest");
                        h.Password("guest");
                    });
                    if (profile == RabbitProfile.Prefetch64)
                    {
                        cfg.PrefetchCount = 64;
                        cfg.ConcurrentMessageLimit = 32;
                    }

                    Configure(context, cfg, retries, jobLog is not null);
                });
            }
        });

        return builder.Build();
    }

    private static void Configure<T>(IBusRegistrationContext context, IBusFactoryConfigurator<T> cfg, int retries, bool jobLog)
        where T : IReceiveEndpointConfigurator
    {
        if (retries > 0)
        {
            cfg.UseMessageRetry(r => r.Immediate(retries));
        }

        if (jobLog)
        {
            cfg.UseTaskLogging(context);
        }

        cfg.ConfigureEndpoints(context);
    }

    /// <summary>
    /// Publishes <paramref name="count"/> messages, <paramref name="window"/> in flight (Task.WhenAll windows); with a
    /// <paramref name="rate"/> (messages a second), each window holds only the messages due by then on a steady schedule,
    /// and the loop waits for the next one when none is due.
    /// </summary>
    public static async Task PublishAsync(IBus bus, int count, int window, int offset = 0, int rate = 0, CancellationToken cancellationToken = default)
    {
        var tasks = new Task[Math.Min(window, count)];
        var clock = Stopwatch.StartNew();
        for (var sent = 0; sent < count;)
        {
            var n = Math.Min(window, count - sent);
            if (rate > 0)
            {
                var due = (long)(clock.Elapsed.TotalSeconds * rate) - sent;
                if (due < 1)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(Math.Max(1, 1000.0 * (sent + 1 - clock.Elapsed.TotalSeconds * rate) / rate)), cancellationToken);
                    continue;
                }

                n = (int)Math.Min(n, due);
            }

            if (n != tasks.Length)
            {
                tasks = new Task[n];
            }

            for (var i = 0; i < n; i++)
            {
                var id = offset + sent + i;
                tasks[i] = bus.Publish(new ChargeCard(id, 10m + (id % 100), "EUR", "order-" + id.ToString(System.Globalization.CultureInfo.InvariantCulture)), cancellationToken);
            }

            await Task.WhenAll(tasks);
            sent += n;
        }
    }
}
