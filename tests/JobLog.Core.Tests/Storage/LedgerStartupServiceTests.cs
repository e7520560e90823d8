using JobLog.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

public class LedgerStartupServiceTests
{
    [Test]
    public async Task AHostStoppedAgainAfterItsDisposal_StopsWithoutAnError()
    {
        // The start-up migration's service owns a cancellation source (session 22): a host stopped again after its
        // disposal (a second dispose, as a test fixture's tear-down may do) threw ObjectDisposedException from it.
        var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        await host.DisposeAsync();

        Assert.DoesNotThrowAsync(() => host.Host.StopAsync());
    }
}
