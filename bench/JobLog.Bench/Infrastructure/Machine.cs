using System.Globalization;
using System.Runtime.InteropServices;
using Npgsql;

namespace JobLog.Bench.Infrastructure;

/// <summary>Where the numbers were taken.</summary>
internal static class Machine
{
    public static async Task<string> DescribeAsync(bool rabbit, bool postgres)
    {
        var lines = new List<string>
        {
            $"- date: {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC",
            $"- machine: {Environment.ProcessorCount} cores (nproc), {MemoryGiB()} GiB memory, CPU {CpuModel()}, {RuntimeInformation.OSDescription}",
            $"- runtime: {RuntimeInformation.FrameworkDescription}, workstation concurrent GC, MassTransit {typeof(global::MassTransit.IBus).Assembly.GetName().Version}",
        };
        if (rabbit)
        {
            try
            {
                var version = (await ThrowawayVhost.RabbitMqCtlAsync("-q", "version")).Trim();
                lines.Add($"- RabbitMQ {version} on 127.0.0.1 (same machine)");
            }
            catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                lines.Add("- RabbitMQ: not reachable (" + ex.Message + ")");
            }
        }

        if (postgres)
        {
            try
            {
                await using var connection = new NpgsqlConnection(ThrowawayLedger.PostgresAdmin);
                await connection.OpenAsync();
                await using var command = new NpgsqlCommand("SHOW server_version; ", connection);
                var version = await command.ExecuteScalarAsync();
                await using var sync = new NpgsqlCommand("SHOW synchronous_commit", connection);
                lines.Add($"- PostgreSQL {version} on 127.0.0.1 (same machine), synchronous_commit={await sync.ExecuteScalarAsync()}");
            }
            catch (NpgsqlException ex)
            {
                lines.Add("- PostgreSQL: not reachable (" + ex.Message + ")");
            }
        }

        return string.Join('\n', lines);
    }

    private static string MemoryGiB()
    {
        try
        {
            var line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
            var kb = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            return (kb / 1024.0 / 1024.0).ToString("0.0", CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return "?";
        }
    }

    private static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            return line is null ? RuntimeInformation.ProcessArchitecture.ToString() : line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();
        }
        catch (IOException)
        {
            return RuntimeInformation.ProcessArchitecture.ToString();
        }
    }
}
