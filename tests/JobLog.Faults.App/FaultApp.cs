using System.Diagnostics;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace JobLog.Faults.App;

/// <summary>The message of the fault suite: its <see cref="Id"/> is also its MessageId (the ledger's task id).</summary>
public sealed record Probe(Guid Id, int Number);

/// <summary>Consumes a probe and writes its id to the consumer's "seen" file once the consumer has finished.</summary>
public sealed class ProbeConsumer(SeenFile seen, ConsumeDelay delay, TimeProvider time, RetryDeliveries retries, FailEvery failEvery) : IConsumer<Probe>
{
    public async Task Consume(ConsumeContext<Probe> context)
    {
        (time as OffsetClock)?.Arm();
        if (failEvery.Value > 0 && context.Message.Number % failEvery.Value == 0)
        {
            throw new InvalidOperationException("fault-app: every probe whose number divides by Fault:FailEvery fails");
        }

        if (retries.Enabled)
        {
            if (!context.Headers.TryGetHeader("JobLog-Retried", out _))
            {
                throw new InvalidOperationException("fault-app: a probe fails until JobLog retries it");
            }

            // Each delivery of a retried probe, with RabbitMQ's redelivered flag: a delivery that is not a redelivery is
            // a send (a message sent twice is delivered twice unredelivered).
            retries.Add(context.Message.Id, context.ReceiveContext.Redelivered);
        }

        if (delay.Value > TimeSpan.Zero)
        {
            await Task.Delay(delay.Value, context.CancellationToken);
        }

        seen.Add(context.Message.Id);
    }
}

/// <summary>A probe run as a MassTransit job (<c>Fault:Jobs</c>): the ids written are its JobId (the ledger's task id).</summary>
public sealed record ProbeJob(Guid Id, int Number);

/// <summary>Runs a probe job and writes its id to the consumer's "seen" file once its attempt has finished.</summary>
public sealed class ProbeJobConsumer(SeenFile seen, ConsumeDelay delay, TimeProvider time) : IJobConsumer<ProbeJob>
{
    public async Task Run(JobContext<ProbeJob> context)
    {
        (time as OffsetClock)?.Arm();
        if (delay.Value > TimeSpan.Zero)
        {
            await Task.Delay(delay.Value, context.CancellationToken);
        }

        seen.Add(context.JobId);
    }
}

/// <summary>
/// <c>Fault:FailUnlessRetried</c>: a probe's consumer throws unless the message is a retry JobLog sent (its
/// <c>JobLog-Retried</c> header), so every probe fails for good first and its message is kept; each delivery of a retried
/// probe is written to <c>Fault:Out</c> + <c>.retried</c> as <c>id redelivered</c> (True or False).
/// </summary>
public sealed class RetryDeliveries(string? path)
{
    private readonly SeenFile? _file = path is null ? null : new SeenFile(path);

    public bool Enabled => _file is not null;

    public void Add(Guid id, bool redelivered) => _file!.AddLine(id.ToString("D") + " " + redelivered);
}

/// <summary><c>Fault:FailEvery</c> (default 0, none): the probes whose number divides by it fail for good (FAILED, kept).</summary>
public sealed record FailEvery(int Value);

/// <summary>How long the consumer sleeps before it finishes (<c>Fault:ConsumeDelayMs</c>, default 0): a slow consumer.</summary>
public sealed record ConsumeDelay(TimeSpan Value);

/// <summary>
/// One role of the fault suite, as its own process:
/// <c>publish</c> publishes <c>Fault:Count</c> probes and writes each id once <c>Publish</c> has returned;
/// <c>consume</c> consumes them and writes each id once its consumer has finished.
/// Settings: <c>Fault:Role</c>, <c>Fault:Out</c> (the file of ids), <c>Fault:Count</c>, <c>Fault:Database</c>
/// (<c>sqlite</c> or <c>postgres</c>), <c>ConnectionStrings:JobLog</c>, <c>RabbitMq:Host</c>, <c>RabbitMq:Port</c>, <c>RabbitMq:VirtualHost</c>,
/// <c>JobLog:Durability</c>, <c>JobLog:SpoolDirectory</c>, <c>JobLog:QueueCapacity</c>, <c>JobLog:FlushJournalToDisk</c>, <c>Fault:ConsumeDelayMs</c> (a slow consumer),
/// <c>Fault:HeartbeatMs</c> (<see cref="JobLogOptions.HeartbeatInterval"/>), <c>Fault:HostTimeoutMs</c> (<see cref="JobLogOptions.HostTimeout"/>),
/// <c>Fault:SweepMs</c> (<see cref="SweeperOptions.Interval"/>), <c>Fault:StaleMs</c> (<see cref="JobLogOptions.DefaultStaleTimeLimit"/>),
/// <c>Fault:RetryLeaseMs</c> and <c>Fault:RetryPollMs</c> (<see cref="JobLog.Failures.FailureOptions.RetryClaimLease"/>,
/// <see cref="JobLog.Failures.FailureOptions.RetryPollInterval"/>), <c>Fault:FailUnlessRetried</c> (<see cref="RetryDeliveries"/>),
/// <c>Fault:FailEvery</c> (<see cref="FailEvery"/>), <c>Fault:Partitioned</c> (<see cref="PartitioningOptions.Enabled"/>),
/// <c>Fault:IdFromClock</c> (a probe's id is a UUID version 7 of JobLog's clock's time, not a <c>NewId</c>), <c>Fault:ClockOffsetMs</c> (JobLog's wall clock set that far
/// from the machine's: <see cref="OffsetClock"/>), <c>Fault:ClockJumpMs</c> and <c>Fault:ClockJumpAfterMs</c> (that wall
/// clock stepped that far, that long after the first probe started: an NTP step or a VM resumed mid-run), <c>Fault:Jobs</c> (true: the
/// probes are <see cref="ProbeJob"/>s submitted to MassTransit's job service, which the consumer runs with in-memory job
/// sagas and JobLog's scheduler; a failed attempt is retried once after 1 s). Prints <c>fault-app ready</c> when the bus has started and
/// <c>fault-app published N</c> when a publisher is done.
/// </summary>
public static class FaultApp
{
    public const string QueueName = "fault-probe";

    public static async Task<int> RunAsync(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(args);
        var config = builder.Configuration;
        var role = config["Fault:Role"] ?? throw new InvalidOperationException("Fault:Role is required (publish or consume).");
        var seen = new SeenFile(config["Fault:Out"] ?? throw new InvalidOperationException("Fault:Out is required."));
        var connectionString = config.GetConnectionString("JobLog") ?? throw new InvalidOperationException("ConnectionStrings:JobLog is required.");
        var postgres = string.Equals(config["Fault:Database"], "postgres", StringComparison.OrdinalIgnoreCase);

        builder.Services.AddSingleton(seen);
        builder.Services.AddSingleton(new RetryDeliveries(config.GetValue("Fault:FailUnlessRetried", false) ? config["Fault:Out"] + ".retried" : null));
        builder.Services.AddSingleton(new FailEvery(config.GetValue("Fault:FailEvery", 0)));
        builder.Services.AddSingleton(new ConsumeDelay(TimeSpan.FromMilliseconds(config.GetValue("Fault:ConsumeDelayMs", 0))));
        if (config.GetValue<int?>("Fault:ClockOffsetMs") is { } offset)
        {
            builder.Services.AddSingleton<TimeProvider>(new OffsetClock(TimeSpan.FromMilliseconds(offset)));
        }
        else if (config.GetValue<int?>("Fault:ClockJumpMs") is { } jump)
        {
            builder.Services.AddSingleton<TimeProvider>(new OffsetClock(
                TimeSpan.Zero, TimeSpan.FromMilliseconds(jump), TimeSpan.FromMilliseconds(config.GetValue("Fault:ClockJumpAfterMs", 0))));
        }

        builder.Services.AddJobLog(o =>
        {
            if (postgres)
            {
                o.UseNpgsql(connectionString);
            }
            else
            {
                o.UseSqlite(connectionString);
            }

            o.Host = $"fault-{role}-{Environment.ProcessId}";
            o.Release = "fault-suite";
            if (config.GetValue<int?>("Fault:HeartbeatMs") is { } heartbeat)
            {
                o.HeartbeatInterval = TimeSpan.FromMilliseconds(heartbeat);
            }

            if (config.GetValue<int?>("Fault:HostTimeoutMs") is { } hostTimeout)
            {
                o.HostTimeout = TimeSpan.FromMilliseconds(hostTimeout);
            }

            if (config.GetValue<int?>("Fault:SweepMs") is { } sweep)
            {
                o.Sweeper.Interval = TimeSpan.FromMilliseconds(sweep);
            }

            o.Partitioning.Enabled = config.GetValue("Fault:Partitioned", false);
            if (config.GetValue<int?>("Fault:StaleMs") is { } stale)
            {
                o.DefaultStaleTimeLimit = TimeSpan.FromMilliseconds(stale);
            }

            if (config.GetValue<int?>("Fault:RetryLeaseMs") is { } lease)
            {
                o.Failures.RetryClaimLease = TimeSpan.FromMilliseconds(lease);
            }

            if (config.GetValue<int?>("Fault:RetryPollMs") is { } poll)
            {
                o.Failures.RetryPollInterval = TimeSpan.FromMilliseconds(poll);
            }

            if (Enum.TryParse<LedgerDurability>(config["JobLog:Durability"], ignoreCase: true, out var durability))
            {
                o.Durability = durability;
            }

            if (config["JobLog:SpoolDirectory"] is { } spool)
            {
                o.SpoolDirectory = spool;
            }

            if (config.GetValue<int?>("JobLog:QueueCapacity") is { } capacity)
            {
                o.QueueCapacity = capacity;
            }

            o.FlushJournalToDisk = config.GetValue("JobLog:FlushJournalToDisk", false);
        });
        var jobs = config.GetValue("Fault:Jobs", false);
        builder.Services.AddMassTransit(x =>
        {
            if (role == "consume" && jobs)
            {
                // The job service's sagas keep their state in memory: a process killed loses them, as MassTransit's
                // in-memory repository does. JobLog's scheduler carries the job service's scheduled messages (no plugin).
                x.SetKebabCaseEndpointNameFormatter();
                x.SetInMemorySagaRepositoryProvider();
                x.SetJobConsumerOptions();
                x.AddJobSagaStateMachines();
                x.AddJobLogScheduler(o => o.PollInterval = TimeSpan.FromMilliseconds(500));
                x.AddConsumer<ProbeJobConsumer>(c => c.Options<JobOptions<ProbeJob>>(o => o
                    .SetJobTimeout(TimeSpan.FromMinutes(5))
                    .SetConcurrentJobLimit(10)
                    .SetRetry(r => r.Interval(1, TimeSpan.FromSeconds(1)))));
            }
            else if (role == "consume")
            {
                x.AddConsumer<ProbeConsumer>().Endpoint(e => e.Name = QueueName);
            }

            x.UsingRabbitMq((context, cfg) =>
            {
                cfg.Host(config["RabbitMq:Host"] ?? "127.0.0.1", config.GetValue<ushort>("RabbitMq:Port", 5672), config["RabbitMq:VirtualHost"] ?? "/", h =>
                {
                    h.Username("guest");
                    h.Password("guest");
                });
                cfg.UseTaskLogging(context);
                cfg.ConfigureEndpoints(context);
            });
        });

        using var host = builder.Build();
        await host.StartAsync();
        Console.WriteLine("fault-app ready");
        if (role == "publish")
        {
            var count = config.GetValue("Fault:Count", 1000);
            if (jobs)
            {
                await SubmitJobsAsync(host.Services.GetRequiredService<IBus>(), seen, count);
            }
            else
            {
                await PublishAsync(host.Services.GetRequiredService<IBus>(), seen, count,
                    config.GetValue("Fault:IdFromClock", false) ? host.Services.GetRequiredService<TimeProvider>() : null);
            }

            Console.WriteLine($"fault-app published {count}");
        }

        await host.WaitForShutdownAsync();
        return 0;
    }

    /// <summary>Submits <paramref name="count"/> probe jobs, one at a time; a JobId is written once its submission returned.</summary>
    private static async Task SubmitJobsAsync(IBus bus, SeenFile seen, int count)
    {
        for (var n = 0; n < count; n++)
        {
            seen.Add(await bus.SubmitJob(new ProbeJob(NewId.NextGuid(), n), CancellationToken.None));
        }
    }

    /// <summary>
    /// Sends in windows of 20: an id is written only after its own send returned. A send that fails (the broker is
    /// restarting) is tried again with the same MessageId, as an application with a retry policy would.
    /// </summary>
    private static async Task PublishAsync(IBus bus, SeenFile seen, int count, TimeProvider? idClock)
    {
        // The queue exists before the first publish, so that no probe is published into nothing.
        var endpoint = await bus.GetSendEndpoint(new Uri($"queue:{QueueName}"));
        const int window = 20;
        for (var start = 0; start < count; start += window)
        {
            var batch = Enumerable.Range(start, Math.Min(window, count - start)).Select(async n =>
            {
                // Fault:IdFromClock: the id carries JobLog's clock's time (a UUID version 7; Fault:ClockOffsetMs moves it), so
                // that a partitioned ledger keeps the probe in the day JobLog's times say.
                var probe = new Probe(idClock is null ? NewId.NextGuid() : Guid.CreateVersion7(idClock.GetUtcNow()), n);
                for (var attempt = 1; ; attempt++)
                {
                    try
                    {
                        // A send cut by a broker restart can wait for a confirm that never comes: bounded, then tried
                        // again (a duplicate is harmless: the same MessageId is the same task).
                        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
                        await endpoint.Send(probe, c => c.MessageId = probe.Id, timeout.Token);
                        break;
                    }
                    catch (Exception ex) when (attempt < 120)
                    {
                        Console.WriteLine($"fault-app send failed (attempt {attempt}): {ex.GetType().Name}");
                        await Task.Delay(1000);
                    }
                }

                seen.Add(probe.Id);
            });
            await Task.WhenAll(batch);
        }
    }
}

/// <summary>
/// The machine's clock seen from a host whose wall clock is <paramref name="offset"/> away (another machine's skew, or a
/// step NTP made), and steps <paramref name="jump"/> further once <paramref name="jumpAfter"/> has passed since it was
/// armed (<see cref="Arm"/>: the first probe started): the wall time moves, the monotonic timestamp does not, as on a
/// real machine.
/// </summary>
public sealed class OffsetClock(TimeSpan offset, TimeSpan jump = default, TimeSpan jumpAfter = default) : TimeProvider
{
    private long _armed;

    /// <summary>Starts the count to the step (once; later calls change nothing).</summary>
    public void Arm() => Interlocked.CompareExchange(ref _armed, Stopwatch.GetTimestamp(), 0);

    public override DateTimeOffset GetUtcNow() =>
        System.GetUtcNow() + offset
        + (jump != TimeSpan.Zero && Interlocked.Read(ref _armed) is var armed and not 0 && Stopwatch.GetElapsedTime(armed) >= jumpAfter ? jump : TimeSpan.Zero);
}

/// <summary>An append-only file of ids, one per line, handed to the operating system as each is written (a SIGKILL keeps it).</summary>
public sealed class SeenFile(string path)
{
    private readonly Lock _lock = new();
    private readonly StreamWriter _writer = new(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };

    public void Add(Guid id) => AddLine(id.ToString("D"));

    public void AddLine(string line)
    {
        lock (_lock)
        {
            _writer.WriteLine(line);
        }
    }
}
