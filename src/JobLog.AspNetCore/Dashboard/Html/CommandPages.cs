using System.Globalization;
using JobLog.Querying;

namespace JobLog.AspNetCore.Dashboard.Html;

/// <summary>The command list and a command's detail.</summary>
internal static class CommandPages
{
    public static string List(PageContext page, Page<CommandRow> rows, bool filtered, string? error) =>
        Layout.Render(page, "Commands", "commands", h =>
        {
            h.Add($"<div class=\"page-head\"><h1>Commands</h1></div>\n<form class=\"filters card\" method=\"get\" action=\"{page.Url("/commands")}\">");
            Layout.Input(h, "name", "Name", page.Query("name"));
            Layout.Select(h, "outcome", "Outcome", page.Query("outcome"),
                [("", "Any outcome"), ("succeeded", "SUCCEEDED"), ("failed", "FAILED"), ("running", "RUNNING")]);
            Layout.TimeRange(h, page);
            Layout.Input(h, "q", "Arguments contain", page.Query("q"), "search");
            Layout.FormEnd(h, page, "/commands");
            Layout.ListSection(h, page, "/commands", rows.NextCursor, rows.Items.Count, h =>
            {
                h.Add($"<table class=\"list\"><thead><tr><th>Started</th><th>Name</th><th>Arguments</th><th>Outcome</th><th class=\"num\">Exit code</th><th class=\"num\">Duration</th><th>Host</th></tr></thead><tbody>");
                if (rows.Items.Count == 0)
                {
                    Layout.Empty(h, filtered ? "No command matches these filters." : "No command recorded yet.", 7);
                }

                foreach (var c in rows.Items)
                {
                    h.Add($"<tr data-id=\"{c.Id}\"><td class=\"nowrap\"><a href=\"{page.Url("/commands/" + c.Id.ToString())}\">{Format.Time(c.Start)}</a></td><td>{c.Name}</td><td class=\"input\">{c.Input ?? ""}</td><td>");
                    Layout.Badge(h, Format.Outcome(c.IsSuccessful), Format.OutcomeClass(c.IsSuccessful));
                    h.Add($"</td><td class=\"num\">{c.ExitCode?.ToString(CultureInfo.InvariantCulture) ?? "—"}</td><td class=\"num\">{Format.Duration(c.DurationSeconds)}</td><td class=\"muted\">{c.Host ?? "—"}</td></tr>\n");
                }

                h.Add($"</tbody></table>");
            }, rows.SearchStopped, "commands");
        }, error: error);

    public static string Detail(PageContext page, CommandDetail d)
    {
        var c = d.Command;
        return Layout.Render(page, c.Name, "commands", h =>
        {
            h.Add($"<div class=\"page-head\"><h1>{c.Name} ");
            Layout.Badge(h, Format.Outcome(c.IsSuccessful), Format.OutcomeClass(c.IsSuccessful));
            h.Add($"</h1><span class=\"mono muted\">{c.Id}</span></div><section class=\"card\"><h2>Command</h2><dl class=\"fields\">");
            Layout.Field(h, "Id", c.Id.ToString(), mono: true);
            Layout.Field(h, "Name", c.Name);
            Layout.Field(h, "From the command line", c.ExecutedFromCommandLine ? "yes" : "no");
            Layout.Field(h, "Start", Format.Time(c.Start));
            Layout.Field(h, "Stop", Format.Time(c.Stop));
            Layout.Field(h, "Duration", Format.Duration(c.Stop is { } e ? (e - c.Start).TotalSeconds : null));
            Layout.Field(h, "Exit code", c.ExitCode?.ToString(CultureInfo.InvariantCulture));
            Layout.Field(h, "Host", c.Host);
            h.Add($"</dl></section><section class=\"card\"><h2>Content</h2>");
            Layout.Pre(h, "Arguments", c.Input);
            Layout.Pre(h, "Output", c.Output, "output");
            Layout.Pre(h, "Error", c.ErrorMessage, "error");
            if (string.IsNullOrEmpty(c.Input) && string.IsNullOrEmpty(c.Output) && string.IsNullOrEmpty(c.ErrorMessage))
            {
                h.Add($"<p class=\"muted\">Nothing was captured.</p>");
            }

            h.Add($"</section>");
            TaskPages.Outbound(h, page, d.OutboundRequests, null, "Outbound requests it made");
        }, c.IsSuccessful is null ? Layout.MainFragment : null);
    }
}
