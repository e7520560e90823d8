using System.Globalization;

namespace JobLog.Worker.Cli;

/// <summary>How the CLI writes times, durations and states (the dashboard's formats).</summary>
internal static class CliFormat
{
    public static string Time(DateTime? time) =>
        time is { } t ? t.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) : "—";

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

    public static string State(TaskState state) => state.ToString().ToUpperInvariant();

    public static string State(TaskRunState state) => state.ToString().ToUpperInvariant();

    public static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);
}
