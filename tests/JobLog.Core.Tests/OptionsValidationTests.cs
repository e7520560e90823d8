using JobLog.Health;
using JobLog.Retention;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace JobLog.Core.Tests;

public class OptionsValidationTests
{
    [Test]
    public void JobLogOptions_Defaults_AreValid()
    {
        var options = new JobLogOptions().UseSqlite("Data Source=:memory:");

        Assert.That(new JobLogOptionsValidator().Validate(Options.DefaultName, options).Succeeded, Is.True);
    }

    [Test]
    public void JobLogOptions_OutOfRange_GivesOneMessagePerPropertyNamingItAndItsRange()
    {
        var options = new JobLogOptions
        {
            QueueCapacity = 10,
            MaxSpoolBytes = 0,
            MaxBatchSize = 0,
            AcknowledgeTimeout = TimeSpan.FromSeconds(-1),
            FlushInterval = TimeSpan.FromSeconds(-1),
            MaxRetryDelay = TimeSpan.Zero,
            CommandTimeout = TimeSpan.Zero,
        };
        options.Sweeper.Interval = TimeSpan.Zero;
        options.Sweeper.BatchSize = 0;
        options.Redaction.MaxBodyLength = 99;
        options.Redaction.MaxJsonStringLength = 9;

        var failures = new JobLogOptionsValidator().Validate(Options.DefaultName, options).Failures!.ToList();

        Assert.That(failures, Is.EquivalentTo(new[]
        {
            "JobLog needs a database: AddJobLog(o => o.UseSqlite(\"Data Source=joblog.db\")) or o.UseNpgsql(connectionString).",
            "JobLogOptions.QueueCapacity must be at least 1,000.",
            "JobLogOptions.MaxSpoolBytes must be positive (set SpoolDirectory to null to turn the spool off).",
            "JobLogOptions.MaxBatchSize must be 1 to 100000.",
            "JobLogOptions.AcknowledgeTimeout must not be negative.",
            "JobLogOptions.FlushInterval must not be negative.",
            "JobLogOptions.MaxRetryDelay must be positive.",
            "JobLogOptions.CommandTimeout must be positive.",
            "JobLogOptions.Sweeper.Interval must be positive.",
            "JobLogOptions.Sweeper.BatchSize must be 1 to 100000.",
            "JobLogOptions.Redaction.MaxBodyLength must be 100 to 1000000 characters (a backed-up row with its texts at this length must fit one line of a purge backup).",
            "JobLogOptions.Redaction.MaxJsonStringLength must be at least 10.",
        }).Using<string>((a, b) => b.EndsWith(a, StringComparison.Ordinal) || a.EndsWith(b, StringComparison.Ordinal) ? 0 : 1));
    }

    [Test]
    public void JobLogOptions_MaxBodyLengthPastWhatABackupLineHolds_IsRefused()
    {
        var options = new JobLogOptions().UseSqlite("Data Source=:memory:");
        options.Redaction.MaxBodyLength = 10_000_000;

        var result = new JobLogOptionsValidator().Validate(Options.DefaultName, options);

        Assert.That(result.Failures, Is.EqualTo(new[]
        {
            "JobLogOptions.Redaction.MaxBodyLength must be 100 to 1000000 characters (a backed-up row with its texts at this length must fit one line of a purge backup).",
        }).Using<string>((a, b) => b.EndsWith(a, StringComparison.Ordinal) || a.EndsWith(b, StringComparison.Ordinal) ? 0 : 1));
    }

    [Test]
    public void JobLogOptions_HostTimeoutNotAboveHeartbeatInterval_IsRefused()
    {
        var options = new JobLogOptions { HeartbeatInterval = TimeSpan.FromMinutes(1), HostTimeout = TimeSpan.FromMinutes(1) }.UseSqlite("Data Source=:memory:");

        var failures = new JobLogOptionsValidator().Validate(Options.DefaultName, options).Failures!.ToList();

        Assert.That(failures, Has.Count.EqualTo(1));
        Assert.That(failures[0], Does.Contain("HostTimeout (00:01:00) must be greater than HeartbeatInterval (00:01:00)."));
    }

    [Test]
    public void AddJobLog_OutOfRange_FailsAtStartWithThePropertysMessage()
    {
        var services = new ServiceCollection();
        services.AddJobLog(o =>
        {
            o.UseSqlite("Data Source=:memory:");
            o.MaxBatchSize = 0;
        });
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => _ = provider.GetRequiredService<IOptions<JobLogOptions>>().Value);
        Assert.That(ex!.Failures, Has.Exactly(1).Items);
        Assert.That(ex.Message, Does.Contain("JobLogOptions.MaxBatchSize must be 1 to 100000."));
    }

    [Test]
    public void BatchSizesAndParallelism_PastWhatOneTransactionOrServerTakes_AreRefusedAtStart_NamingTheRange()
    {
        // Taken before: a writer batch of int.MaxValue records made its hold's capacity (eight batches) overflow to a
        // negative number, a sweep batch of int.MaxValue reserved a list of that size (an OutOfMemoryException at the first
        // sweep), a million sweep connections were opened one by one until the server refused.
        var options = new JobLogOptions { MaxBatchSize = int.MaxValue }.UseSqlite("Data Source=:memory:");
        options.Sweeper.BatchSize = int.MaxValue;
        options.Sweeper.Parallelism = 1_000_000;
        var retention = new JobLogRetentionOptions { BatchSize = 100_001 };

        var failures = new JobLogOptionsValidator().Validate(Options.DefaultName, options).Failures!.ToList();
        var retentionFailures = new JobLogRetentionOptionsValidator().Validate(Options.DefaultName, retention).Failures!.ToList();

        Assert.That(failures, Is.EquivalentTo(new[]
        {
            "JobLogOptions.MaxBatchSize must be 1 to 100000.",
            "JobLogOptions.Sweeper.BatchSize must be 1 to 100000.",
            "JobLogOptions.Sweeper.Parallelism must be 1 to 64.",
        }).Using<string>((a, b) => b.EndsWith(a, StringComparison.Ordinal) || a.EndsWith(b, StringComparison.Ordinal) ? 0 : 1));
        Assert.That(retentionFailures, Is.EqualTo(new[] { "JobLogRetentionOptions.BatchSize must be 1 to 100000." })
            .Using<string>((a, b) => b.EndsWith(a, StringComparison.Ordinal) || a.EndsWith(b, StringComparison.Ordinal) ? 0 : 1));
    }

    [Test]
    public void WaitsPastWhatTimersAndRetriesTake_AreRefusedAtStart_NamingTheLongest()
    {
        // Taken before: HeartbeatInterval of 60 days stopped the application at its first heartbeat's wait (Task.Delay takes
        // at most 49.7 days); MaxRetryDelay of 2 days (Polly's retry delay takes at most 1 day) or FlushInterval of 60 days
        // (Buffered) ended the writer at its first batch: nothing reached the ledger again, and the application ran on.
        var big = TimeSpan.FromDays(31);
        var options = new JobLogOptions
        {
            AcknowledgeTimeout = big, FlushInterval = big, MaxRetryDelay = TimeSpan.FromDays(2), CommandTimeout = big,
            IdleInTransactionTimeout = big, HeartbeatInterval = big, HostTimeout = big * 2,
        }.UseSqlite("Data Source=:memory:");
        options.Sweeper.Interval = big;
        options.Failures.RetryPollInterval = big;
        options.Failures.RetryClaimLease = big;
        var retention = new JobLogRetentionOptions { Interval = big };

        Assert.That(new JobLogOptionsValidator().Validate(Options.DefaultName, options).Failures, Is.EquivalentTo(new[]
        {
            "JobLogOptions.AcknowledgeTimeout must be at most 30 days.",
            "JobLogOptions.FlushInterval must be at most 30 days.",
            "JobLogOptions.MaxRetryDelay must be at most 1 day.",
            "JobLogOptions.CommandTimeout must be at most 30 days.",
            "JobLogOptions.IdleInTransactionTimeout must be at most 30 days.",
            "JobLogOptions.HeartbeatInterval must be at most 30 days.",
            "JobLogOptions.HostTimeout must be at most 30 days.",
            "JobLogOptions.Sweeper.Interval must be at most 30 days.",
            "JobLogOptions.Failures.RetryPollInterval must be at most 30 days.",
            "JobLogOptions.Failures.RetryClaimLease must be at most 30 days.",
        }).Using<string>((a, b) => b.EndsWith(a, StringComparison.Ordinal) || a.EndsWith(b, StringComparison.Ordinal) ? 0 : 1));
        Assert.That(new JobLogRetentionOptionsValidator().Validate(Options.DefaultName, retention).Failures,
            Is.EqualTo(new[] { "JobLogRetentionOptions.Interval must be at most 30 days." })
                .Using<string>((a, b) => b.EndsWith(a, StringComparison.Ordinal) || a.EndsWith(b, StringComparison.Ordinal) ? 0 : 1));
    }

    [Test]
    public async Task WaitsAtTheirLongest_StartAndRecord_AndTheApplicationRunsOn()
    {
        // The bound is what the timers and the retry take: at it, every wait is begun without an exception.
        var longest = TimeSpan.FromDays(30);
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.AcknowledgeTimeout = longest;
            o.MaxRetryDelay = TimeSpan.FromDays(1);
            o.CommandTimeout = longest;
            o.HeartbeatInterval = TimeSpan.FromDays(29);
            o.HostTimeout = longest;
            o.Sweeper.Interval = longest;
        });
        var id = Guid.NewGuid();

        host.RecordDispatch(id);
        host.RecordSucceededRun(id);
        await host.FlushAsync();

        Assert.That((await host.TaskAsync(id)).State, Is.EqualTo(TaskState.Succeeded));
        await LedgerHost.EventuallyAsync(async () => await host.QueryAsync(db => db.Hosts.AnyAsync()), because: "the first heartbeat written, its next wait begun");
        Assert.That(host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested, Is.False);
    }

    [Test]
    public void SpoolDirectoryWithANul_IsRefusedAtStart_NotAnExceptionOutOfTheHostsStart()
    {
        var options = new JobLogOptions { SpoolDirectory = "/var/lib/app\0/joblog" }.UseSqlite("Data Source=:memory:");

        var failures = new JobLogOptionsValidator().Validate(Options.DefaultName, options).Failures;

        Assert.That(failures, Has.Exactly(1).Contains("SpoolDirectory holds a character no path may hold"));
    }

    [Test]
    public void RetentionOptions_APeriodNotPositive_NamesTheKindAndThePeriod()
    {
        var options = new JobLogRetentionOptions { BatchSize = 0 };
        options.Commands.Succeeded = TimeSpan.FromDays(-1);
        options.Tasks.Failed = null;

        var result = new JobLogRetentionOptionsValidator().Validate(Options.DefaultName, options);

        Assert.That(result.Failures, Has.Exactly(2).Items);
        Assert.That(result.FailureMessage, Does.Contain("JobLogRetentionOptions.Commands.Succeeded must be positive (null keeps rows forever)."));
        Assert.That(result.FailureMessage, Does.Contain("JobLogRetentionOptions.BatchSize must be 1 to 100000."));
    }

    [Test]
    public void HealthCheckOptions_ATimeoutNotPositive_FailsAtStart()
    {
        var services = new ServiceCollection();
        services.AddHealthChecks().AddJobLogHealthChecks(o => o.DatabaseTimeout = TimeSpan.Zero);
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => _ = provider.GetRequiredService<IOptions<JobLogHealthCheckOptions>>().Value);
        Assert.That(ex!.Message, Does.Contain("JobLogHealthCheckOptions.DatabaseTimeout must be positive."));
    }
}
