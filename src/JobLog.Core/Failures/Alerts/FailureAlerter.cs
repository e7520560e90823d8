using System.Net.Http.Json;
using System.Text.Json.Nodes;
using JobLog.Querying;
using JobLog.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JobLog.Failures.Alerts;

/// <summary>Why an alert was sent.</summary>
internal enum FailureAlertKind
{
    NewGroup,
    Rate,
}

/// <summary>
/// Reads the open failure groups on its own loop and posts alerts to the webhooks (see <see cref="FailureAlertOptions"/>).
/// Never on the business path: a failing ledger or webhook is logged and counted, and the next iteration goes on; each
/// post is bounded by <see cref="FailureAlertOptions.Timeout"/>. Posts go through the <see cref="HttpClientName"/> client,
/// which carries JobLog's outbound-request handler, so each alert is an outbound request in the ledger.
/// </summary>
internal sealed partial class FailureAlerter(
    JobLogContextFactory contexts,
    IOptions<JobLogOptions> ledgerOptions,
    IHttpClientFactory clients,
    IOptions<FailureAlertOptions> options,
    TimeProvider time,
    ILogger<FailureAlerter> logger) : BackgroundService
{
    public const string HttpClientName = "JobLog.FailureAlerts";

    /// <summary>The longest wait between two posts to a webhook that keeps failing (at least one <see cref="FailureAlertOptions.Interval"/>).</summary>
    internal static readonly TimeSpan MaxBackoff = TimeSpan.FromMinutes(5);

    /// <summary>How often a webhook that keeps failing is logged again (a count, without the stack trace).</summary>
    internal static readonly TimeSpan FailingReport = TimeSpan.FromMinutes(5);

    private readonly Dictionary<string, DateTime> _lastAlert = new(StringComparer.Ordinal);
    private readonly Dictionary<FailureAlertWebhook, DeadWebhook> _dead = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<string> _known = new(StringComparer.Ordinal);
    private DateTime? _started;
    private long _sent;
    private long _failed;

    /// <summary>Posts that a webhook accepted.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Posts that failed (error status, timeout, connection) and iterations that could not read the ledger.</summary>
    public long Failed => Interlocked.Read(ref _failed);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        _started ??= time.GetUtcNow().UtcDateTime;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(o.Interval, time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            await RunOnceAsync(stoppingToken).ConfigureAwait(false);
        }
    }

    /// <summary>One iteration: reads the groups, alerts new and busy ones out of their cool-down. Never throws but on cancellation.</summary>
    /// <returns>The alerts sent (to at least one webhook).</returns>
    public async Task<int> RunOnceAsync(CancellationToken ct)
    {
        var o = options.Value;
        var now = time.GetUtcNow().UtcDateTime;
        _started ??= now;
        FailureGroups groups;
        Dictionary<string, int> lastMinute;
        try
        {
            // On a session of its own, closed when read: a pooled one stayed idle between reads, every 30 s by default,
            // so for good (session 33).
            var db = await contexts.OpenUnpooledAsync(ct).ConfigureAwait(false);
            await using var _ = db.ConfigureAwait(false);
            var queries = new LedgerQueries(db, contexts.Database, ledgerOptions.Value.SearchIndex);
            var filter = new FailureFilter { By = o.By, Limit = ListFilter.MaxLimit };
            groups = await queries.FailureGroupsAsync(filter, now, ct).ConfigureAwait(false);
            lastMinute = o.FailuresPerMinute is null
                ? []
                : (await queries.FailureGroupsAsync(filter with { From = now.AddMinutes(-1) }, now, ct).ConfigureAwait(false))
                    .Groups.ToDictionary(g => g.Id, g => g.Count, StringComparer.Ordinal);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            Interlocked.Increment(ref _failed);
            LogReadFailed(logger, ex);
            return 0;
        }

        Forget(groups, now, o);
        var alerts = 0;
        var due = new List<(FailureGroup Group, bool IsNew, int PerMinute)>();
        foreach (var group in groups.Groups)
        {
            // A group first seen before this alerter started (less one interval) was there already: not "new".
            var isNew = _known.Add(group.Id) && group.FirstSeen >= _started.Value - o.Interval;
            var perMinute = lastMinute.GetValueOrDefault(group.Id);
            var busy = o.FailuresPerMinute is { } threshold && perMinute >= threshold;
            if ((!isNew && !busy) || (_lastAlert.TryGetValue(group.Id, out var last) && now - last < o.Cooldown))
            {
                continue;
            }

            due.Add((group, isNew, perMinute));
        }

        foreach (var (group, isNew, perMinute) in due.Take(o.MaxAlertsPerInterval))
        {
            if (await PostAsync(FailureAlertPayload.Create(o, isNew ? FailureAlertKind.NewGroup : FailureAlertKind.Rate, group, perMinute), group.Id, o, ct)
                .ConfigureAwait(false))
            {
                _lastAlert[group.Id] = now;
                alerts++;
            }
            else if (isNew)
            {
                // No webhook took it: the group stays new, to be alerted once a webhook answers again.
                _known.Remove(group.Id);
            }
        }

        var more = due.Skip(o.MaxAlertsPerInterval).ToList();
        if (more.Count > 0)
        {
            // One alert for the rest (a flood of distinct groups), not one each; they count as alerted.
            if (await PostAsync(FailureAlertPayload.More(o, more.Count), null, o, ct).ConfigureAwait(false))
            {
                foreach (var (group, _, _) in more)
                {
                    _lastAlert[group.Id] = now;
                }

                alerts++;
            }
            else
            {
                foreach (var (group, _, _) in more.Where(m => m.IsNew))
                {
                    _known.Remove(group.Id);
                }
            }
        }

        return alerts;
    }

    /// <summary>The group ids and alert times held (tests: bounded over a long life).</summary>
    internal int Remembered => _known.Count + _lastAlert.Count;

    /// <summary>
    /// Keeps the alerter's memory bounded over a process's life (a flood of distinct groups, one per tenant or per message
    /// type a producer makes up, would otherwise grow it with every id ever read). A complete read lists every open group,
    /// so a known id it does not list is resolved: it is forgotten, and a group that fails again is judged as a process
    /// started now would judge it. Past <see cref="KnownCap"/> ids even a truncated read prunes to what it lists. An alert
    /// time older than the cool-down no longer holds anything back.
    /// </summary>
    private void Forget(FailureGroups groups, DateTime now, FailureAlertOptions o)
    {
        if (!groups.Truncated || _known.Count > KnownCap)
        {
            _known.IntersectWith(groups.Groups.Select(g => g.Id));
        }

        foreach (var (id, at) in _lastAlert)
        {
            if (now - at >= o.Cooldown)
            {
                _lastAlert.Remove(id);
            }
        }
    }

    /// <summary>How many group ids a truncated read leaves known before it prunes them (ten reads of <c>ListFilter.MaxLimit</c>).</summary>
    internal const int KnownCap = 10 * ListFilter.MaxLimit;

    /// <summary>
    /// Posts to every webhook that is not backing off; true if one took it. A webhook that fails is not posted to again for
    /// a while (<see cref="Internal.Backoff.Delay"/> from one interval, doubled at each failure, at most <see cref="MaxBackoff"/>):
    /// a failed post leaves its group new, so a dead webhook was posted to, and logged with a stack trace, at every interval
    /// for every new group. Its first failure is logged with the exception (1121), then a one-line count at most every
    /// <see cref="FailingReport"/> (1122), and its return once (1123).
    /// </summary>
    private async Task<bool> PostAsync(Func<FailureAlertFormat, JsonObject> payload, string? groupId, FailureAlertOptions o, CancellationToken ct)
    {
        var any = false;
        var client = clients.CreateClient(HttpClientName);
        foreach (var webhook in o.Webhooks)
        {
            _dead.TryGetValue(webhook, out var dead);
            if (dead is not null && time.GetTimestamp() < dead.RetryAt)
            {
                continue;
            }

            var authority = webhook.Url?.GetLeftPart(UriPartial.Authority) ?? "";
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(o.Timeout);
            try
            {
                using var response = await client.PostAsJsonAsync(webhook.Url, payload(webhook.Format), timeout.Token)
                    .ConfigureAwait(false);
                response.EnsureSuccessStatusCode();
                Interlocked.Increment(ref _sent);
                any = true;
                if (dead is not null)
                {
                    _dead.Remove(webhook);
                    LogPostsResumed(logger, authority, dead.Failures, time.GetUtcNow().UtcDateTime - dead.Since);
                }
            }
            catch (Exception ex) when (!ct.IsCancellationRequested)
            {
                Interlocked.Increment(ref _failed);
                if (dead is null)
                {
                    dead = new DeadWebhook(new Internal.SteadyRate(time, FailingReport), time.GetUtcNow().UtcDateTime);
                    dead.Reports.Add(0, out _);
                    _dead[webhook] = dead;
                    LogPostFailed(logger, ex, authority, groupId ?? "(more groups)");
                }
                else if (dead.Reports.Add(1, out var failures))
                {
                    LogStillFailing(logger, authority, failures, dead.Failures + 1, dead.Since, Internal.LogValue.Visible(Internal.LogValue.Brief(ex)));
                }

                dead.Failures++;
                var wait = Internal.Backoff.Delay(dead.Failures, o.Interval, o.Interval > MaxBackoff ? o.Interval : MaxBackoff);
                dead.RetryAt = time.GetTimestamp() + (long)(wait.TotalSeconds * time.TimestampFrequency);
            }
        }

        return any;
    }

    /// <summary>A webhook whose last post failed: since when, how many posts failed, when it is posted to again.</summary>
    private sealed class DeadWebhook(Internal.SteadyRate reports, DateTime since)
    {
        public Internal.SteadyRate Reports { get; } = reports;

        public DateTime Since { get; } = since;

        public int Failures { get; set; }

        public long RetryAt { get; set; }
    }

    [LoggerMessage(1120, LogLevel.Warning, "JobLog's failure alerter could not read the open failures; it tries again at its next interval.")]
    private static partial void LogReadFailed(ILogger logger, Exception exception);

    [LoggerMessage(1121, LogLevel.Warning, "JobLog could not post a failure alert to {Webhook} for group {GroupId}; it is posted to again less and less often (at most every 5 min) and logged once every 5 min while it fails.")]
    private static partial void LogPostFailed(ILogger logger, Exception exception, string webhook, string groupId);

    [LoggerMessage(1122, LogLevel.Warning, "JobLog's failure alerts to {Webhook} still fail: {Failures} failed posts since the last report ({Total} since {Since:u}); the last: {Error}.")]
    private static partial void LogStillFailing(ILogger logger, string webhook, long failures, int total, DateTime since, string error);

    [LoggerMessage(1123, LogLevel.Information, "JobLog's failure alerts reach {Webhook} again, after {Failures} failed posts over {Duration}.")]
    private static partial void LogPostsResumed(ILogger logger, string webhook, int failures, TimeSpan duration);
}

/// <summary>The JSON of an alert, in the webhook's shape.</summary>
internal static partial class FailureAlertPayload
{
    /// <summary>
    /// <paramref name="text"/> (the ledger's text in a chat message) with what Slack and Teams turn into links defanged,
    /// as threat reports write them: a URL's <c>://</c>, <c>www.</c> and an address's <c>@</c>, with the dots of the
    /// host that follows (<c>https[:]//evil[.]example/x</c>, <c>www[.]evil[.]example</c>, <c>ann[@]evil[.]example</c>),
    /// and the dots of a bare host followed by a path (<c>evil[.]example/reset</c>, <c>evil[.]example:8443/x</c>).
    /// A key is a signature, a message type (a producer's choice, possibly a URL-like URN) or a queue: never meant as a
    /// link. Dots elsewhere are kept (type names are dotted, and a dotted name without a path, <c>System.Net</c>, is not
    /// told from a domain here).
    /// </summary>
    public static string Defang(string text) =>
        LinkLikePattern().Replace(text, m =>
            (m.Groups["scheme"].Success ? m.Groups["scheme"].Value + "[:]//" : m.Groups["www"].Success ? m.Groups["www"].Value + "[.]" : m.Groups["bare"].Success ? "" : "[@]")
            + m.Groups["host"].Value.Replace(".", "[.]", StringComparison.Ordinal));

    /// <summary>
    /// <paramref name="text"/> with every dot between two name characters written <c>[.]</c> after <see cref="Defang"/>:
    /// a dotted name without a scheme or a path (<c>pay.evil.example</c>, <c>Evil.Com</c>, an address) is linked by chat
    /// clients, and cannot be told from a type name here. For names a sender chooses (a message type, a queue).
    /// </summary>
    public static string DefangNames(string text) => DottedNamePattern().Replace(Defang(text), "[.]");

    /// <summary>
    /// <paramref name="text"/> as a chat message shows the ledger's text: <see cref="Defang"/>ed (every dotted name too,
    /// <see cref="DefangNames"/>, when <paramref name="named"/>: the text is a name a sender chooses, not a signature the
    /// application's code names), and its control characters (line feeds too: a key is one line), bidi marks,
    /// embeddings, overrides and isolates, line separators and characters that draw nothing where they hide
    /// (<see cref="JobLog.Internal.InvisibleText"/>) written as code points, <c>[U+202E]</c>, as the dashboard writes them.
    /// </summary>
    public static string ChatText(string text, bool named = false) =>
        JobLog.Internal.InvisibleText.CodePoints(named ? DefangNames(text) : Defang(text), s_invisible);

    [System.Text.RegularExpressions.GeneratedRegex(@"(?<=[\p{L}\p{M}\p{N}_\-])\.(?=[\p{L}\p{N}])", System.Text.RegularExpressions.RegexOptions.CultureInvariant, 1000)]
    private static partial System.Text.RegularExpressions.Regex DottedNamePattern();

    private static readonly System.Buffers.SearchValues<char> s_invisible = System.Buffers.SearchValues.Create(
        string.Concat(Enumerable.Range(0, 0x20).Concat(Enumerable.Range(0x7f, 0x21)).Select(c => (char)c))
        + "\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069");

    [System.Text.RegularExpressions.GeneratedRegex(
        @"(?:(?<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://|\b(?<www>[Ww]{3})\.|(?<=[\w.%+\-])@(?=[\w\-]+\.))(?<host>[^/\s?#\\:@]*)"
        + @"|(?<![\w.\-@/\[\]])(?<bare>)(?<host>[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)(?=(?::[0-9]+)?/)",
        System.Text.RegularExpressions.RegexOptions.CultureInvariant, 1000)]
    private static partial System.Text.RegularExpressions.Regex LinkLikePattern();

    /// <summary><paramref name="text"/> shown as text in Markdown: its markup characters escaped, its HTML ones as entities.</summary>
    public static string MarkdownText(string text)
    {
        var sb = new System.Text.StringBuilder(text.Length + 16);
        foreach (var c in text)
        {
            _ = c switch
            {
                '&' => sb.Append("&amp;"),
                '<' => sb.Append("&lt;"),
                '>' => sb.Append("&gt;"),
                '\\' or '`' or '*' or '_' or '[' or ']' or '(' or ')' or '~' or '#' or '|' or '!' => sb.Append('\\').Append(c),
                _ => sb.Append(c),
            };
        }

        return sb.ToString();
    }

    /// <summary>The payload of an alert about one group, per webhook format.</summary>
    public static Func<FailureAlertFormat, JsonObject> Create(FailureAlertOptions o, FailureAlertKind kind, FailureGroup group, int perMinute) =>
        format => Create(format, kind, group, perMinute, o.DashboardUrl);

    /// <summary>The payload of the alert about <paramref name="count"/> more groups than one iteration alerts one by one.</summary>
    public static Func<FailureAlertFormat, JsonObject> More(FailureAlertOptions o, int count) => format =>
    {
        var by = o.By.ToString().ToLowerInvariant();
        var link = o.DashboardUrl is null ? null : o.DashboardUrl.AbsoluteUri.TrimEnd('/') + "/failures?by=" + by;
        var title = $"{count} more failure groups";
        var text = $"{title} to alert: see the Failures page" + (link is null ? "" : " " + link);
        return format switch
        {
            FailureAlertFormat.Slack => new JsonObject { ["text"] = text, ["mrkdwn"] = false },
            FailureAlertFormat.Teams => new JsonObject
            {
                ["@type"] = "MessageCard", ["@context"] = "https://schema.org/extensions", ["summary"] = title, ["title"] = title, ["text"] = text,
            },
            _ => new JsonObject { ["kind"] = "more-groups", ["by"] = by, ["count"] = count, ["text"] = text, ["link"] = link },
        };
    };

    public static JsonObject Create(FailureAlertFormat format, FailureAlertKind kind, FailureGroup group, int perMinute, Uri? dashboard)
    {
        var link = dashboard is null ? null : dashboard.AbsoluteUri.TrimEnd('/') + "/failures/groups/" + group.Id + "?by=" + group.By.ToString().ToLowerInvariant();
        var title = kind == FailureAlertKind.NewGroup ? "New failure group" : $"Failures at {perMinute}/min";
        string Text(string key) => $"{title}: {key} ({group.Count} open, last {LedgerFormat.Time(group.LastSeen)} UTC)" + (link is null ? "" : " " + link);
        var text = Text(group.Key);
        // An exception signature is named by the application's code (types and methods); a message type or a queue is a
        // name a producer or an operator chooses, and a bare dotted one reads as a site.
        var named = group.By != FailureGrouping.Exception;
        var chatText = Text(ChatText(group.Key, named));
        return format switch
        {
            // Slack reads <!channel>, <@user> and <url|label> in text; the ledger's text (an exception's message) is shown as text.
            // mrkdwn has no escape for *, _, ~ and `, so it is turned off: the text is plain. Slack still links bare URLs,
            // addresses and www. names: the key's are defanged.
            FailureAlertFormat.Slack => new JsonObject
            {
                ["text"] = chatText.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal).Replace(">", "&gt;", StringComparison.Ordinal),
                ["mrkdwn"] = false,
            },
            FailureAlertFormat.Teams => new JsonObject
            {
                ["@type"] = "MessageCard",
                ["@context"] = "https://schema.org/extensions",
                ["summary"] = title,
                ["title"] = title,
                // A MessageCard's text is Markdown (and some HTML): the ledger's text is escaped, the dashboard's link is not.
                ["text"] = Text(MarkdownText(ChatText(group.Key, named))),
            },
            _ => new JsonObject
            {
                ["kind"] = kind == FailureAlertKind.NewGroup ? "new-group" : "rate",
                ["groupId"] = group.Id,
                ["by"] = group.By.ToString().ToLowerInvariant(),
                ["key"] = group.Key,
                ["exceptionType"] = group.ExceptionType,
                ["count"] = group.Count,
                ["perMinute"] = perMinute,
                ["firstSeen"] = group.FirstSeen,
                ["lastSeen"] = group.LastSeen,
                ["sampleError"] = group.SampleError,
                ["text"] = text,
                ["link"] = link,
            },
        };
    }
}
