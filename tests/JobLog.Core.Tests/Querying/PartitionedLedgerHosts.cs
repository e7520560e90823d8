using JobLog.Storage.Partitioning;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace JobLog.Core.Tests.Querying;

/// <summary>A partitioned PostgreSQL ledger on <paramref name="clock"/>'s time, with day partitions from two days before it.</summary>
internal static class PartitionedLedgerHosts
{
    public static async Task<LedgerHost> StartAsync(FakeTimeProvider clock)
    {
        var host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o => o.Partitioning.Enabled = true,
            services: s => s.AddSingleton<TimeProvider>(clock));
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, clock.GetUtcNow().UtcDateTime.AddDays(-2), 1, CancellationToken.None);
        return host;
    }
}
