using System.ComponentModel.DataAnnotations;
using JobLog.Internal;
using Microsoft.Extensions.Options;

namespace JobLog;

/// <summary>Options of the JobLog scheduler (<c>x.AddJobLogScheduler(o => ...)</c>); validated at start-up.</summary>
public sealed class JobLogSchedulerOptions
{
    /// <summary>
    /// The queue the scheduler consumes <c>ScheduleMessage</c>/<c>CancelScheduledMessage</c> from. Default
    /// <c>joblog-scheduler</c>; every process of one system must use the same name, and it cannot change after the first
    /// <c>AddJobLogScheduler</c> call.
    /// </summary>
    [Required(ErrorMessage = "{0} is required.")]
    public string QueueName { get; set; } = "joblog-scheduler";

    /// <summary>
    /// Longest sleep of the dispatcher when it knows of no earlier message. It wakes for the next due message and when
    /// this process stores an earlier one; this bound catches messages stored by other processes that stopped before
    /// sending them. Default 5 s; must be positive.
    /// </summary>
    [Positive]
    [AtMostDays(30)]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Messages claimed per statement. Default 100; at least 1.</summary>
    [AtLeast(1)]
    public int BatchSize { get; set; } = 100;

    /// <summary>Sends in flight at once per dispatcher. Default 16; at least 1.</summary>
    [AtLeast(1)]
    public int MaxConcurrentSends { get; set; } = 16;

    /// <summary>
    /// How long a claim is held. A dispatcher that dies holding a claim delays those messages by at most this much;
    /// a send is not started when less than half of it is left. Default 60 s; must be positive.
    /// </summary>
    [Positive]
    [AtMostDays(30)]
    public TimeSpan ClaimLease { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Longest wait before a failed send is tried again (the wait doubles from 1 s). Default 60 s; must be positive.</summary>
    [Positive]
    [AtMostDays(30)]
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long sent and cancelled messages stay in the table. Default 7 days; positive, or null to keep them.</summary>
    [Positive(ErrorMessage = "{0} must be positive (null keeps them).")]
    public TimeSpan? KeepSentFor { get; set; } = TimeSpan.FromDays(7);
}

/// <summary>Fails start-up on scheduler options out of range (generated from the attributes on <see cref="JobLogSchedulerOptions"/>).</summary>
[OptionsValidator]
internal sealed partial class JobLogSchedulerOptionsValidator : IValidateOptions<JobLogSchedulerOptions>;
