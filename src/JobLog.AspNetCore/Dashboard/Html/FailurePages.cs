using JobLog.Failures;
using JobLog.Querying;

namespace JobLog.AspNetCore.Dashboard.Html;

/// <summary>What an operator's page needs to post actions: the antiforgery field, and whether actions can run at all.</summary>
/// <param name="FieldName">The antiforgery form field's name.</param>
/// <param name="Token">The request token for this user.</param>
/// <param name="Available">Whether the application registered an <c>IFailureActions</c>.</param>
internal sealed record FailureOperator(string FieldName, string Token, bool Available);

/// <summary>The open failures: groups, one group's failures, a retry's progress, and the action forms operators see.</summary>
internal static class FailurePages
{
    /// <summary>The filter names a group or filter action carries along (the same as the list's).</summary>
    public static readonly string[] FilterNames = ["by", "group", "name", "queue", "internal", "since", "from", "to", "q"];

    private static readonly (string Value, string Label)[] s_groupings =
        [("exception", "Exception and code"), ("type", "Message type"), ("queue", "Queue")];

    public static string List(PageContext page, FailureGroups? groups, string? error)
    {
        var live = error is null ? Layout.ListFragment : null;
        return Layout.Render(page, "Failures", "failures", h =>
        {
            h.Add($"<div class=\"page-head\"><h1>Failures</h1><span class=\"muted\">open failures: failed tasks no operator resolved</span></div>\n");
            h.Add($"<form class=\"filters card\" method=\"get\" action=\"{page.Url("/failures")}\">");
            Layout.Select(h, "by", "Group by", page.Query("by"), s_groupings);
            Layout.Input(h, "name", "Name", page.Query("name"));
            Layout.Input(h, "queue", "Queue", page.Query("queue"));
            Layout.Select(h, "internal", "MassTransit internal", page.Query("internal"), [("", "Hidden"), ("true", "Only internal"), ("all", "Shown")]);
            Layout.TimeRange(h, page);
            Layout.Input(h, "q", "Error contains", page.Query("q"), "search", "text in the error or message");
            Layout.FormEnd(h, page, "/failures");
            if (groups is { Truncated: true })
            {
                h.Add($"<div class=\"alert\">More than {Format.Number(LedgerQueries.MaxFailuresScanned)} open failures: the groups count the newest ones.</div>");
            }

            h.Fragment("section", Layout.ListFragment, "card table-card", h =>
            {
                h.Add($"<table class=\"list\" id=\"failure-groups\"><thead><tr><th>Group</th><th class=\"num\">Failures</th><th>Exception</th><th>First seen</th><th>Last seen</th><th>Last 24 h</th><th>Sample error</th></tr></thead><tbody>");
                if (groups is null || groups.Groups.Count == 0)
                {
                    Layout.Empty(h, groups is null ? "" : "No open failure matches these filters.", 7);
                }
                else
                {
                    foreach (var g in groups.Groups)
                    {
                        var href = page.WithQuery("/failures/groups/" + g.Id, "cursor", null, "group");
                        h.Add($"<tr data-group=\"{g.Id}\"><td><a href=\"{href}\">{g.Key}</a></td><td class=\"num\">{Format.Number(g.Count)}</td><td class=\"mono\">{g.ExceptionType}</td><td class=\"nowrap\">{Format.Time(g.FirstSeen)}</td><td class=\"nowrap\">{Format.Time(g.LastSeen)}</td><td class=\"mono\" title=\"failures per hour, oldest first\">{Sparkline(g.Trend)}</td><td class=\"input\">{FirstLine(g.SampleError)}</td></tr>\n");
                    }
                }

                h.Add($"</tbody></table><div class=\"pager\"><span class=\"muted\">{groups?.Groups.Count ?? 0} groups · {groups?.Total ?? 0} failures</span></div>");
            });
            if (groups is { Total: > 0 })
            {
                FilterActions(h, page, "Act on every failure matching these filters", null);
            }
        }, live, error);
    }

    public static string Group(PageContext page, string id, FailureGroup? group, Page<FailureRow> rows, string? error)
    {
        return Layout.Render(page, "Failure group", "failures", h =>
        {
            h.Add($"<div class=\"page-head\"><h1>{group?.Key ?? "Failure group"}</h1><span class=\"mono muted\">{id}</span></div>\n");
            if (group is not null)
            {
                h.Add($"<section class=\"card\"><dl class=\"fields\">");
                Layout.Field(h, "Grouped by", group.By.ToString().ToLowerInvariant());
                Layout.Field(h, "Exception", group.ExceptionType, mono: true);
                Layout.Field(h, "Open failures", Format.Number(group.Count));
                Layout.Field(h, "First seen", Format.Time(group.FirstSeen));
                Layout.Field(h, "Last seen", Format.Time(group.LastSeen));
                Layout.Field(h, "Last 24 h", Sparkline(group.Trend), mono: true);
                h.Add($"</dl>");
                Layout.Pre(h, "Sample error", group.SampleError, "error");
                h.Add($"</section>");
                FilterActions(h, page, "Act on the whole group", id);
            }
            else if (error is null)
            {
                h.Add($"<p class=\"muted\">No open failure is in this group (any more).</p>");
            }

            var op = page.Operator is { Available: true } ? page.Operator : null;
            if (op is not null && rows.Items.Count > 0)
            {
                h.Add($"<form id=\"selection\" class=\"card failure-actions\" method=\"post\" action=\"{page.Url("/failures/actions/retry")}\">");
                Hidden(h, op.FieldName, op.Token);
                Hidden(h, "scope", "tasks");
                Buttons(h, page, "selected");
                h.Add($"</form>");
            }

            Layout.ListSection(h, page, "/failures/groups/" + id, rows.NextCursor, rows.Items.Count, h =>
            {
                h.Add($"<table class=\"list\" id=\"failure-rows\"><thead><tr>{new RawHtml(op is null ? "" : "<th></th>")}<th>Task</th><th>Name</th><th>Queue</th><th>Failed</th><th>Error</th></tr></thead><tbody>");
                if (rows.Items.Count == 0)
                {
                    Layout.Empty(h, "No open failure.", op is null ? 5 : 6);
                }

                foreach (var r in rows.Items)
                {
                    var href = page.Url("/tasks/" + r.TaskId);
                    h.Add($"<tr data-id=\"{r.TaskId}\">");
                    if (op is not null)
                    {
                        h.Add($"<td><input type=\"checkbox\" name=\"task\" value=\"{r.TaskId}\" form=\"selection\" aria-label=\"select {r.TaskId}\"></td>");
                    }

                    h.Add($"<td class=\"mono\"><a href=\"{href}\">{Format.ShortId(r.TaskId)}</a></td><td>{r.Name}</td><td class=\"muted\">{r.QueueName ?? "—"}</td><td class=\"nowrap\">{Format.Time(r.FailedAt)}</td><td class=\"input\">{FirstLine(r.Error)}</td></tr>\n");
                }

                h.Add($"</tbody></table>");
            });
        }, null, error);
    }

    /// <summary>The retry, resolve and archive buttons of a failed task's page (operators only).</summary>
    public static void TaskActions(HtmlWriter h, PageContext page, TaskLog task)
    {
        if (task.State != TaskState.Failed || page.Operator is not { } op)
        {
            return;
        }

        if (task.Resolution is { } resolution)
        {
            h.Add($"<p class=\"muted\">This failure was {resolution.ToString().ToLowerInvariant()} at {Format.Time(task.ResolvedAt)}.</p>");
            return;
        }

        if (!op.Available)
        {
            Unavailable(h);
            return;
        }

        h.Add($"<form class=\"card failure-actions\" method=\"post\" action=\"{page.Url("/failures/actions/retry")}\">");
        Hidden(h, op.FieldName, op.Token);
        Hidden(h, "scope", "tasks");
        Hidden(h, "task", task.Id.ToString());
        Buttons(h, page, "this failure");
        h.Add($"</form>");
    }

    public static string Progress(PageContext page, RetryProgress progress) =>
        Layout.Render(page, "Retry", "failures", h =>
        {
            var handled = progress.Sent + progress.Skipped + progress.Failed;
            h.Add($"<div class=\"page-head\"><h1>Retry</h1><span class=\"mono muted\">{progress.RequestId}</span></div>");
            h.Add($"<section class=\"card\"><progress id=\"retry-progress\" max=\"{Math.Max(progress.Total, 1)}\" value=\"{handled}\" data-progress-url=\"{page.Url("/api/failures/retries/" + progress.RequestId)}\"{new RawHtml(progress.Completed ? " data-done=\"true\"" : "")}></progress> ");
            h.Add($"<span id=\"retry-status\" role=\"status\">{Status(progress)}</span>");
            h.Add($"<p><a href=\"{page.Url("/failures")}\">Back to the failures</a></p></section>");
        });

    public static string Done(PageContext page, string action, FailureActionReceipt receipt) =>
        Layout.Render(page, "Failures", "failures", h =>
            h.Add($"<div class=\"page-head\"><h1>Failures</h1></div><section class=\"card\"><p role=\"status\" id=\"action-done\">{action}: {receipt.Accepted} failures, {receipt.Skipped} skipped.</p><p><a href=\"{page.Url("/failures")}\">Back to the failures</a></p></section>"));

    /// <summary>The status line of a retry; the script writes the same words (joblog.js).</summary>
    public static string Status(RetryProgress p) =>
        $"{p.Sent} of {p.Total} sent, {p.Skipped} skipped, {p.Failed} failed" + (p.Completed ? " · done" : "");

    private static void FilterActions(HtmlWriter h, PageContext page, string title, string? group)
    {
        if (page.Operator is not { } op)
        {
            return;
        }

        if (!op.Available)
        {
            Unavailable(h);
            return;
        }

        h.Add($"<form class=\"card failure-actions\" method=\"post\" action=\"{page.Url("/failures/actions/retry")}\"><h2>{title}</h2>");
        Hidden(h, op.FieldName, op.Token);
        Hidden(h, "scope", "filter");
        foreach (var name in FilterNames)
        {
            var value = name == "group" ? group : page.Query(name);
            if (value is not null)
            {
                Hidden(h, name, value);
            }
        }

        Buttons(h, page, group is null ? "all matching" : "group");
        h.Add($"</form>");
    }

    private static void Buttons(HtmlWriter h, PageContext page, string what)
    {
        h.Add($"<label>Note<input type=\"text\" name=\"note\" maxlength=\"{page.Options.Actions.MaxNoteLength}\" placeholder=\"optional\"></label><div class=\"form-buttons\">");
        h.Add($"<button type=\"submit\" formaction=\"{page.Url("/failures/actions/retry")}\">Retry {what}</button>");
        h.Add($"<button type=\"submit\" class=\"secondary\" formaction=\"{page.Url("/failures/actions/resolve")}\">Resolve {what}</button>");
        h.Add($"<button type=\"submit\" class=\"secondary\" formaction=\"{page.Url("/failures/actions/archive")}\">Archive {what}</button></div>");
    }

    private static void Unavailable(HtmlWriter h) =>
        h.Add($"<p class=\"muted\" id=\"actions-unavailable\">Retry and resolve are not available: the application registered no IFailureActions.</p>");

    private static void Hidden(HtmlWriter h, string name, string value) =>
        h.Add($"<input type=\"hidden\" name=\"{name}\" value=\"{value}\">");

    private static string? FirstLine(string? text)
    {
        if (text is null)
        {
            return null;
        }

        var end = text.IndexOfAny(['\r', '\n']);
        return end < 0 ? text : text[..end];
    }

    /// <summary>Counts as bars (<c>▁▂▃▄▅▆▇█</c>), scaled to the largest; a blank hour is a dot.</summary>
    internal static string Sparkline(IReadOnlyList<int> counts)
    {
        const string bars = "▁▂▃▄▅▆▇█";
        var max = counts.Count == 0 ? 0 : counts.Max();
        return new string(counts.Select(c => c == 0 ? '·' : bars[Math.Min(bars.Length - 1, (c * bars.Length - 1) / Math.Max(max, 1))]).ToArray());
    }

    /// <summary>The operators' actions on a task (audit: who, what, when, and what came of it for this task).</summary>
    public static void ActionHistory(HtmlWriter h, IReadOnlyList<JobLog.Failures.FailureActionRow> actions)
    {
        if (actions.Count == 0)
        {
            return;
        }

        h.Add($"""
            <section class="card" id="failure-action-history"><h2>Actions on this failure</h2>
            <table class="list"><thead><tr><th>When</th><th>Action</th><th>By</th><th>Outcome</th><th>Reason</th><th>Note</th><th>Selection</th></tr></thead><tbody>
            """);
        foreach (var a in actions)
        {
            h.Add($"<tr><td class=\"nowrap\">{Format.Time(a.RequestedAt)}</td><td>{a.Kind.ToString()}</td><td>{a.RequestedBy}</td><td>{a.State.ToString()}</td><td>{a.Reason ?? ""}</td><td>{a.Note ?? ""}</td><td class=\"muted\">{a.Selection ?? ""}</td></tr>\n");
        }

        h.Add($"</tbody></table></section>");
    }
}
