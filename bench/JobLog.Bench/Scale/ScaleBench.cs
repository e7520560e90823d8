using System.Data.Common;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using JobLog.Bench.Infrastructure;
using JobLog.Maintenance;
using JobLog.Querying;
using JobLog.Retention;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace JobLog.Bench.Scale;

/// <summary>
/// A ledger of N tasks (<see cref="ScaleData"/>, written by <see cref="ScaleFill"/>), then what its users do, through the
/// public read and maintenance API (<see cref="LedgerQueries"/>, <see cref="LedgerMaintenance"/>) so the numbers are what
/// the dashboard, the API and the CLI get: the first page of every list, every filter, <c>q</c> for a rare and a common
/// term, an exact lookup, the overview, a sweep of the stale tasks, the retention of the oldest day and (SQLite) a purge
/// of a million rows. Each line states its target and whether it was met. See docs/scale.md.
/// </summary>
internal sealed class ScaleBench(BenchOptions options)
{
    private const double PageTarget = 100;

    public async Task<string> RunAsync()
    {
        var report = new StringBuilder();
        foreach (var provider in options.Ledgers)
        {
            report.AppendLine(await RunOnceAsync(provider));
        }

        return report.ToString();
    }

    private async Task<string> RunOnceAsync(LedgerProvider provider)
    {
        var partitioned = options.Partitioned && provider == LedgerProvider.PostgreSql;
        var reuse = options.Reuse is { } location ? ThrowawayLedger.Open(provider, location) : null;
        await using var ledger = reuse ?? await ThrowawayLedger.CreateAsync(provider);
        ledger.Keep = options.Keep;
        // A kept ledger's rows were generated at its fill's time: the first command is dispatched at the data's First.
        var data = new ScaleData(options.Tasks, options.Days, reuse is null ? DateTime.UtcNow : await FilledAtAsync(ledger, options.Days), options.Sparsity);
        var sb = new StringBuilder();
        void Line(string text)
        {
            sb.AppendLine(text);
            Console.WriteLine("  " + provider + " " + text);
        }

        sb.AppendLine(CultureInfo.InvariantCulture, $"#### {provider}{(partitioned ? " (partitioned by day)" : "")}, {data.Tasks:N0} tasks over {options.Days} days");
        sb.AppendLine();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddFilter("JobLog.Sweeping", LogLevel.Error); // a warning per sweep batch otherwise
        // Every statement EF Core runs, with its time (finding where a slow page's time goes; docs/scale.md).
        using var statements = Environment.GetEnvironmentVariable("JOBLOG_SCALE_SQL") == "1" ? StatementLog.Start() : null;
        builder.Services.AddJobLog(o =>
        {
            ledger.Apply(o);
            o.Sweeper.Enabled = false;
            o.Partitioning.Enabled = partitioned;
            o.Sweeper.Parallelism = options.SweepParallelism ?? o.Sweeper.Parallelism;
            o.Sweeper.BatchSize = options.SweepBatch ?? o.Sweeper.BatchSize;
            // JOBLOG_SCALE_SEARCH_BUDGET (ms): the searches' read budget (JobLogOptions.SearchBudget, default 2 s), to see a
            // search cut on a ledger where the hostile rows finish under the default.
            if (int.TryParse(Environment.GetEnvironmentVariable("JOBLOG_SCALE_SEARCH_BUDGET"), NumberStyles.None, CultureInfo.InvariantCulture, out var budget) && budget > 0)
            {
                o.SearchBudget = TimeSpan.FromMilliseconds(budget);
            }
        });
        using var host = builder.Build();
        // On a reused ledger this is where start-up upgrades it (a search index of a new shape, a migration).
        var startUp = Stopwatch.StartNew();
        await host.StartAsync();
        try
        {
            var maintenance = host.Services.GetRequiredService<LedgerMaintenance>();
            await maintenance.MigrateAsync();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  start-up and migrations: {startUp.Elapsed.TotalSeconds:0.0} s"));
            if (partitioned)
            {
                // The generated days are in the past: their partitions, as the maintenance would have made them each day.
                await using var connection = new NpgsqlConnection(ledger.ConnectionString);
                await connection.OpenAsync();
                await JobLog.Storage.Partitioning.LedgerPartitioning.EnsureAheadAsync(connection, data.First, options.Days + 4, default);
            }

            var clock = Stopwatch.StartNew();
            if (reuse is null)
            {
                var sqlite = provider == LedgerProvider.Sqlite;
                var bulk = options.BulkFill;
                void Progress(string p) => Console.WriteLine($"  {provider} fill {p} ({clock.Elapsed.TotalSeconds:0} s)");
                var rows = bulk
                    ? await ScaleFill.BulkFillAsync(sqlite, ledger.ConnectionString, data, Progress, partitioned)
                    : await ScaleFill.FillAsync(sqlite, ledger.ConnectionString, data, Progress, partitioned);
                var fill = clock.Elapsed;
                if (provider == LedgerProvider.PostgreSql)
                {
                    await using var connection = new NpgsqlConnection(ledger.ConnectionString);
                    await connection.OpenAsync();
                    await ScaleFill.ExecAsync(connection, "VACUUM ANALYZE");
                }

                var how = (sqlite ? "prepared INSERT per row, 50,000-row transactions" : "binary COPY, 50,000-row chunks") +
                    (partitioned ? ", into the partitioned tables" : "") +
                    (bulk ? ", indexes and triggers off, then each index, the search index and the rollups built in one statement" : ", indexes and triggers in place");
                Line(string.Create(CultureInfo.InvariantCulture,
                    $"- ingest (bulk path: {how}): {rows:N0} rows ({data.Tasks:N0} tasks + runs, {data.Requests:N0} requests, {data.Commands:N0} commands) " +
                    $"in {fill.TotalSeconds:0} s: **{rows / fill.TotalSeconds:N0} rows/s, {data.Tasks / fill.TotalSeconds:N0} tasks/s**"));
            }
            else
            {
                Line($"- reused the ledger kept at {options.Reuse} (filled at {data.Last.AddMinutes(10):yyyy-MM-dd HH:mm} UTC)");
            }

            Line($"- ledger size on disk: **{await SizeAsync(ledger) / 1048576.0:N0} MB** ({await SizeAsync(ledger) / (double)data.Tasks:N0} bytes per task, requests and commands included)");

            // A ledger filled before the rare queue existed gets it here: the same tasks' runs as a new fill's.
            using (var scope = host.Services.CreateScope())
            {
                var rare = data.RareQueueTasks.Select(i => data.TaskId(i)).ToList();
                await scope.ServiceProvider.GetRequiredService<JobLogDbContext>().TaskRunLogs
                    .Where(r => rare.Contains(r.TaskId) && r.QueueName != ScaleData.RareQueue)
                    .ExecuteUpdateAsync(u => u.SetProperty(r => r.QueueName, ScaleData.RareQueue));
            }

            var now = DateTime.UtcNow;
            var middle = data.DispatchedAt(data.Tasks / 2, data.Tasks);
            string? groupId = null;
            var probes = new (string Label, Func<LedgerQueries, Task<int>> Query)[]
            {
                ("tasks, first page", async q => (await q.TasksAsync(new TaskFilter(), default)).Items.Count),
                ("tasks, second page (cursor)", async q => (await q.TasksAsync(new TaskFilter { After = Cursor.Parse((await q.TasksAsync(new TaskFilter(), default)).NextCursor!) }, default)).Items.Count),
                ("failed tasks (state=failed)", async q => (await q.TasksAsync(new TaskFilter { States = [TaskState.Failed] }, default)).Items.Count),
                ("state=waiting,active", async q => (await q.TasksAsync(new TaskFilter { States = [TaskState.Waiting, TaskState.Active] }, default)).Items.Count),
                ("name (busiest, Step00)", async q => (await q.TasksAsync(new TaskFilter { Name = ScaleData.TaskName(0) }, default)).Items.Count),
                ("name (rarest, Step49)", async q => (await q.TasksAsync(new TaskFilter { Name = ScaleData.TaskName(49) }, default)).Items.Count),
                ("name + state=failed (Step30)", async q => (await q.TasksAsync(new TaskFilter { Name = ScaleData.TaskName(30), States = [TaskState.Failed] }, default)).Items.Count),
                ("queue (queue-7)", async q => (await q.TasksAsync(new TaskFilter { Queue = "queue-7" }, default)).Items.Count),
                ("queue, rare (queue-rare: the runs of five tasks)", async q => (await q.TasksAsync(new TaskFilter { Queue = ScaleData.RareQueue }, default)).Items.Count),
                ("time range (one hour, mid-ledger)", async q => (await q.TasksAsync(new TaskFilter { From = middle, To = middle.AddHours(1) }, default)).Items.Count),
                ("q, common term (EUR)", async q => Counted(await q.TasksAsync(new TaskFilter { Search = ScaleData.CommonTerm }, default))),
                ("q, rare term (one task's reference)", async q => Counted(await q.TasksAsync(new TaskFilter { Search = ScaleData.RareTerm(data.Tasks / 3) }, default))),
                ("q, no match (a reference no task has)", async q => Counted(await q.TasksAsync(new TaskFilter { Search = ScaleData.RareTerm(data.Tasks + 7) }, default))),
                ("q, one customer (about 50 tasks)", async q => Counted(await q.TasksAsync(new TaskFilter { Search = "CustomerId=123457," }, default))),
                ("q, an error's text (about 1.5% of tasks)", async q => Counted(await q.TasksAsync(new TaskFilter { Search = "could not serialize" }, default))),
                // Hostile q values (session 43): FTS5 syntax taken literally, the longest q taken (200 characters) of one
                // character, of one-letter terms, and of trigrams that every task has but that no task has in that order.
                ("q, hostile: ((((", async q => Counted(await q.TasksAsync(new TaskFilter { Search = "((((" }, default))),
                ("q, hostile: 66 ORs and ab", async q => Counted(await q.TasksAsync(new TaskFilter { Search = string.Concat(Enumerable.Repeat("OR ", 66)) + "ab" }, default))),
                ("q, hostile: 200 *", async q => Counted(await q.TasksAsync(new TaskFilter { Search = new string('*', 200) }, default))),
                ("q, hostile: 200 (", async q => Counted(await q.TasksAsync(new TaskFilter { Search = new string('(', 200) }, default))),
                ("q, hostile: 100 one-letter terms", async q => Counted(await q.TasksAsync(new TaskFilter { Search = string.Join(' ', Enumerable.Repeat("a", 100))[..199] }, default))),
                ("q, hostile: common trigrams, no match (200 chars)", async q => Counted(await q.TasksAsync(new TaskFilter { Search = ScaleData.CommonTrigrams }, default))),
                ("q, hostile: 200 zeros", async q => Counted(await q.TasksAsync(new TaskFilter { Search = new string('0', 200) }, default))),
                ("exact id (task detail with runs)", async q => (await q.TaskAsync(data.TaskId(data.Tasks / 2), default))?.Runs.Count ?? -1),
                ("requests, first page", async q => (await q.InputRequestsAsync(new RequestFilter(), default)).Items.Count),
                ("requests, status=error", async q => (await q.InputRequestsAsync(new RequestFilter { Status = RequestLogStatus.Error }, default)).Items.Count),
                ("requests, slug + time range", async q => (await q.InputRequestsAsync(new RequestFilter { Slug = "/api/cart", From = middle, To = middle.AddHours(1) }, default)).Items.Count),
                ("commands, first page", async q => (await q.CommandsAsync(new CommandFilter(), default)).Items.Count),
                ("commands, failed", async q => (await q.CommandsAsync(new CommandFilter { Outcome = CommandOutcome.Failed }, default)).Items.Count),
                ("overview (hour window)", async q => (await q.OverviewAsync(false, now, default)).Counts.Count),
                ("overview (day window)", async q => (await q.OverviewAsync(true, now, default)).Counts.Count),
                // The pages the lines above do not cover (session 12): the tasks page's name suggestions, MassTransit's own
                // tasks, the failures pages, the outbound requests, the hosts, `q` on requests and commands.
                ("tasks page's name suggestions", async q => (await q.RecentTaskNamesAsync(default)).Count),
                ("internal=true (MassTransit's own tasks)", async q => (await q.TasksAsync(new TaskFilter { Internal = InternalTasks.Only }, default)).Items.Count),
                ("failures, groups by exception", async q => (await q.FailureGroupsAsync(new FailureFilter(), now, default)).Groups.Count),
                ("failures, one group's page", async q =>
                {
                    // As the dashboard's group page: its header (the group's own summary), then its rows. The biggest
                    // group's id is found once, on the first (cold, untimed) call.
                    groupId ??= (await q.FailureGroupsAsync(new FailureFilter { Limit = 1 }, now, default)).Groups[0].Id;
                    var group = new FailureFilter { Group = groupId };
                    await q.FailureGroupsAsync(group with { Limit = 1 }, now, default);
                    return (await q.FailuresAsync(group, default)).Items.Count;
                }),
                ("requests, q (one customer's path)", async q => Counted(await q.InputRequestsAsync(new RequestFilter { Search = "/api/customers/4242" }, default))),
                ("requests, outbound first page", async q => (await q.OutputRequestsAsync(new RequestFilter(), default)).Items.Count),
                ("commands, q (one batch)", async q => Counted(await q.CommandsAsync(new CommandFilter { Search = "--batch " + (data.Commands / 2).ToString(CultureInfo.InvariantCulture) }, default))),
                // Hostile q on requests and commands (session 44): the longest q (200 characters) of one character; of a
                // path, and of an argument, repeated in an order no row has (their keys, `orders` and `batch`, are in a third
                // of the paths and in every command's arguments; their whole text has trigrams no row has).
                ("requests, q hostile: 200 zeros", async q => Counted(await q.InputRequestsAsync(new RequestFilter { Search = new string('0', 200) }, default))),
                ("requests, q hostile: a path repeated, no match (200 chars)", async q => Counted(await q.InputRequestsAsync(new RequestFilter { Search = ScaleData.RepeatedPath }, default))),
                ("commands, q hostile: 200 zeros", async q => Counted(await q.CommandsAsync(new CommandFilter { Search = new string('0', 200) }, default))),
                ("commands, q hostile: an argument repeated, no match (200 chars)", async q => Counted(await q.CommandsAsync(new CommandFilter { Search = ScaleData.RepeatedArgument }, default))),
                ("hosts", async q => (await q.HostOverviewAsync(TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(5), now, 20, default)).Live.Count),
            };
            // JOBLOG_SCALE_ONLY: only the lines whose label contains it (re-measuring one page on a kept ledger).
            var only = Environment.GetEnvironmentVariable("JOBLOG_SCALE_ONLY");
            foreach (var (label, query) in probes.Where(p => string.IsNullOrEmpty(only) || p.Label.Contains(only, StringComparison.OrdinalIgnoreCase)))
            {
                Line(await TimeAsync(host, label, query));
            }

            if (options.PagesOnly && !options.Maintain)
            {
                return sb.ToString();
            }

            // --drop-days: the listed days' retention alone (no sweeps first), one day at a time.
            if (options.DropDays is null)
            {
                // The batches' times (each holds its transaction: on SQLite the write lock the writer waits behind) and this
                // process's CPU (SQLite runs in it; a figure the machine's load does not inflate as it does the wall time).
                using var batches = new SweepBatches();
                var walBefore = provider == LedgerProvider.PostgreSql ? await ServerWalAsync(ledger) : null;
                var cpu = Process.GetCurrentProcess().TotalProcessorTime;
                clock.Restart();
                var sweep = await maintenance.SweepAsync();
                var swept = clock.Elapsed;
                cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
                var wal = WalSummary(walBefore, provider == LedgerProvider.PostgreSql ? await ServerWalAsync(ledger) : null);
                Line(string.Create(CultureInfo.InvariantCulture,
                    $"- sweep of {data.Stale:N0} stale tasks (one in {data.Sparsity:N0}; {(provider == LedgerProvider.PostgreSql ? options.SweepParallelism ?? 4 : 1)} at once, batches of {options.SweepBatch ?? 1000:N0}): **{swept.TotalSeconds:0.0} s** ({sweep.Expired:N0} expired, {sweep.Healed:N0} healed); target < 10 s: {(swept.TotalSeconds < 10 ? "met" : "missed")}; " +
                    $"{batches.Summary()}; this process's CPU {cpu.TotalSeconds:0.0} s{wal}"));
                if (options.SpreadOnly)
                {
                    return sb.ToString();
                }

                {
                    // The spread sweep's stale tasks are one in a hundred over every day, each on a page of its own and, at 10 M,
                    // read from disk: a worst case for locality. An outage leaves a contiguous backlog instead: the newest
                    // tasks, written together and recently (their pages in memory). The same number of the newest tasks are
                    // made ACTIVE with ACTIVE runs and a deadline passed (untimed), then swept.
                    var made = provider == LedgerProvider.PostgreSql
                        ? await MakeOutageAsync(ledger, data.Stale, partitioned)
                        : await MakeSqliteOutageAsync(ledger, data.Stale);
                    using var outageBatches = new SweepBatches();
                    clock.Restart();
                    var outage = await maintenance.SweepAsync();
                    var outageTime = clock.Elapsed;
                    Line(string.Create(CultureInfo.InvariantCulture,
                        $"- sweep of a contiguous backlog, the newest {made:N0} tasks (an outage's; made stale untimed, so in memory) ({(provider == LedgerProvider.PostgreSql ? options.SweepParallelism ?? 4 : 1)} at once, batches of {options.SweepBatch ?? 1000:N0}): " +
                        $"**{outageTime.TotalSeconds:0.0} s** ({outage.Expired:N0} expired, {outage.Healed:N0} healed); target < 10 s: {(outageTime.TotalSeconds < 10 ? "met" : "missed")}; {outageBatches.Summary()}"));
                }
            }

            // Partitioned, a day is a UTC day: the first one generated is partial (it starts at First), so the second is timed too.
            var days = options.DropDays is { } listed ? [.. listed.Select(d => d.AddDays(1))]
                : partitioned ? new[] { data.First.Date.AddDays(1), data.First.Date.AddDays(2) } : [data.First.AddDays(1)];
            if (options.DropDays is not null)
            {
                // Retention alone (JOBLOG_SCALE_ONLY=none runs no page before it): the process's first EF Core context and the
                // purge's queries are made here, untimed, by a purge with a cutoff before the ledger's first day (it deletes
                // nothing); else the first day listed paid them (0.33 s before its first statement and 0.45 s between its drop
                // and its batched purge, docs/scale.md "Session 37 (scale)"), which an application's retention pays once.
                clock.Restart();
                var warm = await maintenance.PurgeAsync(new LedgerPurgeRequest(options.DropRequests ? LedgerKind.InputRequests : LedgerKind.Tasks, data.First.Date, data.First.Date));
                Line(string.Create(CultureInfo.InvariantCulture,
                    $"- warm-up (untimed in the retention: a purge before the ledger's first day): {clock.Elapsed.TotalSeconds:0.000} s, {warm.Deleted:N0} deleted"));
            }

            foreach (var day in options.DropRequests ? [] : days)
            {
                if (options.Ahead && partitioned)
                {
                    // The partition pass's build of the day's kept rows ahead of its drop (its time apart: not the drop's).
                    await using var connection = new NpgsqlConnection(ledger.ConnectionString);
                    await connection.OpenAsync();
                    // The partition pass drops first the partitions the retention's pass detached and left (the day before's).
                    clock.Restart();
                    await JobLog.Storage.Partitioning.LedgerPartitioning.DropDetachedAsync(connection, CancellationToken.None);
                    Line(string.Create(CultureInfo.InvariantCulture,
                        $"- the day before's detached partitions dropped (the partition pass's; untimed in the drop): {clock.Elapsed.TotalSeconds:0.000} s"));
                    clock.Restart();
                    var built = await JobLog.Storage.Partitioning.LedgerPartitioning.BuildAheadAsync(connection, day, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, CancellationToken.None);
                    Line(string.Create(CultureInfo.InvariantCulture,
                        $"- the kept rows built ahead (the partition pass's; untimed in the drop): {clock.Elapsed.TotalSeconds:0.000} s for {built.Count} day(s) up to {day:yyyy-MM-dd HH:mm}"));
                }

                using var locks = new SweepBatches("joblog.retention.day_lock_duration");
                clock.Restart();
                // With --ahead, the retention's pass (LedgerRetentionService): the day's files left to the partition pass.
                // The partition drops' part of it (LedgerPurger.DaysDropped); the rest is the batched purge after them.
                var purger = host.Services.GetRequiredService<LedgerPurger>();
                TimeSpan? dropped = null;
                purger.DaysDropped = t => dropped = t;
                var deleted = options.Ahead && partitioned
                    ? (await purger.PurgeAsync(new PurgeRequest(LedgerKind.Tasks, day, day, DetachedLater: true), CancellationToken.None)).Deleted
                    : (await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, day, day))).Deleted;
                var retained = clock.Elapsed;
                purger.DaysDropped = null;
                var dayTarget = provider == LedgerProvider.PostgreSql ? "target < 1 s (PostgreSQL, partition drop)" : "no target (SQLite purges in batches)";
                var verdict = provider == LedgerProvider.PostgreSql ? (retained.TotalSeconds < 1 ? ": met" : ": missed") : "";
                var how = partitioned
                    ? $"day partitions dropped, what must stay moved first, then the batched purge of the rest{(options.Ahead ? "; the day's files left to the partition pass" : "")}; cutoff {day:yyyy-MM-dd HH:mm}"
                    : "batched DELETE, LedgerMaintenance.PurgeAsync, batch 1,000";
                var locked = partitioned && locks.Milliseconds() is { Length: > 0 } ms ? $"; the tables locked for {ms} ms (joblog.retention.day_lock_duration)" : "";
                locked += partitioned && dropped is { } d
                    ? string.Create(CultureInfo.InvariantCulture, $"; the drop {d.TotalMilliseconds:0} ms, the batched purge after it {(retained - d).TotalMilliseconds:0} ms")
                    : "";
                Line(string.Create(CultureInfo.InvariantCulture,
                    $"- retention of the oldest day ({how}): **{retained.TotalSeconds:0.000} s** for {deleted:N0} tasks and their runs " +
                    $"({deleted / retained.TotalSeconds:N0} tasks/s); {dayTarget}{verdict}{locked}"));
            }

            // The inbound requests' days too (their partitions are dropped the same way; docs/scale.md#partitioning): after
            // the tasks' days, or (--drop-requests) each day listed alone.
            foreach (var day in !partitioned ? [] : options.DropDays is null ? [days[^1]] : options.DropRequests ? days : [])
            {
                clock.Restart();
                var requests = await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.InputRequests, day, day));
                var requestsTime = clock.Elapsed;
                Line(string.Create(CultureInfo.InvariantCulture,
                    $"- retention of the inbound requests up to {day:yyyy-MM-dd HH:mm} (day partitions dropped, what must stay moved first, then the batched purge of the rest): " +
                    $"**{requestsTime.TotalSeconds:0.000} s** for {requests.Deleted:N0} requests; target < 1 s (PostgreSQL, partition drop): {(requestsTime.TotalSeconds < 1 ? "met" : "missed")}"));
            }

            if (provider == LedgerProvider.Sqlite && options.DropDays is null)
            {
                var before = await CountAsync(ledger);
                // About a million rows: tasks and their runs (2.07 rows a task), the oldest after the day already gone.
                var cutoff = data.DispatchedAt((long)(data.Tasks / (double)options.Days) + 483_000, data.Tasks);
                clock.Restart();
                var purge = await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, cutoff, cutoff, BatchSize: 5000));
                var purged = clock.Elapsed;
                var deleted = before - await CountAsync(ledger);
                Line(string.Create(CultureInfo.InvariantCulture,
                    $"- purge of {deleted:N0} rows ({purge.Deleted:N0} tasks + their runs, batch 5,000): **{purged.TotalSeconds:0.0} s** ({deleted / purged.TotalSeconds:N0} rows/s)"));
            }

            Line(await RollupCheckAsync(host));
        }
        finally
        {
            await host.StopAsync();
        }

        return sb.ToString();
    }

    // The last search page's stop (JobLogOptions.SearchBudget), for its line (Counted).
    private static SearchStop? s_stopped;

    /// <summary>A search page's rows, its stop noted for the line (<see cref="TimeAsync"/>).</summary>
    private static int Counted<T>(Page<T> page)
    {
        s_stopped = page.SearchStopped;
        return page.Items.Count;
    }

    private static async Task<string> TimeAsync(IHost host, string label, Func<LedgerQueries, Task<int>> query)
    {
        s_stopped = null;
        var clock = new Stopwatch();
        List<double> times;
        int count;
        try
        {
            (times, count) = await RunsAsync(host, query, clock);
        }
        catch (InvalidOperationException ex) when (ex.InnerException is DbException or TimeoutException)
        {
            // EF Core's command timeout (30 s): the query is reported as what a user gets, an error.
            return string.Create(CultureInfo.InvariantCulture,
                $"- {label}: **failed after {clock.Elapsed.TotalSeconds:0} s** ({ex.InnerException.GetType().Name}: {ex.InnerException.Message}); target < {PageTarget:0} ms: missed");
        }

        var warm = times.Skip(1).Order().ToList();
        var median = warm[warm.Count / 2];
        var stopped = s_stopped is { } stop
            ? $", **stopped** by the search budget ({stop.Budget.TotalSeconds:0.###} s; searched back to {(stop.SearchedBackTo is { } at ? at.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) : "none")})"
            : "";
        s_stopped = null;
        return string.Create(CultureInfo.InvariantCulture,
            $"- {label}: **{median:0.0} ms** median of 5 (first {times[0]:0} ms), {count} rows{stopped}; target < {PageTarget:0} ms: {(median < PageTarget ? "met" : "missed")}");
    }

    /// <summary>
    /// A page read six times, each in a new scope (new <c>DbContext</c>): the times in ms (the first cold) and the last
    /// count. <paramref name="clock"/> times each read (a failing one's time is its elapsed).
    /// </summary>
    internal static async Task<(List<double> Times, int Count)> RunsAsync(IHost host, Func<LedgerQueries, Task<int>> query, Stopwatch clock)
    {
        var times = new List<double>();
        var count = 0;
        for (var i = 0; i < 6; i++)
        {
            await using var scope = host.Services.CreateAsyncScope();
            var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
            clock.Restart();
            count = await query(queries);
            times.Add(clock.Elapsed.TotalMilliseconds);
        }

        return (times, count);
    }

    /// <summary>The overview's counts against the COUNT(*) they replace, after the sweep and the purges.</summary>
    private static async Task<string> RollupCheckAsync(IHost host)
    {
        await using var scope = host.Services.CreateAsyncScope();
        var queries = scope.ServiceProvider.GetRequiredService<LedgerQueries>();
        var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
        var (counts, _, _) = await queries.OverviewAsync(false, DateTime.UtcNow, default);
        var clock = Stopwatch.StartNew();
        var actual = db.TaskLogs.Where(t => !t.IsInternal).GroupBy(t => t.State).Select(g => new { g.Key, Count = g.LongCount() }).ToDictionary(g => g.Key, g => g.Count);
        var countTime = clock.Elapsed;
        var equal = counts.All(c => c.Count == actual.GetValueOrDefault(c.State));
        return string.Create(CultureInfo.InvariantCulture,
            $"- overview counts after the sweep and the purges {(equal ? "equal" : "⚠ DIFFER from")} the COUNT(*) GROUP BY State they replace " +
            $"(which takes {countTime.TotalMilliseconds:N0} ms here): {string.Join(", ", counts.Select(c => $"{c.State} {c.Count:N0}"))}");
    }

    /// <summary>The time a kept ledger was filled at: its first command is dispatched at <see cref="ScaleData.First"/>.</summary>
    /// <summary>
    /// Makes the newest <paramref name="count"/> tasks an outage's backlog: ACTIVE, their runs ACTIVE, their deadline
    /// passed (five minutes after dispatch, as the data's stale tasks), as a sweep would find them after an outage.
    /// </summary>
    /// <returns>How many tasks were made stale.</returns>
    /// <summary><see cref="MakeOutageAsync"/> on SQLite (through the ledger's triggers, so its rollups and search index stay right).</summary>
    private static async Task<int> MakeSqliteOutageAsync(ThrowawayLedger ledger, int count)
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection(ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandTimeout = 0;
        command.CommandText = $"""
            CREATE TEMP TABLE joblog_outage AS SELECT "Id" FROM "JobLogTasks" ORDER BY "DispatchedAt" DESC LIMIT {count};
            UPDATE "JobLogTasks" SET "State" = 2, "Stop" = NULL, "IsSetAsStale" = 0, "Stale" = strftime('%Y-%m-%d %H:%M:%f', "DispatchedAt", '+5 minutes')
                WHERE "Id" IN (SELECT "Id" FROM joblog_outage);
            UPDATE "JobLogTaskRuns" SET "State" = 1, "Stop" = NULL, "ErrorMessage" = NULL WHERE "TaskId" IN (SELECT "Id" FROM joblog_outage);
            SELECT COUNT(*) FROM joblog_outage;
            """;
        return (int)(long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<int> MakeOutageAsync(ThrowawayLedger ledger, int count, bool partitioned)
    {
        await using var connection = new NpgsqlConnection(ledger.ConnectionString);
        await connection.OpenAsync();
        var day = partitioned ? ", \"PartitionDay\"" : "";
        var sameDay = partitioned ? " AND r.\"PartitionDay\" = o.\"PartitionDay\"" : "";
        await using var command = new NpgsqlCommand($"""
            CREATE TEMP TABLE joblog_outage AS SELECT "Id"{day} FROM "JobLogTasks" ORDER BY "DispatchedAt" DESC LIMIT {count};
            UPDATE "JobLogTasks" t SET "State" = 2, "Stop" = NULL, "IsSetAsStale" = FALSE, "Stale" = t."DispatchedAt" + interval '5 minutes'
                FROM joblog_outage o WHERE t."Id" = o."Id"{sameDay.Replace("r.", "t.", StringComparison.Ordinal)};
            UPDATE "JobLogTaskRuns" r SET "State" = 1, "Stop" = NULL, "ErrorMessage" = NULL FROM joblog_outage o WHERE r."TaskId" = o."Id"{sameDay};
            """, connection) { CommandTimeout = 0 };
        await command.ExecuteNonQueryAsync();
        await using var counted = new NpgsqlCommand("SELECT COUNT(*) FROM joblog_outage", connection);
        return (int)(long)(await counted.ExecuteScalarAsync())!;
    }

    private static async Task<DateTime> FilledAtAsync(ThrowawayLedger ledger, int days)
    {
        await using DbConnection connection = ledger.File is null ? new NpgsqlConnection(ledger.ConnectionString) : new SqliteConnection(ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT MIN(\"Start\") FROM \"JobLogCommands\"";
        var first = await command.ExecuteScalarAsync() switch
        {
            DateTime d => DateTime.SpecifyKind(d, DateTimeKind.Utc),
            string s => DateTime.SpecifyKind(DateTime.Parse(s, CultureInfo.InvariantCulture), DateTimeKind.Utc),
            var v => throw new InvalidOperationException($"The kept ledger has no commands ({v}): not a scale ledger."),
        };
        return first.AddDays(days).AddMinutes(10);
    }

    private static async Task<long> SizeAsync(ThrowawayLedger ledger)
    {
        if (ledger.File is { } file)
        {
            return new[] { file, file + "-wal" }.Where(File.Exists).Sum(f => new FileInfo(f).Length);
        }

        await using var connection = new NpgsqlConnection(ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT pg_database_size(current_database())", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>
    /// The server's WAL counters (<c>pg_stat_wal</c>, PostgreSQL 14 and later: records, full-page images, bytes), read around
    /// the spread sweep: its cost is mostly page images (sessions 38-44), which the wall time at the machine's load does
    /// not show. The whole server's, so whatever else writes meanwhile counts too; null where the view cannot be read.
    /// </summary>
    private static async Task<(long Records, long PageImages, decimal Bytes)?> ServerWalAsync(ThrowawayLedger ledger)
    {
        try
        {
            await using var connection = new NpgsqlConnection(ledger.ConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal", connection);
            await using var reader = await command.ExecuteReaderAsync();
            return await reader.ReadAsync() ? (reader.GetInt64(0), reader.GetInt64(1), reader.GetDecimal(2)) : null;
        }
        catch (PostgresException)
        {
            return null;
        }
    }

    private static string WalSummary((long Records, long PageImages, decimal Bytes)? before, (long Records, long PageImages, decimal Bytes)? after) =>
        before is { } b && after is { } a
            ? string.Create(CultureInfo.InvariantCulture,
                $"; the server's WAL meanwhile {(a.Bytes - b.Bytes) / 1_000_000m:N0} MB, {a.PageImages - b.PageImages:N0} page images, {a.Records - b.Records:N0} records (pg_stat_wal)")
            : "";

    private static async Task<long> CountAsync(ThrowawayLedger ledger)
    {
        await using var connection = new SqliteConnection(ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT (SELECT COUNT(*) FROM \"JobLogTasks\") + (SELECT COUNT(*) FROM \"JobLogTaskRuns\")";
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>EF Core's executed commands with their times, from its diagnostic events (JOBLOG_SCALE_SQL=1).</summary>
    private sealed class StatementLog : IObserver<DiagnosticListener>, IObserver<KeyValuePair<string, object?>>, IDisposable
    {
        private readonly List<IDisposable> _subscriptions = [];

        public static StatementLog Start()
        {
            var log = new StatementLog();
            log._subscriptions.Add(DiagnosticListener.AllListeners.Subscribe(log));
            return log;
        }

        public void OnNext(DiagnosticListener value)
        {
            if (value.Name == "Microsoft.EntityFrameworkCore")
            {
                lock (_subscriptions)
                {
                    _subscriptions.Add(value.Subscribe(this));
                }
            }
        }

        public void OnNext(KeyValuePair<string, object?> value)
        {
            // The time to the first row, then (a reader's) the time to its disposal with the rows read.
            if (value.Value is Microsoft.EntityFrameworkCore.Diagnostics.CommandExecutedEventData e)
            {
                var parameters = string.Join(", ", e.Command.Parameters.Cast<DbParameter>().Select(p => $"{p.ParameterName}={p.Value}"));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    [sql {e.Duration.TotalMilliseconds:0.0} ms] ({parameters}) {e.Command.CommandText.ReplaceLineEndings(" ")}"));
            }
            else if (value.Value is Microsoft.EntityFrameworkCore.Diagnostics.DataReaderDisposingEventData d)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    [sql read {d.ReadCount} rows in {d.Duration.TotalMilliseconds:0.0} ms]"));
            }
        }

        public void OnCompleted()
        {
        }

        public void OnError(Exception error)
        {
        }

        public void Dispose()
        {
            lock (_subscriptions)
            {
                _subscriptions.ForEach(s => s.Dispose());
            }
        }
    }
}

/// <summary>
/// The sweep's batches as the sweeper reports them (<c>joblog.sweeper.batch_duration</c>), or another histogram of the
/// JobLog meter in seconds (<paramref name="instrument"/>: a day drop's lock, <c>joblog.retention.day_lock_duration</c>).
/// </summary>
internal sealed class SweepBatches : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly List<double> _seconds = [];

    public SweepBatches(string instrument = "joblog.sweeper.batch_duration")
    {
        _listener.InstrumentPublished = (published, listener) =>
        {
            if (published.Meter.Name == "JobLog" && published.Name == instrument)
            {
                listener.EnableMeasurementEvents(published);
            }
        };
        _listener.SetMeasurementEventCallback<double>((_, value, _, _) =>
        {
            lock (_seconds)
            {
                _seconds.Add(value);
            }
        });
        _listener.Start();
    }

    public string Summary()
    {
        lock (_seconds)
        {
            if (_seconds.Count == 0)
            {
                return "no batch";
            }

            var sorted = _seconds.Order().ToList();
            return string.Create(CultureInfo.InvariantCulture,
                $"{sorted.Count} batches holding the transaction {sorted[sorted.Count / 2] * 1000:0} ms median, {sorted[(int)(sorted.Count * 0.95)] * 1000:0} ms p95, {sorted[^1] * 1000:0} ms max");
        }
    }

    /// <summary>The values recorded, in seconds, comma-separated in milliseconds.</summary>
    public string Milliseconds()
    {
        lock (_seconds)
        {
            return string.Join(", ", _seconds.Select(s => (s * 1000).ToString("N0", CultureInfo.InvariantCulture)));
        }
    }

    public void Dispose() => _listener.Dispose();
}
