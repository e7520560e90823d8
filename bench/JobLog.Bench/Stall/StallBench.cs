using System.Diagnostics;
using System.Globalization;
using System.Text;
using JobLog.Bench.Infrastructure;
using JobLog.Bench.Throughput;
using JobLog.Recording;
using MassTransit;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;

namespace JobLog.Bench.Stall;

/// <summary>
/// Memory stays bounded when the database stalls: while messages flow on the in-memory transport, another connection
/// holds the SQLite ledger locked (<c>BEGIN EXCLUSIVE</c>). The recorder's queue fills up to
/// <see cref="JobLogOptions.QueueCapacity"/>, further records are dropped and counted, the bus keeps going, and memory
/// stays flat; when the lock goes, the writer catches up.
/// </summary>
internal sealed class StallBench(BenchOptions options)
{
    public async Task<string> RunAsync()
    {
        var durabilities = options.DurabilityGiven ? options.Durabilities : [LedgerDurability.Buffered];
        var sb = new StringBuilder();
        foreach (var durability in durabilities)
        {
            sb.AppendLine(await RunOnceAsync(durability));
        }

        return sb.ToString();
    }

    private async Task<string> RunOnceAsync(LedgerDurability durability)
    {
        var capacity = options.Capacity;
        var stall = TimeSpan.FromSeconds(options.StallSeconds);
        await using var ledger = await ThrowawayLedger.CreateAsync(LedgerProvider.Sqlite);
        var counter = new ConsumedCounter();
        var spoolDirectory = options.Spool ? Path.Combine(Path.GetTempPath(), "joblog-bench-spool-" + Guid.NewGuid().ToString("N")) : null;
        using var host = BenchBus.Build(TransportKind.InMemory, RabbitProfile.Defaults, 0, counter, null, o =>
        {
            ledger.Apply(o);
            o.Durability = durability;
            o.QueueCapacity = capacity;
            // Without --spool, the in-memory bound alone: with the spool (the default) the overflow goes to disk instead.
            o.SpoolDirectory = spoolDirectory;
        });
        await host.StartAsync();
        var bus = host.Services.GetRequiredService<IBus>();
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var warm = counter.Arm(1000);
        await BenchBus.PublishAsync(bus, 1000, 1000);
        await warm;
        await recorder.FlushAsync(TimeSpan.FromSeconds(30));
        _ = counter.Arm(int.MaxValue);
        GC.Collect();

        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"#### SQLite ledger locked for {stall.TotalSeconds:0} s, in-memory transport, {durability}, QueueCapacity {capacity:N0}, spool {(options.Spool ? "on" : "off")}");
        sb.AppendLine();
        sb.AppendLine("| t (s) | ledger | published | consumed | recorder backlog | spooled | dropped | working set MB | GC heap MB |");
        sb.AppendLine("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");

        await using var blocker = new SqliteConnection(ledger.ConnectionString + ";Pooling=False");
        await blocker.OpenAsync();
        await using (var begin = blocker.CreateCommand())
        {
            begin.CommandText = "BEGIN EXCLUSIVE";
            await begin.ExecuteNonQueryAsync();
        }

        var locked = true;
        var published = 0L;
        using var stopPublishing = new CancellationTokenSource();
        var publisher = Task.Run(async () =>
        {
            // Paced to the consumer (at most 5,000 messages in the transport): the in-memory transport's own queue is
            // unbounded, and this measures JobLog's memory, not the broker's.
            var offset = 1000;
            while (!stopPublishing.IsCancellationRequested)
            {
                await BenchBus.PublishAsync(bus, 1000, 1000, offset);
                offset += 1000;
                Interlocked.Add(ref published, 1000);
                while (Interlocked.Read(ref published) - counter.Count > 5000 && !stopPublishing.IsCancellationRequested)
                {
                    await Task.Delay(5);
                }
            }
        });

        var clock = Stopwatch.StartNew();
        var maxBacklog = 0;
        long peakWorkingSet = 0, peakHeap = 0, workingSetLocked = 0, heapLocked = 0;
        var releasedAt = TimeSpan.Zero;
        var droppedLocked = 0L;
        var publishFor = stall + TimeSpan.FromSeconds(3);
        var next = TimeSpan.FromSeconds(1);
        while (true)
        {
            // Sampled on this thread, not the busy thread pool, so the samples come on time.
            var wait = next - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                Thread.Sleep(wait);
            }

            next += TimeSpan.FromSeconds(1);
            var t = clock.Elapsed;
            if (locked && t >= stall)
            {
                await using var rollback = blocker.CreateCommand();
                rollback.CommandText = "ROLLBACK";
                await rollback.ExecuteNonQueryAsync();
                locked = false;
                releasedAt = t;
                droppedLocked = recorder.Dropped;
            }

            if (!stopPublishing.IsCancellationRequested && t >= publishFor)
            {
                await stopPublishing.CancelAsync();
            }

            var backlog = recorder.Backlog;
            var workingSet = MemorySampler.WorkingSet;
            var heap = GC.GetTotalMemory(false);
            maxBacklog = Math.Max(maxBacklog, backlog);
            peakWorkingSet = Math.Max(peakWorkingSet, workingSet);
            peakHeap = Math.Max(peakHeap, heap);
            if (locked && t >= TimeSpan.FromSeconds(3))
            {
                workingSetLocked = Math.Max(workingSetLocked, workingSet);
                heapLocked = Math.Max(heapLocked, heap);
            }

            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {t.TotalSeconds:0} | {(locked ? "locked" : "free")} | {Interlocked.Read(ref published):N0} | {counter.Count:N0} | {backlog:N0} | {recorder.Spooled:N0} | {recorder.Dropped:N0} | {workingSet / 1048576} | {heap / 1048576} |");
            Console.WriteLine($"  t={t.TotalSeconds:0}s {(locked ? "locked" : "free")} published {Interlocked.Read(ref published):N0} consumed {counter.Count:N0} backlog {backlog:N0} spooled {recorder.Spooled:N0} dropped {recorder.Dropped:N0} ws {workingSet / 1048576} MB heap {heap / 1048576} MB");
            if (stopPublishing.IsCancellationRequested && ((backlog == 0 && !recorder.HasSpooled) || t > publishFor + TimeSpan.FromSeconds(120)))
            {
                break;
            }
        }

        await publisher;
        var contents = await recorder.FlushAsync(TimeSpan.FromSeconds(60)) && !recorder.HasSpooled;
        await host.StopAsync();
        long inLedger;
        await using (var count = new SqliteConnection(ledger.ConnectionString + ";Pooling=False"))
        {
            await count.OpenAsync();
            await using var command = count.CreateCommand();
            command.CommandText = "SELECT COUNT(*) FROM \"JobLogTasks\"";
            inLedger = (long)(await command.ExecuteScalarAsync())!;
        }

        if (spoolDirectory is not null)
        {
            Directory.Delete(spoolDirectory, recursive: true);
        }

        var batch = host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<JobLogOptions>>().Value.MaxBatchSize;
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"Peak recorder backlog {maxBacklog:N0}: the queue's capacity ({capacity:N0}) plus the batch the writer holds ({batch:N0})" +
            $"{(maxBacklog <= capacity + batch ? ", never more" : " — EXCEEDED")}. {droppedLocked:N0} records were dropped and counted " +
            $"(metric joblog.writer.dropped) while the ledger was locked, {recorder.Dropped - droppedLocked:N0} more while the writer caught up " +
            $"with a bus publishing faster than it commits; the bus never waited for the ledger ({Interlocked.Read(ref published):N0} published, " +
            $"{counter.Count:N0} consumed). While locked (from 3 s on), working set at most {workingSetLocked / 1048576} MB and GC heap at most " +
            $"{heapLocked / 1048576} MB; peaks over the whole run {peakWorkingSet / 1048576} MB and {peakHeap / 1048576} MB. Lock released at " +
            $"{releasedAt.TotalSeconds:0} s; the queued{(options.Spool ? " and spooled" : "")} records were committed afterwards: {(contents ? "yes" : "no")}. " +
            $"Tasks in the ledger: {inLedger:N0} of {Interlocked.Read(ref published) + 1000:N0} published ({recorder.Spooled:N0} records went through the spool).");
        return sb.ToString();
    }
}
