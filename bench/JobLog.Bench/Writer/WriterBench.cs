using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using JobLog.Bench.Infrastructure;
using JobLog.Bench.Throughput;
using JobLog.Recording;
using JobLog.Redaction;
using JobLog.Storage;
using JobLog.Storage.Sqlite;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace JobLog.Bench.Writer;

/// <summary>
/// The writer alone, without a bus: the records a message produces (dispatch, run start, run finish) enqueued straight
/// into the recorder, either in one batch (Buffered) or the dispatch first and the run in a later batch (Acknowledged).
/// Then a statement-level profile: the same batches executed statement by statement with a stopwatch per statement kind.
/// </summary>
internal sealed class WriterBench(BenchOptions options)
{
    public async Task<string> RunAsync()
    {
        var report = new StringBuilder();
        report.AppendLine("| ledger | pattern | messages/s written | records/s | CPU µs/msg | ledger backends CPU µs/msg | allocated KB/msg | records/commit | ms/commit |");
        report.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        // A statement variant is measured by the profile alone (alternated with the shipped statement, below).
        foreach (var ledger in options.StatementVariants.Count > 0 ? [] : options.Ledgers)
        {
            foreach (var split in new[] { false, true })
            {
                for (var round = 0; round < options.Rounds; round++)
                {
                    var line = await RunOnceAsync(ledger, split);
                    Console.WriteLine(line);
                    if (round == options.Rounds - 1)
                    {
                        report.AppendLine(line);
                    }
                }
            }

            report.AppendLine();
        }

        foreach (var ledger in options.Ledgers)
        {
            foreach (var split in new[] { false, true })
            {
                var profile = await ProfileStatementsAsync(ledger, split);
                Console.WriteLine(profile);
                report.AppendLine(profile);
            }
        }

        return report.ToString();
    }

    /// <summary>
    /// <c>--retries N</c> (one value): each message's consumer fails N times first, as the throughput bench's retries path
    /// records it (docs/benchmarks.md, "Session 12 (fail)"): per failed attempt a RETRIED run with the exception's text, then
    /// the next attempt's run and the retried run's next retry time (that start: no retry observer, as the bus bench).
    /// </summary>
    private int FailedAttempts => options.Retries.Count == 1 ? options.Retries[0] : 0;

    /// <summary>An exception's text as the consume path stores it: thrown through nested async frames (~1,600 characters, as the bus's).</summary>
    private static readonly Lazy<string> ErrorText = new(() =>
    {
        try
        {
            ThrowThrough(8).GetAwaiter().GetResult();
        }
        catch (InvalidOperationException ex)
        {
            return new Redactor(new RedactionOptions()).ExceptionText(ex);
        }

        throw new InvalidOperationException("unreachable");

        static async Task ThrowThrough(int depth)
        {
            await Task.Yield();
            if (depth == 0)
            {
                throw new InvalidOperationException("Card declined (benchmark: fails before the last attempt).");
            }

            await ThrowThrough(depth - 1);
        }
    });

    private static readonly ChargeCard Message = new(42, 10.5m, "EUR", "order-42");

    private MessageRenderer? _renderer;

    private (TaskDispatched Dispatch, LedgerRecord[] Consumed) Records(RenderedMessage rendered, int i, DateTime now)
    {
        // The bus's run filter does not render the message: its run and seed carry the rendering deferred, and the run's
        // insert takes Input, TaskArgs and TaskKwargs from the task row (RunRow.InputFromTask). --run-input rendered: as before.
        RenderedMessage? runRendered = options.RunsRendered ? rendered : null;
        var deferred = options.RunsRendered ? null : new DeferredRendering(Message, _renderer!);
        var taskId = NewId.NextGuid();
        var task = new TaskPayload
        {
            Id = taskId, Name = "ChargeCard", QueueName = "charge-card", Input = rendered.Input, TaskArgs = rendered.TaskArgs,
            TaskKwargs = rendered.TaskKwargs, DispatchedAt = now, EstimatedTimeOfFirstArrival = now, ConversationId = NewId.NextGuid(),
            SourceAddress = "rabbitmq://localhost/bench/host_bench_bus_abc", Host = "bench", TraceId = "4bf92f3577b34da6a3ce929d0e0e4736",
        };
        // A run's id as the consume path makes it (TaskRunFilter: NewId.NextSequentialGuid, ascending in the runs' key);
        // the message's and conversation's ids as MassTransit makes them (NewId.NextGuid, scattered in their indexes).
        var run = new RunPayload
        {
            Id = NewId.NextSequentialGuid(), TaskId = taskId, Name = "ChargeCard", QueueName = "charge-card", ConsumerType = "ChargeCardConsumer",
            Input = runRendered?.Input, TaskArgs = runRendered?.TaskArgs, TaskKwargs = runRendered?.TaskKwargs,
            // Ascending, as the bus's runs start (one microsecond apart): a start shared by every run would order SQLite's
            // (QueueName, Start, TaskId) by task id, as no bus does.
            Start = now.AddMilliseconds(1).AddTicks(i * 10L),
            Host = "bench", WaitingTime = 0.001,
        };
        var seed = new TaskPayload
        {
            Id = taskId, Name = "ChargeCard", QueueName = "charge-card", Input = runRendered?.Input, TaskArgs = runRendered?.TaskArgs,
            TaskKwargs = runRendered?.TaskKwargs, DispatchedAt = now, EstimatedTimeOfFirstArrival = now, ConversationId = task.ConversationId,
            SourceAddress = task.SourceAddress,
        };
        var consumed = new List<LedgerRecord>();
        var failures = FailedAttempts;
        for (var attempt = 0; attempt <= failures; attempt++)
        {
            var start = now.AddMilliseconds(1 + (2 * attempt));
            var attemptRun = attempt == 0 ? run : run with { Id = NewId.NextSequentialGuid(), Start = start };
            if (attempt > 0)
            {
                // TaskRunFilter: the previous attempt's retry came now.
                consumed.Add(new RunNextRetryKnown(((RunStarted)consumed[^2]).Run.Id, start));
            }

            consumed.Add(new RunStarted(attemptRun, seed, false, deferred));
            if (attempt < failures)
            {
                // The throughput bench's UseMessageRetry(Immediate(n)) has no retry observer: the next attempt's start gives
                // the time (above), one record per failed attempt.
                consumed.Add(new RunFinished(attemptRun.Id, taskId, TaskRunState.Retried, start.AddMilliseconds(1), ErrorText.Value, null, null));
            }
            else
            {
                consumed.Add(new RunFinished(attemptRun.Id, taskId, TaskRunState.Succeeded, start.AddMilliseconds(1), null, null, null));
            }
        }

        for (var r = 0; r < options.Requests; r++)
        {
            // As the request middleware records a request: at its start, then with its response (one upsert each).
            var request = new InputRequestPayload
            {
                Id = Guid.CreateVersion7(now), Host = "shop.example", Method = "POST", Path = "/api/orders/" + (i * 7 + r).ToString(CultureInfo.InvariantCulture) + "/charge",
                Slug = "/api/orders/{id}/charge", RequestTimestamp = now, UserId = "user42", Ip = "10.0.0.7",
            };
            consumed.Add(new InputRequestRecorded(request));
            consumed.Add(new InputRequestRecorded(request with
            {
                ResponseTimestamp = now.AddMilliseconds(3), ResponseCode = 200, Status = RequestLogStatus.Info,
            }));
        }

        return (new TaskDispatched(task), [.. consumed]);
    }

    private IHost BuildHost(ThrowawayLedger ledger, LedgerDurability durability) => BuildHost(options, ledger, durability);

    /// <summary>A host with JobLog writing to <paramref name="ledger"/>, no sweeper, the writer options of the command line.</summary>
    internal static IHost BuildHost(BenchOptions options, ThrowawayLedger ledger, LedgerDurability durability)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddJobLog(o =>
        {
            ledger.Apply(o);
            o.Sweeper.Enabled = false;
            o.Durability = durability;
            o.SearchIndex = options.SearchIndex;
            o.MaxBatchSize = options.MaxBatch ?? o.MaxBatchSize;
            o.QueueCapacity = Math.Max(200_000, options.Messages * 3 + 10_000);
        });
        return builder.Build();
    }

    private async Task<string> RunOnceAsync(LedgerProvider provider, bool split)
    {
        await using var ledger = await ThrowawayLedger.CreateAsync(provider);
        using var host = BuildHost(ledger, split ? LedgerDurability.Committed : LedgerDurability.Buffered);
        await host.StartAsync();
        if (options.RowTriggers)
        {
            await ledger.AddRowTriggersAsync();
        }

        await ledger.DropIndexesAsync(options.DropIndexes);

        await ledger.RunSqlFileAsync(options.LedgerSql);
        await ledger.FillAsync(options.LedgerTasks, options.Days);
        await DropLogSearchAsync(ledger);
        using var stats = new WriterStats();
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        _renderer = host.Services.GetRequiredService<MessageRenderer>();
        var rendered = _renderer.Render(Message);
        var now = DateTime.UtcNow;
        var messages = options.Messages;
        var records = Enumerable.Range(0, messages).Select(i => Records(rendered, i, now)).ToList();

        // Warm-up: JIT and the schema.
        foreach (var (d, consumed) in Enumerable.Range(0, 500).Select(i => Records(rendered, i, now)))
        {
            recorder.Enqueue(d);
            foreach (var c in consumed)
            {
                recorder.Enqueue(c);
            }
        }

        await recorder.FlushAsync(TimeSpan.FromSeconds(60));
        GC.Collect();
        var backendsBefore = await BackendCpu.TakeAsync(ledger.Database);
        var writerBefore = stats.Take();
        var before = ProcessSnapshot.Take();
        var clock = Stopwatch.StartNew();
        var window = options.Window;
        for (var start = 0; start < messages; start += window)
        {
            var slice = records.Skip(start).Take(window).ToList();
            if (split)
            {
                // Acknowledged: the publisher's records commit first, the consumer's come after.
                foreach (var r in slice)
                {
                    recorder.Enqueue(r.Dispatch);
                }

                await recorder.FlushAsync(TimeSpan.FromSeconds(60));
                foreach (var r in slice)
                {
                    foreach (var c in r.Consumed)
                    {
                        recorder.Enqueue(c);
                    }
                }
            }
            else
            {
                foreach (var r in slice)
                {
                    recorder.Enqueue(r.Dispatch);
                    foreach (var c in r.Consumed)
                    {
                        recorder.Enqueue(c);
                    }
                }
            }
        }

        await recorder.FlushAsync(TimeSpan.FromSeconds(300));
        var elapsed = clock.Elapsed;
        var process = ProcessSnapshot.Take() - before;
        var writer = stats.Take() - writerBefore;
        var backends = BackendCpu.Between(backendsBefore, await BackendCpu.TakeAsync(ledger.Database));
        await host.StopAsync();
        var contents = (await LedgerInspector.InspectAsync(ledger)).Minus(ledger.Filled);
        var problem = contents.SucceededTasks != messages + 500 || contents.SucceededRuns != messages + 500
            ? $" PROBLEM: {contents.SucceededTasks} SUCCEEDED tasks, {contents.SucceededRuns} SUCCEEDED runs"
            : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"| {provider} | {(split ? "dispatch, then run (Acknowledged)" : "dispatch + run in one batch (Buffered)")} | {messages / elapsed.TotalSeconds:N0} | " +
            $"{writer.Records / elapsed.TotalSeconds:N0} | {process.Cpu.TotalMilliseconds * 1000 / messages:0.0} | " +
            $"{(ledger.Database is null ? "—" : (backends.TotalMilliseconds * 1000 / messages).ToString("0.0", CultureInfo.InvariantCulture))} | {process.Allocated / 1024.0 / messages:0.00} | " +
            $"{(double)writer.Records / Math.Max(1, writer.Commits):0} | {writer.CommitSeconds * 1000 / Math.Max(1, writer.Commits):0.00} |{problem}");
    }

    /// <summary>--log-search off: the request and command search index dropped (what it costs the writer, by difference).</summary>
    private async Task DropLogSearchAsync(ThrowawayLedger ledger)
    {
        if (options.LogSearch)
        {
            return;
        }

        await using var connection = LedgerDatabase.For(ledger.Provider).CreateConnection(ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = ledger.Provider == LedgerProvider.Sqlite ? JobLog.Storage.Sqlite.SqliteLogSearch.Drop : JobLog.Storage.PostgreSql.PostgreSqlLogSearch.Drop;
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>A short name for a write-path statement (the PostgreSQL profile's per-statement server CPU).</summary>
    private static string StatementKind(string sql) => sql switch
    {
        "BEGIN" or "COMMIT" => sql,
        _ when sql.StartsWith("INSERT INTO \"JobLogTasks\"", StringComparison.Ordinal) && sql.Contains("DO NOTHING", StringComparison.Ordinal) => "consumer's task rows (insert if missing)",
        _ when sql.StartsWith("INSERT INTO \"JobLogTasks\"", StringComparison.Ordinal) => "dispatched tasks' upsert",
        _ when sql.StartsWith("INSERT INTO \"JobLogTaskRuns\"", StringComparison.Ordinal) => "run insert",
        _ when sql.StartsWith("SELECT 1 FROM", StringComparison.Ordinal) => "lock of the derived tasks",
        _ when sql.StartsWith("WITH x AS MATERIALIZED", StringComparison.Ordinal) => "derivation",
        _ when sql.StartsWith("UPDATE \"JobLogTaskRuns\"", StringComparison.Ordinal) => "updates of stored runs",
        _ => sql[..Math.Min(40, sql.Length)],
    };

    /// <summary>The short name of a write-path statement's kind (<c>--statement-variant KIND=FILE</c>, <c>--dump-statements</c>).</summary>
    private static string StatementSlug(string sql) => StatementKind(sql) switch
    {
        "consumer's task rows (insert if missing)" => "ensure",
        "dispatched tasks' upsert" => "upsert",
        "run insert" => "runs",
        "lock of the derived tasks" => "lock",
        "derivation" => "derive",
        "updates of stored runs" => "run-updates",
        var other => other,
    };

    /// <summary>
    /// The paired comparison of a statement variant (<c>--statement-variant</c>): the backend's CPU per message of each
    /// statement kind with the shipped text and with the variant, and the median and quartiles of the ratios
    /// variant/shipped over consecutive pairs of windows (shipped, then variant), which takes out the machine's drift.
    /// </summary>
    private static void AppendVariantTable(StringBuilder sb, List<(bool Variant, int Messages, Dictionary<string, long> Ns)> windows, IEnumerable<string> variants)
    {
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"server CPU of the writer's backend per statement, shipped and variant ({string.Join(", ", variants)}) alternated by window of messages:");
        sb.AppendLine("| statement | shipped µs/msg | variant µs/msg | variant / shipped, median of pairs (q1–q3) | pairs |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: |");
        var kinds = windows.SelectMany(w => w.Ns.Keys).Distinct().OrderByDescending(k => windows.Sum(w => w.Ns.GetValueOrDefault(k)));
        double PerMessage(bool variant, string kind) =>
            windows.Where(w => w.Variant == variant).Sum(w => w.Ns.GetValueOrDefault(kind)) / 1000.0 / Math.Max(1, windows.Where(w => w.Variant == variant).Sum(w => w.Messages));
        foreach (var kind in kinds.Append("total"))
        {
            long Of(Dictionary<string, long> ns) => kind == "total" ? ns.Values.Sum() : ns.GetValueOrDefault(kind);
            var ratios = new List<double>();
            for (var i = 0; i + 1 < windows.Count; i += 2)
            {
                if (!windows[i].Variant && windows[i + 1].Variant && Of(windows[i].Ns) > 0)
                {
                    ratios.Add((double)Of(windows[i + 1].Ns) / windows[i + 1].Messages / ((double)Of(windows[i].Ns) / windows[i].Messages));
                }
            }

            ratios.Sort();
            double Quantile(double q) => ratios.Count == 0 ? double.NaN : ratios[(int)Math.Round(q * (ratios.Count - 1))];
            var shipped = kind == "total" ? kinds.Sum(k => PerMessage(false, k)) : PerMessage(false, kind);
            var variant = kind == "total" ? kinds.Sum(k => PerMessage(true, k)) : PerMessage(true, kind);
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {kind} | {shipped:0.0} | {variant:0.0} | {Quantile(0.5):0.000} ({Quantile(0.25):0.000}–{Quantile(0.75):0.000}) | {ratios.Count} |");
        }
    }

    /// <summary>Commits planned batches through the real executor, timing its phases.</summary>
    private async Task<string> ProfileStatementsAsync(LedgerProvider provider, bool split)
    {
        await using var ledger = await ThrowawayLedger.CreateAsync(provider);
        using (var host = BuildHost(ledger, LedgerDurability.Buffered))
        {
            await host.StartAsync(); // migrates
            await host.StopAsync();
        }

        if (options.RowTriggers)
        {
            await ledger.AddRowTriggersAsync();
        }

        await ledger.DropIndexesAsync(options.DropIndexes);

        await ledger.RunSqlFileAsync(options.LedgerSql);
        await ledger.FillAsync(options.LedgerTasks, options.Days);
        await DropLogSearchAsync(ledger);

        var database = LedgerDatabase.For(provider);
        var store = new LedgerPlanner(database);
        var renderer = new MessageRenderer(new Redactor(new RedactionOptions()));
        var rendered = renderer.Render(new ChargeCard(42, 10.5m, "EUR", "order-42"));
        var now = DateTime.UtcNow;
        long planTicks = 0, commitTicks = 0;
        var phases = new long[SqliteExecutor.CommitPhase + 1];
        await using var executor = await database.OpenAsync(ledger.ConnectionString, CancellationToken.None, TimeSpan.FromSeconds(30), prepare: true);
        executor.PhaseTicks = phases;
        // PostgreSQL: the writer's backend's own CPU (schedstat, ns) per kind of batch: dispatches, then runs (or one batch).
        var backendPid = executor.Connection is Npgsql.NpgsqlConnection npgsql ? npgsql.ProcessID : 0;
        var backendNs = new long[2];
        var statementNs = new Dictionary<string, long>();
        var lastNs = 0L;
        // --statement-variant: every second window of messages runs with the variants' texts (windowNs per window).
        var variantWindow = false;
        var windowNs = new Dictionary<string, long>();
        var windows = new List<(bool Variant, int Messages, Dictionary<string, long> Ns)>();
        var dumped = new HashSet<string>();
        if (backendPid != 0)
        {
            executor.StatementProfile = sql =>
            {
                var now = BackendCpu.Of(backendPid) ?? lastNs;
                var kind = StatementKind(sql);
                statementNs[kind] = statementNs.GetValueOrDefault(kind) + (now - lastNs);
                windowNs[StatementSlug(sql)] = windowNs.GetValueOrDefault(StatementSlug(sql)) + (now - lastNs);
                lastNs = now;
                if (options.DumpStatements is { } dir && sql is not ("BEGIN" or "COMMIT") && dumped.Add(StatementSlug(sql)))
                {
                    Directory.CreateDirectory(dir);
                    File.WriteAllText(Path.Combine(dir, StatementSlug(sql) + ".sql"), sql);
                }
            };
            executor.StatementRewrite = sql =>
                variantWindow && options.StatementVariants.TryGetValue(StatementSlug(sql), out var variant) ? variant : sql;
        }
        if (provider == LedgerProvider.Sqlite)
        {
            // SQLite runs on this thread: its CPU time is what the writer costs, whatever else runs on the machine.
            executor.PhaseClock = ThreadCpu.Nanoseconds;
        }
        var messages = options.Messages;
        var window = options.Window;
        // Journaled: the writer holds each dispatch back until its run's batch (LedgerWriter, HeldDispatches); the records
        // are in the journal by then; the last batch is a flush.
        var held = split && options.Hold ? new HeldDispatches(TimeProvider.System, 4 * window, LedgerWriter.MaxHold) : null;
        var sequence = 0L;
        for (var start = 0; start < messages; start += window)
        {
            var slice = Enumerable.Range(start, Math.Min(window, messages - start)).Select(i => Records(rendered, i, now)).ToList();
            variantWindow = options.StatementVariants.Count > 0 && start / window % 2 == 1;
            windowNs = [];
            var batches = new List<List<LedgerRecord>>();
            if (split)
            {
                batches.Add([.. slice.Select(r => (LedgerRecord)r.Dispatch)]);
                batches.Add([.. slice.SelectMany(r => r.Consumed)]);
            }
            else
            {
                batches.Add([.. slice.SelectMany(r => r.Consumed.Prepend(r.Dispatch))]);
            }

            for (var b = 0; b < batches.Count; b++)
            {
                Func<long> clock = provider == LedgerProvider.Sqlite ? ThreadCpu.Nanoseconds : Stopwatch.GetTimestamp;
                var t0 = clock();
                var records = batches[b];
                if (held is not null)
                {
                    var queued = records.Select(r => new QueuedRecord(r, ++sequence)).ToList();
                    held.Sort(queued, hold: true, releaseAll: !(start + window < messages || b < batches.Count - 1), static _ => true);
                    records = [.. queued.Select(q => q.Record)];
                    if (records.Count == 0)
                    {
                        planTicks += clock() - t0;
                        continue;
                    }
                }

                var plan = store.Plan(records);
                var t1 = clock();
                var b0 = backendPid == 0 ? 0 : BackendCpu.Of(backendPid) ?? 0;
                lastNs = b0;
                // Synchronous on SQLite (the executor does not yield), so the thread's CPU clock stays valid.
                store.CommitAsync(executor, plan, TimeSpan.FromSeconds(30), CancellationToken.None).GetAwaiter().GetResult();
                if (backendPid != 0)
                {
                    backendNs[Math.Min(b, 1)] += (BackendCpu.Of(backendPid) ?? b0) - b0;
                }
                planTicks += t1 - t0;
                commitTicks += clock() - t1;
            }

            windows.Add((variantWindow, slice.Count, windowNs));
        }

        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"phase profile ({(provider == LedgerProvider.Sqlite ? "thread CPU time" : "wall time")}), {provider}, {(split ? (held is null ? "dispatch then run" : "dispatch then run, held for its run") : "one batch")}, {messages:N0} messages{(FailedAttempts > 0 ? $" ({FailedAttempts} failed attempts each)" : "")}, batches of {window} messages:");
        sb.AppendLine("| phase | µs per message |");
        sb.AppendLine("| --- | ---: |");
        var frequency = provider == LedgerProvider.Sqlite ? 1_000_000_000.0 : Stopwatch.Frequency;
        double Us(long ticks) => ticks * 1_000_000.0 / frequency / messages;
        var names = provider == LedgerProvider.Sqlite
            ? new[] { "task rows (insert if missing, producer fields)", "dispatch failures, updates of stored runs", "run inserts", "derivation (touched tasks not inserted by the batch)", "commands and requests", "the batch's rows into the search index and rollups (bulk)", "BEGIN (and the trigger switch)", "COMMIT (WAL append, sync, checkpoint)" }
            : ["building the batch (arrays)", "", "", "executing the batch (a round trip per statement: the profile)", "", "", "", ""];
        for (var i = 0; i < phases.Length; i++)
        {
            if (phases[i] > 0)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"| {names[i]} | {Us(phases[i]):0.0} |");
            }
        }

        sb.AppendLine(CultureInfo.InvariantCulture, $"| plan (records → rows) | {Us(planTicks):0.0} |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| {(provider == LedgerProvider.Sqlite ? "the rest of the commit" : "BEGIN + COMMIT")} | {Us(commitTicks - phases.Sum()):0.0} |");
        sb.AppendLine(CultureInfo.InvariantCulture, $"| total | {Us(planTicks + commitTicks):0.0} |");
        if (backendPid != 0)
        {
            var kinds = split ? new[] { "the dispatches' batches", "the runs' batches" } : ["the batches", ""];
            for (var k = 0; k < 2; k++)
            {
                if (backendNs[k] > 0)
                {
                    sb.AppendLine(CultureInfo.InvariantCulture, $"| server CPU (the writer's backend), {kinds[k]} | {backendNs[k] / 1000.0 / messages:0.0} |");
                }
            }

            sb.AppendLine(CultureInfo.InvariantCulture, $"| server CPU (the writer's backend), total | {backendNs.Sum() / 1000.0 / messages:0.0} |");
            foreach (var (kind, ns) in statementNs.OrderByDescending(k => k.Value))
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"| server CPU, {kind} | {ns / 1000.0 / messages:0.0} |");
            }

            if (options.StatementVariants.Count > 0)
            {
                AppendVariantTable(sb, windows, options.StatementVariants.Keys);
            }
        }
        return sb.ToString();
    }
}
