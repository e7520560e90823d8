using JobLog.Querying;

namespace JobLog.AspNetCore.Dashboard.Html;

/// <summary>Counts by state, throughput and failure rate, slowest task names, the writer and the sweeper.</summary>
internal static class OverviewPage
{
    /// <summary>The page for a window it cannot read: the reason (<paramref name="error"/>, in the alert) and the windows it reads.</summary>
    public static string Unread(PageContext page, string error) =>
        Layout.Render(page, "Overview", "overview", h => Head(h, page, day: null), error: error);

    private static void Head(HtmlWriter h, PageContext page, bool? day) =>
        h.Add($"""
            <div class="page-head"><h1>Overview</h1>
            <div class="segmented"><a href="{page.Url("/?window=hour")}"{new RawHtml(day == false ? " class=\"active\"" : "")}>Last hour</a><a href="{page.Url("/?window=day")}"{new RawHtml(day == true ? " class=\"active\"" : "")}>Last 24 hours</a></div>
            </div>

            """);

    public static string Render(PageContext page, Overview o)
    {
        var day = o.Chart.Window == "day";
        return Layout.Render(page, "Overview", "overview", h =>
        {
            Head(h, page, day);
            h.Add($"<section class=\"cards\" id=\"state-counts\">");
            h.Add($"<a class=\"card stat\" href=\"{page.Url("/tasks")}\"><span class=\"stat-label\">All tasks</span><span class=\"stat-value\" data-stat=\"total\">{Format.Number(o.Total)}</span></a>");
            foreach (var c in o.Counts)
            {
                h.Add($"<a class=\"card stat {Format.StateClass(c.State)}\" href=\"{page.Url("/tasks?state=" + c.State.ToString().ToLowerInvariant())}\"><span class=\"stat-label\">{Format.State(c.State)}</span><span class=\"stat-value\" data-stat=\"{c.State.ToString().ToLowerInvariant()}\">{Format.Number(c.Count)}</span></a>");
            }

            var finished = o.Chart.Buckets.Sum(b => b.Finished);
            var failed = o.Chart.Buckets.Sum(b => b.Failed + b.Expired);
            var rate = finished == 0 ? "—" : $"{100.0 * failed / finished:0.#}%";
            h.Add($"""
                </section>
                <section class="card">
                <div class="card-head"><h2>Finished tasks per {(day ? "hour" : "minute")}</h2>
                <div class="legend"><span class="key ok"></span>Succeeded<span class="key fail"></span>Failed<span class="key exp"></span>Expired<span class="key rate"></span>Failure rate</div></div>
                <p class="muted">{Format.Number(finished)} finished in the last {(day ? "24 hours" : "hour")}, {rate} failed or expired.</p>
                """);
            Svg.ThroughputChart(h, o.Chart);
            h.Add($"""
                </section>
                <div class="columns">
                <section class="card"><div class="card-head"><h2>Slowest tasks</h2><span class="muted">average run, last {(day ? "24 hours" : "hour")}</span></div>
                <table><thead><tr><th>Task</th><th class="num">Runs</th><th class="num">Average</th><th class="num">Longest</th></tr></thead><tbody>
                """);
            if (o.Slowest.Count == 0)
            {
                Layout.Empty(h, "No run finished in this window.", 4);
            }

            foreach (var s in o.Slowest)
            {
                h.Add($"<tr><td><a href=\"{page.Url("/tasks?name=" + Uri.EscapeDataString(s.Name))}\">{s.Name}</a></td><td class=\"num\">{Format.Number(s.Runs)}</td><td class=\"num\">{Format.Duration(s.AverageSeconds)}</td><td class=\"num\">{Format.Duration(s.MaxSeconds)}</td></tr>");
            }

            h.Add($"</tbody></table></section>\n<section class=\"card\"><div class=\"card-head\"><h2>Ledger</h2><span class=\"muted\">this process</span></div><dl class=\"fields\">");
            Layout.Field(h, "Writer backlog", $"{Format.Number(o.Writer.Backlog)} records waiting");
            h.Add($"<dt>Writer</dt><dd>");
            if (o.Writer.Failing)
            {
                // Not "unreachable" only: a database that answers and refuses the writes (its disk full, read-only) fails
                // it too; the error says which (session 33).
                Layout.Badge(h, "CANNOT WRITE", "st-failed");
            }
            else
            {
                Layout.Badge(h, "WRITING", "st-succeeded");
            }

            h.Add($"</dd>");
            if (o.Writer.Failing)
            {
                Layout.Field(h, "Failing since", o.Writer.FailingSince is { } since ? $"{Format.Time(since)} ({Format.Ago(page.Now, since)})" : null);
                Layout.Field(h, "Writer's last error", o.Writer.LastError, mono: true);
            }

            Layout.Field(h, "Dropped records", Format.Number(o.Writer.Dropped));
            if (!o.Sweeper.Enabled)
            {
                Layout.Field(h, "Sweeper", "disabled in this process");
            }
            else
            {
                Layout.Field(h, "Sweeper's last run", o.Sweeper.LastRunAt is { } at ? $"{Format.Time(at)} ({Format.Ago(page.Now, at.UtcDateTime)})" : "not yet");
                Layout.Field(h, "Expired by it", o.Sweeper.Expired?.ToString(System.Globalization.CultureInfo.InvariantCulture));
                Layout.Field(h, "Healed by it", o.Sweeper.Healed?.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            h.Add($"</dl></section>\n</div>");
        }, live: Layout.MainFragment);
    }
}
