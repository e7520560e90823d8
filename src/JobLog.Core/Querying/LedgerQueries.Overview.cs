using JobLog.Storage;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Querying;

/// <summary>
/// The dashboard's overview: counts by state, the chart of finished tasks, the slowest task names. Counts and chart come
/// from the rollups the database's triggers keep exact (<see cref="LedgerRollups"/>), so they cost the same at any ledger
/// size; see docs/scale.md.
/// </summary>
public sealed partial class LedgerQueries
{
    /// <summary>Tasks by state (all time), finished tasks over the window, the slowest task names of the window.</summary>
    internal async Task<(IReadOnlyList<StateCount> Counts, Chart Chart, IReadOnlyList<SlowTask> Slowest)> OverviewAsync(
        bool day, DateTime now, CancellationToken ct)
    {
        // MassTransit's infrastructure messages are not the application's work: out of the counts and the failure rate.
        var counted = await _db.Set<TaskStateCount>().AsNoTracking().Where(t => !t.IsInternal).GroupBy(t => t.State)
            .Select(g => new { State = g.Key, Count = g.Sum(t => t.Count) }).ToListAsync(ct).ConfigureAwait(false);
        var counts = Enum.GetValues<TaskState>()
            .Select(s => new StateCount(s, counted.FirstOrDefault(c => c.State == s)?.Count ?? 0)).ToList();
        var chart = await ChartAsync(day, now, ct).ConfigureAwait(false);
        var slowest = await SlowestAsync(chart.From, day, ct).ConfigureAwait(false);
        return (counts, chart, slowest);
    }

    private async Task<Chart> ChartAsync(bool day, DateTime now, CancellationToken ct)
    {
        var bucket = day ? TimeSpan.FromHours(1) : TimeSpan.FromMinutes(1);
        var count = day ? 24 : 60;
        var to = new DateTime(now.Ticks - (now.Ticks % bucket.Ticks), DateTimeKind.Utc) + bucket;
        var from = to - (bucket * count);
        // The day window's buckets are whole UTC hours (from and to on the hour): the hour rollup holds them exactly, at a
        // sixtieth of the minute rows (docs/scale.md, session 13).
        var finished = day
            ? await _db.Set<TaskHourCount>().AsNoTracking()
                .Where(t => t.Hour >= from && t.Hour < to && !t.IsInternal
                    && (t.State == TaskState.Succeeded || t.State == TaskState.Failed || t.State == TaskState.Expired))
                .GroupBy(t => new { t.Hour, t.State })
                .Select(g => new { Minute = g.Key.Hour, g.Key.State, Count = g.Sum(t => t.Count) })
                .ToListAsync(ct).ConfigureAwait(false)
            : await _db.Set<TaskMinuteCount>().AsNoTracking()
                .Where(t => t.Minute >= from && t.Minute < to && !t.IsInternal
                    && (t.State == TaskState.Succeeded || t.State == TaskState.Failed || t.State == TaskState.Expired))
                .GroupBy(t => new { t.Minute, t.State })
                .Select(g => new { g.Key.Minute, g.Key.State, Count = g.Sum(t => t.Count) })
                .ToListAsync(ct).ConfigureAwait(false);
        var buckets = new (int Succeeded, int Failed, int Expired)[count];
        foreach (var g in finished)
        {
            var index = (int)((g.Minute - from).Ticks / bucket.Ticks);
            if (index < 0 || index >= count)
            {
                continue;
            }

            var b = buckets[index];
            var n = (int)g.Count;
            buckets[index] = g.State switch
            {
                TaskState.Succeeded => (b.Succeeded + n, b.Failed, b.Expired),
                TaskState.Failed => (b.Succeeded, b.Failed + n, b.Expired),
                _ => (b.Succeeded, b.Failed, b.Expired + n),
            };
        }

        return new Chart(day ? "day" : "hour", from, to, (int)bucket.TotalSeconds,
            buckets.Select((b, i) => new ChartBucket(from + (bucket * i), b.Succeeded, b.Failed, b.Expired)).ToList());
    }

    private async Task<IReadOnlyList<SlowTask>> SlowestAsync(DateTime since, bool day, CancellationToken ct)
    {
        // Runs that ended (SUCCEEDED, FAILED, RETRIED) and started in the window, from the run rollup (RunRollups): a
        // row per minute (the day window: per hour, since starts on the hour) and name, whatever the number of runs.
        var names = day
            ? await _db.Set<RunHourDurations>().AsNoTracking().Where(m => m.Hour >= since)
                .GroupBy(m => m.Name)
                .Select(g => new { Name = g.Key, Runs = g.Sum(m => m.Runs), Total = g.Sum(m => m.TotalMilliseconds), Max = g.Max(m => m.MaxMilliseconds) })
                .ToListAsync(ct).ConfigureAwait(false)
            : await _db.Set<RunMinuteDurations>().AsNoTracking().Where(m => m.Minute >= since)
                .GroupBy(m => m.Name)
                .Select(g => new { Name = g.Key, Runs = g.Sum(m => m.Runs), Total = g.Sum(m => m.TotalMilliseconds), Max = g.Max(m => m.MaxMilliseconds) })
                .ToListAsync(ct).ConfigureAwait(false);
        return names.Where(n => n.Runs > 0)
            .Select(n => new SlowTask { Name = n.Name, Runs = n.Runs, AverageSeconds = n.Total / 1000.0 / n.Runs, MaxSeconds = n.Max / 1000.0 })
            .OrderByDescending(s => s.AverageSeconds).ThenBy(s => s.Name, StringComparer.Ordinal).Take(5).ToList();
    }
}
