using JobLog.Internal;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Internal;

public class BackoffTests
{
    [Test]
    public async Task Retry_WhileFailing_WaitsOnTheGivenClockUpToTheMaximum()
    {
        var time = new FakeTimeProvider();
        var delays = new List<(int Attempt, TimeSpan Delay)>();
        var calls = 0;
        var retry = Backoff.Retry(
            time, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(400), static (_, _) => true, (_, attempt, delay) => delays.Add((attempt, delay)));

        var run = retry.ExecuteAsync(_ => ++calls < 6 ? throw new InvalidOperationException("down") : ValueTask.CompletedTask).AsTask();
        for (var i = 0; i < 20 && !run.IsCompleted; i++)
        {
            await Task.Delay(10);
            time.Advance(TimeSpan.FromMilliseconds(400));
        }

        await run;
        Assert.That(calls, Is.EqualTo(6));
        Assert.That(delays.Select(d => d.Attempt), Is.EqualTo(new[] { 1, 2, 3, 4, 5 }));
        Assert.That(delays.Select(d => d.Delay), Has.All.GreaterThan(TimeSpan.Zero).And.LessThanOrEqualTo(TimeSpan.FromMilliseconds(400)));
    }

    [Test]
    public void Retry_AnExceptionItDoesNotHandle_IsThrownAtOnce()
    {
        var calls = 0;
        var retry = Backoff.Retry(
            TimeProvider.System, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1), static (ex, _) => ex is not OperationCanceledException, (_, _, _) => { });

        Assert.ThrowsAsync<OperationCanceledException>(async () => await retry.ExecuteAsync(_ =>
        {
            calls++;
            throw new OperationCanceledException();
        }));
        Assert.That(calls, Is.EqualTo(1));
    }

    [Test]
    public void Delay_DoublesWithEachAttempt_WithJitter_AndStopsAtTheMaximum()
    {
        var first = TimeSpan.FromSeconds(1);
        var max = TimeSpan.FromSeconds(60);

        Assert.That(Backoff.Delay(1, first, max), Is.InRange(TimeSpan.FromSeconds(0.8), first));
        Assert.That(Backoff.Delay(3, first, max), Is.InRange(TimeSpan.FromSeconds(3.2), TimeSpan.FromSeconds(4)));
        Assert.That(Backoff.Delay(40, first, max), Is.InRange(TimeSpan.FromSeconds(48), max));
    }
}
