using System.Collections.Concurrent;
using JobLog.Failures;
using JobLog.MassTransit.Internal.Failures;
using JobLog.Storage;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Failures;

/// <summary>Two retry senders (two processes) on one PostgreSQL ledger, interleaved by a held lock and a fake clock.</summary>
[TestFixture]
public sealed class FailureSenderRaceTests
{
    [Test]
    public async Task Senders_AClaimTakenOverBeforeItsSendsBegan_IsSentOnlyByTheNewHolder()
    {
        // Sender A claims two retries, then is slow before sending them (here: held by a lock on a table its batch reads;
        // in production a low RetriesPerSecond, a slow broker, a GC pause). The claim's lease runs out, sender B (another
        // process) takes the retries over and sends them. A must not send them as well, nor mark or give back B's claim:
        // a retried ChargeCard is charged once.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var setup = await PendingRetriesAsync(clock, 2, "race");
        var (ledger, host, action, ids) = (setup.Ledger, setup.Host, setup.Action, setup.Ids);

        var bus = host.Services.GetRequiredService<IBus>();
        var sends = new SendCounter();
        using var observer = bus.ConnectSendObserver(sends);
        var a = FailureRetrySender.Create(host.Services);
        var b = FailureRetrySender.Create(host.Services);

        await using var holder = new NpgsqlConnection(ledger.ConnectionString);
        await holder.OpenAsync();
        await using var hold = await holder.BeginTransactionAsync();
        await using (var lockActions = new NpgsqlCommand($"LOCK TABLE \"{LedgerModel.FailureActions}\" IN ACCESS EXCLUSIVE MODE", holder, hold))
        {
            await lockActions.ExecuteNonQueryAsync();
        }

        var first = Task.Run(() => a.RunOnceAsync(bus, CancellationToken.None));
        await WaitBlockedAsync(ledger.ConnectionString, holder.ProcessID, 1);
        var claimedByA = await ClaimsAsync(host, action);
        Assert.That(claimedByA, Has.Count.EqualTo(2), "A claimed both and waits on the lock");

        clock.Advance(TimeSpan.FromMinutes(2));
        var second = Task.Run(() => b.RunOnceAsync(bus, CancellationToken.None));
        await WaitBlockedAsync(ledger.ConnectionString, holder.ProcessID, 2);
        var claimedByB = await ClaimsAsync(host, action);
        Assert.That(claimedByB.Intersect(claimedByA), Is.Empty, "B took both over with its own claim");

        await hold.RollbackAsync();
        await Task.WhenAll(first, second);

        Assert.That(ids.Select(sends.Of).ToList(), Is.EqualTo(new[] { 1, 1 }), "each retry sent once, by B");
        var items = await host.QueryAsync(db => db.FailureActionItems.AsNoTracking().Where(i => i.ActionId == action)
            .Select(i => new { i.State, i.ClaimedAt }).ToListAsync());
        Assert.That(items.Select(i => (i.State, i.ClaimedAt!.Value)), Is.EquivalentTo(claimedByB.Select(c => (FailureActionItemState.Done, c))));
    }

    [Test]
    public async Task Sender_ASendThatHangsPastThreeQuartersOfTheLease_IsCancelledAndMarkedFailed_NotSentAgainByATakeover()
    {
        // Sender A's send hangs (a blocked broker, a publish confirm that never comes). Before the fix it hung on, the
        // claim's lease ran out, sender B took the retry over and sent it, and when A's send finally went through the
        // message was consumed twice. Now A cancels its send at three quarters of the lease and ends the retry as failed
        // (its outcome is unknown): B has nothing to take over.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var setup = await PendingRetriesAsync(clock, 1, "hang");
        var (host, action, id) = (setup.Host, setup.Action, setup.Ids[0]);
        var bus = host.Services.GetRequiredService<IBus>();
        var sends = new HangingFirstSend();
        using var observer = bus.ConnectSendObserver(sends);
        var a = FailureRetrySender.Create(host.Services);
        var b = FailureRetrySender.Create(host.Services);

        var first = Task.Run(() => a.RunOnceAsync(bus, CancellationToken.None));
        await sends.FirstEntered.Task.WaitAsync(TimeSpan.FromSeconds(60));
        clock.Advance(TimeSpan.FromSeconds(50));
        var ended = await Task.WhenAny(first, Task.Delay(TimeSpan.FromSeconds(120)));

        clock.Advance(TimeSpan.FromMinutes(2));
        await b.RunOnceAsync(bus, CancellationToken.None);
        sends.Release();
        await first.WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Multiple(() =>
        {
            Assert.That(ended, Is.SameAs(first), "A's batch ended once its send was cancelled at 3/4 of the lease");
            Assert.That(sends.Completed(id), Is.Zero, "neither the cancelled send nor a takeover sent the retry");
        });
        var item = await host.QueryAsync(db => db.FailureActionItems.AsNoTracking().SingleAsync(i => i.ActionId == action));
        Assert.That((item.State, item.Reason), Is.EqualTo((FailureActionItemState.Failed, (string?)FailureRetrySender.SendTimedOutReason)));
    }

    /// <summary>A started failure host with <paramref name="count"/> failed, kept messages and a retry action whose items are pending.</summary>
    private static async Task<PendingRetries> PendingRetriesAsync(FakeTimeProvider clock, int count, string secret)
    {
        var gate = new Gate();
        var ledger = await TestLedger.PostgresAsync();
        var host = await FailureTestKit.StartAsync(
            ledger, gate, null,
            o =>
            {
                o.Failures.RetryPollInterval = TimeSpan.FromHours(1);
                o.Failures.RetryClaimLease = TimeSpan.FromMinutes(1);
            },
            s => s.AddSingleton<TimeProvider>(clock));
        var ids = await FailureTestKit.PublishAsync(host, count, secret);
        await FailureTestKit.WaitFailedAndKeptAsync(host, ids);
        gate.Open = true;
        clock.Advance(TimeSpan.FromSeconds(1));

        // The items are written here, not by RetryAsync: its signal would wake the hosted sender.
        var action = Guid.NewGuid();
        await host.QueryAsync(async db =>
        {
            db.FailureActions.Add(new FailureActionLog
            {
                Id = action, Kind = FailureActionKind.Retry, RequestedBy = "tester", RequestedAt = clock.GetUtcNow().UtcDateTime, Count = count,
            });
            foreach (var id in ids)
            {
                var kept = await db.KeptMessages.AsNoTracking().FirstAsync(k => k.TaskId == id);
                db.FailureActionItems.Add(new FailureActionItemLog
                {
                    ActionId = action, TaskId = id, State = FailureActionItemState.Pending, KeptMessageId = kept.Id,
                });
            }

            return await db.SaveChangesAsync();
        });
        return new PendingRetries(ledger, host, action, ids);
    }

    private static Task<List<DateTime>> ClaimsAsync(LedgerHost host, Guid action) =>
        host.QueryAsync(db => db.FailureActionItems.AsNoTracking()
            .Where(i => i.ActionId == action && i.State == FailureActionItemState.Sending).Select(i => i.ClaimedAt!.Value).ToListAsync());

    private static Task WaitBlockedAsync(string connectionString, int holder, int count) =>
        LedgerHost.EventuallyAsync(
            async () =>
            {
                await using var probe = new NpgsqlConnection(connectionString);
                await probe.OpenAsync();
                await using var command = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE @pid = ANY(pg_blocking_pids(pid))", probe);
                command.Parameters.AddWithValue("pid", holder);
                return (long)(await command.ExecuteScalarAsync())! == count;
            },
            TimeSpan.FromSeconds(60),
            $"{count} sender(s) waiting on the held lock");

    private sealed record PendingRetries(TestLedger Ledger, LedgerHost Host, Guid Action, List<Guid> Ids) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Host.DisposeAsync();
            await Ledger.DisposeAsync();
        }
    }

    /// <summary>Holds the first send until it is cancelled or released; counts the sends that completed.</summary>
    private sealed class HangingFirstSend : ISendObserver
    {
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly SendCounter _completed = new();
        private int _sends;

        public TaskCompletionSource FirstEntered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Completed(Guid messageId) => _completed.Of(messageId);

        public void Release() => _release.TrySetResult();

        public async Task PreSend<T>(SendContext<T> context)
            where T : class
        {
            if (Interlocked.Increment(ref _sends) == 1)
            {
                FirstEntered.TrySetResult();
                await _release.Task.WaitAsync(context.CancellationToken);
            }
        }

        public Task PostSend<T>(SendContext<T> context)
            where T : class => _completed.PostSend(context);

        public Task SendFault<T>(SendContext<T> context, Exception exception)
            where T : class => Task.CompletedTask;
    }

    private sealed class SendCounter : ISendObserver
    {
        private readonly ConcurrentDictionary<Guid, int> _sent = new();

        public int Of(Guid messageId) => _sent.GetValueOrDefault(messageId);

        public Task PreSend<T>(SendContext<T> context)
            where T : class => Task.CompletedTask;

        public Task PostSend<T>(SendContext<T> context)
            where T : class
        {
            if (context.MessageId is { } id)
            {
                _sent.AddOrUpdate(id, 1, (_, n) => n + 1);
            }

            return Task.CompletedTask;
        }

        public Task SendFault<T>(SendContext<T> context, Exception exception)
            where T : class => Task.CompletedTask;
    }
}
