using System.Globalization;
using JobLog.Querying;

namespace JobLog.AspNetCore.Dashboard.Html;

/// <summary>
/// Charts drawn on the server as inline SVG: no script needed to see them, nothing for the CSP to allow. Colours are
/// presentation attributes, not <c>style</c>, which <c>style-src 'self'</c> would block.
/// </summary>
internal static class Svg
{
    private const double Width = 960;
    private const double Height = 260;
    private const double Left = 52;
    private const double Right = 52;
    private const double Top = 18;
    private const double Bottom = 34;

    private static string N(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>Stacked bars of finished tasks per bucket (succeeded, failed, expired) and the failure rate as a line.</summary>
    public static void ThroughputChart(HtmlWriter h, Chart chart)
    {
        var buckets = chart.Buckets;
        var finished = buckets.Sum(b => b.Finished);
        var max = Math.Max(1, buckets.Count == 0 ? 0 : buckets.Max(b => b.Finished));
        var step = NiceStep(max / 4.0);
        var top = Math.Ceiling(max / step) * step;
        var plotWidth = Width - Left - Right;
        var plotHeight = Height - Top - Bottom;
        var slot = plotWidth / Math.Max(1, buckets.Count);
        var barWidth = Math.Max(1, slot * 0.72);
        double Y(double value) => Top + plotHeight - (value / top * plotHeight);
        double RateY(double rate) => Top + plotHeight - (rate * plotHeight);

        h.Add($"""<svg class="chart" viewBox="0 0 {N(Width)} {N(Height)}" role="img" aria-label="Finished tasks per {(chart.Window == "day" ? "hour" : "minute")} and failure rate" data-window="{chart.Window}" data-buckets="{buckets.Count}" data-finished="{finished}">""");

        // Grid and left axis (tasks).
        for (var v = 0.0; v <= top + (step / 2); v += step)
        {
            var y = Y(v);
            h.Add($"""<line x1="{N(Left)}" x2="{N(Width - Right)}" y1="{N(y)}" y2="{N(y)}" stroke="#e5e7eb" stroke-width="1"/>""");
            h.Add($"""<text x="{N(Left - 8)}" y="{N(y + 4)}" text-anchor="end" font-size="11" fill="#6b7280">{Format.Number((long)v)}</text>""");
        }

        // Right axis (failure rate).
        foreach (var rate in new[] { 0.0, 0.5, 1.0 })
        {
            h.Add($"""<text x="{N(Width - Right + 8)}" y="{N(RateY(rate) + 4)}" font-size="11" fill="#c2410c">{N(rate * 100)}%</text>""");
        }

        // Bars.
        var labelEvery = chart.Window == "day" ? 3 : 10;
        for (var i = 0; i < buckets.Count; i++)
        {
            var b = buckets[i];
            var x = Left + (i * slot) + ((slot - barWidth) / 2);
            var label = chart.Window == "day" ? b.Start.ToString("HH:00", CultureInfo.InvariantCulture) : b.Start.ToString("HH:mm", CultureInfo.InvariantCulture);
            var rateText = b.FailureRate is { } r ? $", {N(r * 100)}% failed" : "";
            var tip = $"{label} UTC: {b.Succeeded} succeeded, {b.Failed} failed, {b.Expired} expired{rateText}";
            var baseY = Y(0);
            foreach (var (count, css, fill) in new[] { (b.Succeeded, "ok", "#16a34a"), (b.Failed, "fail", "#dc2626"), (b.Expired, "exp", "#8b5cf6") })
            {
                if (count == 0)
                {
                    continue;
                }

                var height = count / top * plotHeight;
                baseY -= height;
                h.Add($"""<rect class="bar {css}" x="{N(x)}" y="{N(baseY)}" width="{N(barWidth)}" height="{N(Math.Max(height, 0.5))}" fill="{fill}" rx="1" data-count="{count}"><title>{tip}</title></rect>""");
            }

            if (b.Finished == 0)
            {
                // An invisible target keeps the tooltip for empty buckets.
                h.Add($"""<rect x="{N(x)}" y="{N(Top)}" width="{N(barWidth)}" height="{N(plotHeight)}" fill="transparent"><title>{tip}</title></rect>""");
            }

            if (i % labelEvery == 0)
            {
                h.Add($"""<text x="{N(x + (barWidth / 2))}" y="{N(Height - Bottom + 16)}" text-anchor="middle" font-size="11" fill="#6b7280">{label}</text>""");
            }
        }

        // Failure-rate line over the buckets that finished something.
        var points = buckets.Select((b, i) => (b, i)).Where(p => p.b.FailureRate is not null)
            .Select(p => $"{N(Left + (p.i * slot) + (slot / 2))},{N(RateY(p.b.FailureRate!.Value))}").ToList();
        if (points.Count > 1)
        {
            h.Add($"""<polyline class="rate" points="{string.Join(' ', points)}" fill="none" stroke="#ea580c" stroke-width="1.5" stroke-dasharray="4 3"/>""");
        }

        foreach (var point in points)
        {
            var xy = point.Split(',');
            h.Add($"""<circle class="rate-point" cx="{xy[0]}" cy="{xy[1]}" r="2.2" fill="#ea580c"/>""");
        }

        h.Add($"""<line x1="{N(Left)}" x2="{N(Width - Right)}" y1="{N(Y(0))}" y2="{N(Y(0))}" stroke="#9ca3af" stroke-width="1"/>""");
        if (finished == 0)
        {
            h.Add($"""<text x="{N(Width / 2)}" y="{N(Top + (plotHeight / 2))}" text-anchor="middle" font-size="14" fill="#9ca3af">No task finished in this window</text>""");
        }

        h.Add($"</svg>");
    }

    /// <summary>A task's runs as bars on one time axis, from dispatch to the last stop (or now for a run still active).</summary>
    public static void RunTimeline(HtmlWriter h, TaskLog task, IReadOnlyList<TaskRunLog> runs, DateTime now, Func<TaskRunLog, string?> jobAttempt)
    {
        if (runs.Count == 0)
        {
            return;
        }

        const double labelWidth = 190;
        const double rowHeight = 22;
        const double width = 960;
        var start = new[] { task.DispatchedAt, runs.Min(r => r.Start) }.Min();
        var end = runs.Max(r => r.Stop ?? now);
        var span = Math.Max((end - start).TotalSeconds, 0.001);
        var height = (runs.Count * rowHeight) + 24;
        var plot = width - labelWidth - 90;
        double X(DateTime t) => labelWidth + ((t - start).TotalSeconds / span * plot);

        h.Add($"""<svg class="timeline" viewBox="0 0 {N(width)} {N(height)}" role="img" aria-label="Runs on a time axis" data-runs="{runs.Count}">""");
        h.Add($"""<line x1="{N(X(task.DispatchedAt))}" x2="{N(X(task.DispatchedAt))}" y1="0" y2="{N(height - 18)}" stroke="#9ca3af" stroke-dasharray="3 3"/>""");
        for (var i = 0; i < runs.Count; i++)
        {
            var run = runs[i];
            var y = (i * rowHeight) + 4;
            var stop = run.Stop ?? now;
            var x = X(run.Start);
            var w = Math.Max(3, X(stop) - x);
            var duration = Format.Duration((stop - run.Start).TotalSeconds);
            var fill = run.State switch
            {
                TaskRunState.Succeeded => "#16a34a",
                TaskRunState.Failed => "#dc2626",
                TaskRunState.Retried => "#d97706",
                TaskRunState.Expired => "#8b5cf6",
                TaskRunState.Cancelled => "#6b7280",
                _ => "#2563eb",
            };
            // A job's run is labelled with its occurrence and attempt (a job has one consumer, named in the table below).
            var attempt = jobAttempt(run);
            h.Add($"""<text x="0" y="{N(y + 14)}" font-size="11" fill="#374151">#{run.Retries} {attempt ?? Shorten(run.ConsumerType, 24)}</text>""");
            h.Add($"""<rect class="run-bar" x="{N(x)}" y="{N(y)}" width="{N(w)}" height="{N(rowHeight - 8)}" rx="3" fill="{fill}" data-state="{run.State.ToString().ToLowerInvariant()}"><title>Run #{run.Retries}{(attempt is null ? "" : " (" + attempt + ")")} {Format.State(run.State)}: {Format.Time(run.Start)} → {(run.Stop is null ? "running" : Format.Time(run.Stop))} ({duration})</title></rect>""");
            h.Add($"""<text x="{N(Math.Min(x + w + 6, width - 84))}" y="{N(y + 14)}" font-size="10" fill="#6b7280">{duration}</text>""");
        }

        h.Add($"""<text x="{N(labelWidth)}" y="{N(height - 4)}" font-size="10" fill="#6b7280">{Format.Time(start)} dispatched</text>""");
        h.Add($"""<text x="{N(labelWidth + plot)}" y="{N(height - 4)}" font-size="10" text-anchor="end" fill="#6b7280">+{Format.Duration(span)}</text>""");
        h.Add($"</svg>");
    }

    private static string Shorten(string text, int length)
    {
        var dot = text.LastIndexOf('.');
        var name = dot >= 0 ? text[(dot + 1)..] : text;
        return name.Length <= length ? name : name[..(length - 1)] + "…";
    }

    private static double NiceStep(double raw)
    {
        if (raw <= 1)
        {
            return 1;
        }

        var magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        var residual = raw / magnitude;
        var nice = residual <= 1 ? 1 : residual <= 2 ? 2 : residual <= 5 ? 5 : 10;
        return nice * magnitude;
    }
}
