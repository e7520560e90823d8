using System.Globalization;
using JobLog.Querying;
using Spectre.Console;

namespace JobLog.Worker.Cli;

/// <summary>The <c>task</c> command's page: the task's fields, its runs, their errors and output, children, outbound requests.</summary>
internal static class TaskView
{
    public static async Task WriteAsync(CliConsole console, TaskDetail detail)
    {
        var t = detail.Task;
        var grid = new Grid().AddColumn(new GridColumn().NoWrap().PadRight(2)).AddColumn();
        foreach (var (label, value) in new (string, string?)[]
        {
            ("Id", t.Id.ToString()), ("Name", t.Name), ("State", CliFormat.State(t.State)), ("Queue", t.QueueName),
            ("Dispatched", CliFormat.Time(t.DispatchedAt)), ("ETA", CliFormat.Time(t.EstimatedTimeOfFirstArrival)), ("Expires", CliFormat.Time(t.Expires)),
            ("Stale after", CliFormat.Time(t.Stale)), ("Start", CliFormat.Time(t.Start)), ("Stop", CliFormat.Time(t.Stop)),
            ("Parent", detail.Parent is { } p ? $"{p.Name} {p.TaskId} (run {p.RunId})" : t.ParentRunId?.ToString()),
            ("Correlation", t.CorrelationId?.ToString()), ("Trace", t.TraceId), ("Host", t.Host), ("Input", t.Input),
            ("Dispatch error", t.ErrorMessage),
        })
        {
            grid.AddRow(new Markup("[bold]" + label + "[/]"), label == "State" ? LedgerMarkup.State(value!) : LedgerMarkup.Block(value));
        }

        console.Write(grid);
        var output = console.SafeOut;
        await output.WriteLineAsync();
        await output.WriteLineAsync(detail.RunCount > detail.Runs.Count
            ? string.Create(CultureInfo.InvariantCulture, $"Runs ({detail.RunCount:N0}; the latest {detail.Runs.Count:N0})")
            : $"Runs ({detail.Runs.Count})");
        var runs = TasksCommand.Table(console, "#", "STATE", "CONSUMER~", "START (UTC)~", "STOP (UTC)~", "DURATION~", "HOST~");
        foreach (var r in detail.Runs)
        {
            runs.AddRow(
                new Markup(r.Retries.ToString(CultureInfo.InvariantCulture) + (detail.JobAttempt(r) is { } attempt ? " (" + attempt + ")" : "")), LedgerMarkup.State(CliFormat.State(r.State)), LedgerMarkup.Cell(r.ConsumerType, 50),
                new Markup(CliFormat.Time(r.Start)), new Markup(CliFormat.Time(r.Stop)),
                new Markup(CliFormat.Duration(r.Stop is { } s ? (s - r.Start).TotalSeconds : null)), LedgerMarkup.Cell(r.Host, 40));
        }

        console.Write(runs);
        foreach (var r in detail.Runs.Where(r => r.ErrorMessage is not null || r.Output is not null))
        {
            // Multi-line ledger text is written as is (line feeds kept, every other control escaped), never as markup,
            // each line indented: an error's lines are the sender's text and must not pass for the page's own lines.
            await output.WriteLineAsync();
            await output.WriteLineAsync($"--- run #{r.Retries}{(detail.JobAttempt(r) is { } attempt ? " (" + attempt + ")" : "")} {CliFormat.State(r.State)}");
            if (r.ErrorMessage is not null)
            {
                await output.WriteLineAsync("error:");
                await output.WriteLineAsync(Indented(r.ErrorMessage));
            }

            if (r.Output is not null)
            {
                await output.WriteLineAsync("output:");
                await output.WriteLineAsync(Indented(r.Output));
            }
        }

        if (detail.Children.Count > 0)
        {
            await output.WriteLineAsync();
            await output.WriteLineAsync($"Child tasks ({detail.Children.Count})");
            foreach (var c in detail.Children)
            {
                await output.WriteLineAsync($"  {c.Id}  {CliFormat.State(c.State),-10} {c.Name}");
            }
        }

        if (detail.OutboundRequests.Count > 0)
        {
            await output.WriteLineAsync();
            await output.WriteLineAsync($"Outbound requests ({detail.OutboundRequests.Count})");
            foreach (var (_, r) in detail.OutboundRequests)
            {
                await output.WriteLineAsync($"  {CliFormat.Time(r.RequestTimestamp)}  {r.Method} {r.Host}{r.Path}  {r.ResponseCode?.ToString(CultureInfo.InvariantCulture) ?? "-"} {CliFormat.Duration(r.DurationSeconds)}");
            }
        }
    }

    /// <summary>Each line of <paramref name="text"/> after two spaces (a carriage return stays one, written as <c>\r</c>).</summary>
    private static string Indented(string text) => "  " + text.Replace("\n", "\n  ", StringComparison.Ordinal);
}
