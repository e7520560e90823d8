using System.CommandLine;
using System.Text.Json;
using JobLog.Querying;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Spectre.Console;

namespace JobLog.Worker.Cli;

/// <summary><c>hosts</c>: the dashboard's Hosts page on the command line (same rows, same JSON).</summary>
internal static class HostsCommand
{
    public static Command List(CliContext context)
    {
        var json = new Option<bool>("--json") { Description = "Print the hosts as the JSON API returns them." };
        var command = new Command("hosts", "List the processes recording to the ledger, with their last heartbeat.") { json };
        command.SetAction((parse, ct) => context.WithLedgerAsync("hosts", async session =>
        {
            await session.Maintenance.MigrateAsync(ct);
            var options = session.Services.GetRequiredService<IOptions<JobLogOptions>>().Value;
            var now = session.Now;
            var hosts = await session.QueryAsync(q => q.HostsAsync(options.HeartbeatInterval, options.HostTimeout, now, ct));
            if (parse.GetValue(json))
            {
                await context.Console.SafeOut.WriteLineAsync(JsonSerializer.Serialize(hosts, LedgerJson.Options));
                return 0;
            }

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
            foreach (var h in hosts.Where(h => h.Stranded is not null))
            {
                // The Hosts page's STRANDED line (the warnings 3012 / 3205 of that instance, as of its last heartbeat).
                await context.Console.SafeOut.WriteLineAsync($"STRANDED {h.InstanceId} ({h.Name}): {h.Stranded}");
            }

            if (hosts.Count == 0)
            {
                await context.Console.Out.WriteLineAsync("(no host has written a heartbeat)");
            }

            return 0;
        }, ct));
        return command;
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
