using JobLog.Querying;

namespace JobLog.AspNetCore.Dashboard.Html;

/// <summary>The task list and a task's detail.</summary>
internal static class TaskPages
{
    /// <summary>
    /// The fragment of a list page that the live refresh swaps: the table and its pager (<see cref="Layout.ListFragment"/>).
    /// The first page of the task list refreshes itself; an older page or a page with an error does not.
    /// </summary>
    public static string List(PageContext page, TaskFilter? filter, Page<TaskRow> rows, IReadOnlyList<string> names, string? error)
    {
        var live = page.Query("cursor") is null && error is null ? Layout.ListFragment : null;
        return Layout.Render(page, "Tasks", "tasks", h =>
        {
            h.Add($"<div class=\"page-head\"><h1>Tasks</h1></div>\n<form class=\"filters card\" method=\"get\" action=\"{page.Url("/tasks")}\">");
            Layout.Select(h, "state", "State", page.Query("state"),
                [("", "Any state"), .. Enum.GetValues<TaskState>().Select(s => (s.ToString().ToLowerInvariant(), Format.State(s)))]);
            Layout.Input(h, "name", "Name", page.Query("name"), list: "task-names");
            h.Add($"<datalist id=\"task-names\">");
            foreach (var name in names)
            {
                h.Add($"<option value=\"{name}\"></option>");
            }

            h.Add($"</datalist>");
            Layout.Input(h, "queue", "Queue", page.Query("queue"));
            Layout.Select(h, "internal", "MassTransit internal", page.Query("internal"),
                [("", "Hidden"), ("true", "Only internal"), ("all", "Shown")]);
            Layout.TimeRange(h, page);
            Layout.Input(h, "q", "Search", page.Query("q"), "search", "text in the message or error, or an id");
            Layout.FormEnd(h, page, "/tasks");
            Layout.ListSection(h, page, "/tasks", rows.NextCursor, rows.Items.Count, h =>
            {
                h.Add($"""

                    <table class="list" id="task-table">
                    <thead><tr><th>Task</th><th>State</th><th>Name</th><th>Queue</th><th>Input</th><th>Dispatched</th><th class="num">Duration</th><th class="num">Runs</th></tr></thead>
                    <tbody id="task-rows">
                    """);
                Rows(h, page, rows.Items, filter is null ? "" : "No task matches these filters.");
                h.Add($"</tbody></table>");
            }, rows.SearchStopped, "tasks");
        }, live, error);
    }

    /// <summary>Task rows, in the list, its live refresh (the same fragment) and a task's children.</summary>
    public static void Rows(HtmlWriter h, PageContext page, IReadOnlyList<TaskRow> rows, string emptyText)
    {
        if (rows.Count == 0)
        {
            Layout.Empty(h, emptyText, 8);
            return;
        }

        foreach (var t in rows)
        {
            var href = page.Url("/tasks/" + t.Id.ToString());
            h.Add($"<tr data-id=\"{t.Id}\"><td class=\"mono\"><a href=\"{href}\">{Format.ShortId(t.Id)}</a></td><td>");
            Layout.Badge(h, Format.State(t.State), Format.StateClass(t.State));
            h.Add($"</td><td><a href=\"{href}\">{t.Name}</a></td><td class=\"muted\">{t.QueueName ?? "—"}</td><td class=\"input\">{t.Input ?? ""}</td><td class=\"nowrap\">{Format.Time(t.DispatchedAt)}</td><td class=\"num\">{Format.Duration(t.DurationSeconds)}</td><td class=\"num\">{t.Runs}</td></tr>\n");
        }
    }

    public static string Detail(PageContext page, TaskDetail d)
    {
        var t = d.Task;
        var live = t.State.IsFinal() ? null : Layout.MainFragment;
        return Layout.Render(page, $"{t.Name} {Format.ShortId(t.Id)}", "tasks", h =>
        {
            h.Add($"<div class=\"page-head\"><h1>{t.Name} ");
            Layout.Badge(h, Format.State(t.State), Format.StateClass(t.State));
            h.Add($"</h1><span class=\"mono muted\">{t.Id}</span></div>");
            Actions(h, page, d);
            FailurePages.TaskActions(h, page, t);

            h.Add($"<div class=\"columns\"><section class=\"card\"><h2>Task</h2><dl class=\"fields\">");
            Layout.Field(h, "Id", t.Id.ToString(), mono: true);
            Layout.FieldLink(h, "Name", t.Name, page.Url("/tasks?name=" + Uri.EscapeDataString(t.Name)));
            Layout.Field(h, "Queue", t.QueueName);
            Layout.Field(h, "State", Format.State(t.State));
            Layout.Field(h, "Dispatched", Format.Time(t.DispatchedAt));
            Layout.Field(h, "Estimated first arrival", Format.Time(t.EstimatedTimeOfFirstArrival));
            Layout.Field(h, "Expires", Format.Time(t.Expires));
            Layout.Field(h, "Stale after", Format.Time(t.Stale));
            Layout.Field(h, "Set as stale", t.IsSetAsStale ? "yes" : "no");
            Layout.Field(h, "Start", Format.Time(t.Start));
            Layout.Field(h, "Stop", Format.Time(t.Stop));
            Layout.Field(h, "Duration", Format.Duration(t.Start is { } s && t.Stop is { } e ? (e - s).TotalSeconds : null));
            h.Add($"</dl></section><section class=\"card\"><h2>Context</h2><dl class=\"fields\">");
            if (d.Parent is { } p)
            {
                Layout.FieldLink(h, "Dispatched by", $"{p.Name} {Format.ShortId(p.TaskId)} (run {Format.ShortId(p.RunId)})", page.Url("/tasks/" + p.TaskId.ToString()));
            }
            else
            {
                Layout.Field(h, "Dispatched by", t.ParentRunId is { } pr ? $"run {pr} (not in the ledger)" : null);
            }

            Layout.Field(h, "Input request", t.InputRequestId?.ToString(), mono: true);
            Layout.Field(h, "Correlation id", t.CorrelationId?.ToString(), mono: true);
            Layout.Field(h, "Conversation id", t.ConversationId?.ToString(), mono: true);
            Layout.Field(h, "Trace id", t.TraceId, mono: true);
            Layout.Field(h, "Source address", t.SourceAddress, mono: true);
            Layout.Field(h, "Host", t.Host);
            Layout.Field(h, "Release", t.Release);
            Layout.Field(h, "Slug", t.Slug);
            h.Add($"</dl></section></div>");

            h.Add($"<section class=\"card\"><h2>Message</h2>");
            Layout.Pre(h, "Input", t.Input);
            Layout.Pre(h, "Arguments", Format.Pretty(t.TaskArgs));
            Layout.Pre(h, "Message (TaskKwargs)", Format.Pretty(t.TaskKwargs));
            Layout.Pre(h, "Extra data", Format.Pretty(t.ExtraData));
            Layout.Pre(h, "Dispatch error", t.ErrorMessage, "error");
            if (string.IsNullOrEmpty(t.Input) && string.IsNullOrEmpty(t.TaskKwargs))
            {
                h.Add($"<p class=\"muted\">No message content was recorded.</p>");
            }

            h.Add($"</section>");
            Runs(h, page, d);
            FailurePages.ActionHistory(h, d.Actions);
            Children(h, page, d);
            Outbound(h, page, d.OutboundRequests, d.Runs, "Outbound requests made during its runs");
        }, live);
    }

    private static void Actions(HtmlWriter h, PageContext page, TaskDetail d)
    {
        if (!page.Options.EnableActions)
        {
            return;
        }

        var available = page.Options.TaskActions.Where(a => a.IsAvailable(d)).ToList();
        if (available.Count == 0)
        {
            return;
        }

        h.Add($"<div class=\"actions\">");
        foreach (var a in available)
        {
            h.Add($"<button type=\"button\" class=\"action\" data-action-url=\"{page.Url($"/tasks/{d.Task.Id}/actions/{a.Name}")}\" data-confirm=\"{a.Label}?\">{a.Label}</button>");
        }

        h.Add($"<span id=\"action-result\" class=\"muted\" role=\"status\"></span></div>");
    }

    private static void Runs(HtmlWriter h, PageContext page, TaskDetail d)
    {
        h.Add($"<section class=\"card\" id=\"runs\"><div class=\"card-head\"><h2>Runs ({d.RunCount:N0})</h2></div>");
        if (d.RunCount > d.Runs.Count)
        {
            h.Add($"<p class=\"muted\">The latest {d.Runs.Count:N0} of {d.RunCount:N0} runs.</p>");
        }

        if (d.Runs.Count == 0)
        {
            h.Add($"<p class=\"muted\">No consumer has started this task yet.</p></section>");
            return;
        }

        Svg.RunTimeline(h, d.Task, d.Runs, page.Now, d.JobAttempt);
        h.Add($"""
            <table class="list runs"><thead><tr><th>#</th><th>State</th><th>Consumer</th><th>Queue</th><th>Start</th><th>Stop</th><th class="num">Duration</th><th class="num">Waited</th><th>Next retry</th><th>Host</th></tr></thead><tbody>
            """);
        foreach (var r in d.Runs)
        {
            h.Add($"<tr class=\"run\" data-run=\"{r.Id}\"><td class=\"mono\">{r.Retries}");
            if (d.JobAttempt(r) is { } attempt)
            {
                h.Add($" <span class=\"muted job-attempt\">{attempt}</span>");
            }

            h.Add($"</td><td>");
            Layout.Badge(h, Format.State(r.State), Format.StateClass(r.State));
            if (r.Redelivered)
            {
                h.Add($" <span class=\"tag\" title=\"The broker redelivered the message\">redelivered</span>");
            }

            h.Add($"</td><td class=\"mono\">{r.ConsumerType}</td><td class=\"muted\">{r.QueueName ?? "—"}</td><td class=\"nowrap\">{Format.Time(r.Start)}</td><td class=\"nowrap\">{Format.Time(r.Stop)}</td><td class=\"num\">{Format.Duration(r.Stop is { } stop ? (stop - r.Start).TotalSeconds : (page.Now - r.Start).TotalSeconds)}</td><td class=\"num\">{Format.Duration(r.WaitingTime)}</td><td class=\"nowrap\">{Format.Time(r.EstimatedTimeOfNextRetry)}</td><td class=\"muted\">{r.Host ?? "—"}</td></tr>");
        }

        h.Add($"</tbody></table>");
        foreach (var r in d.Runs.Where(r => !string.IsNullOrEmpty(r.ErrorMessage) || !string.IsNullOrEmpty(r.Output)))
        {
            h.Add($"<details class=\"run-detail\"{new RawHtml(r == d.Runs[^1] ? " open" : "")}><summary>Run #{r.Retries}{(d.JobAttempt(r) is { } attempt ? " · " + attempt : "")} · {Format.State(r.State)} · {Format.Time(r.Start)}</summary>");
            Layout.Pre(h, "Error", r.ErrorMessage, "error");
            Layout.Pre(h, "Captured output", r.Output, "output");
            h.Add($"</details>");
        }

        h.Add($"</section>");
    }

    private static void Children(HtmlWriter h, PageContext page, TaskDetail d)
    {
        if (d.Children.Count == 0)
        {
            return;
        }

        h.Add($"""
            <section class="card"><h2>Child tasks ({d.Children.Count})</h2>
            <table class="list"><thead><tr><th>Task</th><th>State</th><th>Name</th><th>Queue</th><th>Input</th><th>Dispatched</th><th class="num">Duration</th><th class="num">Runs</th></tr></thead><tbody>
            """);
        Rows(h, page, d.Children, "");
        h.Add($"</tbody></table></section>");
    }

    /// <summary>Outbound requests, with the run they belong to when known.</summary>
    public static void Outbound(HtmlWriter h, PageContext page, IReadOnlyList<RelatedRequest> requests, IReadOnlyList<TaskRunLog>? runs, string title)
    {
        if (requests.Count == 0)
        {
            return;
        }

        h.Add($"<section class=\"card\"><h2>{title} ({requests.Count})</h2><table class=\"list\"><thead><tr>");
        if (runs is not null)
        {
            h.Add($"<th>Run</th>");
        }

        h.Add($"<th>Time</th><th>Method</th><th>Host</th><th>Path</th><th class=\"num\">Code</th><th>Status</th><th class=\"num\">Duration</th></tr></thead><tbody>");
        foreach (var (runId, r) in requests)
        {
            h.Add($"<tr>");
            if (runs is not null)
            {
                var run = runs.FirstOrDefault(x => x.Id == runId);
                h.Add($"<td class=\"mono\">{(run is null ? "—" : "#" + run.Retries)}</td>");
            }

            h.Add($"<td class=\"nowrap\"><a href=\"{page.Url("/requests/out/" + r.Id.ToString())}\">{Format.Time(r.RequestTimestamp)}</a></td><td class=\"mono\">{r.Method}</td><td>{r.Host}</td><td class=\"input\">{r.Path}</td><td class=\"num\">{r.ResponseCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "—"}</td><td>");
            Layout.Badge(h, Format.State(r.Status), Format.StateClass(r.Status));
            h.Add($"</td><td class=\"num\">{Format.Duration(r.DurationSeconds)}</td></tr>");
        }

        h.Add($"</tbody></table></section>");
    }
}
