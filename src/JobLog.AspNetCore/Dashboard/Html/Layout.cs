using System.Globalization;
using System.Text;
using JobLog.Querying;
using Microsoft.AspNetCore.Http;

namespace JobLog.AspNetCore.Dashboard.Html;

/// <summary>What every page needs from its request: where the dashboard lives, its options, the clock.</summary>
internal sealed class PageContext(HttpContext http, string prefix, JobLogDashboardOptions options, DateTime now)
{
    public HttpContext Http { get; } = http;

    /// <summary>The dashboard's root URL path (path base + prefix), without a trailing slash.</summary>
    public string Base { get; } = (http.Request.PathBase.Value + prefix).TrimEnd('/');

    public JobLogDashboardOptions Options { get; } = options;

    public DateTime Now { get; } = now;

    /// <summary>Set when the user passes the operators' policy (<see cref="JobLogDashboardActionsOptions"/>): the pages then show action forms.</summary>
    public FailureOperator? Operator { get; set; }

    /// <summary>
    /// The part of the page the live refresh asked for (<c>X-JobLog-Fragment: list</c>): the response is then only that
    /// element, as the full page writes it. Null for a full page (also when the name is not a plain lower-case word).
    /// </summary>
    public string? Fragment { get; } = FragmentName(http.Request.Headers[FragmentHeader].ToString());

    /// <summary>The request header that names a fragment.</summary>
    public const string FragmentHeader = "X-JobLog-Fragment";

    public string Url(string path) => Base + path;

    /// <summary>The current URL's query with <paramref name="key"/> replaced (removed when null).</summary>
    public string WithQuery(string path, string key, string? value, params string[] remove)
    {
        var pairs = Http.Request.Query
            .Where(q => q.Key != key && !remove.Contains(q.Key) && !string.IsNullOrEmpty(q.Value))
            .Select(q => (q.Key, Value: (string?)q.Value.ToString()))
            .ToList();
        if (value is not null)
        {
            pairs.Add((key, value));
        }

        return Url(path) + QueryString(pairs);
    }

    public static string QueryString(IEnumerable<(string Key, string? Value)> pairs)
    {
        var sb = new StringBuilder();
        foreach (var (key, value) in pairs)
        {
            if (string.IsNullOrEmpty(value))
            {
                continue;
            }

            sb.Append(sb.Length == 0 ? '?' : '&').Append(Uri.EscapeDataString(key)).Append('=').Append(Uri.EscapeDataString(value));
        }

        return sb.ToString();
    }

    public string? Query(string key) => Http.Request.Query.TryGetValue(key, out var v) && !string.IsNullOrWhiteSpace(v) ? v.ToString() : null;

    private static string? FragmentName(string value) =>
        value.Length is > 0 and <= 32 && value.All(char.IsAsciiLetterLower) ? value : null;
}

/// <summary>The frame around every page: header, navigation, assets (no inline script or style: the CSP forbids them).</summary>
internal static class Layout
{
    /// <summary>The fragment every page has: its <c>&lt;main&gt;</c>, refreshed whole by pages that are live.</summary>
    public const string MainFragment = "main";

    /// <summary>
    /// Renders a page, or only the fragment <see cref="PageContext.Fragment"/> names when the page has it (else the
    /// whole page, in which the script finds the fragment just the same). <paramref name="live"/> names the fragment
    /// that refreshes itself every <see cref="JobLogDashboardOptions.RefreshInterval"/>, or is null.
    /// </summary>
    public static string Render(PageContext page, string title, string section, Action<HtmlWriter> body, string? live = null, string? error = null)
    {
        var interval = ((int)page.Options.RefreshInterval.TotalSeconds).ToString(CultureInfo.InvariantCulture);
        var liveMode = page.Options.RefreshInterval > TimeSpan.Zero ? live : null;
        var h = new HtmlWriter(page.Fragment, liveMode);
        h.Add($"""
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="referrer" content="no-referrer">
            <title>{title} · {page.Options.Title}</title>
            <link rel="icon" href="{page.Url("/assets/favicon.svg")}" type="image/svg+xml">
            <link rel="stylesheet" href="{page.Url("/assets/joblog.css?v=" + DashboardAssets.Version)}">
            <script src="{page.Url("/assets/joblog.js?v=" + DashboardAssets.Version)}" defer></script>
            </head>
            <body data-base="{page.Base}" data-interval="{interval}">
            <header class="top">
            <a class="brand" href="{page.Base}"><span class="logo" aria-hidden="true"></span>{page.Options.Title}</a>
            <nav>
            """);
        Nav(h, page, "overview", "Overview", "", section);
        Nav(h, page, "tasks", "Tasks", "/tasks", section);
        Nav(h, page, "failures", "Failures", "/failures", section);
        Nav(h, page, "in", "Inbound requests", "/requests/in", section);
        Nav(h, page, "out", "Outbound requests", "/requests/out", section);
        Nav(h, page, "commands", "Commands", "/commands", section);
        Nav(h, page, "hosts", "Hosts", "/hosts", section);
        h.Add($"</nav>\n<div class=\"top-right\">");
        if (liveMode is not null)
        {
            h.Add($"""<label class="live" title="Refresh every {interval} s"><input type="checkbox" id="live-toggle" checked> Live <span id="live-status" class="muted"></span></label>""");
        }

        h.Add($"<span class=\"muted\">UTC {Format.Time(page.Now)[11..16]}</span></div>\n</header>\n");
        h.Fragment("main", MainFragment, null, h =>
        {
            h.Add($"\n");
            if (error is not null)
            {
                h.Add($"<div class=\"alert\" role=\"alert\">{error}</div>\n");
            }

            body(h);
            h.Add($"\n");
        });
        h.Add($"\n<footer>JobLog · times in UTC · generated {Format.Time(page.Now)}</footer>\n</body>\n</html>\n");
        return h.Captured ?? h.ToString();
    }

    private static void Nav(HtmlWriter h, PageContext page, string key, string label, string path, string section) =>
        h.Add($"<a href=\"{page.Url(path == "" ? "/" : path)}\"{new RawHtml(key == section ? " class=\"active\" aria-current=\"page\"" : "")}>{label}</a>");

    /// <summary>A definition list row; the value is encoded.</summary>
    public static void Field(HtmlWriter h, string label, string? value, bool mono = false)
    {
        h.Add($"<dt>{label}</dt><dd{new RawHtml(mono ? " class=\"mono\"" : "")}>{(string.IsNullOrEmpty(value) ? "—" : value)}</dd>");
    }

    /// <summary>A definition list row whose value is a link inside the dashboard.</summary>
    public static void FieldLink(HtmlWriter h, string label, string? text, string? href)
    {
        if (text is null || href is null)
        {
            Field(h, label, null);
            return;
        }

        h.Add($"<dt>{label}</dt><dd class=\"mono\"><a href=\"{href}\">{text}</a></dd>");
    }

    /// <summary>A block of preformatted ledger text (bodies, errors, output), or nothing when empty.</summary>
    public static void Pre(HtmlWriter h, string title, string? text, string cssClass = "")
    {
        if (string.IsNullOrEmpty(text))
        {
            return;
        }

        h.Add($"<div class=\"block\"><div class=\"block-title\">{title}</div><pre class=\"{cssClass}\">{text}</pre></div>");
    }

    public static void Badge(HtmlWriter h, string text, string cssClass) =>
        h.Add($"<span class=\"badge {cssClass}\">{text}</span>");

    public static void Empty(HtmlWriter h, string text, int colspan) =>
        h.Add($"<tr class=\"empty\"><td colspan=\"{colspan}\">{text}</td></tr>");

    /// <summary>The fragment of a list page that holds its table and pager; the task list's live refresh swaps it.</summary>
    public const string ListFragment = "list";

    /// <summary>A list's card: the table <paramref name="table"/> writes, then the pager; the <see cref="ListFragment"/>.</summary>
    /// <param name="h">The page's writer.</param>
    /// <param name="page">The request.</param>
    /// <param name="path">The list's path, for the pager.</param>
    /// <param name="nextCursor">The next page's cursor, or null.</param>
    /// <param name="shown">The rows shown.</param>
    /// <param name="table">Writes the table.</param>
    /// <param name="stopped">A search that ran out of its read budget: its notice above the table, and "Search older" for "Older".</param>
    /// <param name="rows">What the rows are, for the notice (<c>tasks</c>, <c>requests</c>, <c>commands</c>).</param>
    public static void ListSection(HtmlWriter h, PageContext page, string path, string? nextCursor, int shown, Action<HtmlWriter> table, SearchStop? stopped = null, string rows = "rows") =>
        h.Fragment("section", ListFragment, "card table-card", h =>
        {
            if (stopped is not null)
            {
                h.Add($"<div class=\"alert\" id=\"search-stopped\">{stopped.Notice(rows)}</div>");
            }

            table(h);
            Pager(h, page, path, nextCursor, shown, stopped is null ? "Older »" : "Search older »");
        });

    /// <summary>Newest / older links of a keyset-paginated list.</summary>
    public static void Pager(HtmlWriter h, PageContext page, string path, string? nextCursor, int shown, string older = "Older »")
    {
        h.Add($"<div class=\"pager\"><span class=\"muted\">{shown} rows</span>");
        if (page.Query("cursor") is not null)
        {
            h.Add($"<a class=\"button\" href=\"{page.WithQuery(path, "cursor", null)}\">« Newest</a>");
        }

        if (nextCursor is not null)
        {
            h.Add($"<a class=\"button\" rel=\"next\" href=\"{page.WithQuery(path, "cursor", nextCursor)}\">{older}</a>");
        }

        h.Add($"</div>");
    }

    /// <summary>A select whose options are (value, label); the current value is selected.</summary>
    public static void Select(HtmlWriter h, string name, string label, string? current, IEnumerable<(string Value, string Label)> options)
    {
        h.Add($"<label>{label}<select name=\"{name}\">");
        foreach (var (value, text) in options)
        {
            var selected = string.Equals(value, current, StringComparison.OrdinalIgnoreCase) ? " selected" : "";
            h.Add($"<option value=\"{value}\"{new RawHtml(selected)}>{text}</option>");
        }

        h.Add($"</select></label>");
    }

    public static void Input(HtmlWriter h, string name, string label, string? value, string type = "text", string? placeholder = null, string? list = null)
    {
        h.Add($"<label>{label}<input type=\"{type}\" name=\"{name}\" value=\"{value ?? ""}\" placeholder=\"{placeholder ?? ""}\"");
        if (list is not null)
        {
            h.Add($" list=\"{list}\"");
        }

        h.Add($"></label>");
    }

    public static readonly (string Value, string Label)[] Periods =
    [
        ("", "Any time"), ("15m", "Last 15 minutes"), ("1h", "Last hour"), ("6h", "Last 6 hours"), ("24h", "Last 24 hours"),
        ("7d", "Last 7 days"), ("30d", "Last 30 days"),
    ];

    /// <summary>The time-range fields every list form has.</summary>
    public static void TimeRange(HtmlWriter h, PageContext page)
    {
        Select(h, "since", "Period", page.Query("since"), Periods);
        Input(h, "from", "From (UTC)", page.Query("from"), "datetime-local");
        Input(h, "to", "To (UTC)", page.Query("to"), "datetime-local");
    }

    public static void FormEnd(HtmlWriter h, PageContext page, string path) =>
        h.Add($"<div class=\"form-buttons\"><button type=\"submit\">Apply</button><a class=\"button secondary\" href=\"{page.Url(path)}\">Reset</a></div></form>");
}
