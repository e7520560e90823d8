using JobLog.Recording;
using JobLog.Retention;
using JobLog.Storage;
using JobLog.Storage.Partitioning;
using JobLog.Sweeping;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

/// <summary>
/// Each of JobLog's services that write the ledger on their own is a hosted service of its own. The first
/// <c>LedgerWritingHost</c> (session 44) was one type for all four, and <c>AddHostedService</c> adds an implementation type
/// once: the heartbeat stayed, the sweeper, the partition maintenance and the retention were silently not hosted (the
/// clean-clone CI run of 0e564e2 failed <c>PurgeCommandTests.AddJobLogRetention_RunsAsAHostedService</c>).
/// </summary>
public class LedgerWritingHostTests
{
    [Test]
    public void AddJobLog_WithRetention_HostsTheHeartbeatSweeperPartitionsAndRetention_EachOnce()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddJobLog(o => o.UseSqlite("Data Source=" + Path.Combine(Path.GetTempPath(), "joblog-writinghost-unused.db")));
        services.AddJobLogRetention();
        services.AddJobLog(o => o.Sweeper.Enabled = true);
        services.AddJobLogRetention();
        using var provider = services.BuildServiceProvider();

        var hosted = provider.GetServices<IHostedService>().Select(h => h.GetType()).ToList();

        Assert.That(hosted.Where(t => t.IsGenericType && t.GetGenericTypeDefinition() == typeof(LedgerWritingHost<>)).Select(t => t.GetGenericArguments()[0]),
            Is.EquivalentTo(new[] { typeof(HostHeartbeat), typeof(LedgerPartitionService), typeof(TaskLogSweeper), typeof(LedgerRetentionService) }),
            string.Join(", ", hosted.Select(t => t.Name)));
    }
}
