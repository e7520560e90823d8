using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace JobLog.Bench.Infrastructure;

/// <summary>Samples the working set and the GC heap while a run goes, keeping the peaks.</summary>
internal sealed class MemorySampler : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _peakWorkingSet;
    private long _peakGcHeap;

    public MemorySampler(TimeSpan interval)
    {
        Sample();
        _loop = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(interval);
            try
            {
                while (await timer.WaitForNextTickAsync(_stop.Token))
                {
                    Sample();
                }
            }
            catch (OperationCanceledException)
            {
                // Stopped.
            }
        });
    }

    public long PeakWorkingSet => Interlocked.Read(ref _peakWorkingSet);

    public long PeakGcHeap => Interlocked.Read(ref _peakGcHeap);

    public static long WorkingSet => Environment.WorkingSet;

    public static long GcHeap => GC.GetTotalMemory(false);

    private void Sample()
    {
        Max(ref _peakWorkingSet, WorkingSet);
        Max(ref _peakGcHeap, GcHeap);
    }

    private static void Max(ref long location, long value)
    {
        long current;
        do
        {
            current = Interlocked.Read(ref location);
            if (value <= current)
            {
                return;
            }
        }
        while (Interlocked.CompareExchange(ref location, value, current) != current);
    }

    public async ValueTask DisposeAsync()
    {
        Sample();
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}

/// <summary>
/// Process CPU time and allocations over an interval, and the JIT's work in it (<see cref="System.Runtime.JitInfo"/>:
/// methods compiled and the time spent compiling them, every thread; tiered compilation's background thread included).
/// </summary>
internal readonly record struct ProcessSnapshot(TimeSpan Cpu, long Allocated, int Gen0, int Gen1, int Gen2, TimeSpan Jit = default, long JitMethods = 0)
{
    public static ProcessSnapshot Take()
    {
        using var process = Process.GetCurrentProcess();
        return new ProcessSnapshot(process.TotalProcessorTime, GC.GetTotalAllocatedBytes(false),
            GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2),
            System.Runtime.JitInfo.GetCompilationTime(), System.Runtime.JitInfo.GetCompiledMethodCount());
    }

    /// <summary>
    /// Waits until the JIT is quiet (fewer than 20 methods compiled in a second), at most <paramref name="limit"/>: a new
    /// host's start-up (EF Core's model and migrations, MassTransit's pipes) leaves thousands of methods for tiered
    /// compilation's background thread, which would otherwise compile them during the measured run.
    /// </summary>
    /// <returns>How long it waited.</returns>
    public static async Task<TimeSpan> SettleJitAsync(TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        var last = System.Runtime.JitInfo.GetCompiledMethodCount();
        while (clock.Elapsed < limit)
        {
            await Task.Delay(TimeSpan.FromSeconds(1));
            var now = System.Runtime.JitInfo.GetCompiledMethodCount();
            if (now - last < 20)
            {
                break;
            }

            last = now;
        }

        return clock.Elapsed;
    }

    public static ProcessSnapshot operator -(ProcessSnapshot a, ProcessSnapshot b) =>
        new(a.Cpu - b.Cpu, a.Allocated - b.Allocated, a.Gen0 - b.Gen0, a.Gen1 - b.Gen1, a.Gen2 - b.Gen2, a.Jit - b.Jit, a.JitMethods - b.JitMethods);
}

/// <summary>Listens to the JobLog meter: how the writer batches and how long its commits take.</summary>
internal sealed class WriterStats : IDisposable
{
    private readonly MeterListener _listener = new();
    private long _commits;
    private long _records;
    private long _maxBatch;
    private double _commitSeconds;
    private long _dropped;
    private long _waits;
    private double _waitSeconds;

    public WriterStats()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "JobLog"
                && instrument.Name is "joblog.writer.batch_size" or "joblog.writer.commit_duration" or "joblog.writer.dropped"
                    or "joblog.acknowledge.wait_duration")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<int>((instrument, value, _, _) =>
        {
            if (instrument.Name == "joblog.writer.batch_size")
            {
                Interlocked.Increment(ref _commits);
                Interlocked.Add(ref _records, value);
                long current;
                do
                {
                    current = Interlocked.Read(ref _maxBatch);
                }
                while (value > current && Interlocked.CompareExchange(ref _maxBatch, value, current) != current);
            }
        });
        _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == "joblog.writer.dropped")
            {
                Interlocked.Add(ref _dropped, value);
            }
        });
        _listener.SetMeasurementEventCallback<double>((instrument, value, _, _) =>
        {
            if (instrument.Name == "joblog.writer.commit_duration")
            {
                lock (_listener)
                {
                    _commitSeconds += value;
                }
            }
            else if (instrument.Name == "joblog.acknowledge.wait_duration")
            {
                lock (_listener)
                {
                    _waits++;
                    _waitSeconds += value;
                }
            }
        });
        _listener.Start();
    }

    public WriterSnapshot Take()
    {
        lock (_listener)
        {
            return new WriterSnapshot(Interlocked.Read(ref _commits), Interlocked.Read(ref _records), Interlocked.Read(ref _maxBatch),
                _commitSeconds, Interlocked.Read(ref _dropped), _waits, _waitSeconds);
        }
    }

    public void ResetMax() => Interlocked.Exchange(ref _maxBatch, 0);

    public void Dispose() => _listener.Dispose();
}

/// <summary>Writer counters; <c>Waits</c>/<c>WaitSeconds</c>: business-path waits for a commit (Acknowledged) and their total time.</summary>
internal readonly record struct WriterSnapshot(long Commits, long Records, long MaxBatch, double CommitSeconds, long Dropped, long Waits, double WaitSeconds)
{
    /// <summary>Mean business-path wait for a commit, in milliseconds (0 without waits).</summary>
    public double MeanWaitMs => Waits == 0 ? 0 : WaitSeconds * 1000 / Waits;

    public static WriterSnapshot operator -(WriterSnapshot a, WriterSnapshot b) =>
        new(a.Commits - b.Commits, a.Records - b.Records, a.MaxBatch, a.CommitSeconds - b.CommitSeconds, a.Dropped - b.Dropped,
            a.Waits - b.Waits, a.WaitSeconds - b.WaitSeconds);
}
