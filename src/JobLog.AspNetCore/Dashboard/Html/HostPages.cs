using System.Globalization;
using JobLog.Querying;

namespace JobLog.AspNetCore.Dashboard.Html;

/// <summary>The host instances recording to the ledger and their heartbeats (docs/architecture.md#sweeper).</summary>
internal static class HostPages
{
    public static string List(PageContext page, IReadOnlyList<HostRow> hosts, TimeSpan hostTimeout) =>
        Layout.Render(page, "Hosts", "hosts", h =>
        {
            h.Add($"<div class=\"page-head\"><h1>Hosts</h1></div>\n<p class=\"muted\">Each process recording to the ledger writes a heartbeat. The ACTIVE runs of a host silent for more than {Format.Duration(hostTimeout.TotalSeconds)}, or stopped, are closed as EXPIRED by the sweeper.</p>\n<section class=\"card table-card\">");
            h.Add($"<table class=\"list\"><thead><tr><th>Name</th><th class=\"num\">Pid</th><th>Release</th><th>Started</th><th>Last heartbeat</th><th>State</th><th class=\"num\">ACTIVE runs</th><th>Instance</th></tr></thead><tbody>");
            if (hosts.Count == 0)
            {
                Layout.Empty(h, "No host has written a heartbeat yet.", 8);
            }

            foreach (var x in hosts)
            {
                h.Add($"<tr data-id=\"{x.InstanceId}\"><td>{x.Name}</td><td class=\"num\">{x.ProcessId.ToString(CultureInfo.InvariantCulture)}</td><td class=\"muted\">{x.Release ?? "—"}</td><td class=\"nowrap\">{Format.Time(x.StartedAt)}</td>");
                h.Add($"<td class=\"nowrap\">{Format.Time(x.LastHeartbeat)} <span class=\"muted\">({Format.Ago(x.SecondsSinceHeartbeat)})</span></td><td>");
                Layout.Badge(h, State(x.State), StateClass(x.State));
                h.Add($"</td><td class=\"num\">{Format.Number(x.ActiveRuns)}</td><td class=\"mono muted\">{x.InstanceId}</td></tr>\n");
                if (x.Stranded is { } stranded)
                {
                    // The warnings 3012 / 3205 of this instance, as of its last heartbeat: work no running bus of its sends.
                    h.Add($"<tr class=\"stranded\" data-id=\"{x.InstanceId}\"><td colspan=\"8\">");
                    Layout.Badge(h, "STRANDED", "st-retried");
                    h.Add($" {stranded}</td></tr>\n");
                }
            }

            h.Add($"</tbody></table></section>");
        }, live: Layout.MainFragment);

    public static string State(HostState state) => state.ToString().ToUpperInvariant();

    private static string StateClass(HostState state) => state switch
    {
        HostState.Alive => "st-succeeded",
        HostState.Late => "st-retried",
        HostState.Dead => "st-failed",
        _ => "st-waiting",
    };
}
