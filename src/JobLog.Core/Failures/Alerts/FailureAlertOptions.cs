using System.ComponentModel.DataAnnotations;
using JobLog.Internal;
using Microsoft.Extensions.Options;

namespace JobLog.Failures.Alerts;

/// <summary>The shape of the JSON an alert posts.</summary>
public enum FailureAlertFormat
{
    /// <summary><c>{ "kind", "groupId", "key", "exceptionType", "count", "perMinute", "firstSeen", "lastSeen", "sampleError", "text", "link" }</c>. The default.</summary>
    Generic = 0,

    /// <summary>A Slack incoming webhook: <c>{ "text": ..., "mrkdwn": false }</c> (the text is plain, <c>&amp;</c>, <c>&lt;</c>, <c>&gt;</c> escaped, URLs in the key defanged: <c>https[:]//evil[.]example</c>).</summary>
    Slack = 1,

    /// <summary>A Microsoft Teams incoming webhook: a <c>MessageCard</c> with <c>summary</c>, <c>title</c> and <c>text</c> (the key's Markdown escaped, its URLs defanged).</summary>
    Teams = 2,
}

/// <summary>One webhook the alerter posts to.</summary>
public sealed class FailureAlertWebhook
{
    /// <summary>The webhook's absolute http(s) URL. Required.</summary>
    [Required(ErrorMessage = "{0} is required.")]
    public Uri? Url { get; set; }

    /// <summary>The payload's shape. Default <see cref="FailureAlertFormat.Generic"/>.</summary>
    public FailureAlertFormat Format { get; set; }
}

/// <summary>
/// Options of <c>services.AddJobLogFailureAlerts(...)</c>: a hosted alerter that reads the open failure groups every
/// <see cref="Interval"/> and posts to <see cref="Webhooks"/> when a new group appears or a group's failures per minute
/// reach <see cref="FailuresPerMinute"/>, at most once per group per <see cref="Cooldown"/>. Validated on start.
/// </summary>
public sealed class FailureAlertOptions
{
    /// <summary>Where alerts go. At least one.</summary>
    [MinLength(1, ErrorMessage = "{0} needs at least one webhook.")]
    [ValidateEnumeratedItems]
    public List<FailureAlertWebhook> Webhooks { get; } = [];

    /// <summary>How often the groups are read. Default 30 s; 1 s to 1 h.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00", ErrorMessage = "{0} must be from 1 s to 1 h.")]
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>After an alert for a group, no other alert for it for this long. Default 15 min; 1 s to 7 days.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00", ErrorMessage = "{0} must be from 1 s to 7 days.")]
    public TimeSpan Cooldown { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>A group with at least this many failures in the last minute is alerted. Default 10; null for new groups only.</summary>
    [AtLeast(1)]
    public int? FailuresPerMinute { get; set; } = 10;

    /// <summary>
    /// The most groups alerted one by one in an iteration; past it, one alert says how many more groups are due and links
    /// to the Failures page, and those groups count as alerted (their cool-down starts). A flood of distinct groups (a
    /// message type or queue per tenant) is then at most this many posts and one more per webhook per
    /// <see cref="Interval"/>. Default 10; 1 to 500.
    /// </summary>
    [Range(1, 500)]
    public int MaxAlertsPerInterval { get; set; } = 10;

    /// <summary>The longest one post may take (connect, send, answer). Default 10 s; 1 s to 2 min.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:02:00", ErrorMessage = "{0} must be from 1 s to 2 min.")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How failures are grouped. Default <see cref="FailureGrouping.Exception"/>.</summary>
    public FailureGrouping By { get; set; }

    /// <summary>The dashboard's absolute URL (e.g. <c>https://ops.example.com/joblog</c>) for links to the group; null for none.</summary>
    public Uri? DashboardUrl { get; set; }
}

/// <summary>Fails start-up on alert options that cannot work (generated from the attributes on <see cref="FailureAlertOptions"/>).</summary>
[OptionsValidator]
internal sealed partial class FailureAlertOptionsValidator : IValidateOptions<FailureAlertOptions>;
