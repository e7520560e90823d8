using System.CommandLine;
using System.Text.Json;
using JobLog.Querying;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Spectre.Console;

namespace JobLog.Worker.Cli;

/// <summary><c>hosts</c>: the dashboard's Hosts page on the command line (same rows, same filters, same JSON as <c>api/hosts</c>).</summary>
internal static class HostsCommand
{
    /// <summary>How many of the latest stopped or dead instances <c>hosts</c> prints under the live ones (the dashboard's too).</summary>
    private const int GoneShown = 20;

    public static Command List(CliContext context)
    {
        var filters = new (string Name, string Description)[]
        {
            ("state", "One of alive, late, dead, stopped, or a list: stopped,dead."),
            ("name", "The host name."),
            ("since", "Last heartbeat within a period back from now: 15m, 1h, 7d."),
            ("from", "Last heartbeat at or after an ISO 8601 time (UTC unless an offset is given)."),
            ("to", "Last heartbeat before an ISO 8601 time (UTC unless an offset is given)."),
            ("search", "Text in the host name or release (at most 200 characters)."),
            ("limit", "Rows per page, 1 to 500 (default 50)."),
            ("cursor", "The next page's position (printed under the previous page)."),
        };
        var options = filters.ToDictionary(f => f.Name, f => new Option<string?>("--" + f.Name) { Description = f.Description }, StringComparer.Ordinal);
        options["search"].Aliases.Add("--q");
        var json = new Option<bool>("--json") { Description = "Print the page as the JSON API (api/hosts) returns it." };
        var command = new Command(
            "hosts",
            "List the processes recording to the ledger, with their last heartbeat: every live one and the latest stopped or dead ones; with a filter, a page at a time.");
        foreach (var option in options.Values)
        {
            command.Options.Add(option);
        }

        command.Options.Add(json);
        command.SetAction((parse, ct) => context.WithLedgerAsync("hosts", async session =>
        {
            var ledger = session.Services.GetRequiredService<IOptions<JobLogOptions>>().Value;
            var now = session.Now;
            var overviewOnly = !parse.GetValue(json) && options.Values.All(o => parse.GetResult(o) is null);
            var filter = overviewOnly ? null : HostFilter.Parse(name => parse.GetValue(options[name == "q" ? "search" : name]), now);
            await session.Maintenance.MigrateAsync(ct);
            if (filter is null)
            {
                var overview = await session.QueryAsync(q => q.HostOverviewAsync(ledger.HeartbeatInterval, ledger.HostTimeout, now, GoneShown, ct));
                await WriteAsync(context, [.. overview.Live, .. overview.Gone]);
                if (overview.Live.Count + overview.Gone.Count == 0)
                {
                    await context.Console.Out.WriteLineAsync("(no host has written a heartbeat)");
                }

                var c = overview.Counts;
                await context.Console.Out.WriteLineAsync(
                    $"{CliFormat.Number(c.Alive)} alive, {CliFormat.Number(c.Late)} late, {CliFormat.Number(c.Dead)} dead, {CliFormat.Number(c.Stopped)} stopped");
                if (c.Live > overview.Live.Count)
                {
                    await context.Console.Out.WriteLineAsync($"and {CliFormat.Number(c.Live - overview.Live.Count)} more live hosts: hosts --state alive,late");
                }

                if (c.Gone > overview.Gone.Count)
                {
                    await context.Console.Out.WriteLineAsync($"and {CliFormat.Number(c.Gone - overview.Gone.Count)} more stopped or dead hosts: hosts --state stopped,dead");
                }

                return 0;
            }

            var page = await session.QueryAsync(q => q.HostsAsync(filter, ledger.HeartbeatInterval, ledger.HostTimeout, now, ct));
            if (parse.GetValue(json))
            {
                await context.Console.SafeOut.WriteLineAsync(JsonSerializer.Serialize(page, LedgerJson.Options));
                return 0;
            }

            await WriteAsync(context, page.Items);
            await context.Console.Out.WriteLineAsync(page.Items.Count == 0 ? "(no host matches)" : page.NextCursor is null ? "(last page)" : $"next page: --cursor {page.NextCursor}");
            return 0;
        }, ct));
        return command;
    }

    private static async Task WriteAsync(CliContext context, IReadOnlyList<HostRow> hosts)
    {
        var table = TasksCommand.Table(context.Console, "NAME~", "PID", "RELEASE~", "STARTED (UTC)", "LAST HEARTBEAT (UTC)", "AGE", "STATE", "ACTIVE RUNS", "INSTANCE");
        foreach (var h in hosts)
        {
            table.AddRow(
                LedgerMarkup.Cell(h.Name, 40), new Markup(CliFormat.Number(h.ProcessId)), LedgerMarkup.Cell(h.Release, 30),
                new Markup(CliFormat.Time(h.StartedAt)), new Markup(CliFormat.Time(h.LastHeartbeat)),
                new Markup(CliFormat.Duration(h.SecondsSinceHeartbeat)),
                State(h.State), new Markup(CliFormat.Number(h.ActiveRuns)), new Markup(h.InstanceId.ToString()));
        }

        context.Console.Write(table);
        foreach (var h in hosts.Where(h => h.WriterError is not null))
        {
            // The Hosts page's CANNOT WRITE line: that instance's writer error, as of its last heartbeat.
            await context.Console.SafeOut.WriteLineAsync($"CANNOT WRITE {h.InstanceId} ({h.Name}) since {CliFormat.Time(h.WriterFailingSince)}: {h.WriterError}");
        }

        foreach (var h in hosts.Where(h => h.Stranded is not null))
        {
            // The Hosts page's STRANDED line (the warnings 3012 / 3205 of that instance, as of its last heartbeat).
            await context.Console.SafeOut.WriteLineAsync($"STRANDED {h.InstanceId} ({h.Name}): {h.Stranded}");
        }

    }

    /// <summary>The state's name, as the dashboard prints it, in its colour: dead red, late yellow, alive green.</summary>
    private static Markup State(HostState state)
    {
        var name = state.ToString().ToUpperInvariant();
        return new(state switch
        {
            HostState.Dead => "[red]" + name + "[/]",
            HostState.Late => "[yellow]" + name + "[/]",
            HostState.Alive => "[green]" + name + "[/]",
            _ => name,
        });
    }
}
