using System.Globalization;
using JobLog.Querying;

namespace JobLog.Worker.Cli;

/// <summary>How the CLI writes times, durations and states (the dashboard's formats).</summary>
internal static class CliFormat
{
    public static string Time(DateTime? time) => LedgerFormat.Time(time);

    public static string Duration(double? seconds) => LedgerFormat.Duration(seconds);

    public static string State(TaskState state) => state.ToString().ToUpperInvariant();

    public static string State(TaskRunState state) => state.ToString().ToUpperInvariant();

    public static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);
}
