using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using JobLog.Bench.Infrastructure;
using JobLog.Sweeping;
using MassTransit;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace JobLog.Bench.Sweep;

/// <summary>
/// A big ledger, filled with raw batched inserts (not through the bus): N tasks over 7 days, 20 task names, 88%
/// SUCCEEDED and 2% FAILED with one run each, 10% stale (dispatched, Stale passed, WAITING or ACTIVE with an ACTIVE run).
/// Times one <see cref="TaskLogSweeper.SweepOnceAsync"/> and the dashboard's typical query through EF Core.
/// </summary>
internal sealed class SweepBench(BenchOptions options)
{
    private const int Names = 20;
    private static readonly string Input = "CustomerId=42, Amount=10.5, Currency=EUR, Reference=order-42";
    private static readonly string Args = "[42,10.5,\"EUR\",\"order-42\"]";
    private static readonly string Kwargs = "{\"CustomerId\":42,\"Amount\":10.5,\"Currency\":\"EUR\",\"Reference\":\"order-42\"}";

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
        var n = options.Tasks;
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"#### {provider}, {n:N0} tasks ({n / 10:N0} stale){(provider == LedgerProvider.Sqlite && options.Analyze ? ", ANALYZEd" : "")}");
        sb.AppendLine();
        await using var ledger = await ThrowawayLedger.CreateAsync(provider);
        ledger.Keep = options.Keep;
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddFilter("JobLog.Sweeping", LogLevel.Error); // one warning per expired task otherwise
        builder.Services.AddJobLog(o =>
        {
            ledger.Apply(o);
            o.Sweeper.Enabled = false;
        });
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            var now = DateTime.UtcNow;
            var clock = Stopwatch.StartNew();
            var (tasks, runs) = provider == LedgerProvider.Sqlite ? await FillSqliteAsync(ledger, n, now, options.Analyze) : await FillPostgresAsync(ledger, n, now);
            var fill = clock.Elapsed;
            Console.WriteLine($"  {provider}: filled {tasks:N0} tasks and {runs:N0} runs in {fill.TotalSeconds:0.0} s");
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"- fill: {tasks:N0} tasks + {runs:N0} runs in {fill.TotalSeconds:0.0} s ({(tasks + runs) / fill.TotalSeconds:N0} rows/s; secondary indexes dropped during the load and rebuilt") +
                (provider == LedgerProvider.PostgreSql ? ", binary COPY, then ANALYZE as autovacuum would"
                    : options.Analyze ? ", prepared INSERTs in 50,000-row transactions, then ANALYZE (--analyze)"
                    : ", prepared INSERTs in 50,000-row transactions, no ANALYZE (as a real ledger)") + ")");

            var (queryLine, plan) = await DashboardQueryAsync(host, ledger, now, "before the sweep");
            sb.AppendLine(queryLine);

            var sweeper = host.Services.GetRequiredService<TaskLogSweeper>();
            var memoryBefore = MemorySampler.WorkingSet;
            clock.Restart();
            var result = await sweeper.SweepOnceAsync(CancellationToken.None);
            var sweep = clock.Elapsed;
            var expected = n / 10;
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"- **one sweep: {sweep.TotalSeconds:0.00} s** for {result.Expired:N0} expired + {result.Healed:N0} healed " +
                $"({(result.Expired + result.Healed) / sweep.TotalSeconds:N0} tasks/s; batch {host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<JobLogOptions>>().Value.Sweeper.BatchSize:N0}; " +
                $"target < 10 s for 100,000: {(sweep.TotalSeconds * 100_000 / Math.Max(1, result.Expired + result.Healed) < 10 ? "met" : "missed")})") +
                (result.Expired + result.Healed != expected ? $" ⚠ expected {expected:N0}" : ""));
            Console.WriteLine($"  {provider}: sweep {sweep.TotalSeconds:0.00} s, {result.Expired} expired, {result.Healed} healed (working set {memoryBefore / 1048576} → {MemorySampler.WorkingSet / 1048576} MB)");
            clock.Restart();
            var again = await sweeper.SweepOnceAsync(CancellationToken.None);
            sb.AppendLine(CultureInfo.InvariantCulture, $"- a second sweep (nothing left to expire): {clock.Elapsed.TotalMilliseconds:0} ms, {again.Expired + again.Healed} tasks");

            var (afterLine, _) = await DashboardQueryAsync(host, ledger, now, "after the sweep");
            sb.AppendLine(afterLine);
            sb.AppendLine();
            sb.AppendLine("Query plan of the dashboard query:");
            sb.AppendLine();
            sb.AppendLine("```");
            sb.AppendLine(plan.TrimEnd());
            sb.AppendLine("```");
        }
        finally
        {
            await host.StopAsync();
        }

        return sb.ToString();
    }

    private static TaskState StateOf(int i) => (i % 10) switch
    {
        3 => i % 20 == 3 ? TaskState.Waiting : TaskState.Active, // 10% stale: half waiting, half with an ACTIVE run
        _ => i % 50 == 7 ? TaskState.Failed : TaskState.Succeeded,
    };

    private static DateTime DispatchedAt(int i, int n, DateTime now) =>
        now.AddMinutes(-10) - TimeSpan.FromTicks((long)((n - 1 - i) * (TimeSpan.FromDays(7).Ticks / (double)n)));

    private static async Task<(long Tasks, long Runs)> FillSqliteAsync(ThrowawayLedger ledger, int n, DateTime now, bool analyze)
    {
        await using var connection = new SqliteConnection(ledger.ConnectionString + ";Pooling=False");
        await connection.OpenAsync();
        await Exec(connection, "PRAGMA synchronous=OFF; PRAGMA cache_size=-200000;");
        var indexes = new List<string>();
        await using (var list = connection.CreateCommand())
        {
            list.CommandText = "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ('JobLogTasks', 'JobLogTaskRuns')";
            await using var reader = await list.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                indexes.Add(reader.GetString(0));
            }
        }

        foreach (var index in indexes)
        {
            var name = index.Split('"')[1];
            await Exec(connection, $"DROP INDEX \"{name}\"");
        }

        await using var task = connection.CreateCommand();
        task.CommandText =
            "INSERT INTO \"JobLogTasks\" (\"Id\", \"Name\", \"QueueName\", \"Input\", \"TaskArgs\", \"TaskKwargs\", \"DispatchedAt\", " +
            "\"EstimatedTimeOfFirstArrival\", \"Stale\", \"IsSetAsStale\", \"State\", \"Start\", \"Stop\", \"ConversationId\", \"SourceAddress\", \"Host\") " +
            "VALUES ($id, $name, 'charge-card', $input, $args, $kwargs, $at, $at, $stale, 0, $state, $start, $stop, $conv, 'rabbitmq://localhost/bench', 'bench-host')";
        var tp = new Dictionary<string, SqliteParameter>();
        foreach (var p in new[] { "$id", "$name", "$input", "$args", "$kwargs", "$at", "$stale", "$state", "$start", "$stop", "$conv" })
        {
            tp[p] = task.Parameters.Add(new SqliteParameter(p, null));
        }

        await using var run = connection.CreateCommand();
        run.CommandText =
            "INSERT INTO \"JobLogTaskRuns\" (\"Id\", \"TaskId\", \"Name\", \"QueueName\", \"ConsumerType\", \"Input\", \"TaskArgs\", \"TaskKwargs\", " +
            "\"Start\", \"Stop\", \"State\", \"ErrorMessage\", \"Retries\", \"WaitingTime\", \"Redelivered\", \"Host\") " +
            "VALUES ($id, $task, $name, 'charge-card', 'ChargeCardConsumer', $input, $args, $kwargs, $start, $stop, $state, $error, 0, 0.001, 0, 'bench-host')";
        var rp = new Dictionary<string, SqliteParameter>();
        foreach (var p in new[] { "$id", "$task", "$name", "$input", "$args", "$kwargs", "$start", "$stop", "$state", "$error" })
        {
            rp[p] = run.Parameters.Add(new SqliteParameter(p, null));
        }

        static string Time(DateTime d) => d.ToString("yyyy-MM-dd HH:mm:ss.FFFFFFF", CultureInfo.InvariantCulture);
        static string Id(Guid g) => g.ToString().ToUpperInvariant();
        long runs = 0;
        for (var start = 0; start < n; start += 50_000)
        {
            await using var transaction = connection.BeginTransaction();
            task.Transaction = transaction;
            run.Transaction = transaction;
            for (var i = start; i < Math.Min(n, start + 50_000); i++)
            {
                var id = NewId.NextGuid();
                var at = DispatchedAt(i, n, now);
                var state = StateOf(i);
                var name = "Task" + (i % Names).ToString("00", CultureInfo.InvariantCulture);
                DateTime? runStart = state == TaskState.Waiting ? null : at.AddSeconds(1);
                DateTime? runStop = state is TaskState.Succeeded or TaskState.Failed ? at.AddSeconds(1.05) : null;
                tp["$id"].Value = Id(id);
                tp["$name"].Value = name;
                tp["$input"].Value = Input;
                tp["$args"].Value = Args;
                tp["$kwargs"].Value = Kwargs;
                tp["$at"].Value = Time(at);
                tp["$stale"].Value = Time(state is TaskState.Waiting or TaskState.Active ? at.AddMinutes(5) : at.AddHours(1));
                tp["$state"].Value = (int)state;
                tp["$start"].Value = runStart is { } s ? Time(s) : DBNull.Value;
                tp["$stop"].Value = runStop is { } e ? Time(e) : DBNull.Value;
                tp["$conv"].Value = Id(NewId.NextGuid());
                task.ExecuteNonQuery();
                if (state != TaskState.Waiting)
                {
                    rp["$id"].Value = Id(NewId.NextGuid());
                    rp["$task"].Value = Id(id);
                    rp["$name"].Value = name;
                    rp["$input"].Value = Input;
                    rp["$args"].Value = Args;
                    rp["$kwargs"].Value = Kwargs;
                    rp["$start"].Value = Time(runStart!.Value);
                    rp["$stop"].Value = runStop is { } stop ? Time(stop) : DBNull.Value;
                    rp["$state"].Value = state switch { TaskState.Active => 1, TaskState.Failed => 3, _ => 2 };
                    rp["$error"].Value = state == TaskState.Failed ? "System.InvalidOperationException: Card declined.\n   at ChargeCardConsumer.Consume(...)" : DBNull.Value;
                    run.ExecuteNonQuery();
                    runs++;
                }
            }

            await transaction.CommitAsync();
        }

        foreach (var index in indexes)
        {
            await Exec(connection, index);
        }

        if (analyze)
        {
            await Exec(connection, "ANALYZE");
        }

        await Exec(connection, "PRAGMA wal_checkpoint(TRUNCATE)");
        return (n, runs);
    }

    private static async Task<(long Tasks, long Runs)> FillPostgresAsync(ThrowawayLedger ledger, int n, DateTime now)
    {
        // No command timeout: one COPY of every run is one statement for the rollup triggers (the writer's batches are small).
        await using var connection = new NpgsqlConnection(ledger.ConnectionString + ";Command Timeout=0");
        await connection.OpenAsync();
        var indexes = new List<(string Name, string Definition)>();
        await using (var list = new NpgsqlCommand(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('JobLogTasks', 'JobLogTaskRuns') AND indexname NOT LIKE 'PK_%'", connection))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                indexes.Add((reader.GetString(0), reader.GetString(1)));
            }
        }

        foreach (var (name, _) in indexes)
        {
            await Exec(connection, $"DROP INDEX \"{name}\"");
        }

        var ids = new Guid[n];
        await using (var writer = await connection.BeginBinaryImportAsync(
            "COPY \"JobLogTasks\" (\"Id\", \"Name\", \"QueueName\", \"Input\", \"TaskArgs\", \"TaskKwargs\", \"DispatchedAt\", " +
            "\"EstimatedTimeOfFirstArrival\", \"Stale\", \"IsSetAsStale\", \"State\", \"Start\", \"Stop\", \"ConversationId\", \"SourceAddress\", \"Host\") FROM STDIN (FORMAT BINARY)"))
        {
            for (var i = 0; i < n; i++)
            {
                var id = ids[i] = NewId.NextGuid();
                var at = DispatchedAt(i, n, now);
                var state = StateOf(i);
                await writer.StartRowAsync();
                await writer.WriteAsync(id, NpgsqlDbType.Uuid);
                await writer.WriteAsync("Task" + (i % Names).ToString("00", CultureInfo.InvariantCulture), NpgsqlDbType.Varchar);
                await writer.WriteAsync("charge-card", NpgsqlDbType.Varchar);
                await writer.WriteAsync(Input, NpgsqlDbType.Text);
                await writer.WriteAsync(Args, NpgsqlDbType.Text);
                await writer.WriteAsync(Kwargs, NpgsqlDbType.Text);
                await writer.WriteAsync(at, NpgsqlDbType.TimestampTz);
                await writer.WriteAsync(at, NpgsqlDbType.TimestampTz);
                await writer.WriteAsync(state is TaskState.Waiting or TaskState.Active ? at.AddMinutes(5) : at.AddHours(1), NpgsqlDbType.TimestampTz);
                await writer.WriteAsync(false, NpgsqlDbType.Boolean);
                await writer.WriteAsync((int)state, NpgsqlDbType.Integer);
                if (state == TaskState.Waiting)
                {
                    await writer.WriteNullAsync();
                }
                else
                {
                    await writer.WriteAsync(at.AddSeconds(1), NpgsqlDbType.TimestampTz);
                }

                if (state is TaskState.Succeeded or TaskState.Failed)
                {
                    await writer.WriteAsync(at.AddSeconds(1.05), NpgsqlDbType.TimestampTz);
                }
                else
                {
                    await writer.WriteNullAsync();
                }

                await writer.WriteAsync(NewId.NextGuid(), NpgsqlDbType.Uuid);
                await writer.WriteAsync("rabbitmq://localhost/bench", NpgsqlDbType.Varchar);
                await writer.WriteAsync("bench-host", NpgsqlDbType.Varchar);
            }

            await writer.CompleteAsync();
        }

        long runs = 0;
        await using (var writer = await connection.BeginBinaryImportAsync(
            "COPY \"JobLogTaskRuns\" (\"Id\", \"TaskId\", \"Name\", \"QueueName\", \"ConsumerType\", \"Input\", \"TaskArgs\", \"TaskKwargs\", " +
            "\"Start\", \"Stop\", \"State\", \"ErrorMessage\", \"Retries\", \"WaitingTime\", \"Redelivered\", \"Host\") FROM STDIN (FORMAT BINARY)"))
        {
            for (var i = 0; i < n; i++)
            {
                var state = StateOf(i);
                if (state == TaskState.Waiting)
                {
                    continue;
                }

                var at = DispatchedAt(i, n, now);
                await writer.StartRowAsync();
                await writer.WriteAsync(NewId.NextGuid(), NpgsqlDbType.Uuid);
                await writer.WriteAsync(ids[i], NpgsqlDbType.Uuid);
                await writer.WriteAsync("Task" + (i % Names).ToString("00", CultureInfo.InvariantCulture), NpgsqlDbType.Varchar);
                await writer.WriteAsync("charge-card", NpgsqlDbType.Varchar);
                await writer.WriteAsync("ChargeCardConsumer", NpgsqlDbType.Varchar);
                await writer.WriteAsync(Input, NpgsqlDbType.Text);
                await writer.WriteAsync(Args, NpgsqlDbType.Text);
                await writer.WriteAsync(Kwargs, NpgsqlDbType.Text);
                await writer.WriteAsync(at.AddSeconds(1), NpgsqlDbType.TimestampTz);
                if (state == TaskState.Active)
                {
                    await writer.WriteNullAsync();
                }
                else
                {
                    await writer.WriteAsync(at.AddSeconds(1.05), NpgsqlDbType.TimestampTz);
                }

                await writer.WriteAsync(state switch { TaskState.Active => 1, TaskState.Failed => 3, _ => 2 }, NpgsqlDbType.Integer);
                if (state == TaskState.Failed)
                {
                    await writer.WriteAsync("System.InvalidOperationException: Card declined.\n   at ChargeCardConsumer.Consume(...)", NpgsqlDbType.Text);
                }
                else
                {
                    await writer.WriteNullAsync();
                }

                await writer.WriteAsync(0, NpgsqlDbType.Integer);
                await writer.WriteAsync(0.001, NpgsqlDbType.Double);
                await writer.WriteAsync(false, NpgsqlDbType.Boolean);
                await writer.WriteAsync("bench-host", NpgsqlDbType.Varchar);
                runs++;
            }

            await writer.CompleteAsync();
        }

        foreach (var (_, definition) in indexes)
        {
            await Exec(connection, definition);
        }

        await Exec(connection, "ANALYZE \"JobLogTasks\"; ANALYZE \"JobLogTaskRuns\"");
        return (n, runs);
    }

    /// <summary>The dashboard's typical query: the newest 50 FAILED tasks of one name in the last hour, as EF Core LINQ.</summary>
    private static async Task<(string Line, string Plan)> DashboardQueryAsync(IHost host, ThrowawayLedger ledger, DateTime now, string when)
    {
        var since = now.AddHours(-1);
        const string name = "Task07";
        var times = new List<double>();
        var count = 0;
        string sql = "";
        for (var i = 0; i < 21; i++)
        {
            await using var scope = host.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
            var query = db.TaskLogs.AsNoTracking()
                .Where(t => t.State == TaskState.Failed && t.Name == name && t.DispatchedAt >= since)
                .OrderByDescending(t => t.DispatchedAt)
                .ThenByDescending(t => t.Id)
                .Take(50);
            var clock = Stopwatch.StartNew();
            var rows = await query.ToListAsync();
            times.Add(clock.Elapsed.TotalMilliseconds);
            count = rows.Count;
            sql = query.ToQueryString();
        }

        var warm = times.Skip(1).OrderBy(t => t).ToList();
        var median = warm[warm.Count / 2];
        var line = string.Create(CultureInfo.InvariantCulture,
            $"- dashboard query ({when}; newest 50 FAILED tasks of one name in the last hour, EF Core LINQ, new context per query): " +
            $"**{median:0.0} ms** median of 20 (max {warm[^1]:0.0} ms; first, with EF's query compilation, {times[0]:0.0} ms), {count} rows; " +
            $"target < 50 ms: {(median < 50 ? "met" : "missed")}");
        var plan = await PlanAsync(ledger, sql);
        return (line, "SQL (EF Core):\n" + sql + "\n\nplan:\n" + plan);
    }

    private static async Task<string> PlanAsync(ThrowawayLedger ledger, string efSql)
    {
        // ToQueryString declares parameters before the statement; EXPLAIN the statement with the declarations applied.
        var lines = efSql.Split('\n');
        var statement = string.Join('\n', lines.SkipWhile(l => l.StartsWith(".param", StringComparison.Ordinal) || l.StartsWith("-- ", StringComparison.Ordinal) || l.StartsWith("SET ", StringComparison.Ordinal) || string.IsNullOrWhiteSpace(l)));
        var sb = new StringBuilder();
        if (ledger.Provider == LedgerProvider.Sqlite)
        {
            await using var connection = new SqliteConnection(ledger.ConnectionString + ";Pooling=False");
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "EXPLAIN QUERY PLAN " + statement;
            foreach (var line in lines.Where(l => l.StartsWith(".param set", StringComparison.Ordinal)))
            {
                var parts = line.Split(' ', 4);
                command.Parameters.AddWithValue(parts[2], parts[3].Trim('\'', '\r'));
            }

            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                sb.AppendLine(reader.GetString(3));
            }
        }
        else
        {
            await using var connection = new NpgsqlConnection(ledger.ConnectionString);
            await connection.OpenAsync();
            var sets = lines.Where(l => l.StartsWith("-- @", StringComparison.Ordinal)).ToList();
            // Npgsql's ToQueryString gives "-- @name='value' (DbType = ...)"; inline them for EXPLAIN.
            foreach (var set in sets)
            {
                var body = set[3..];
                var eq = body.IndexOf('=', StringComparison.Ordinal);
                var paramName = body[..eq];
                var value = body[(eq + 1)..];
                var end = value.IndexOf(" (", StringComparison.Ordinal);
                if (end > 0)
                {
                    value = value[..end];
                }

                statement = statement.Replace(paramName, value.Contains('\'', StringComparison.Ordinal) ? value : $"'{value}'", StringComparison.Ordinal);
            }

            await using var command = new NpgsqlCommand("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                sb.AppendLine(reader.GetString(0));
            }
        }

        return sb.ToString();
    }

    private static async Task Exec(DbConnection connection, string sql)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.CommandTimeout = 3600;
        await command.ExecuteNonQueryAsync();
    }
}
