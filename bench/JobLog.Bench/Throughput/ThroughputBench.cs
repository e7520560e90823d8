using System.Diagnostics;
using System.Globalization;
using System.Text;
using JobLog.Bench.Infrastructure;
using JobLog.Recording;
using JobLog.Storage.Sqlite;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace JobLog.Bench.Throughput;

/// <summary>One workload: a transport (and its settings), a ledger, a durability, retries per message.</summary>
internal sealed record PathSpec(TransportKind Transport, RabbitProfile Profile, LedgerProvider Ledger, LedgerDurability Durability, int Retries)
{
    public string Label
    {
        get
        {
            var transport = Transport == TransportKind.InMemory
                ? "in-memory"
                : Profile == RabbitProfile.Defaults ? "RabbitMQ defaults" : "RabbitMQ p64/c32";
            var ledger = Ledger == LedgerProvider.Sqlite ? "SQLite" : "PostgreSQL";
            var durability = Durability.ToString();
            return $"{transport}, {ledger}, {durability}, {Retries} retries";
        }
    }

    /// <summary>The target ratio for this path (issue 13's table), if it has one.</summary>
    public double? Target => (Transport, Profile, Ledger, Durability, Retries) switch
    {
        (TransportKind.RabbitMq, RabbitProfile.Defaults, LedgerProvider.Sqlite, LedgerDurability.Journaled, 2) => 0.75,
        (_, _, _, _, not 0) => null,
        (TransportKind.InMemory, _, LedgerProvider.Sqlite, LedgerDurability.Buffered, _) => 0.65,
        (TransportKind.RabbitMq, RabbitProfile.Defaults, LedgerProvider.PostgreSql, LedgerDurability.Journaled, _) => 0.85,
        (TransportKind.RabbitMq, _, LedgerProvider.Sqlite, LedgerDurability.Journaled, _) => 0.90,
        _ => null,
    };
}

/// <summary>One measured run.</summary>
internal sealed record RunResult(
    bool JobLog,
    int Messages,
    TimeSpan Elapsed,
    TimeSpan PublishElapsed,
    TimeSpan DrainElapsed,
    ProcessSnapshot Process,
    long PeakWorkingSet,
    long PeakGcHeap,
    WriterSnapshot Writer,
    LedgerContents? Ledger,
    string? Problem,
    ServerCpu Servers = default)
{
    public double MessagesPerSecond => Messages / Elapsed.TotalSeconds;

    public double CpuMicrosPerMessage => Process.Cpu.TotalMilliseconds * 1000 / Messages;

    /// <summary>Time the JIT spent compiling during the run, per message (wall time of its compilations, not CPU).</summary>
    public double JitMicrosPerMessage => Process.Jit.TotalMilliseconds * 1000 / Messages;

    /// <summary>SQLite: the CPU time of the writer's commits during the run (thread clock), per message; the rest of
    /// <see cref="CpuMicrosPerMessage"/> is the bus, the publish and consume paths, the journal, the GC and the JIT.</summary>
    public double WriterCpuMicrosPerMessage => WriterCpu.TotalMilliseconds * 1000 / Messages;

    public TimeSpan WriterCpu { get; init; }

    /// <summary>How long the run waited for the JIT to go quiet before it started (--jit-settle).</summary>
    public TimeSpan JitSettled { get; init; }

    /// <summary>The PostgreSQL server's CPU per message during the run (all its processes, other sessions' included).</summary>
    public double PostgresMicrosPerMessage => Servers.Postgres.TotalMilliseconds * 1000 / Messages;

    /// <summary>The CPU per message of the PostgreSQL backends serving the ledger's database (free of other sessions' load).</summary>
    public double LedgerBackendMicrosPerMessage => Servers.Ledger.TotalMilliseconds * 1000 / Messages;

    /// <summary>RabbitMQ's (beam.smp) CPU per message during the run.</summary>
    public double RabbitMicrosPerMessage => Servers.Rabbit.TotalMilliseconds * 1000 / Messages;

    /// <summary>This process's, PostgreSQL's and RabbitMQ's CPU per message: what the run cost the machine.</summary>
    public double TotalMicrosPerMessage => CpuMicrosPerMessage + PostgresMicrosPerMessage + RabbitMicrosPerMessage;

    public double AllocatedBytesPerMessage => (double)Process.Allocated / Messages;
}

/// <summary>The throughput benchmark: for each path, JobLog off and on, alternating, several rounds, in this process.</summary>
internal sealed class ThroughputBench(BenchOptions options)
{
    private readonly WriterStats _writer = new();
    private readonly AllocationSampler? _allocations = options.AllocationProfile ? new AllocationSampler() : null;

    public IEnumerable<PathSpec> Paths()
    {
        foreach (var transport in options.Transports)
        {
            var profiles = transport == TransportKind.RabbitMq ? options.RabbitProfiles : [RabbitProfile.Defaults];
            foreach (var profile in profiles)
            {
                foreach (var ledger in options.Ledgers)
                {
                    foreach (var durability in options.Durabilities)
                    {
                        foreach (var retries in options.Retries)
                        {
                            yield return new PathSpec(transport, profile, ledger, durability, retries);
                        }
                    }
                }
            }
        }
    }

    public async Task<string> RunAsync()
    {
        var paths = Paths().ToList();
        var results = new List<(PathSpec Path, List<RunResult> Off, List<RunResult> On)>();
        Console.WriteLine($"throughput: {paths.Count} paths x {options.Rounds} rounds x (off, on), {options.Messages:N0} messages per run, " +
                          $"{options.Warmup:N0} warm-up messages per run, {options.WarmRounds} discarded warm-up round(s) per path, {options.Window:N0} publishes in flight{(options.Rate > 0 ? $", published at {options.Rate:N0} msg/s" : "")}");
        foreach (var path in paths)
        {
            var off = new List<RunResult>();
            var on = new List<RunResult>();
            for (var round = 0; round < options.WarmRounds; round++)
            {
                // Discarded: the first runs in a process pay for JIT and tiering (their CPU per message is 2-4x the steady state).
                foreach (var jobLog in new[] { false, true })
                {
                    if (options.Side == "both" || options.Side == (jobLog ? "on" : "off"))
                    {
                        var result = await RunOnceAsync(path, jobLog);
                        Console.WriteLine($"  [{path.Label}] warm-up {(jobLog ? "on " : "off")}: {Describe(result)} (discarded)");
                    }
                }
            }

            for (var round = 0; round < options.Rounds; round++)
            {
                // ABBA order: drift on a shared machine hits both sides alike.
                foreach (var jobLog in round % 2 == 0 ? new[] { false, true } : [true, false])
                {
                    if (options.Side != "both" && options.Side != (jobLog ? "on" : "off"))
                    {
                        continue;
                    }

                    var result = await RunOnceAsync(path, jobLog);
                    (jobLog ? on : off).Add(result);
                    Console.WriteLine($"  [{path.Label}] round {round + 1} {(jobLog ? "on " : "off")}: {Describe(result)}");
                }
            }

            results.Add((path, off, on));
            Console.WriteLine();
            Console.WriteLine(Table([results[^1]]));
        }

        var report = new StringBuilder();
        report.AppendLine(Table(results));
        report.AppendLine();
        report.AppendLine(CostTable(results));
        return report.ToString();
    }

    /// <summary>
    /// The bus's writer split as the writer bench splits it (thread CPU, µs per measured message; the warm-up's records
    /// the writer may still commit during the run count too): what the writer bench does not see shows here.
    /// </summary>
    private static string WriterPhases(long[] ns, TimeSpan writerCpu, int messages)
    {
        string[] names = ["task rows", "dispatch failures, stored runs", "run inserts", "derivation", "commands, requests", "bulk (search index, rollups)"];
        double Us(long v) => v / 1000.0 / messages;
        var text = new StringBuilder("writer phases (thread CPU, us/msg): ");
        for (var i = 0; i < names.Length; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $"{names[i]} {Us(ns[i]):0.0}, ");
        }

        var total = writerCpu.Ticks * 100;
        text.Append(CultureInfo.InvariantCulture,
            $"BEGIN {Us(ns[SqliteExecutor.BeginPhase]):0.0}, COMMIT (WAL append, sync, checkpoint) {Us(ns[SqliteExecutor.CommitPhase]):0.0}, " +
            $"plan {Us(ns[LedgerWriter.PlanPhase]):0.0}, moved check {Us(ns[LedgerWriter.MovedPhase]):0.0}, the rest {Us(total - ns.Sum()):0.0}, total {Us(total):0.0}");
        return text.ToString();
    }

    private static string Describe(RunResult r)
    {
        var text = string.Create(CultureInfo.InvariantCulture,
            $"{r.MessagesPerSecond,8:N0} msg/s (publish {r.PublishElapsed.TotalSeconds:0.00} s, end {r.Elapsed.TotalSeconds:0.00} s), " +
            $"cpu {r.CpuMicrosPerMessage:0} us/msg{(r.Servers.Available ? $" (+ postgres {r.PostgresMicrosPerMessage:0} [ledger backends {r.LedgerBackendMicrosPerMessage:0}], rabbit {r.RabbitMicrosPerMessage:0} = {r.TotalMicrosPerMessage:0})" : "")}, alloc {r.AllocatedBytesPerMessage / 1024:0.0} KB/msg, gen2 {r.Process.Gen2}, " +
            $"{(r.WriterCpu > TimeSpan.Zero ? $"writer cpu {r.WriterCpuMicrosPerMessage:0} us/msg, " : "")}jit {r.JitMicrosPerMessage:0} us/msg wall ({r.Process.JitMethods:N0} methods; settled {r.JitSettled.TotalSeconds:0} s before), " +
            $"ws {r.PeakWorkingSet / 1048576} MB, heap {r.PeakGcHeap / 1048576} MB");
        if (r.JobLog)
        {
            text += string.Create(CultureInfo.InvariantCulture,
                $", commits {r.Writer.Commits} ({(r.Writer.Commits == 0 ? 0 : (double)r.Writer.Records / r.Writer.Commits):0} rec/commit, max {r.Writer.MaxBatch}, " +
                $"{r.Writer.CommitSeconds * 1000 / Math.Max(1, r.Writer.Commits):0.00} ms/commit, {r.Writer.CommitSeconds:0.00} s committing), ack wait {r.Writer.MeanWaitMs:0.00} ms ({r.Writer.Waits} waits), drain {r.DrainElapsed.TotalMilliseconds:0} ms");
            if (r.Ledger is { } l)
            {
                text += string.Create(CultureInfo.InvariantCulture, $", ledger {l.Tasks} tasks/{l.Runs} runs, {l.BytesPerTask:0} B/task");
            }
        }

        return r.Problem is null ? text : text + " PROBLEM: " + r.Problem;
    }

    private async Task<RunResult> RunOnceAsync(PathSpec path, bool jobLog)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        await using var vhost = path.Transport == TransportKind.RabbitMq ? await ThrowawayVhost.CreateAsync() : null;
        await using var ledger = jobLog ? await ThrowawayLedger.CreateAsync(path.Ledger) : null;
        if (ledger is not null)
        {
            ledger.Keep = options.Keep;
        }

        var counter = new ConsumedCounter { FailedAttempts = path.Retries };
        using var host = BenchBus.Build(path.Transport, path.Profile, path.Retries, counter, vhost?.Name,
            ledger is null ? null : o =>
            {
                ledger.Apply(o);
                o.Durability = path.Durability;
                o.SearchIndex = options.SearchIndex;
                o.MaxBatchSize = options.MaxBatch ?? o.MaxBatchSize;
                o.DispatchHold = options.HoldFor;
                o.DispatchHoldCapacity = options.HoldCapacity;
                o.JournaledGather = options.Gather ?? o.JournaledGather;
            });
        await host.StartAsync();
        if (ledger is not null && options.RowTriggers)
        {
            await ledger.AddRowTriggersAsync();
        }

        if (ledger is not null)
        {
            await ledger.DropIndexesAsync(options.DropIndexes);
            await ledger.RunSqlFileAsync(options.LedgerSql);
            await ledger.FillAsync(options.LedgerTasks, options.Days);
        }
        string? problem = null;
        try
        {
            var bus = host.Services.GetRequiredService<IBus>();
            var recorder = jobLog ? host.Services.GetRequiredService<LedgerRecorder>() : null;
            if (options.Warmup > 0)
            {
                var warm = counter.Arm(options.Warmup);
                await BenchBus.PublishAsync(bus, options.Warmup, options.Window, rate: options.Rate);
                await warm.WaitAsync(TimeSpan.FromMinutes(5));
                if (recorder is not null && !await recorder.FlushAsync(TimeSpan.FromSeconds(60)))
                {
                    problem = "warm-up records not committed within 60 s";
                }
            }

            var ledgerWriter = jobLog ? host.Services.GetRequiredService<LedgerWriter>() : null;
            if (ledgerWriter is not null && path.Ledger == LedgerProvider.Sqlite)
            {
                ledgerWriter.CpuClock = ThreadCpu.Nanoseconds;
                ledgerWriter.PhaseTicks ??= new long[LedgerWriter.MovedPhase + 1];
            }

            var writerCpuBefore = ledgerWriter?.CommitCpuNanoseconds ?? 0;
            var phasesBefore = ledgerWriter?.PhaseTicks?.ToArray();
            var settled = options.JitSettle > TimeSpan.Zero ? await ProcessSnapshot.SettleJitAsync(options.JitSettle) : TimeSpan.Zero;
            var done = counter.Arm(options.Messages);
            var writerBefore = _writer.Take();
            _writer.ResetMax();
            var servers = ServerCpu.Take();
            var before = ProcessSnapshot.Take();
            _allocations?.Start();
            TimeSpan published, consumed, drained = TimeSpan.Zero;
            long peakWorkingSet, peakGcHeap;
            await using (var memory = new MemorySampler(TimeSpan.FromMilliseconds(50)))
            {
                var clock = Stopwatch.StartNew();
                await BenchBus.PublishAsync(bus, options.Messages, options.Window, offset: options.Warmup, rate: options.Rate);
                published = clock.Elapsed;
                try
                {
                    await done.WaitAsync(TimeSpan.FromMinutes(5));
                }
                catch (TimeoutException)
                {
                    problem = $"only {counter.Count} of {options.Messages} messages consumed within 5 minutes";
                }

                consumed = clock.Elapsed;
                if (recorder is not null)
                {
                    if (!await recorder.FlushAsync(TimeSpan.FromSeconds(120)))
                    {
                        problem ??= $"records not committed within 120 s after the run (backlog {recorder.Backlog})";
                    }

                    drained = clock.Elapsed - consumed;
                }

                peakWorkingSet = memory.PeakWorkingSet;
                peakGcHeap = memory.PeakGcHeap;
            }

            var process = ProcessSnapshot.Take() - before;
            var writerCpu = TimeSpan.FromTicks(((ledgerWriter?.CommitCpuNanoseconds ?? 0) - writerCpuBefore) / 100);
            if (ledgerWriter?.PhaseTicks is { } phasesAfter && phasesBefore is not null)
            {
                Console.WriteLine("    " + WriterPhases(phasesAfter.Zip(phasesBefore, (a, b) => a - b).ToArray(), writerCpu, options.Messages));
            }
            servers = await ServerCpu.SinceAsync(servers, ledger?.Database, ThrowawayLedger.PostgresAdmin);
            if (_allocations is not null)
            {
                _allocations.Stop();
                Console.WriteLine($"    allocations, JobLog {(jobLog ? "on" : "off")}:");
                Console.Write(_allocations.Top(30, options.Messages));
            }

            var writer = _writer.Take() - writerBefore;
            if (jobLog)
            {
                var (joined, alone, notHeld) = host.Services.GetRequiredService<LedgerWriter>().HoldOutcomes;
                Console.WriteLine($"    held dispatches (run and warm-up): {joined:N0} written with their run, {alone:N0} alone, {notHeld:N0} not held (full)");
            }

            await host.StopAsync();

            LedgerContents? contents = null;
            if (ledger is not null)
            {
                contents = (await LedgerInspector.InspectAsync(ledger)).Minus(ledger.Filled);
                var expectedTasks = options.Warmup + options.Messages;
                var expectedRuns = (long)expectedTasks * (path.Retries + 1);
                if (contents.Tasks != expectedTasks || contents.SucceededTasks != expectedTasks || contents.Runs != expectedRuns
                    || contents.SucceededRuns != expectedTasks)
                {
                    problem ??= $"ledger has {contents.Tasks} tasks ({contents.SucceededTasks} SUCCEEDED) and {contents.Runs} runs " +
                                $"({contents.SucceededRuns} SUCCEEDED); expected {expectedTasks} SUCCEEDED tasks and {expectedRuns} runs";
                }

                if (writer.Dropped > 0)
                {
                    problem ??= $"{writer.Dropped} records dropped";
                }
            }

            return new RunResult(jobLog, options.Messages, consumed, published, drained, process, peakWorkingSet, peakGcHeap, writer, contents, problem, servers)
            {
                JitSettled = settled,
                WriterCpu = writerCpu,
            };
        }
        catch
        {
            await host.StopAsync();
            throw;
        }
    }

    private static string Table(IEnumerable<(PathSpec Path, List<RunResult> Off, List<RunResult> On)> results)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| path | JobLog off, msg/s | JobLog on, msg/s | ratio of medians | median of paired ratios (range) | target |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | --- |");
        foreach (var (path, off, on) in results)
        {
            var verdict = RatioVerdict.Of(off.Select(r => r.MessagesPerSecond).ToList(), on.Select(r => r.MessagesPerSecond).ToList(), path.Target);
            var problems = off.Concat(on).Where(r => r.Problem is not null).Select(r => r.Problem!).Distinct().ToList();
            if (verdict.Disagreement is { } disagreement)
            {
                problems.Insert(0, disagreement);
            }

            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {path.Label} | {Range(off.Select(r => r.MessagesPerSecond).ToList(), "N0")} | {Range(on.Select(r => r.MessagesPerSecond).ToList(), "N0")} | " +
                $"**{verdict.RatioOfMedians:0.00}** | {verdict.MedianOfPairs:0.00} ({verdict.PairMin:0.00}–{verdict.PairMax:0.00}) | " +
                $"{verdict.Text}{(problems.Count > 0 ? " ⚠ " + string.Join("; ", problems) : "")} |"));
        }

        return sb.ToString();
    }

    private static string CostTable(IEnumerable<(PathSpec Path, List<RunResult> Off, List<RunResult> On)> results)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| path | CPU µs/msg off → on | PostgreSQL + RabbitMQ CPU µs/msg off → on [the ledger's backends] | all CPU µs/msg off → on | allocated KB/msg off → on | peak working set MB off → on | peak GC heap MB off → on | records/commit (ms/commit) | mean wait for a commit, ms | ledger bytes/task |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var (path, off, on) in results)
        {
            var commits = on.Sum(r => r.Writer.Commits);
            var records = on.Sum(r => r.Writer.Records);
            var commitMs = on.Sum(r => r.Writer.CommitSeconds) * 1000;
            var waits = on.Sum(r => r.Writer.Waits);
            var waitMs = on.Sum(r => r.Writer.WaitSeconds) * 1000;
            var bytes = on.Where(r => r.Ledger is not null).Select(r => r.Ledger!.BytesPerTask).DefaultIfEmpty().Average();
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {path.Label} | {Median(off.Select(r => r.CpuMicrosPerMessage).ToList()):0} → {Median(on.Select(r => r.CpuMicrosPerMessage).ToList()):0} | " +
                $"{Median(off.Select(r => r.PostgresMicrosPerMessage).ToList()):0} + {Median(off.Select(r => r.RabbitMicrosPerMessage).ToList()):0} → " +
                $"{Median(on.Select(r => r.PostgresMicrosPerMessage).ToList()):0} + {Median(on.Select(r => r.RabbitMicrosPerMessage).ToList()):0} " +
                $"[{Median(on.Select(r => r.LedgerBackendMicrosPerMessage).ToList()):0}] | " +
                $"{Median(off.Select(r => r.TotalMicrosPerMessage).ToList()):0} → {Median(on.Select(r => r.TotalMicrosPerMessage).ToList()):0} | " +
                $"{Median(off.Select(r => r.AllocatedBytesPerMessage / 1024).ToList()):0.0} → {Median(on.Select(r => r.AllocatedBytesPerMessage / 1024).ToList()):0.0} | " +
                $"{off.Select(r => r.PeakWorkingSet).DefaultIfEmpty().Max() / 1048576} → {on.Select(r => r.PeakWorkingSet).DefaultIfEmpty().Max() / 1048576} | " +
                $"{off.Select(r => r.PeakGcHeap).DefaultIfEmpty().Max() / 1048576} → {on.Select(r => r.PeakGcHeap).DefaultIfEmpty().Max() / 1048576} | " +
                $"{(commits == 0 ? 0 : (double)records / commits):0} ({(commits == 0 ? 0 : commitMs / commits):0.00}) | " +
                $"{(waits == 0 ? "—" : (waitMs / waits).ToString("0.00", CultureInfo.InvariantCulture))} | {bytes:N0} |"));
        }

        return sb.ToString();
    }

    private static string Range(List<double> values, string format) =>
        values.Count == 0
            ? "—"
            : $"{Median(values).ToString(format, CultureInfo.InvariantCulture)} ({values.Min().ToString(format, CultureInfo.InvariantCulture)}–{values.Max().ToString(format, CultureInfo.InvariantCulture)})";

    public static double Median(List<double> values)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.OrderBy(v => v).ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
