using System.Diagnostics;
using System.Globalization;
using System.Text;
using JobLog.Bench.Infrastructure;
using JobLog.Failures;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace JobLog.Bench.Failures;

/// <summary>
/// The cost of keeping failed messages on the failure path (failures per second with keeping off and on, side by side,
/// on the in-memory transport and a SQLite ledger), and bulk retry throughput (retries per second, the sender's rate
/// limit out of the way): <c>-- failures [--messages N]</c>.
/// </summary>
internal sealed class FailuresBench(BenchOptions options)
{
    public async Task<string> RunAsync()
    {
        var count = Math.Min(options.Messages, 5000);
        var off = await RunAsync(count, keep: false);
        var on = await RunAsync(count, keep: true);
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{count:N0} messages that fail (no retry policy), in-memory transport, SQLite ledger, Journaled.");
        sb.AppendLine();
        sb.AppendLine("| measure | keeping off | keeping on | ratio |");
        sb.AppendLine("| --- | ---: | ---: | ---: |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| failures/s (publish → every task FAILED, every message kept) | {off.FailuresPerSecond:N0} | {on.FailuresPerSecond:N0} | {on.FailuresPerSecond / off.FailuresPerSecond:0.00} |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| bulk retry of all {count:N0}: retries/s sent (request → progress completed) | — | {on.RetriesPerSecond:N0} | |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| bulk retry: request → every task SUCCEEDED, tasks/s | — | {on.SucceededPerSecond:N0} | |");
        return sb.ToString();
    }

    private static async Task<Result> RunAsync(int count, bool keep)
    {
        await using var ledger = await ThrowawayLedger.CreateAsync(LedgerProvider.Sqlite);
        var gate = new Gate();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Services.AddJobLog(o =>
        {
            ledger.Apply(o);
            o.Sweeper.Enabled = false;
            o.Failures.KeepMessages = keep;
            o.Failures.RetriesPerSecond = 1_000_000;
            o.Failures.RetryBatchSize = 500;
            o.Failures.RetryPollInterval = TimeSpan.FromMilliseconds(50);
        });
        builder.Services.AddSingleton(gate);
        builder.Services.AddMassTransit(x =>
        {
            x.AddConsumer<FailingConsumer>();
            x.UsingInMemory((context, cfg) =>
            {
                cfg.UseTaskLogging(context);
                cfg.ConfigureEndpoints(context);
            });
        });
        using var host = builder.Build();
        await host.StartAsync();
        var bus = host.Services.GetRequiredService<IBus>();
        var ids = Enumerable.Range(0, count).Select(_ => NewId.NextGuid()).ToList();
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < count; i += 500)
        {
            await Task.WhenAll(ids.Skip(i).Take(500).Select(id => bus.Publish(new FailingJob(id.ToString()), c => c.MessageId = id)));
        }

        await UntilAsync(host, async db => await db.TaskLogs.CountAsync(t => t.State == TaskState.Failed) == count
            && (!keep || await db.KeptMessages.CountAsync() == count));
        var failures = count / watch.Elapsed.TotalSeconds;
        double retries = 0, succeeded = 0;
        if (keep)
        {
            gate.Open = true;
            var actions = host.Services.GetRequiredService<IFailureActions>();
            watch.Restart();
            var receipt = await actions.RetryAsync(new FailureActionRequest(ids, "bench"));
            while ((await actions.GetRetryProgressAsync(receipt.RequestId))?.Completed != true)
            {
                await Task.Delay(20);
            }

            retries = receipt.Accepted / watch.Elapsed.TotalSeconds;
            await UntilAsync(host, async db => await db.TaskLogs.CountAsync(t => t.State == TaskState.Succeeded) == count);
            succeeded = count / watch.Elapsed.TotalSeconds;
        }

        await host.StopAsync();
        return new Result(failures, retries, succeeded);
    }

    private static async Task UntilAsync(IHost host, Func<JobLogDbContext, Task<bool>> condition)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(5))
        {
            await using var scope = host.Services.CreateAsyncScope();
            if (await condition(scope.ServiceProvider.GetRequiredService<JobLogDbContext>()))
            {
                return;
            }

            await Task.Delay(20);
        }

        throw new TimeoutException("The failures bench did not finish in 5 minutes.");
    }

    private sealed record Result(double FailuresPerSecond, double RetriesPerSecond, double SucceededPerSecond);
}

internal sealed record FailingJob(string Payload);

internal sealed class Gate
{
    public volatile bool Open;
}

internal sealed class FailingConsumer(Gate gate) : IConsumer<FailingJob>
{
    public Task Consume(ConsumeContext<FailingJob> context) =>
        gate.Open ? Task.CompletedTask : throw new InvalidOperationException("The failures bench fails this message.");
}
