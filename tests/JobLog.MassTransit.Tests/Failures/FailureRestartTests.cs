using JobLog.Failures;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Failures;

[TestFixture]
public sealed class FailureRestartTests
{
    [Test]
    public async Task BulkRetry_RestartedMidway_RetriesEachTaskExactlyOnce()
    {
        // 1,000 in 25 batches sent over ~3.3 s, as 5,000 were (batches of 200 at 1,500/s): the restart after a quarter lands
        // as far into the sending. 5,000 failed deliveries took 140 s to fail and be kept at load 35 and > 180 s at load 50
        // (4,085 at the deadline): each is a consume, a fault, a move to _error and a kept copy, on a CPU shared with
        // the other test projects. With 1,000 the whole test took 1 to 3 3/4 min at load 40 to 55; its waits are bounds on a
        // hang (10 min), not on speed.
        const int count = 1000;
        await using var vhost = await RabbitMqVhost.CreateAsync();
        await using var ledger = TestLedger.Sqlite();
        var gate = new Gate();
        void Options(JobLogOptions o)
        {
            o.Failures.RetriesPerSecond = 300;
            o.Failures.RetryBatchSize = 40;
        }

        var first = await FailureTestKit.StartAsync(ledger, gate, vhost, Options);
        var ids = await FailureTestKit.PublishAsync(first, count, "bulk");
        await FailureTestKit.WaitFailedAndKeptAsync(first, ids, seconds: 600);
        gate.Open = true;
        var receipt = await first.Services.GetRequiredService<IFailureActions>().RetryAsync(new FailureActionRequest(ids, "tester"));
        await FailureTestKit.WaitAsync(
            first, async db => await db.FailureActionItems.CountAsync(i => i.ActionId == receipt.RequestId && i.State == FailureActionItemState.Done) >= count / 4,
            "a quarter sent");
        await first.Host.StopAsync();
        first.Host.Dispose();

        await using var second = await FailureTestKit.StartAsync(ledger, gate, vhost, Options);
        var progress = await FailureTestKit.WaitRetryDoneAsync(second, receipt.RequestId, seconds: 600);
        await FailureTestKit.WaitAsync(
            second, async db => await db.TaskLogs.CountAsync(t => t.State == TaskState.Succeeded) == count, "every task succeeded", seconds: 600);

        Assert.That((receipt.Accepted, progress.Sent, progress.Skipped, progress.Failed), Is.EqualTo((count, count, 0, 0)));
        Assert.That(gate.Succeeded.Count, Is.EqualTo(count));
        Assert.That(gate.Succeeded.Values.Distinct(), Is.EqualTo(new[] { 1 }), "no task consumed twice");
        var runs = await second.QueryAsync(db => db.TaskRunLogs.AsNoTracking().GroupBy(r => r.TaskId).Select(g => g.Count()).Distinct().ToListAsync());
        Assert.That(runs, Is.EqualTo(new[] { 2 }), "one failed and one retried run per task");
    }

    [Test]
    public async Task Sender_AClaimLeftSendingByACrash_IsCountedSentWhenARunFollowed_ElseSentAgain()
    {
        var gate = new Gate();
        await using var host = await FailureTestKit.StartAsync(TestLedger.Sqlite(), gate, null, o =>
        {
            o.Failures.RetryPollInterval = TimeSpan.FromHours(1);
            // The crash's claims are 5 min old, past this lease. A 1-s lease (before) also bounded this test's own send: the
            // sender gives back a claim it reaches after half the lease and cancels a send at three quarters, so under load
            // the one RunOnceAsync gave the second back unsent and, polling hourly, nothing sent it ("the second retried").
            o.Failures.RetryClaimLease = TimeSpan.FromMinutes(1);
        });
        var ids = await FailureTestKit.PublishAsync(host, 2, "crash");
        await FailureTestKit.WaitFailedAndKeptAsync(host, ids);
        gate.Open = true;
        // A crash between send and mark: both claims left "sending"; the first one's message was consumed after the claim.
        var claimedAt = DateTime.UtcNow.AddMinutes(-5);
        var action = Guid.NewGuid();
        await host.QueryAsync(async db =>
        {
            db.FailureActions.Add(new FailureActionLog { Id = action, Kind = FailureActionKind.Retry, RequestedBy = "tester", RequestedAt = claimedAt, Count = 2 });
            foreach (var id in ids)
            {
                var kept = await db.KeptMessages.AsNoTracking().FirstAsync(k => k.TaskId == id);
                db.FailureActionItems.Add(new FailureActionItemLog
                {
                    ActionId = action, TaskId = id, State = FailureActionItemState.Sending, KeptMessageId = kept.Id, ClaimedAt = claimedAt,
                });
            }

            await db.SaveChangesAsync();
            // The failed runs came before the claim; only the first task has a run after it.
            await db.TaskRunLogs.Where(r => ids.Contains(r.TaskId)).ExecuteUpdateAsync(s => s.SetProperty(r => r.Start, claimedAt.AddMinutes(-1)));
            await db.TaskRunLogs.Where(r => r.TaskId == ids[0]).ExecuteUpdateAsync(s => s.SetProperty(r => r.Start, claimedAt.AddSeconds(1)));
            return 0;
        });

        var sender = JobLog.MassTransit.Internal.Failures.FailureRetrySender.Create(host.Services);
        var handled = await sender.RunOnceAsync(host.Services.GetRequiredService<IBus>(), CancellationToken.None);
        await FailureTestKit.WaitAsync(host, async db => await db.TaskLogs.CountAsync(t => t.Id == ids[1] && t.State == TaskState.Succeeded) == 1, "the second retried");

        Assert.That(handled, Is.EqualTo(1), "only the claim without a run is sent again");
        var progress = await host.Services.GetRequiredService<IFailureActions>().GetRetryProgressAsync(action);
        Assert.That(progress, Is.EqualTo(new RetryProgress(action, 2, 2, 0, 0, true)));
        Assert.That(gate.Succeeded.ContainsKey(ids[0]), Is.False, "the first was not sent again");
        Assert.That(gate.Succeeded[ids[1]], Is.EqualTo(1));
    }
}
