using JobLog.Timing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Timing;

/// <summary>The Python seed's computed ETA, expiry and stale deadline (<c>docs/architecture.md#sweeper</c>), on dispatch time T.</summary>
public class TaskTimingTests
{
    private static readonly DateTime T = new(2026, 1, 1, 12, 0, 0, DateTimeKind.Utc);

    private static TaskTimes Resolve(TaskDispatchOptions? call, TaskTypeOptions? type, JobLogOptions global) =>
        TaskTiming.Resolve(T, call, type, global);

    [Test]
    public void StaleLimitOnly_GivesStaleAndNoExpiry()
    {
        var times = Resolve(null, null, new JobLogOptions { DefaultStaleTimeLimit = TimeSpan.FromSeconds(30) });

        Assert.That((times.Eta, times.Expires, times.Stale), Is.EqualTo((T, (DateTime?)null, (DateTime?)T.AddSeconds(30))));
    }

    [Test]
    public void StaleAndTimeLimit_DeriveExpires()
    {
        var global = new JobLogOptions { DefaultStaleTimeLimit = TimeSpan.FromSeconds(30), DefaultTimeLimit = TimeSpan.FromSeconds(10) };

        var times = Resolve(null, null, global);

        Assert.That((times.Expires, times.Stale), Is.EqualTo(((DateTime?)T.AddSeconds(20), (DateTime?)T.AddSeconds(30))));
        Assert.That(times.TimeToLive, Is.EqualTo(TimeSpan.FromSeconds(20)));
    }

    [Test]
    public void CallTimeLimit_OverridesTheGlobalOne()
    {
        var global = new JobLogOptions { DefaultStaleTimeLimit = TimeSpan.FromSeconds(30), DefaultTimeLimit = TimeSpan.FromSeconds(10) };

        var times = Resolve(new TaskDispatchOptions { TimeLimit = TimeSpan.FromSeconds(20) }, null, global);

        Assert.That((times.Expires, times.Stale), Is.EqualTo(((DateTime?)T.AddSeconds(10), (DateTime?)T.AddSeconds(30))));
    }

    [Test]
    public void CallStaleLimit_OverridesTheGlobalOne()
    {
        var global = new JobLogOptions { DefaultStaleTimeLimit = TimeSpan.FromSeconds(30), DefaultTimeLimit = TimeSpan.FromSeconds(10) };

        var times = Resolve(new TaskDispatchOptions { StaleTimeLimit = TimeSpan.FromSeconds(100) }, null, global);

        Assert.That((times.Expires, times.Stale), Is.EqualTo(((DateTime?)T.AddSeconds(90), (DateTime?)T.AddSeconds(100))));
    }

    [Test]
    public void TypeStaleLimit_OverridesTheGlobalOne()
    {
        var global = new JobLogOptions { DefaultStaleTimeLimit = TimeSpan.FromSeconds(30), DefaultTimeLimit = TimeSpan.FromSeconds(10) };

        var times = Resolve(null, new TaskTypeOptions { StaleTimeLimit = TimeSpan.FromSeconds(3600) }, global);

        Assert.That((times.Expires, times.Stale), Is.EqualTo(((DateTime?)T.AddSeconds(3590), (DateTime?)T.AddSeconds(3600))));
    }

    [Test]
    public void ExplicitExpires_WinsOverTheDerivedOne()
    {
        var global = new JobLogOptions { DefaultStaleTimeLimit = TimeSpan.FromSeconds(30), DefaultTimeLimit = TimeSpan.FromSeconds(10) };

        var times = Resolve(new TaskDispatchOptions { Expires = TimeSpan.FromSeconds(5) }, null, global);

        Assert.That(times.Expires, Is.EqualTo(T.AddSeconds(5)));
    }

    [Test]
    public void Countdown_SetsTheEta()
    {
        var times = Resolve(new TaskDispatchOptions { Countdown = TimeSpan.FromMinutes(5) }, null, new JobLogOptions());

        Assert.That(times.Eta, Is.EqualTo(T.AddMinutes(5)));
    }

    [Test]
    public void TimeLimitAndQueueWait_DeriveTheStaleLimit_WithRetryDelays()
    {
        var type = new TaskTypeOptions
        {
            TimeLimit = TimeSpan.FromSeconds(10),
            MaxQueueWaitingTime = TimeSpan.FromSeconds(5),
            RetryDelays = [TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(300)],
        };

        var times = Resolve(null, type, new JobLogOptions());

        // (10 + 5) * (2 + 1) + 360 = 405 s
        Assert.That(times.Stale, Is.EqualTo(T.AddSeconds(405)));
    }

    [Test]
    public void NoLimits_NeverStale()
    {
        var times = Resolve(null, null, new JobLogOptions());

        Assert.That((times.Eta, times.Expires, times.Stale), Is.EqualTo((T, (DateTime?)null, (DateTime?)null)));
    }
}
