using System.Text.Json;
using JobLog.AspNetCore.Dashboard.Html;
using JobLog.AspNetCore.Dashboard.Queries;
using JobLog.AspNetCore.Dashboard;
using JobLog.Storage;

namespace JobLog.Worker.Cli;

/// <summary><c>tasks</c>: the dashboard's task list on the command line (same filters, same rows, same JSON).</summary>
internal static class TasksCommand
{
    public const string Usage = """
          tasks [filters] [--json]   List tasks, newest first. Filters: --state waiting|active|succeeded|failed|retried|expired|cancelled
                                     (or a list: failed,expired), --internal true|all (MassTransit's own messages, hidden
                                     by default), --name N, --queue Q, --since 1h, --from T, --to T, --search TEXT (at most
                                     200 characters), --limit N (default 50), --cursor C (from the previous page). Ledger
                                     text is printed with control characters escaped (\x1b, \u009b).
          task <id> [--json]         Show one task with its runs, errors, output, child tasks and outbound requests.
        """;

    private static readonly string[] s_valued = ["state", "internal", "name", "queue", "since", "from", "to", "search", "q", "limit", "cursor"];
    private static readonly string[] s_flags = ["json"];

    public static Task<int> ListAsync(string[] args, TextWriter output) =>
        CliUsageException.GuardAsync(() => ListAsyncCore(args, output));

    private static async Task<int> ListAsyncCore(string[] args, TextWriter output)
    {
        output = TerminalWriter.Wrap(output);
        var options = CliOptions.Parse(args, s_valued, s_flags);
        await using var provider = Cli.LedgerOnly([.. options.Settings]);
        await provider.GetRequiredService<LedgerSchema>().TryMigrateAsync(CancellationToken.None);
        var now = provider.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime;
        var filter = TaskFilter.Parse(name => name == "q" ? options.Get("search") ?? options.Get("q") : options.Get(name), now);
        await using var scope = provider.CreateAsyncScope();
        var page = await new LedgerQueries(scope.ServiceProvider.GetRequiredService<JobLogDbContext>()).TasksAsync(filter, CancellationToken.None);

        if (options.Has("json"))
        {
            await output.WriteLineAsync(JsonSerializer.Serialize(page, DashboardJson.Options));
            return 0;
        }

        TextTable.Write(output, ["ID", "STATE", "NAME", "QUEUE", "DISPATCHED (UTC)", "DURATION", "RUNS", "INPUT"],
            page.Items.Select(t => (IReadOnlyList<string>)
            [
                t.Id.ToString(), Format.State(t.State), TextTable.Cell(t.Name, 40), TextTable.Cell(t.QueueName, 40),
                Format.Time(t.DispatchedAt), Format.Duration(t.DurationSeconds), t.Runs.ToString(System.Globalization.CultureInfo.InvariantCulture),
                TextTable.Cell(t.Input, 60),
            ]));
        await output.WriteLineAsync(page.Items.Count == 0 ? "(no task matches)" : page.NextCursor is null ? "(last page)" : $"next page: --cursor {page.NextCursor}");
        return 0;
    }

    public static Task<int> ShowAsync(string[] args, TextWriter output) =>
        CliUsageException.GuardAsync(() => ShowAsyncCore(args, output));

    private static async Task<int> ShowAsyncCore(string[] args, TextWriter output)
    {
        output = TerminalWriter.Wrap(output);
        var options = CliOptions.Parse(args, [], s_flags);
        if (options.Positional.Count != 1 || !Guid.TryParse(options.Positional[0], out var id))
        {
            throw new CliUsageException("task needs one task id, e.g. task 0b9f6f3e-5d1c-4c4e-9a55-2b0f2f3c1a77.");
        }

        await using var provider = Cli.LedgerOnly([.. options.Settings]);
        await provider.GetRequiredService<LedgerSchema>().TryMigrateAsync(CancellationToken.None);
        await using var scope = provider.CreateAsyncScope();
        var detail = await new LedgerQueries(scope.ServiceProvider.GetRequiredService<JobLogDbContext>()).TaskAsync(id, CancellationToken.None);
        if (detail is null)
        {
            await Console.Error.WriteLineAsync($"error: no task {id} in the ledger.");
            return 1;
        }

        if (options.Has("json"))
        {
            await output.WriteLineAsync(JsonSerializer.Serialize(detail, DashboardJson.Options));
            return 0;
        }

        var t = detail.Task;
        foreach (var (label, value) in new (string, string?)[]
        {
            ("Id", t.Id.ToString()), ("Name", t.Name), ("State", Format.State(t.State)), ("Queue", t.QueueName),
            ("Dispatched", Format.Time(t.DispatchedAt)), ("ETA", Format.Time(t.EstimatedTimeOfFirstArrival)), ("Expires", Format.Time(t.Expires)),
            ("Stale after", Format.Time(t.Stale)), ("Start", Format.Time(t.Start)), ("Stop", Format.Time(t.Stop)),
            ("Parent", detail.Parent is { } p ? $"{p.Name} {p.TaskId} (run {p.RunId})" : t.ParentRunId?.ToString()),
            ("Correlation", t.CorrelationId?.ToString()), ("Trace", t.TraceId), ("Host", t.Host), ("Input", t.Input),
            ("Dispatch error", t.ErrorMessage),
        })
        {
            await output.WriteLineAsync($"{label,-14} {value ?? "-"}");
        }

        await output.WriteLineAsync();
        await output.WriteLineAsync($"Runs ({detail.Runs.Count})");
        TextTable.Write(output, ["#", "STATE", "CONSUMER", "START (UTC)", "STOP (UTC)", "DURATION", "HOST"],
            detail.Runs.Select(r => (IReadOnlyList<string>)
            [
                r.Retries.ToString(System.Globalization.CultureInfo.InvariantCulture), Format.State(r.State), TextTable.Cell(r.ConsumerType, 50),
                Format.Time(r.Start), Format.Time(r.Stop), Format.Duration(r.Stop is { } s ? (s - r.Start).TotalSeconds : null), r.Host ?? "-",
            ]));
        foreach (var r in detail.Runs.Where(r => r.ErrorMessage is not null || r.Output is not null))
        {
            await output.WriteLineAsync();
            await output.WriteLineAsync($"--- run #{r.Retries} {Format.State(r.State)}");
            if (r.ErrorMessage is not null)
            {
                await output.WriteLineAsync("error:");
                await output.WriteLineAsync(r.ErrorMessage);
            }

            if (r.Output is not null)
            {
                await output.WriteLineAsync("output:");
                await output.WriteLineAsync(r.Output);
            }
        }

        if (detail.Children.Count > 0)
        {
            await output.WriteLineAsync();
            await output.WriteLineAsync($"Child tasks ({detail.Children.Count})");
            foreach (var c in detail.Children)
            {
                await output.WriteLineAsync($"  {c.Id}  {Format.State(c.State),-10} {c.Name}");
            }
        }

        if (detail.OutboundRequests.Count > 0)
        {
            await output.WriteLineAsync();
            await output.WriteLineAsync($"Outbound requests ({detail.OutboundRequests.Count})");
            foreach (var (_, r) in detail.OutboundRequests)
            {
                await output.WriteLineAsync($"  {Format.Time(r.RequestTimestamp)}  {r.Method} {r.Host}{r.Path}  {r.ResponseCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "-"} {Format.Duration(r.DurationSeconds)}");
            }
        }

        return 0;
    }
}
