using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Scheduling;

public class SchedulerOptionsValidationTests
{
    [Test]
    public void Defaults_AreValid() =>
        Assert.That(new JobLogSchedulerOptionsValidator().Validate(Options.DefaultName, new JobLogSchedulerOptions()).Succeeded, Is.True);

    [Test]
    public void OutOfRange_GivesOneMessagePerProperty()
    {
        var options = new JobLogSchedulerOptions
        {
            PollInterval = TimeSpan.Zero,
            BatchSize = 0,
            MaxConcurrentSends = 0,
            ClaimLease = TimeSpan.Zero,
            MaxRetryDelay = TimeSpan.Zero,
            KeepSentFor = TimeSpan.Zero,
        };

        var result = new JobLogSchedulerOptionsValidator().Validate(null, options);

        Assert.That(result.Failures, Has.Exactly(6).Items);
        Assert.That(result.FailureMessage, Does.Contain("JobLogSchedulerOptions.PollInterval must be positive."));
        Assert.That(result.FailureMessage, Does.Contain("JobLogSchedulerOptions.BatchSize must be at least 1."));
        Assert.That(result.FailureMessage, Does.Contain("JobLogSchedulerOptions.KeepSentFor must be positive (null keeps them)."));
    }

    [Test]
    public void KeepSentFor_Null_KeepsSentMessagesAndIsValid() =>
        Assert.That(new JobLogSchedulerOptionsValidator().Validate(null, new JobLogSchedulerOptions { KeepSentFor = null }).Succeeded, Is.True);
}
