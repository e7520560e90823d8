using System.CommandLine;
using System.Text.Json;
using JobLog.Querying;
using Spectre.Console;

namespace JobLog.Worker.Cli;

/// <summary>
/// <c>failures</c>: the dashboard's Failures page on the command line (same filters, same groups, same JSON): the open
/// failures grouped, or with <c>--group</c> the failures of one group.
/// </summary>
internal static class FailuresCommand
{
    public static Command List(CliContext context)
    {
        var filters = new (string Name, string Description)[]
        {
            ("by", "Group by exception (the default: the exception type and the first frame of the application's code), type or queue."),
            ("group", "A group's id: list its failures instead of the groups."),
            ("internal", "Also MassTransit's own messages, hidden unless asked for: true or all."),
            ("name", "The task name."),
            ("queue", "The queue whose consumer failed, or the one the task was sent to."),
            ("since", "A period back from now: 15m, 1h, 7d."),
            ("from", "An ISO 8601 time (UTC unless an offset is given)."),
            ("to", "An ISO 8601 time (UTC unless an offset is given)."),
            ("search", "A substring of the error or the message."),
            ("limit", "Groups (or failures) per page, 1 to 500 (default 50)."),
            ("cursor", "With --group: the next page's position (printed under the previous page)."),
        };
        var options = filters.ToDictionary(f => f.Name, f => new Option<string?>("--" + f.Name) { Description = f.Description }, StringComparer.Ordinal);
        options["search"].Aliases.Add("--q");
        var json = new Option<bool>("--json") { Description = "Print the groups (or the page) as the JSON API returns them." };
        var command = new Command("failures", "List the open failures (failed, not resolved) in groups, most failures first.");
        foreach (var option in options.Values)
        {
            command.Options.Add(option);
        }

        command.Options.Add(json);
        command.SetAction((parse, ct) => context.WithLedgerAsync("failures", async session =>
        {
            var now = session.Now;
            var filter = FailureFilter.Parse(name => parse.GetValue(options[name == "q" ? "search" : name]), now);
            await session.Maintenance.MigrateAsync(ct);
            if (filter.Group is not null)
            {
                return await RowsAsync(context, session, filter, parse.GetValue(json), ct);
            }

            var groups = await session.QueryAsync(q => q.FailureGroupsAsync(filter, now, ct));
            if (parse.GetValue(json))
            {
                await context.Console.SafeOut.WriteLineAsync(JsonSerializer.Serialize(groups, LedgerJson.Options));
                return 0;
            }

            var table = TasksCommand.Table(context.Console, "GROUP", "COUNT", "KEY~", "FIRST SEEN (UTC)~", "LAST SEEN (UTC)~", "LAST 24 H", "SAMPLE ERROR~");
            foreach (var g in groups.Groups)
            {
                table.AddRow(
                    new Markup(g.Id), new Markup(CliFormat.Number(g.Count)), LedgerMarkup.Cell(g.Key, 80), new Markup(CliFormat.Time(g.FirstSeen)),
                    new Markup(CliFormat.Time(g.LastSeen)), new Markup(string.Join(' ', g.Trend.Skip(18))), LedgerMarkup.Cell(FirstLine(g.SampleError), 80));
            }

            context.Console.Write(table);
            await context.Console.Out.WriteLineAsync(groups.Groups.Count == 0
                ? "(no open failure matches)"
                : $"{groups.Groups.Count} groups, {groups.Total} open failures{(groups.Truncated ? $" (the newest {LedgerQueries.MaxFailuresScanned} counted)" : "")}; a group's failures: failures --group ID");
            return 0;
        }, ct));
        return command;
    }

    private static async Task<int> RowsAsync(CliContext context, LedgerSession session, FailureFilter filter, bool json, CancellationToken ct)
    {
        var page = await session.QueryAsync(q => q.FailuresAsync(filter, ct));
        if (json)
        {
            await context.Console.SafeOut.WriteLineAsync(JsonSerializer.Serialize(page, LedgerJson.Options));
            return 0;
        }

        var table = TasksCommand.Table(context.Console, "TASK", "NAME~", "QUEUE~", "FAILED (UTC)~", "ERROR~");
        foreach (var r in page.Items)
        {
            table.AddRow(new Markup(r.TaskId.ToString()), LedgerMarkup.Cell(r.Name, 40), LedgerMarkup.Cell(r.QueueName, 40),
                new Markup(CliFormat.Time(r.FailedAt)), LedgerMarkup.Cell(FirstLine(r.Error), 80));
        }

        context.Console.Write(table);
        await context.Console.Out.WriteLineAsync(page.Items.Count == 0 ? "(no open failure in this group)" : page.NextCursor is null ? "(last page)" : $"next page: --cursor {page.NextCursor}");
        return 0;
    }

    private static string? FirstLine(string? text) => text?.Split('\n', 2)[0].TrimEnd('\r');
}
