using Microsoft.EntityFrameworkCore;

namespace JobLog.Querying;

/// <summary>The dashboard's overview: counts by state, the chart of finished tasks, the slowest task names.</summary>
public sealed partial class LedgerQueries
{
    /// <summary>Tasks by state (all time), finished tasks over the window, the slowest task names of the window.</summary>
    internal async Task<(IReadOnlyList<StateCount> Counts, Chart Chart, IReadOnlyList<SlowTask> Slowest)> OverviewAsync(
        bool day, DateTime now, CancellationToken ct)
    {
        // MassTransit's infrastructure messages are not the application's work: out of the counts and the failure rate.
        var counted = await _db.TaskLogs.AsNoTracking().Where(t => !t.IsInternal).GroupBy(t => t.State)
            .Select(g => new { State = g.Key, Count = g.LongCount() }).ToListAsync(ct).ConfigureAwait(false);
        var counts = Enum.GetValues<TaskState>()
            .Select(s => new StateCount(s, counted.FirstOrDefault(c => c.State == s)?.Count ?? 0)).ToList();
        var chart = await ChartAsync(day, now, ct).ConfigureAwait(false);
        var slowest = await SlowestAsync(chart.From, ct).ConfigureAwait(false);
        return (counts, chart, slowest);
    }

    private async Task<Chart> ChartAsync(bool day, DateTime now, CancellationToken ct)
    {
        var bucket = day ? TimeSpan.FromHours(1) : TimeSpan.FromMinutes(1);
        var count = day ? 24 : 60;
        var to = new DateTime(now.Ticks - (now.Ticks % bucket.Ticks), DateTimeKind.Utc) + bucket;
        var from = to - (bucket * count);
        var finished = _db.TaskLogs.AsNoTracking()
            .Where(t => t.Stop >= from && t.Stop < to && !t.IsInternal
                && (t.State == TaskState.Succeeded || t.State == TaskState.Failed || t.State == TaskState.Expired));
        var grouped = day
            ? await finished.GroupBy(t => new { t.Stop!.Value.Year, t.Stop.Value.Month, t.Stop.Value.Day, t.Stop.Value.Hour, Minute = 0, t.State })
                .Select(g => new { g.Key.Year, g.Key.Month, g.Key.Day, g.Key.Hour, g.Key.Minute, g.Key.State, Count = g.Count() })
                .ToListAsync(ct).ConfigureAwait(false)
            : await finished.GroupBy(t => new { t.Stop!.Value.Year, t.Stop.Value.Month, t.Stop.Value.Day, t.Stop.Value.Hour, t.Stop.Value.Minute, t.State })
                .Select(g => new { g.Key.Year, g.Key.Month, g.Key.Day, g.Key.Hour, g.Key.Minute, g.Key.State, Count = g.Count() })
                .ToListAsync(ct).ConfigureAwait(false);
        var buckets = new (int Succeeded, int Failed, int Expired)[count];
        foreach (var g in grouped)
        {
            var start = new DateTime(g.Year, g.Month, g.Day, g.Hour, g.Minute, 0, DateTimeKind.Utc);
            var index = (int)((start - from).Ticks / bucket.Ticks);
            if (index < 0 || index >= count)
            {
                continue;
            }

            var b = buckets[index];
            buckets[index] = g.State switch
            {
                TaskState.Succeeded => (b.Succeeded + g.Count, b.Failed, b.Expired),
                TaskState.Failed => (b.Succeeded, b.Failed + g.Count, b.Expired),
                _ => (b.Succeeded, b.Failed, b.Expired + g.Count),
            };
        }

        return new Chart(day ? "day" : "hour", from, to, (int)bucket.TotalSeconds,
            buckets.Select((b, i) => new ChartBucket(from + (bucket * i), b.Succeeded, b.Failed, b.Expired)).ToList());
    }

    private async Task<IReadOnlyList<SlowTask>> SlowestAsync(DateTime since, CancellationToken ct)
    {
        // Runs that ended (SUCCEEDED, FAILED, RETRIED) and started in the window: the (State, Start) index.
        var query = _db.Database.SqlQuery<SlowTask>(_database.SlowestTasks(since));
        return await query.ToListAsync(ct).ConfigureAwait(false);
    }
}
