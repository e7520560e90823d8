using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Text;
using JobLog.Bench.Infrastructure;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace JobLog.Bench.Scale;

/// <summary>
/// The request and command lists' exact filters (docs/scale.md "Session 27 (scale)"). <c>requests</c>: a ledger of
/// <c>--rows</c> inbound and as many outbound requests (request headers of 1,000 and a response body of 3,000 random hex
/// characters each, over 30 days)
/// and a quarter as many commands, filled by the scale bench's bulk path through every index; then each filter's first
/// page, timed as the scale bench times a page, with the filter indexes of session 27 and without them (dropped from the
/// same ledger and the statistics refreshed: the query code is the same), alternating <c>--rounds</c> times.
/// <c>requestwriter</c>: <c>--messages</c> inbound requests (each recorded at its start and its end, as the middleware
/// does) and as many outbound ones through the writer into a new ledger, per round: wall time, this process's CPU and
/// the PostgreSQL backends' CPU per request.
/// </summary>
internal sealed class RequestFiltersBench(BenchOptions options)
{
    /// <summary>The indexes session 27 added (migration ScaleRequestFilterIndexes).</summary>
    private static readonly string[] FilterIndexes =
    [
        "IX_JobLogInputRequests_UserId_RequestTimestamp", "IX_JobLogInputRequests_Method_RequestTimestamp", "IX_JobLogInputRequests_Host_RequestTimestamp",
        "IX_JobLogOutputRequests_Method_RequestTimestamp", "IX_JobLogOutputRequests_Host_RequestTimestamp", "IX_JobLogCommands_IsSuccessful_Start",
    ];

    private static readonly string[] RequestColumns =
    [
        "Id", "Host", "Method", "Path", "Queries", "IsSecure", "Slug", "RequestTimestamp", "RequestHeaders", "RequestBody", "ResponseTimestamp",
        "ResponseCode", "ResponseHeaders", "ResponseBody", "Status", "ExceptionName",
    ];

    private static readonly string[] OutboundHosts = ["payments.example", "inventory.example", "mail.example", "geo.example", "fx.example", "audit.example"];

    /// <summary>1,000 texts of each length, random hex (as little compressible as real headers and bodies).</summary>
    private static readonly Lazy<(string[] Headers, string[] Bodies)> Texts = new(() =>
    {
        var rng = new Random(27);
        string Hex(int length)
        {
            var bytes = new byte[length / 2];
            rng.NextBytes(bytes);
            return Convert.ToHexStringLower(bytes);
        }

        return (Enumerable.Range(0, 1000).Select(_ => Hex(1000)).ToArray(), Enumerable.Range(0, 1000).Select(_ => Hex(3000)).ToArray());
    });

    public async Task<string> RunAsync()
    {
        var report = new StringBuilder();
        foreach (var provider in options.Ledgers)
        {
            report.AppendLine(options.Mode == "requestwriter" ? await WriterAsync(provider) : await PagesAsync(provider));
        }

        return report.ToString();
    }

    /// <summary>Request <paramref name="i"/> of <paramref name="count"/> over the 30 days before <paramref name="now"/>.</summary>
    internal static (InputRequestPayload Inbound, OutputRequestPayload Outbound) Request(int i, int count, DateTime now)
    {
        var rng = new Random(i);
        var at = now.AddSeconds(-30.0 * 86400 * (count - i) / count);
        var roll = rng.Next(100);
        var method = roll < 70 ? "GET" : roll < 90 ? "POST" : roll < 96 ? "PUT" : roll < 99 ? "DELETE" : "PATCH";
        var error = rng.Next(100) < 5;
        var (headers, bodies) = Texts.Value;
        var inbound = new InputRequestPayload
        {
            Id = Guid.CreateVersion7(at), Host = rng.Next(20) == 0 ? "admin.shop.example" : "shop.example", Method = method,
            Path = "/api/orders/" + rng.Next(1, 1_000_000).ToString(CultureInfo.InvariantCulture), IsSecure = true, Slug = "/api/orders/{id}",
            RequestTimestamp = at, RequestHeaders = headers[rng.Next(1000)], ResponseTimestamp = at.AddMilliseconds(rng.Next(2, 800)),
            ResponseCode = error ? 500 : 200, ResponseBody = bodies[rng.Next(1000)], Status = error ? RequestLogStatus.Error : RequestLogStatus.Info,
            ExceptionName = error ? "System.InvalidOperationException" : null,
            UserId = rng.Next(3) == 0 ? null : "user" + rng.Next(1, 20_000).ToString(CultureInfo.InvariantCulture),
            Ip = "10.0." + rng.Next(0, 255).ToString(CultureInfo.InvariantCulture) + "." + rng.Next(1, 255).ToString(CultureInfo.InvariantCulture),
        };
        // Outbound hosts skewed: the first takes half, the last 1 in 32.
        var host = OutboundHosts[Math.Min(OutboundHosts.Length - 1, BitOperations.LeadingZeroCount((uint)rng.Next(1, 64)) - 26)];
        var outbound = new OutputRequestPayload
        {
            Id = Guid.CreateVersion7(at.AddMilliseconds(1)), Host = host, Method = method, Path = "/v1/items/" + rng.Next(1, 1_000_000).ToString(CultureInfo.InvariantCulture),
            IsSecure = true, Slug = "/v1/items/{id}", RequestTimestamp = at.AddMilliseconds(1), RequestHeaders = headers[rng.Next(1000)],
            ResponseTimestamp = at.AddMilliseconds(rng.Next(2, 400)), ResponseCode = error ? 503 : 200, ResponseBody = bodies[rng.Next(1000)], Status = error ? RequestLogStatus.Error : RequestLogStatus.Info,
            InputRequestId = inbound.Id,
        };
        return (inbound, outbound);
    }

    private static object?[] Row(RequestPayload r) =>
    [
        r.Id, r.Host, r.Method, r.Path, r.Queries, r.IsSecure, r.Slug, r.RequestTimestamp, r.RequestHeaders, r.RequestBody, r.ResponseTimestamp,
        r.ResponseCode, r.ResponseHeaders, r.ResponseBody, (int)r.Status, r.ExceptionName,
    ];

    private IHost BuildHost(ThrowawayLedger ledger, LedgerDurability durability) => Writer.WriterBench.BuildHost(options, ledger, durability);

    private async Task<string> PagesAsync(LedgerProvider provider)
    {
        await using var ledger = await ThrowawayLedger.CreateAsync(provider);
        using var host = BuildHost(ledger, LedgerDurability.Buffered);
        await host.StartAsync();
        var sb = new StringBuilder();
        var rows = options.Rows;
        var now = DateTime.UtcNow;
        var clock = Stopwatch.StartNew();
        var sqlite = provider == LedgerProvider.Sqlite;
        var written = await ScaleFill.TableAsync(sqlite, ledger.ConnectionString, LedgerModel.InputRequests, [.. RequestColumns, "UserId", "Ip", "Type"], rows, i =>
        {
            var r = Request(i, rows, now).Inbound;
            return [[.. Row(r), r.UserId, r.Ip, 1]];
        }, _ => { });
        written += await ScaleFill.TableAsync(sqlite, ledger.ConnectionString, LedgerModel.OutputRequests, [.. RequestColumns, "InputRequestId"], rows, i =>
        {
            var r = Request(i, rows, now).Outbound;
            return [[.. Row(r), r.InputRequestId]];
        }, _ => { });
        var commands = rows / 4;
        written += await ScaleFill.TableAsync(sqlite, ledger.ConnectionString, LedgerModel.Commands,
            ["Id", "Name", "Input", "ExecutedFromCommandLine", "Start", "Stop", "IsSuccessful", "ExitCode", "Host"], commands, i =>
            {
                // 3% failed, one in a thousand still running (its process killed: never finished).
                var at = now.AddSeconds(-30.0 * 86400 * (commands - i) / commands);
                bool? ok = i % 1000 == 500 ? null : i % 33 != 0;
                return [[Guid.CreateVersion7(at), "import-" + (i % 8).ToString(CultureInfo.InvariantCulture), "--batch " + i.ToString(CultureInfo.InvariantCulture), true, at,
                    ok is null ? null : at.AddSeconds(30), ok, ok is null ? null : ok.Value ? 0 : 1, "bench-host"]];
            }, _ => { });
        sb.AppendLine(CultureInfo.InvariantCulture, $"#### {provider}: {rows:N0} inbound and {rows:N0} outbound requests, {commands:N0} commands ({written:N0} rows in {clock.Elapsed.TotalSeconds:0} s)");
        sb.AppendLine();
        var definitions = await DefinitionsAsync(ledger);
        var rare = Request(rows / 2, rows, now).Inbound.UserId ?? "user1";
        var probes = new (string Label, Func<LedgerQueries, Task<int>> Query)[]
        {
            ("inbound, first page", q => Count(q.InputRequestsAsync(new RequestFilter(), default))),
            ("inbound, user (one of 20,000)", q => Count(q.InputRequestsAsync(new RequestFilter { User = rare }, default))),
            ("inbound, user (none)", q => Count(q.InputRequestsAsync(new RequestFilter { User = "nobody" }, default))),
            ("inbound, method=GET (70%)", q => Count(q.InputRequestsAsync(new RequestFilter { Method = "GET" }, default))),
            ("inbound, method=DELETE (3%)", q => Count(q.InputRequestsAsync(new RequestFilter { Method = "DELETE" }, default))),
            ("inbound, method=OPTIONS (none)", q => Count(q.InputRequestsAsync(new RequestFilter { Method = "OPTIONS" }, default))),
            ("inbound, host=admin.shop.example (5%)", q => Count(q.InputRequestsAsync(new RequestFilter { Host = "admin.shop.example" }, default))),
            ("inbound, host (none)", q => Count(q.InputRequestsAsync(new RequestFilter { Host = "nowhere.example" }, default))),
            ("inbound, ip (none; indexed before)", q => Count(q.InputRequestsAsync(new RequestFilter { Ip = "10.9.9.9" }, default))),
            ("outbound, method=DELETE (3%)", q => Count(q.OutputRequestsAsync(new RequestFilter { Method = "DELETE" }, default))),
            ("outbound, method=OPTIONS (none)", q => Count(q.OutputRequestsAsync(new RequestFilter { Method = "OPTIONS" }, default))),
            ("outbound, host=audit.example (3%)", q => Count(q.OutputRequestsAsync(new RequestFilter { Host = OutboundHosts[^1] }, default))),
            ("outbound, host (none)", q => Count(q.OutputRequestsAsync(new RequestFilter { Host = "nowhere.example" }, default))),
            ("commands, outcome=running (0.1%)", q => Count(q.CommandsAsync(new CommandFilter { Outcome = CommandOutcome.Running }, default))),
            ("commands, outcome=failed (3%)", q => Count(q.CommandsAsync(new CommandFilter { Outcome = CommandOutcome.Failed }, default))),
        };
        var times = probes.ToDictionary(p => p.Label, _ => (With: new List<double>(), Without: new List<double>()));
        for (var round = 0; round < options.Rounds; round++)
        {
            foreach (var with in new[] { true, false })
            {
                await ExecuteAsync(ledger, with ? string.Join(";\n", definitions) : string.Join(";\n", FilterIndexes.Select(i => $"DROP INDEX IF EXISTS \"{i}\"")));
                await AnalyzeAsync(ledger);
                foreach (var (label, query) in probes)
                {
                    var (median, count) = await TimeAsync(host, query);
                    (with ? times[label].With : times[label].Without).Add(median);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {provider} round {round + 1} {(with ? "with" : "without")} the indexes: {label}: {median:0.0} ms ({count} rows)"));
                }
            }
        }

        sb.AppendLine("| first page (median of 5 after a cold one, each round) | without the indexes (before) | with them (after) |");
        sb.AppendLine("| --- | ---: | ---: |");
        foreach (var (label, _) in probes)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {label} | {string.Join(" / ", times[label].Without.Select(t => t.ToString("0.0", CultureInfo.InvariantCulture)))} ms | {string.Join(" / ", times[label].With.Select(t => t.ToString("0.0", CultureInfo.InvariantCulture)))} ms |");
        }

        await host.StopAsync();
        return sb.ToString();
    }

    private static async Task<int> Count<T>(Task<Page<T>> page) => (await page).Items.Count;

    /// <summary>The filter indexes' definitions as the ledger has them (to make them again after a round without).</summary>
    private static async Task<List<string>> DefinitionsAsync(ThrowawayLedger ledger)
    {
        await using var connection = LedgerDatabase.For(ledger.Provider).CreateConnection(ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        var names = string.Join(", ", FilterIndexes.Select(i => $"'{i}'"));
        command.CommandText = ledger.Provider == LedgerProvider.Sqlite
            ? $"SELECT sql FROM sqlite_master WHERE type = 'index' AND name IN ({names})"
            : $"SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indexrelid::regclass::text IN ({string.Join(", ", FilterIndexes.Select(i => $"'\"{i}\"'"))})";
        var definitions = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            definitions.Add(reader.GetString(0).Replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", StringComparison.Ordinal));
        }

        return definitions.Count == FilterIndexes.Length ? definitions : throw new InvalidOperationException($"The ledger has {definitions.Count} of the {FilterIndexes.Length} filter indexes.");
    }

    /// <summary>The statistics a running ledger has: JobLog's own refresh on SQLite, autovacuum's ANALYZE on PostgreSQL.</summary>
    private static async Task AnalyzeAsync(ThrowawayLedger ledger)
    {
        var database = LedgerDatabase.For(ledger.Provider);
        await using var connection = database.CreateConnection(ledger.ConnectionString);
        await connection.OpenAsync();
        if (ledger.Provider == LedgerProvider.Sqlite)
        {
            await using var command = connection.CreateCommand();
            command.CommandText = "ANALYZE";
            await command.ExecuteNonQueryAsync();
            await database.RefreshStatisticsAsync(connection, default);
            return;
        }

        await using var analyze = connection.CreateCommand();
        analyze.CommandText = $"VACUUM ANALYZE \"{LedgerModel.InputRequests}\", \"{LedgerModel.OutputRequests}\", \"{LedgerModel.Commands}\"";
        analyze.CommandTimeout = 600;
        await analyze.ExecuteNonQueryAsync();
    }

    private static async Task ExecuteAsync(ThrowawayLedger ledger, string sql)
    {
        await using var connection = LedgerDatabase.For(ledger.Provider).CreateConnection(ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.CommandTimeout = 600;
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<(double Median, int Count)> TimeAsync(IHost host, Func<LedgerQueries, Task<int>> query)
    {
        var (times, count) = await ScaleBench.RunsAsync(host, query, new Stopwatch());
        var warm = times.Skip(1).Order().ToList();
        return (warm[warm.Count / 2], count);
    }

    /// <summary>
    /// <c>--messages</c> inbound requests (start and end: two upserts each, as the middleware records them) and as many
    /// outbound ones (one upsert each) through the writer into a new ledger, after 500 of each to warm up.
    /// </summary>
    private async Task<string> WriterAsync(LedgerProvider provider)
    {
        var lines = new List<(double Wall, double Cpu, double Backend)>();
        for (var round = 0; round < options.Rounds; round++)
        {
            await using var ledger = await ThrowawayLedger.CreateAsync(provider);
            using var host = BuildHost(ledger, LedgerDurability.Buffered);
            await host.StartAsync();
            var recorder = host.Services.GetRequiredService<LedgerRecorder>();
            var now = DateTime.UtcNow;
            var count = options.Messages;
            var requests = Enumerable.Range(0, count + 500).Select(i => Request(i, count + 500, now)).ToList();
            void Enqueue(int from, int to)
            {
                for (var start = from; start < to; start += options.Window)
                {
                    var slice = requests.Skip(start).Take(Math.Min(options.Window, to - start)).ToList();
                    foreach (var (inbound, _) in slice)
                    {
                        recorder.Enqueue(new InputRequestRecorded(inbound with
                        {
                            ResponseTimestamp = null, ResponseCode = null, ResponseBody = null, Status = RequestLogStatus.Incomplete, ExceptionName = null, UserId = null,
                        }));
                    }

                    foreach (var (inbound, outbound) in slice)
                    {
                        recorder.Enqueue(new OutputRequestRecorded(outbound));
                        recorder.Enqueue(new InputRequestRecorded(inbound));
                    }
                }
            }

            Enqueue(0, 500);
            await recorder.FlushAsync(TimeSpan.FromSeconds(60));
            GC.Collect();
            var backendsBefore = await BackendCpu.TakeAsync(ledger.Database);
            var before = ProcessSnapshot.Take();
            var clock = Stopwatch.StartNew();
            Enqueue(500, count + 500);
            if (!await recorder.FlushAsync(TimeSpan.FromSeconds(600)))
            {
                throw new TimeoutException("The writer did not catch up within 600 s.");
            }

            var wall = clock.Elapsed;
            var process = ProcessSnapshot.Take() - before;
            var backends = BackendCpu.Between(backendsBefore, await BackendCpu.TakeAsync(ledger.Database));
            await host.StopAsync();
            lines.Add((wall.TotalMilliseconds * 1000 / count, process.Cpu.TotalMilliseconds * 1000 / count, backends.TotalMilliseconds * 1000 / count));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {provider} round {round + 1}: {count:N0} requests each way: wall {lines[^1].Wall:0.0} µs, this process's CPU {lines[^1].Cpu:0.0} µs, PostgreSQL backends' CPU {lines[^1].Backend:0.0} µs per inbound + outbound request"));
        }

        static string Median(IEnumerable<double> values)
        {
            var sorted = values.Order().ToList();
            return sorted[sorted.Count / 2].ToString("0.0", CultureInfo.InvariantCulture);
        }

        return string.Create(CultureInfo.InvariantCulture,
            $"| {provider} | {options.Messages:N0} | {options.Rounds} | {Median(lines.Select(l => l.Wall))} | {Median(lines.Select(l => l.Cpu))} | {(provider == LedgerProvider.Sqlite ? "—" : Median(lines.Select(l => l.Backend)))} |");
    }
}
