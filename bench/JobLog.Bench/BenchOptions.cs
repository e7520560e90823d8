using System.Globalization;

namespace JobLog.Bench;

internal enum TransportKind
{
    InMemory,
    RabbitMq,
}

internal enum RabbitProfile
{
    /// <summary>MassTransit's defaults: prefetch max(2 × cores, 16), concurrency = prefetch.</summary>
    Defaults,

    /// <summary>Prefetch 64, ConcurrentMessageLimit 32.</summary>
    Prefetch64,
}

/// <summary>The command line. Every list option takes comma-separated values; omitted means all.</summary>
internal sealed class BenchOptions
{
    public const string Usage = """
        JobLog benchmark. Usage: dotnet run -c Release --project bench/JobLog.Bench -- [mode] [options]

        modes (default: throughput):
          throughput   the bus with JobLog off and on, alternating, per path; prints msg/s and the on/off ratio
          sweep        fills a big ledger (raw inserts), times one TaskLogSweeper sweep and the dashboard query
          stall        locks the SQLite ledger while messages flow: the recorder's queue stops at its capacity
          writer       the ledger writer alone (no bus): records/s, and a per-statement profile
          scale        a ledger of N tasks (bulk path), then every page, filter, search, the overview, sweep and retention, timed
          requests     the request and command lists' exact filters on a ledger of --rows requests each way, with the
                       filter indexes and without them (docs/scale.md "Session 27 (scale)")
          requestwriter  --messages inbound and outbound requests through the writer, per round (--rounds)
          micro        BenchmarkDotNet: rendering and planning per message (exact allocations)
          all          throughput, then sweep, then stall
          help         this text

        throughput options:
          --messages N       messages per measured run (default 20000)
          --warmup N         messages published and consumed before each measured run (default 20000)
          --warm-rounds N    discarded (off, on) pairs before each path's measured rounds (default 1)
          --rounds N         on/off pairs per path (default 3)
          --window N         publishes in flight (Task.WhenAll windows, default 1000)
          --rate N           publish at a steady N messages a second (warm-up and measured run; default 0 = as fast as
                             the window allows): below the consumer's capacity the consumer keeps up, so the writer sees
                             each dispatch and its run close together, run after run, and on-bus pairs compare builds
          --transport LIST   inmem,rabbit
          --rabbit LIST      defaults,p64 (prefetch 64 / concurrency 32)
          --ledger LIST      sqlite,pg
          --durability LIST  ack,buffered
          --retries LIST     0,2 (2 = the consumer fails twice, UseMessageRetry(Immediate(2)) then succeeds; writer: one
                             value, the records of that many failed attempts per message)
          --quick            smoke run: 2000 messages, 300 warm-up, 2 rounds
          --out FILE         also append the markdown report to FILE
          --side on|off      run only one side (for profiling; no ratio)
          --alloc-profile    print the top allocated types of each measured run (GC AllocationTick sampling)
          --search-index on|off  JobLogOptions.SearchIndex (default on; also for writer)
          --jit-settle S     after the warm-up, wait up to S seconds (default 30; 0 = no wait) for the JIT to go quiet (fewer
                             than 20 methods a second) before the measured run: a host's start-up leaves thousands of
                             methods (EF Core's, on the JobLog side) to tiered compilation, which would compile them
                             during the measured run
          --drop-index LIST  drop these indexes (names, comma-separated) from each throwaway ledger after its
                             migration, to measure what each costs the writer (not a supported configuration)
          --ledger-sql FILE  run FILE's SQL on each throwaway ledger after its migration (writer, throughput): an
                             experiment's schema change, measured before it becomes a migration
          --ledger-tasks N   fill each throwaway ledger with N tasks and their runs (the scale bench's bulk path, over
                             --days days) before measuring (writer, throughput): the cost on a ledger that is not new
          --statement-variant KIND=FILE  writer, PostgreSQL: the statement profile alternates its batches of messages
                             between the shipped statement of KIND (upsert, ensure, runs, lock, derive, run-updates)
                             and FILE's text (same parameters), and prints the backend's CPU per statement for each
                             with the median of the paired ratios; the measured runs are skipped (repeatable)
          --dump-statements DIR  writer, PostgreSQL: write each shipped statement the profile runs to DIR/KIND.sql (the
                             starting point of a variant)
          --requests N       writer: also N inbound requests per message (each recorded at its start and its end, as the
                             request middleware does), to measure what the request search index costs the writer
          --log-search on|off  writer: keep the request and command search index (default on; off drops it after the
                             migration: SQLite's FTS5 tables, PostgreSQL's trigram indexes; not a supported configuration)
          --row-triggers     SQLite: keep every trigger firing per row in the writer's batches, as before session 6 (a
                             no-op trigger of the bench's own makes the writer fall back; also for writer)
          --run-input task|rendered  writer: each run unrendered, taking the task row's Input, TaskArgs and
                             TaskKwargs as the bus's run filter leaves it (task, the default), or rendered on the
                             consume path (rendered; the shape sessions 11-29 measured)
          --hold on|off|S    Journaled: a busy writer holds a dispatch back up to S seconds for its run, writing the task
                             once (default on = 5 s, as the library; also for the writer bench's "dispatch then run" profile)
          --hold-capacity N  the most dispatches held at once (default 8 x MaxBatchSize)
          --gather MS        Journaled: how long the writer lets records gather for a batch of at least half of
                             MaxBatchSize (default 0, the library's: write whatever is queued at once; 100 measured)
          --max-batch N      JobLogOptions.MaxBatchSize, records per transaction (default: the library's; also for writer)

        sweep options:
          --tasks N          tasks in the ledger (default 1000000; 10% stale)
          --ledger LIST      sqlite,pg

        scale options:
          --tasks N          tasks in the ledger (default 1000000), with N/4 requests and N/10 commands
          --days N           days the tasks are spread over (default 10)
          --ledger LIST      sqlite,pg
          --keep             leave the ledgers behind
          --fill bulk|triggers  bulk (default; with --partitioned too): rows in with indexes and triggers off, then each
                             index, the search index and the rollups built in one statement; triggers: rows in through
                             every index and trigger
          --sparsity N       one task in N is stale for the sweep (default: 100,000 stale, or a tenth of the tasks:
                             10 at 1 M, 100 at 10 M); --tasks 1000000 --sparsity 100 sweeps 10,000 tasks spread as a
                             10 M ledger's 100,000 are, at its cost a task (docs/scale.md "Session 29 (scale)")
          --reuse PATH|DB    measure a ledger kept by an earlier run (--keep): a SQLite file or a PostgreSQL database
                             name, with the same --tasks, --days and --sparsity; implies --keep and --pages-only
          --pages-only       time the pages only (no sweep, retention or purge: the ledger stays as filled)
          --sweep-parallelism N  o.Sweeper.Parallelism (PostgreSQL connections sweeping at once; default 4)
          --sweep-batch N    o.Sweeper.BatchSize (tasks a sweep batch claims; default 1,000)
          --maintain         with --reuse: the sweep, retention and purge too (they change the ledger: reuse a copy,
                             e.g. CREATE DATABASE joblog_copy TEMPLATE joblog_bench_...)
          --spread-only      with --maintain: the sweep of the data's stale tasks, then stop (no contiguous backlog,
                             retention or purge): a window that holds only that sweep, for the server's CPU and WAL
          --drop-days LIST   with --maintain on a partitioned ledger: no sweeps; the retention of each day listed
                             (yyyy-MM-dd, comma-separated) in turn, its cutoff the next day's start (day drops
                             measured one by one on a kept copy, e.g. alternating two builds day by day)
          --ahead            with --drop-days: each day's kept rows built ahead first (the hourly partition pass's
                             share), timed apart, so the retention's line is the drop that adopts the build
          --drop-requests    with --drop-days: the inbound requests' retention of each day listed instead of the
                             tasks' (their day partitions dropped; the warm-up a purge of the requests too)

        requests options:
          --rows N           inbound and as many outbound requests (default 262144), a quarter as many commands
          --rounds N         rounds with and without the filter indexes (default 3)
          --ledger LIST      sqlite,pg

        stall options:
          --capacity N       JobLogOptions.QueueCapacity (default 20000)
          --stall-seconds N  how long the ledger stays locked (default 10)
          --spool            keep the spool on: the overflow goes to disk and is replayed (default: off, records dropped)
          --durability LIST  buffered (default) or ack
        """;

    public string Mode { get; private set; } = "throughput";

    public int Messages { get; private set; } = 20_000;

    /// <summary>
    /// Throughput: messages before each measured run. 20,000 since session 38 (2,000 before): the writer's per-batch code
    /// runs once a commit (~1,000 records), so a warm-up of ~4 commits left it to tier up inside the measured run and
    /// charged that JIT to the messages (the on side compiled 216–391 methods in its measured run after 2,000, 66–125
    /// after 20,000; the JIT thread's wall time 19–83 against 8–12 µs/msg, docs/benchmarks.md "Session 38 (lead)").
    /// </summary>
    public int Warmup { get; private set; } = 20_000;

    /// <summary>Stall mode: keep the spool on (the overflow goes to disk and is replayed).</summary>
    public bool Spool { get; private set; }

    /// <summary>Untimed (off, on) pairs run before a path's measured rounds.</summary>
    public int WarmRounds { get; private set; } = 1;

    public int Rounds { get; private set; } = 3;

    public int Window { get; private set; } = 1_000;

    /// <summary>Messages a second the throughput bench publishes at; 0 = as fast as <see cref="Window"/> allows.</summary>
    public int Rate { get; private set; }

    public IReadOnlyList<TransportKind> Transports { get; private set; } = [TransportKind.InMemory, TransportKind.RabbitMq];

    public IReadOnlyList<RabbitProfile> RabbitProfiles { get; private set; } = [RabbitProfile.Defaults, RabbitProfile.Prefetch64];

    public IReadOnlyList<LedgerProvider> Ledgers { get; private set; } = [LedgerProvider.Sqlite, LedgerProvider.PostgreSql];

    public IReadOnlyList<LedgerDurability> Durabilities { get; private set; } = [LedgerDurability.Journaled, LedgerDurability.Committed, LedgerDurability.Buffered];

    public IReadOnlyList<int> Retries { get; private set; } = [0, 2];

    public bool DurabilityGiven { get; private set; }

    public int Tasks { get; private set; } = 1_000_000;

    /// <summary>Requests: inbound and outbound requests in the ledger (--rows).</summary>
    public int Rows { get; private set; } = 262_144;

    public int Capacity { get; private set; } = 20_000;

    /// <summary>Scale: days the generated tasks are spread over.</summary>
    public int Days { get; private set; } = 10;

    /// <summary>Scale: one task in this many is stale for the sweep (--sparsity; null: 100,000 stale, or a tenth).</summary>
    public int? Sparsity { get; private set; }

    public int StallSeconds { get; private set; } = 10;

    public string? OutFile { get; private set; }

    /// <summary>Which side runs: both (default), or only on / only off (for profiling one side).</summary>
    public string Side { get; private set; } = "both";

    /// <summary>Sweep: ANALYZE the SQLite ledger after the fill (as <c>PRAGMA optimize</c> would) before timing.</summary>
    public bool Analyze { get; private set; }

    /// <summary>Sweep: create the partial index this benchmark suggests for the sweeper before timing.</summary>

    /// <summary>Keep the throwaway ledgers (for inspection); their location is printed.</summary>
    public bool Keep { get; private set; }

    /// <summary>Throughput: the longest wait, after the warm-up, for the JIT to go quiet before the measured run (0: none).</summary>
    public TimeSpan JitSettle { get; private set; } = TimeSpan.FromSeconds(30);

    /// <summary>SQLite indexes dropped from each throwaway ledger after its migration (--drop-index), for writer and throughput runs.</summary>
    public IReadOnlyList<string> DropIndexes { get; private set; } = [];

    /// <summary>A file of SQL run on each throwaway ledger after its migration (--ledger-sql), for writer and throughput runs.</summary>
    public string? LedgerSql { get; private set; }

    /// <summary>Tasks each throwaway ledger is filled with before the measured runs (--ledger-tasks; writer, throughput).</summary>
    public int LedgerTasks { get; private set; }

    /// <summary>Writer, PostgreSQL: statement texts the profile alternates with the shipped ones, by kind (--statement-variant).</summary>
    public IReadOnlyDictionary<string, string> StatementVariants => _statementVariants;

    private readonly Dictionary<string, string> _statementVariants = new(StringComparer.Ordinal);

    /// <summary>Writer, PostgreSQL: where the profile writes the shipped statements (--dump-statements).</summary>
    public string? DumpStatements { get; private set; }

    /// <summary>Writer: inbound requests per message (--requests).</summary>
    public int Requests { get; private set; }

    /// <summary>Writer: keep the request and command search index (--log-search off drops it).</summary>
    public bool LogSearch { get; private set; } = true;

    /// <summary>JobLogOptions.SearchIndex for the throughput and writer runs.</summary>
    public bool SearchIndex { get; private set; } = true;

    /// <summary>
    /// Writer: each run's Input, TaskArgs and TaskKwargs rendered on the consume path (true), or, as the bus's run filter
    /// leaves them (false, the default), unrendered, with the message's deferred rendering: the run takes the task row's.
    /// </summary>
    public bool RunsRendered { get; private set; }

    /// <summary>The writer's hold on dispatches in Journaled mode (JobLogOptions.HoldDispatches), for throughput and writer runs.</summary>
    public bool Hold => HoldFor > TimeSpan.Zero;

    /// <summary>JobLogOptions.DispatchHold (zero: off); the library's default unless set.</summary>
    public TimeSpan HoldFor { get; private set; } = JobLog.Recording.LedgerWriter.MaxHold;

    /// <summary>JobLogOptions.JournaledGather (null: the library's default).</summary>
    public TimeSpan? Gather { get; private set; }

    /// <summary>JobLogOptions.MaxBatchSize for the throughput and writer runs (null: the library's default).</summary>
    public int? MaxBatch { get; private set; }

    /// <summary>JobLogOptions.DispatchHoldCapacity (0: the library's default).</summary>
    public int HoldCapacity { get; private set; }

    /// <summary>SQLite: a trigger of the bench's own on the runs table, so that the writer fires every trigger per row.</summary>
    public bool RowTriggers { get; private set; }

    /// <summary>Scale: the bulk fill (indexes and triggers off, then built once) rather than through every trigger.</summary>
    public bool BulkFill { get; private set; } = true;

    /// <summary>Scale: a kept ledger to measure again (a SQLite file or a PostgreSQL database name) instead of a new fill.</summary>
    public string? Reuse { get; private set; }

    /// <summary>Scale: only the pages (no sweep, retention or purge, which change the ledger).</summary>
    public bool PagesOnly { get; private set; }

    /// <summary>Scale: with <see cref="Reuse"/>, the sweep, retention and purge too (on a copy of the kept ledger).</summary>
    public bool Maintain { get; private set; }

    /// <summary>Scale, with <see cref="Maintain"/>: only the sweep of the data's stale tasks (--spread-only).</summary>
    public bool SpreadOnly { get; private set; }

    /// <summary>Scale: <c>o.Sweeper.Parallelism</c> (null: the default).</summary>
    public int? SweepParallelism { get; private set; }

    /// <summary>Scale: <c>o.Sweeper.BatchSize</c> (null: the default).</summary>
    public int? SweepBatch { get; private set; }

    /// <summary>
    /// Scale, with <see cref="DropDays"/>: each day's kept rows built ahead first, untimed apart (the partition pass's
    /// <c>LedgerPartitioning.BuildAheadAsync</c>), so the retention's time is the drop's (--ahead).
    /// </summary>
    public bool Ahead { get; private set; }

    /// <summary>Scale, with <see cref="DropDays"/>: the inbound requests' retention of each day instead of the tasks' (--drop-requests).</summary>
    public bool DropRequests { get; private set; }

    /// <summary>Scale mode, with <see cref="Maintain"/>: the days whose retention is timed, without the sweeps first.</summary>
    public IReadOnlyList<DateTime>? DropDays { get; private set; }

    /// <summary>Scale: PostgreSQL ledger partitioned by day (<c>o.Partitioning.Enabled</c>); retention drops days.</summary>
    public bool Partitioned { get; private set; }

    /// <summary>Prints a sampled allocation profile (by type) of every measured run.</summary>
    public bool AllocationProfile { get; private set; }

    public string CommandLine { get; private set; } = "";

    public static BenchOptions Parse(string[] args)
    {
        var o = new BenchOptions
        {
            CommandLine = "dotnet run -c Release --project bench/JobLog.Bench --" + (args.Length == 0 ? "" : " " + string.Join(' ', args)),
        };
        var i = 0;
        if (args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal))
        {
            o.Mode = args[0].ToLowerInvariant();
            i = 1;
        }

        if (o.Mode is not ("throughput" or "sweep" or "stall" or "writer" or "scale" or "requests" or "requestwriter" or "failures" or "micro" or "all"))
        {
            throw new ArgumentException($"Unknown mode '{o.Mode}'.");
        }

        for (; i < args.Length; i++)
        {
            var name = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{name} needs a value.");
            int Int() => int.Parse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture);
            switch (name)
            {
                case "--messages": o.Messages = Int(); break;
                case "--warmup": o.Warmup = Int(); break;
                case "--warm-rounds": o.WarmRounds = Int(); break;
                case "--rounds": o.Rounds = Int(); break;
                case "--window": o.Window = Int(); break;
                case "--rate": o.Rate = Int(); break;
                case "--tasks": o.Tasks = Int(); break;
                case "--rows": o.Rows = Int(); break;
                case "--capacity": o.Capacity = Int(); break;
                case "--days": o.Days = Int(); break;
                case "--sparsity": o.Sparsity = Int(); break;
                case "--stall-seconds": o.StallSeconds = Int(); break;
                case "--out": o.OutFile = Value(); break;
                case "--side": o.Side = Value(); break;
                case "--alloc-profile": o.AllocationProfile = true; break;
                case "--search-index": o.SearchIndex = Value() is not ("off" or "false" or "0"); break;
                case "--row-triggers": o.RowTriggers = true; break;
                case "--requests": o.Requests = Int(); break;
                case "--log-search": o.LogSearch = Value() is not ("off" or "false" or "0"); break;
                case "--ledger-sql": o.LedgerSql = Value(); break;
                case "--ledger-tasks": o.LedgerTasks = Int(); break;
                case "--statement-variant":
                    var variant = Value().Split('=', 2);
                    o._statementVariants[variant[0]] = variant.Length == 2 ? File.ReadAllText(variant[1]) : throw new ArgumentException("--statement-variant needs KIND=FILE.");
                    break;
                case "--dump-statements": o.DumpStatements = Value(); break;
                case "--drop-index": o.DropIndexes = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries); break;
                case "--jit-settle": o.JitSettle = TimeSpan.FromSeconds(double.Parse(Value(), CultureInfo.InvariantCulture)); break;
                case "--run-input":
                    o.RunsRendered = Value() switch
                    {
                        "rendered" => true,
                        "task" => false,
                        var v => throw new ArgumentException($"Unknown --run-input '{v}' (rendered or task)."),
                    };
                    break;
                case "--hold":
                    var hold = Value();
                    o.HoldFor = hold switch
                    {
                        "off" or "false" or "0" => TimeSpan.Zero,
                        "on" or "true" => JobLog.Recording.LedgerWriter.MaxHold,
                        _ => TimeSpan.FromSeconds(double.Parse(hold, CultureInfo.InvariantCulture)),
                    };
                    break;
                case "--hold-capacity": o.HoldCapacity = Int(); break;
                case "--gather": o.Gather = TimeSpan.FromMilliseconds(Int()); break;
                case "--max-batch": o.MaxBatch = Int(); break;
                case "--analyze": o.Analyze = true; break;
                case "--keep": o.Keep = true; break;
                case "--partitioned": o.Partitioned = true; break;
                case "--fill": o.BulkFill = Value() switch
                {
                    "bulk" => true,
                    "triggers" => false,
                    var f => throw new ArgumentException($"Unknown fill '{f}' (bulk or triggers)."),
                }; break;
                case "--reuse": o.Reuse = Value(); o.Keep = true; o.PagesOnly = true; break;
                case "--pages-only": o.PagesOnly = true; break;
                case "--maintain": o.Maintain = true; break;
                case "--spread-only": o.SpreadOnly = true; break;
                case "--ahead": o.Ahead = true; break;
                case "--drop-requests": o.DropRequests = true; break;
                case "--sweep-parallelism": o.SweepParallelism = Int(); break;
                case "--sweep-batch": o.SweepBatch = Int(); break;
                case "--drop-days":
                    o.DropDays = [.. Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                        .Select(d => DateTime.SpecifyKind(DateTime.ParseExact(d, "yyyy-MM-dd", CultureInfo.InvariantCulture), DateTimeKind.Utc))];
                    break;
                case "--spool": o.Spool = true; break;
                case "--quick":
                    o.Messages = 2_000;
                    o.Warmup = 300;
                    o.Rounds = 2;
                    o.WarmRounds = 0;
                    o.Tasks = 100_000;
                    o.StallSeconds = 5;
                    break;
                case "--transport": o.Transports = List(Value(), s => s switch
                {
                    "inmem" or "inmemory" or "memory" => TransportKind.InMemory,
                    "rabbit" or "rabbitmq" => TransportKind.RabbitMq,
                    _ => throw new ArgumentException($"Unknown transport '{s}'."),
                }); break;
                case "--rabbit": o.RabbitProfiles = List(Value(), s => s switch
                {
                    "defaults" or "default" => RabbitProfile.Defaults,
                    "p64" or "prefetch64" => RabbitProfile.Prefetch64,
                    _ => throw new ArgumentException($"Unknown RabbitMQ profile '{s}'."),
                }); break;
                case "--ledger": o.Ledgers = List(Value(), s => s switch
                {
                    "sqlite" => LedgerProvider.Sqlite,
                    "pg" or "postgres" or "postgresql" => LedgerProvider.PostgreSql,
                    _ => throw new ArgumentException($"Unknown ledger '{s}'."),
                }); break;
                case "--durability":
                    o.DurabilityGiven = true;
                    o.Durabilities = List(Value(), s => s switch
                    {
                        "journal" or "journaled" => LedgerDurability.Journaled,
                        "ack" or "acknowledged" or "committed" => LedgerDurability.Committed,
                        "buffered" => LedgerDurability.Buffered,
                        _ => throw new ArgumentException($"Unknown durability '{s}'."),
                    });
                    break;
                case "--retries": o.Retries = List(Value(), s => int.Parse(s, CultureInfo.InvariantCulture)); break;
                default: throw new ArgumentException($"Unknown option '{name}'.");
            }
        }

        if (o.Messages < 1 || o.Rounds < 1 || o.Window < 1 || o.Warmup < 0 || o.WarmRounds < 0 || o.Rate < 0 || o.Tasks < 10 || o.Capacity < 1000 || o.Days < 2)
        {
            throw new ArgumentException("--messages, --rounds, --window must be positive, --rate not negative; --tasks at least 10; --capacity at least 1000; --days at least 2.");
        }

        if (o.Sparsity is < 4 || o.Sparsity > o.Tasks)
        {
            throw new ArgumentException("--sparsity must be at least 4 and at most --tasks.");
        }

        return o;
    }

    private static List<T> List<T>(string value, Func<string, T> parse) =>
        [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => parse(s.ToLowerInvariant())).Distinct()];
}
