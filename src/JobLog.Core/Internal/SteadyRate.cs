namespace JobLog.Internal;

/// <summary>
/// Reports a repeated event at a steady rate: at most one report per <paramref name="interval"/>, each with the count
/// since the previous report, so that a flood of drops is neither logged per event nor hidden between reports. What came
/// after the last report is taken at the owner's stop (<see cref="TakeUnreported"/>), or a flood that ends within
/// <paramref name="interval"/> of its first report would be told as one event.
/// </summary>
internal sealed class SteadyRate(TimeProvider time, TimeSpan interval)
{
    private readonly Lock _lock = new();
    private long _pending;
    private long _lastReport;
    private bool _reported;

    /// <summary>Counts <paramref name="count"/> events; true (with the count to report) when a report is due.</summary>
    public bool Add(long count, out long toReport)
    {
        lock (_lock)
        {
            _pending += count;
            var now = time.GetTimestamp();
            if (_reported && time.GetElapsedTime(_lastReport, now) < interval)
            {
                toReport = 0;
                return false;
            }

            _reported = true;
            _lastReport = now;
            toReport = _pending;
            _pending = 0;
            return true;
        }
    }

    /// <summary>The count of the events since the last report, which no report will carry now; zero from then on.</summary>
    public long TakeUnreported()
    {
        lock (_lock)
        {
            var unreported = _pending;
            _pending = 0;
            return unreported;
        }
    }
}
