using System.Globalization;
using JobLog.Querying;

namespace JobLog.AspNetCore.Dashboard.Html;

/// <summary>The host instances recording to the ledger and their heartbeats (docs/architecture.md#sweeper).</summary>
internal static class HostPages
{
    /// <summary>How many of the latest stopped or dead instances the Hosts page shows under the live ones.</summary>
    public const int GoneShown = 20;

    private const int Columns = 8;

    /// <summary>The Hosts page without filters: every live instance, the latest gone ones, and how many more are gone.</summary>
    public static string Overview(PageContext page, HostOverview hosts, TimeSpan hostTimeout) =>
        Layout.Render(page, "Hosts", "hosts", h =>
        {
            Head(h, page, hostTimeout, hosts.Counts);
            h.Add($"<section class=\"card table-card\"><h2>Running</h2>");
            Table(h, hosts.Live, "No host is running (no heartbeat within the host timeout).");
            if (hosts.Counts.Live > hosts.Live.Count)
            {
                More(h, $"and {Format.Number(hosts.Counts.Live - hosts.Live.Count)} more live hosts", page.Url("/hosts?state=alive,late"));
            }

            h.Add($"</section>\n<section class=\"card table-card\"><h2>Stopped or dead, latest first</h2>");
            Table(h, hosts.Gone, "No host has stopped or died in the last seven days.");
            if (hosts.Counts.Gone > hosts.Gone.Count)
            {
                More(h, $"and {Format.Number(hosts.Counts.Gone - hosts.Gone.Count)} more stopped or dead hosts", page.Url("/hosts?state=stopped,dead"));
            }

            h.Add($"</section>");
        }, live: Layout.MainFragment);

    /// <summary>The Hosts page with filters (<c>state</c>, <c>name</c>, …): a page of instances at a time, latest heartbeat first.</summary>
    public static string List(PageContext page, HostPage? hosts, TimeSpan hostTimeout, string? error) =>
        Layout.Render(page, "Hosts", "hosts", h =>
        {
            Head(h, page, hostTimeout, hosts?.Counts);
            Layout.ListSection(h, page, "/hosts", hosts?.NextCursor, hosts?.Items.Count ?? 0, h =>
                Table(h, hosts?.Items ?? [], "No host matches these filters."));
        }, live: Layout.MainFragment, error: error);

    /// <summary>The line under a folded table: how many more, and the link to list them a page at a time.</summary>
    private static void More(HtmlWriter h, string text, string href) =>
        h.Add($"<div class=\"pager\"><span class=\"muted\">{text}</span><a class=\"button\" href=\"{href}\">List them »</a></div>");

    public static string State(HostState state) => state.ToString().ToUpperInvariant();

    private static void Head(HtmlWriter h, PageContext page, TimeSpan hostTimeout, HostCounts? counts)
    {
        h.Add($"<div class=\"page-head\"><h1>Hosts</h1></div>\n<p class=\"muted\">Each process recording to the ledger writes a heartbeat. The ACTIVE runs of a host silent for more than {Format.Duration(hostTimeout.TotalSeconds)}, or stopped, are closed as EXPIRED by the sweeper. Stopped and dead hosts are listed for seven days.</p>\n");
        if (counts is not null)
        {
            h.Add($"<p>{Format.Number(counts.Alive)} alive · {Format.Number(counts.Late)} late · {Format.Number(counts.Dead)} dead · {Format.Number(counts.Stopped)} stopped</p>\n");
        }

        h.Add($"<form class=\"filters card\" method=\"get\" action=\"{page.Url("/hosts")}\">");
        Layout.Select(h, "state", "State", page.Query("state"),
            [("", "Any state"), ("alive,late", "Running (alive, late)"), ("stopped,dead", "Stopped or dead"), ("alive", "ALIVE"), ("late", "LATE"), ("dead", "DEAD"), ("stopped", "STOPPED")]);
        Layout.Input(h, "name", "Name", page.Query("name"));
        Layout.TimeRange(h, page);
        Layout.Input(h, "q", "Name or release contains", page.Query("q"), "search");
        Layout.FormEnd(h, page, "/hosts");
    }

    private static void Table(HtmlWriter h, IReadOnlyList<HostRow> hosts, string empty)
    {
        h.Add($"<table class=\"list\"><thead><tr><th>Name</th><th class=\"num\">Pid</th><th>Release</th><th>Started</th><th>Last heartbeat</th><th>State</th><th class=\"num\">ACTIVE runs</th><th>Instance</th></tr></thead><tbody>");
        if (hosts.Count == 0)
        {
            Layout.Empty(h, empty, Columns);
        }

        foreach (var x in hosts)
        {
            h.Add($"<tr data-id=\"{x.InstanceId}\"><td>{x.Name}</td><td class=\"num\">{x.ProcessId.ToString(CultureInfo.InvariantCulture)}</td><td class=\"muted\">{x.Release ?? "—"}</td><td class=\"nowrap\">{Format.Time(x.StartedAt)}</td>");
            h.Add($"<td class=\"nowrap\">{Format.Time(x.LastHeartbeat)} <span class=\"muted\">({Format.Ago(x.SecondsSinceHeartbeat)})</span></td><td>");
            Layout.Badge(h, State(x.State), StateClass(x.State));
            h.Add($"</td><td class=\"num\">{Format.Number(x.ActiveRuns)}</td><td class=\"mono muted\">{x.InstanceId}</td></tr>\n");
            if (x.WriterError is { } writerError)
            {
                // Another process's writer error (the overview shows this process's own), as of its last heartbeat.
                h.Add($"<tr class=\"writer-error\" data-id=\"{x.InstanceId}\"><td colspan=\"8\">");
                Layout.Badge(h, "CANNOT WRITE", "st-failed");
                h.Add($" since {Format.Time(x.WriterFailingSince)}: {writerError}</td></tr>\n");
            }

            if (x.Stranded is { } stranded)
            {
                // The warnings 3012 / 3205 of this instance, as of its last heartbeat: work no running bus of its sends.
                h.Add($"<tr class=\"stranded\" data-id=\"{x.InstanceId}\"><td colspan=\"8\">");
                Layout.Badge(h, "STRANDED", "st-retried");
                h.Add($" {stranded}</td></tr>\n");
            }
        }

        h.Add($"</tbody></table>");
    }

    private static string StateClass(HostState state) => state switch
    {
        HostState.Alive => "st-succeeded",
        HostState.Late => "st-retried",
        HostState.Dead => "st-failed",
        _ => "st-waiting",
    };
}
