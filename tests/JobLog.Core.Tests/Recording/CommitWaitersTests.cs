using JobLog.Internal;
using JobLog.Recording;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>What releases a waiting acknowledgement in Journaled mode: the journal's append, never a refused record's.</summary>
public class CommitWaitersTests
{
    private ServiceProvider _services = null!;
    private CommitWaiters _waiters = null!;

    [SetUp]
    public void SetUp()
    {
        _services = new ServiceCollection().AddMetrics().AddSingleton<JobLogMetrics>().BuildServiceProvider();
        _waiters = new CommitWaiters(_services.GetRequiredService<JobLogMetrics>(), new FakeTimeProvider(), TimeSpan.FromMinutes(1), journalSuffices: true);
        _waiters.SetJournalUsable();
    }

    [TearDown]
    public void TearDown()
    {
        _waiters.Dispose();
        _services.Dispose();
    }

    [Test]
    public void Journaled_ReleasesTheWait_WithoutACommit()
    {
        var wait = _waiters.WaitAsync(1, CancellationToken.None);
        Assert.That(wait.IsCompleted, Is.False);

        _waiters.Journaled(1);

        Assert.That(wait.IsCompleted, Is.True);
        Assert.That(_waiters.Committed, Is.Zero);
    }

    [Test]
    public void ARefusedRecord_WaitsForItsCommit_EvenWhenLaterAppendsSucceed()
    {
        var refused = _waiters.WaitAsync(2, CancellationToken.None);
        _waiters.JournalRefused(2);
        var later = _waiters.WaitAsync(3, CancellationToken.None);

        _waiters.Journaled(3);
        Assert.That(refused.IsCompleted, Is.False, "record 2 is not on disk: the journal's watermark passing it proves nothing");
        Assert.That(later.IsCompleted, Is.False, "until the refused record is committed the journal counts for nobody");

        _waiters.Release(2);
        Assert.That(refused.IsCompleted, Is.True);
        Assert.That(later.IsCompleted, Is.True, "committed past the refusal: the journal counts again");
    }

    [Test]
    public void ARefusalDuringAnOutage_ReleasesEveryone_NothingCanMakeThemDurable()
    {
        var wait = _waiters.WaitAsync(1, CancellationToken.None);
        _waiters.SetFailing(true);
        Assert.That(wait.IsCompleted, Is.False, "while the database is down the journal still makes records durable");

        _waiters.JournalRefused(1);

        Assert.That(wait.IsCompleted, Is.True);
    }

    [Test]
    public void AWaitItsDeadlineReleases_BeforeItsRecordIsDurable_IsTold()
    {
        var time = new FakeTimeProvider();
        var timedOut = 0;
        using var waiters = new CommitWaiters(_services.GetRequiredService<JobLogMetrics>(), time, TimeSpan.FromSeconds(5), journalSuffices: true, timedOut: n => timedOut += n);
        var committed = waiters.WaitAsync(1, CancellationToken.None);
        var late = waiters.WaitAsync(2, CancellationToken.None);
        waiters.Release(1);

        time.Advance(TimeSpan.FromSeconds(6));

        Assert.Multiple(() =>
        {
            Assert.That((committed.IsCompleted, late.IsCompleted), Is.EqualTo((true, true)));
            Assert.That(timedOut, Is.EqualTo(1), "the wait its deadline released is told; the one its commit released is not");
        });
    }

    [Test]
    public void ATellingThatThrows_StaysOffTheTimersThread_AndLaterWaitsStillExpire()
    {
        // The 1008 warning is written by the application's logging providers; Microsoft.Extensions.Logging rethrows a
        // provider's exception (AggregateException). On a real timer's thread that exception ends the process.
        var time = new FakeTimeProvider();
        var told = 0;
        using var waiters = new CommitWaiters(_services.GetRequiredService<JobLogMetrics>(), time, TimeSpan.FromSeconds(5), journalSuffices: true, timedOut: n =>
        {
            told += n;
            throw new AggregateException("An error occurred while writing to logger(s).", new IOException("disk full"));
        });
        var first = waiters.WaitAsync(1, CancellationToken.None);

        Assert.That(() => time.Advance(TimeSpan.FromSeconds(6)), Throws.Nothing, "the timer's callback");
        var second = waiters.WaitAsync(2, CancellationToken.None);
        Assert.That(() => time.Advance(TimeSpan.FromSeconds(6)), Throws.Nothing, "the timer's callback, again");

        Assert.Multiple(() =>
        {
            Assert.That((first.IsCompleted, second.IsCompleted), Is.EqualTo((true, true)));
            Assert.That(told, Is.EqualTo(2));
        });
    }
}
