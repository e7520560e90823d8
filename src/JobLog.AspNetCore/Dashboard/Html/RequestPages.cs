using System.Globalization;
using JobLog.Querying;

namespace JobLog.AspNetCore.Dashboard.Html;

/// <summary>Inbound and outbound request lists and details.</summary>
internal static class RequestPages
{
    private static readonly string[] s_methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

    public static string List(PageContext page, bool inbound, Page<RequestRow> rows, bool filtered, string? error)
    {
        var path = inbound ? "/requests/in" : "/requests/out";
        var title = inbound ? "Inbound requests" : "Outbound requests";
        return Layout.Render(page, title, inbound ? "in" : "out", h =>
        {
            h.Add($"<div class=\"page-head\"><h1>{title}</h1></div>\n<form class=\"filters card\" method=\"get\" action=\"{page.Url(path)}\">");
            Layout.Select(h, "status", "Status", page.Query("status"),
                [("", "Any status"), .. Enum.GetValues<RequestLogStatus>().Select(s => (s.ToString().ToLowerInvariant(), Format.State(s)))]);
            Layout.Select(h, "method", "Method", page.Query("method"), [("", "Any method"), .. s_methods.Select(m => (m, m))]);
            if (inbound)
            {
                Layout.Input(h, "ip", "Client IP", page.Query("ip"));
                Layout.Input(h, "user", "User id", page.Query("user"));
            }
            else
            {
                Layout.Input(h, "host", "Host", page.Query("host"));
            }

            Layout.Input(h, "slug", "Slug", page.Query("slug"));
            Layout.TimeRange(h, page);
            Layout.Input(h, "q", "Path contains", page.Query("q"), "search");
            Layout.FormEnd(h, page, path);
            Layout.ListSection(h, page, path, rows.NextCursor, rows.Items.Count, h =>
            {
                h.Add($"<table class=\"list\"><thead><tr><th>Time</th><th>Method</th><th>Host</th><th>Path</th><th>Slug</th><th class=\"num\">Code</th><th>Status</th><th class=\"num\">Duration</th>");
                if (inbound)
                {
                    h.Add($"<th>Client</th>");
                }

                h.Add($"</tr></thead><tbody>");
                if (rows.Items.Count == 0)
                {
                    Layout.Empty(h, filtered ? "No request matches these filters." : "No request recorded yet.", inbound ? 9 : 8);
                }

                foreach (var r in rows.Items)
                {
                    h.Add($"<tr data-id=\"{r.Id}\"><td class=\"nowrap\"><a href=\"{page.Url(path + "/" + r.Id.ToString())}\">{Format.Time(r.RequestTimestamp)}</a></td><td class=\"mono\">{r.Method}</td><td>{r.Host}</td><td class=\"input\">{r.Path}</td><td class=\"muted\">{r.Slug ?? "—"}</td><td class=\"num\">{Code(r.ResponseCode)}</td><td>");
                    Layout.Badge(h, Format.State(r.Status), Format.StateClass(r.Status));
                    h.Add($"</td><td class=\"num\">{Format.Duration(r.DurationSeconds)}</td>");
                    if (inbound)
                    {
                        h.Add($"<td class=\"muted\">{r.Ip ?? "—"}{(r.UserId is null ? "" : " · " + r.UserId)}</td>");
                    }

                    h.Add($"</tr>\n");
                }

                h.Add($"</tbody></table>");
            }, rows.SearchStopped, "requests");
        }, error: error);
    }

    public static string InputDetail(PageContext page, InputRequestDetail d)
    {
        var r = d.Request;
        return Layout.Render(page, $"{r.Method} {r.Path}", "in", h =>
        {
            Head(h, r);
            h.Add($"<div class=\"columns\"><section class=\"card\"><h2>Request</h2><dl class=\"fields\">");
            Common(h, r);
            Layout.Field(h, "Client IP", r.Ip);
            Layout.Field(h, "User id", r.UserId);
            Layout.Field(h, "Type", r.Type.ToString());
            h.Add($"</dl></section>");
            Outcome(h, r);
            Bodies(h, r);
            TaskPages.Outbound(h, page, d.OutboundRequests, null, "Outbound requests made while serving it");
        });
    }

    public static string OutputDetail(PageContext page, OutputRequestDetail d)
    {
        var r = d.Request;
        return Layout.Render(page, $"{r.Method} {r.Host}{r.Path}", "out", h =>
        {
            Head(h, r);
            h.Add($"<div class=\"columns\"><section class=\"card\"><h2>Request</h2><dl class=\"fields\">");
            Common(h, r);
            if (d.InputRequest is { } input)
            {
                Layout.FieldLink(h, "Made while serving", $"{input.Method} {input.Path}", page.Url("/requests/in/" + input.Id.ToString()));
            }
            else
            {
                Layout.Field(h, "Made while serving", r.InputRequestId?.ToString());
            }

            foreach (var run in d.TaskRuns)
            {
                Layout.FieldLink(h, "Made in task run", $"{run.Name} {Format.ShortId(run.TaskId)} · {Format.State(run.State)} · {Format.Time(run.Start)}", page.Url("/tasks/" + run.TaskId.ToString()));
            }

            foreach (var o in r.RelatedObjects)
            {
                if (o.CommandLogId is { } command)
                {
                    Layout.FieldLink(h, "Made in command", Format.ShortId(command), page.Url("/commands/" + command.ToString()));
                }

                if (o.ContentType is not null || o.ObjectId is not null)
                {
                    Layout.Field(h, "Related object", $"{o.ContentType} {o.ObjectId}");
                }
            }

            h.Add($"</dl></section>");
            Outcome(h, r);
            Bodies(h, r);
        });
    }

    private static void Head(HtmlWriter h, RequestLogBase r)
    {
        h.Add($"<div class=\"page-head\"><h1><span class=\"mono\">{r.Method}</span> {r.Path} ");
        Layout.Badge(h, Format.State(r.Status), Format.StateClass(r.Status));
        h.Add($"</h1><span class=\"mono muted\">{r.Id}</span></div>");
    }

    private static void Common(HtmlWriter h, RequestLogBase r)
    {
        Layout.Field(h, "Id", r.Id.ToString(), mono: true);
        Layout.Field(h, "Method", r.Method, mono: true);
        Layout.Field(h, "Host", r.Host);
        Layout.Field(h, "Path", r.Path, mono: true);
        Layout.Field(h, "Secure", r.IsSecure ? "yes (https)" : "no");
        Layout.Field(h, "Slug", r.Slug);
        Layout.Field(h, "Requested", Format.Time(r.RequestTimestamp));
    }

    private static void Outcome(HtmlWriter h, RequestLogBase r)
    {
        h.Add($"<section class=\"card\"><h2>Response</h2><dl class=\"fields\">");
        Layout.Field(h, "Status", Format.State(r.Status));
        Layout.Field(h, "Code", Code(r.ResponseCode));
        Layout.Field(h, "Responded", Format.Time(r.ResponseTimestamp));
        Layout.Field(h, "Duration", Format.Duration(r.ResponseTimestamp is { } e ? (e - r.RequestTimestamp).TotalSeconds : null));
        Layout.Field(h, "Exception", r.ExceptionName, mono: true);
        h.Add($"</dl></section></div>");
    }

    private static void Bodies(HtmlWriter h, RequestLogBase r)
    {
        h.Add($"<section class=\"card\"><h2>Content</h2>");
        Layout.Pre(h, "Query", Format.Pretty(r.Queries));
        Layout.Pre(h, "Request headers", Format.Pretty(r.RequestHeaders));
        Layout.Pre(h, "Request body", Format.Pretty(r.RequestBody));
        Layout.Pre(h, "Response headers", Format.Pretty(r.ResponseHeaders));
        Layout.Pre(h, "Response body", Format.Pretty(r.ResponseBody));
        Layout.Pre(h, "Error", r.ErrorDescription, "error");
        h.Add($"</section>");
    }

    private static string Code(int? code) => code?.ToString(CultureInfo.InvariantCulture) ?? "—";
}
