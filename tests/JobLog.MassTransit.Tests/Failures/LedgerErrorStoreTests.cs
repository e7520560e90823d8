using JobLog.Failures;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Failures;

[TestFixture]
public sealed class LedgerErrorStoreTests
{
    [Test]
    public async Task ErrorStore_AKeptFailureIsAcknowledgedWithoutGoingToError_AndRetriesFromTheLedger()
    {
        await using var vhost = await RabbitMqVhost.CreateAsync();
        var gate = new Gate();
        await using var host = await FailureTestKit.StartAsync(TestLedger.Sqlite(), gate, vhost, o => o.Failures.LedgerIsErrorStore = true);
        var ids = await FailureTestKit.PublishAsync(host, 3, "store");
        await FailureTestKit.WaitFailedAndKeptAsync(host, ids);
        await Task.Delay(500);

        Assert.That(await vhost.MessagesInQueueAsync("toggled_error"), Is.LessThanOrEqualTo(0), "not moved to _error");
        Assert.That(await vhost.MessagesInQueueAsync("toggled"), Is.Zero, "acknowledged");
        gate.Open = true;
        var receipt = await host.Services.GetRequiredService<IFailureActions>().RetryAsync(new FailureActionRequest(ids, "tester"));
        await FailureTestKit.WaitAsync(host, async db => await db.TaskLogs.CountAsync(t => ids.Contains(t.Id) && t.State == TaskState.Succeeded) == 3, "retried");
        Assert.That(receipt.Accepted, Is.EqualTo(3));
        Assert.That(ids.Select(id => gate.Succeeded[id]), Is.All.EqualTo(1));
    }

    [Test]
    public async Task ErrorStore_WhenTheCopyCannotBeCommitted_TheDeliveryIsNotAcknowledgedAndComesBack()
    {
        await using var vhost = await RabbitMqVhost.CreateAsync();
        var gate = new Gate();
        await using var host = await FailureTestKit.StartAsync(TestLedger.Sqlite(), gate, vhost, o => o.Failures.LedgerIsErrorStore = true);
        await host.QueryAsync(db => db.Database.ExecuteSqlRawAsync("DROP TABLE \"JobLogKeptMessages\""));

        var ids = await FailureTestKit.PublishAsync(host, 1, "lost?");
        await LedgerHost.EventuallyAsync(() => Task.FromResult(gate.Attempts.GetValueOrDefault(ids[0]) >= 3), because: "delivered again");

        Assert.That(await vhost.MessagesInQueueAsync("toggled_error"), Is.LessThanOrEqualTo(0), "not moved to _error");
        gate.Open = true;
        await LedgerHost.EventuallyAsync(() => Task.FromResult(gate.Succeeded.ContainsKey(ids[0])), because: "consumed once the fault is fixed");
    }
}
