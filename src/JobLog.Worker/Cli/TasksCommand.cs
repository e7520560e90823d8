using System.CommandLine;
using System.Text.Json;
using JobLog.Querying;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Spectre.Console;

namespace JobLog.Worker.Cli;

/// <summary>
/// <c>tasks</c> and <c>task</c>: the dashboard's task list and task page on the command line (same filters, same rows,
/// same JSON). Ledger text is printed with control characters escaped (<c>\x1b</c>, <c>\u009b</c>).
/// </summary>
internal static class TasksCommand
{
    /// <summary>Runs <c>tasks ARGS</c> writing plain text to <paramref name="output"/>, unrecorded (code calling the command).</summary>
    public static Task<int> ListAsync(string[] args, TextWriter output) => Cli.RunAsync(["tasks", .. args], CliConsole.Redirected(output), recordCommand: false);

    /// <summary>Runs <c>task ARGS</c> writing plain text to <paramref name="output"/>, unrecorded (code calling the command).</summary>
    public static Task<int> ShowAsync(string[] args, TextWriter output) => Cli.RunAsync(["task", .. args], CliConsole.Redirected(output), recordCommand: false);

    public static Command List(CliContext context)
    {
        var filters = new (string Name, string Description)[]
        {
            ("state", "One of waiting, active, succeeded, failed, retried, expired, cancelled, or a list: failed,expired."),
            ("internal", "Also MassTransit's own messages, hidden unless asked for: true or all."),
            ("name", "The task name."),
            ("queue", "The queue or exchange it was sent to or consumed from."),
            ("since", "A period back from now: 15m, 1h, 7d."),
            ("from", "An ISO 8601 time (UTC unless an offset is given)."),
            ("to", "An ISO 8601 time (UTC unless an offset is given)."),
            ("search", "Text in the input, message or a run's error, or a message, correlation, conversation, run or trace id (at most 200 characters)."),
            ("limit", "Rows per page, 1 to 500 (default 50)."),
            ("cursor", "The next page's position (printed under the previous page)."),
        };
        var options = filters.ToDictionary(f => f.Name, f => new Option<string?>("--" + f.Name) { Description = f.Description }, StringComparer.Ordinal);
        options["search"].Aliases.Add("--q");
        var json = new Option<bool>("--json") { Description = "Print the page as the JSON API returns it." };
        var budget = new Option<string?>("--search-budget")
        {
            Description = "The longest the search reads for: 500ms, 5s, 1m (default 2s, or the JobLog:SearchBudget setting). "
                + "When it runs out, the page holds what was found and stderr says how far back it searched.",
        };
        var command = new Command("tasks", "List tasks, newest first.");
        foreach (var option in options.Values)
        {
            command.Options.Add(option);
        }

        command.Options.Add(json);
        command.Options.Add(budget);
        command.SetAction((parse, ct) => context.WithLedgerAsync("tasks", async session =>
        {
            var filter = TaskFilter.Parse(name => parse.GetValue(options[name == "q" ? "search" : name]), session.Now);
            if (parse.GetValue(budget) is { } budgetText)
            {
                // A one-shot process: the options its queries are made with are this command's.
                session.Services.GetRequiredService<IOptions<JobLogOptions>>().Value.SearchBudget = SearchBudget(budgetText);
            }

            await session.Maintenance.MigrateAsync(ct);
            var page = await session.QueryAsync(q => q.TasksAsync(filter, ct));
            if (page.SearchStopped is { } stopped)
            {
                await context.Console.Error.WriteLineAsync(stopped.Notice("tasks"));
            }

            if (parse.GetValue(json))
            {
                await context.Console.SafeOut.WriteLineAsync(JsonSerializer.Serialize(page, LedgerJson.Options));
                return 0;
            }

            var table = Table(context.Console, "ID", "STATE", "NAME~", "QUEUE~", "DISPATCHED (UTC)~", "DURATION~", "RUNS", "INPUT~");
            foreach (var t in page.Items)
            {
                table.AddRow(
                    new Markup(t.Id.ToString()), LedgerMarkup.State(CliFormat.State(t.State)), LedgerMarkup.Cell(t.Name, 40), LedgerMarkup.Cell(t.QueueName, 40),
                    new Markup(CliFormat.Time(t.DispatchedAt)), new Markup(CliFormat.Duration(t.DurationSeconds)), new Markup(CliFormat.Number(t.Runs)),
                    LedgerMarkup.Cell(t.Input, 60));
            }

            context.Console.Write(table);
            await context.Console.Out.WriteLineAsync(page.Items.Count == 0 ? "(no task matches)" : page.NextCursor is null ? "(last page)" : $"next page: --cursor {page.NextCursor}");
            return 0;
        }, ct));
        return command;
    }

    /// <summary><c>--search-budget</c>: a positive number and <c>ms</c>, <c>s</c> or <c>m</c>, at most a day.</summary>
    /// <exception cref="CliUsageException">Anything else.</exception>
    internal static TimeSpan SearchBudget(string text)
    {
        var t = text.Trim();
        var (number, unit) = t.EndsWith("ms", StringComparison.OrdinalIgnoreCase) ? (t[..^2], 1.0)
            : t.EndsWith('s') || t.EndsWith('S') ? (t[..^1], 1_000.0)
            : t.EndsWith('m') || t.EndsWith('M') ? (t[..^1], 60_000.0)
            : (null, 0);
        if (number is not null
            && double.TryParse(number, System.Globalization.NumberStyles.AllowDecimalPoint, System.Globalization.CultureInfo.InvariantCulture, out var value)
            && value * unit is var ms && ms >= 1 && ms <= TimeSpan.FromDays(1).TotalMilliseconds)
        {
            return TimeSpan.FromMilliseconds(ms);
        }

        throw new CliUsageException($"--search-budget must look like 500ms, 5s or 1m (at least 1 ms, at most a day), not '{CliUsageException.Shown(text)}'.");
    }

    public static Command Show(CliContext context)
    {
        var id = new Argument<string>("id") { Description = "The task's id." };
        var json = new Option<bool>("--json") { Description = "Print the task as the JSON API returns it." };
        var command = new Command("task", "Show one task with its runs, errors, output, child tasks and outbound requests.") { id, json };
        command.SetAction((parse, ct) => context.WithLedgerAsync("task", async session =>
        {
            if (!Guid.TryParse(parse.GetValue(id), out var taskId))
            {
                throw new CliUsageException($"'{CliUsageException.Shown(parse.GetValue(id))}' is not a task id, e.g. 0b9f6f3e-5d1c-4c4e-9a55-2b0f2f3c1a77.");
            }

            await session.Maintenance.MigrateAsync(ct);
            var detail = await session.QueryAsync(q => q.TaskAsync(taskId, ct));
            if (detail is null)
            {
                await context.Console.ErrorAsync($"no task {taskId} in the ledger.");
                return 1;
            }

            if (parse.GetValue(json))
            {
                await context.Console.SafeOut.WriteLineAsync(JsonSerializer.Serialize(TaskDetailDocument.From(detail), LedgerJson.Options));
                return 0;
            }

            await TaskView.WriteAsync(context.Console, detail);
            return 0;
        }, ct));
        return command;
    }

    /// <summary>
    /// A table: rounded on a terminal, where ids, states and numbers keep one line and text columns wrap; borderless
    /// and unwrapped when redirected (one row a line, for grep and diff). Headers ending in <c>~</c> may wrap.
    /// </summary>
    internal static Table Table(CliConsole console, params string[] headers)
    {
        var table = new Table().Border(console.IsRedirected ? TableBorder.None : TableBorder.Rounded);
        foreach (var header in headers)
        {
            var wraps = header.EndsWith('~');
            var column = new TableColumn(header.TrimEnd('~'));
            table.AddColumn(wraps && !console.IsRedirected ? column : column.NoWrap());
        }

        return table;
    }
}
