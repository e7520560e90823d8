using System.Globalization;

namespace JobLog.Querying;

/// <summary>How the ledger's times and durations read, the same on the dashboard and in the CLI. Times are UTC.</summary>
public static class LedgerFormat
{
    /// <summary><c>yyyy-MM-dd HH:mm:ss</c>, or a dash for no time.</summary>
    /// <param name="time">A UTC time.</param>
    public static string Time(DateTime? time) =>
        time is { } t ? t.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) : "—";

    /// <summary>A duration in the unit that reads best: <c>850 ms</c>, <c>2.35 s</c>, <c>42.0 s</c>, <c>3 m 05 s</c>, <c>2 h 07 m</c>; a dash for none.</summary>
    /// <param name="seconds">The duration in seconds (negative reads as zero).</param>
    public static string Duration(double? seconds)
    {
        if (seconds is not { } s || double.IsNaN(s))
        {
            return "—";
        }

        s = Math.Max(s, 0);
        return s switch
        {
            < 1 => (s * 1000).ToString("0", CultureInfo.InvariantCulture) + " ms",
            < 10 => s.ToString("0.00", CultureInfo.InvariantCulture) + " s",
            < 60 => s.ToString("0.0", CultureInfo.InvariantCulture) + " s",
            < 3600 => $"{(int)(s / 60)} m {(int)(s % 60):00} s",
            _ => $"{(int)(s / 3600)} h {(int)(s % 3600 / 60):00} m",
        };
    }
}
