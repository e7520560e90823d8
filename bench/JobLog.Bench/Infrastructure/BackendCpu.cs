using System.Globalization;
using Npgsql;

namespace JobLog.Bench.Infrastructure;

/// <summary>
/// The CPU time of the PostgreSQL backends serving one database, from <c>/proc/PID/schedstat</c> (nanoseconds, where
/// <see cref="ServerCpu"/>'s <c>/proc/PID/stat</c> counts 10 ms ticks): what the ledger's own statements cost the server,
/// free of other sessions' load. Backends that exit between two readings are missed, so read it around work on
/// connections that stay open (the writer's).
/// </summary>
internal static class BackendCpu
{
    /// <summary>Nanoseconds of CPU so far, per backend pid of <paramref name="database"/> (empty off Linux or without PostgreSQL).</summary>
    public static async Task<Dictionary<int, long>> TakeAsync(string? database)
    {
        var result = new Dictionary<int, long>();
        if (database is null || !OperatingSystem.IsLinux())
        {
            return result;
        }

        await using var connection = new NpgsqlConnection(ThrowawayLedger.PostgresAdmin);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT pid FROM pg_stat_activity WHERE datname = $1", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = database });
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var pid = reader.GetInt32(0);
            if (Of(pid) is { } ns)
            {
                result[pid] = ns;
            }
        }

        return result;
    }

    /// <summary>One process's CPU time so far in nanoseconds (the first field of its schedstat), or null when it is gone.</summary>
    public static long? Of(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/schedstat");
            return long.Parse(text.AsSpan(0, text.IndexOf(' ', StringComparison.Ordinal)), CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>The CPU the backends alive at both readings spent between them.</summary>
    public static TimeSpan Between(Dictionary<int, long> before, Dictionary<int, long> after) =>
        TimeSpan.FromTicks(after.Sum(p => before.TryGetValue(p.Key, out var b) ? p.Value - b : 0) / 100);
}
