using JobLog.AspNetCore.Dashboard;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests;

public class OptionsValidationTests
{
    [Test]
    public void DashboardOptions_Defaults_AreValid() =>
        Assert.That(new JobLogDashboardOptionsValidator().Validate(Options.DefaultName, new JobLogDashboardOptions()).Succeeded, Is.True);

    [Test]
    public void DashboardOptions_OutOfRange_GivesOneMessagePerPropertyNamingItsRange()
    {
        var options = new JobLogDashboardOptions { PageSize = 501, RefreshInterval = TimeSpan.FromSeconds(-1), MaxConcurrentSearches = 0 };

        var result = new JobLogDashboardOptionsValidator().Validate(null, options);

        Assert.That(result.Failures, Has.Exactly(3).Items);
        Assert.That(result.FailureMessage, Does.Contain("JobLogDashboardOptions.PageSize must be 1 to 500."));
        Assert.That(result.FailureMessage, Does.Contain("JobLogDashboardOptions.RefreshInterval must not be negative."));
        Assert.That(result.FailureMessage, Does.Contain("JobLogDashboardOptions.MaxConcurrentSearches must be at least 1."));
    }

    [Test]
    public void RequestOptions_ANegativeReadAhead_IsRejected()
    {
        var result = new JobLogRequestOptionsValidator().Validate(null, new JobLogRequestOptions { ReadAheadTimeout = TimeSpan.FromSeconds(-1) });

        Assert.That(result.FailureMessage, Does.Contain("JobLogRequestOptions.ReadAheadTimeout must not be negative."));
    }
}
