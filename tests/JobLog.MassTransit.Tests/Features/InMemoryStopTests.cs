using System.Collections.Concurrent;
using JobLog.Testing;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public sealed record StopDuringRetry(int N, bool WaitOnSecondAttempt);

/// <summary>Fails its first attempt; its second fails too, or waits on <c>context.CancellationToken</c> (the bus's stop cancels it).</summary>
public sealed class StopDuringRetryConsumer : IConsumer<StopDuringRetry>
{
    public static readonly ConcurrentDictionary<int, int> Attempts = new();

    public static readonly ConcurrentDictionary<int, TaskCompletionSource> SecondStarted = new();

    public async Task Consume(ConsumeContext<StopDuringRetry> context)
    {
        var attempt = Attempts.AddOrUpdate(context.Message.N, 1, (_, a) => a + 1);
        if (attempt == 2 && context.Message.WaitOnSecondAttempt)
        {
            SecondStarted.GetValueOrDefault(context.Message.N)?.TrySetResult();
            await Task.Delay(TimeSpan.FromMinutes(10), context.CancellationToken);
        }

        throw new InvalidOperationException($"attempt {attempt} of {context.Message.N} failed");
    }
}

/// <summary>
/// The in-memory bus stops (its hosted services, <c>ConsumerStopTimeout</c> 2 s) while a consumer with retries is between
/// two attempts or in its second: the consume is cancelled and the in-memory transport drops the message (it logs the
/// fault; nothing holds it to deliver again), unlike RabbitMQ, whose broker redelivers it (<see cref="RabbitShutdownTests"/>).
/// The last run must say the delivery ended: FAILED, its task FAILED, not RETRIED with a retry that never comes.
/// </summary>
public class InMemoryStopTests
{
    private static int NextId() => Random.Shared.Next(1000, int.MaxValue);

    [TestCase(false, TestName = "InMemoryBus_StoppedWhileARetryWaits_TheRetriedRunEndsFailed")]
    [TestCase(true, TestName = "InMemoryBus_StoppedDuringARetrysAttempt_TheCancelledRunEndsFailed")]
    public async Task InMemoryBus_StoppedDuringRetries_TheLastRunEndsFailed(bool waitOnSecondAttempt)
    {
        // A retry waits 10 minutes after the first failure (the stop cancels that wait), or 50 ms before a second attempt
        // that waits on its token.
        await using var bus = await BusFixture.StartAsync(
            Transport.InMemory,
            x =>
            {
                x.AddConsumer<StopDuringRetryConsumer>();
                ((IServiceCollection)x).Configure<MassTransitHostOptions>(o => o.ConsumerStopTimeout = TimeSpan.FromSeconds(2));
            },
            retries: 3,
            retryInterval: waitOnSecondAttempt ? TimeSpan.FromMilliseconds(50) : TimeSpan.FromMinutes(10));
        var id = NewId.NextGuid();
        var n = NextId();
        var second = StopDuringRetryConsumer.SecondStarted[n] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await bus.Bus.Publish(new StopDuringRetry(n, waitOnSecondAttempt), x => x.MessageId = id);
        if (waitOnSecondAttempt)
        {
            await second.Task.WaitAsync(TimeSpan.FromSeconds(120));
        }

        await WaitFor(bus, id, t => t.Runs.Count(r => r.State != TaskRunState.Active) == 1, "the first attempt failed", 60);
        foreach (var service in bus.Host.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().Where(s => s.GetType().FullName!.StartsWith("MassTransit", StringComparison.Ordinal)))
        {
            await service.StopAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(120));
        }

        await bus.Host.FlushAsync();
        var task = await WaitFor(bus, id, t => t.Runs.All(r => r.State != TaskRunState.Active), "every run ended", 60);
        TestContext.Out.WriteLine(Describe(task));
        var runs = task.Runs.OrderBy(r => r.Start).ThenBy(r => r.Retries).ToList();
        Assert.That(StopDuringRetryConsumer.Attempts[n], Is.EqualTo(waitOnSecondAttempt ? 2 : 1), "the attempts the consumer saw");
        Assert.That(runs, Has.Count.EqualTo(StopDuringRetryConsumer.Attempts[n]));
        Assert.That(runs.SkipLast(1).Select(r => r.State), Has.All.EqualTo(TaskRunState.Retried), "an attempt a retry followed");
        Assert.That((runs[^1].State, task.State), Is.EqualTo((TaskRunState.Failed, TaskState.Failed)), "the delivery ended with the stop: nothing delivers it again");
        Assert.That(runs[^1].ErrorMessage, waitOnSecondAttempt ? Does.Contain("Canceled") : Does.Contain("attempt 1 of " + n + " failed"));
    }
}
