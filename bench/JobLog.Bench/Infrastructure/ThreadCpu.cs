using System.Runtime.InteropServices;

namespace JobLog.Bench.Infrastructure;

/// <summary>The calling thread's CPU time (Linux <c>CLOCK_THREAD_CPUTIME_ID</c>): immune to other load on the machine.</summary>
internal static partial class ThreadCpu
{
    private const int ClockThreadCpuTimeId = 3;

    public static long Nanoseconds()
    {
        if (!OperatingSystem.IsLinux())
        {
            return System.Diagnostics.Stopwatch.GetTimestamp() * (1_000_000_000L / System.Diagnostics.Stopwatch.Frequency);
        }

        ClockGetTime(ClockThreadCpuTimeId, out var time);
        return time.Seconds * 1_000_000_000L + time.Nanoseconds;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);
}
