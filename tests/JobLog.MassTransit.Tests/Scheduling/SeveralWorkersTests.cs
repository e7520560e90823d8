using System.Collections.Concurrent;
using JobLog.Scheduling;
using JobLog.Sweeping;
using JobLog.Testing;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Scheduling;

/// <summary>
/// Several workers on one ledger at once (docs/architecture.md#scheduler): each scheduler dispatcher and each sweeper is its own instance
/// with its own connections, as in separate processes; PostgreSQL claims with SKIP LOCKED, SQLite has one writer.
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class SeveralWorkersTests(LedgerProvider provider)
{
    private LedgerHost? _host;

    [TearDown]
    public async Task TearDown()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
            _host = null;
        }
    }

    private async Task<LedgerHost> Start(Action<JobLogOptions>? options = null)
    {
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), options);
        return _host;
    }

    private static ScheduledMessageStore Store(LedgerHost host) => ActivatorUtilities.CreateInstance<ScheduledMessageStore>(host.Services);

    private static ScheduledMessageLog Due(Guid id, DateTime at) => new()
    {
        Id = id,
        MessageId = id,
        MessageType = "urn:message:Shop:ChargeCard",
        Destination = "queue:charge-card",
        ScheduledTime = at,
        ContentType = "application/vnd.masstransit+json",
        Body = [1, 2, 3],
        CreatedAt = at.AddMinutes(-1),
        Host = "test",
    };

    [Test]
    public async Task FourDispatchers_ClaimingAtOnce_ClaimEachDueMessageExactlyOnce()
    {
        var host = await Start();
        var now = DateTime.UtcNow;
        var ids = Enumerable.Range(0, 600).Select(_ => NewId.NextGuid()).ToList();
        var seed = Store(host);
        foreach (var chunk in ids.Chunk(50))
        {
            await Task.WhenAll(chunk.Select(id => seed.AddAsync(Due(id, now.AddSeconds(-1)), CancellationToken.None)));
        }

        var claims = new ConcurrentBag<(int Dispatcher, Guid Id)>();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(dispatcher => Task.Run(async () =>
        {
            var store = Store(host);
            while (true)
            {
                var token = NewId.NextGuid();
                var claimed = await store.ClaimDueAsync(token, now, TimeSpan.FromMinutes(1), 25, CancellationToken.None);
                if (claimed.Count == 0)
                {
                    return;
                }

                foreach (var message in claimed)
                {
                    claims.Add((dispatcher, message.Id));
                }

                Assert.That(await store.MarkSentAsync(token, claimed.Select(c => c.Id).ToList(), now, "d" + dispatcher, CancellationToken.None),
                    Is.EqualTo(claimed.Count), "a claim's holder marks all it claimed");
            }
        })));

        Assert.That(claims.Select(c => c.Id), Is.EquivalentTo(ids), "every message claimed once, none twice");
        var states = await host.QueryAsync(db => db.ScheduledMessages.GroupBy(s => s.State).Select(g => new { g.Key, Count = g.Count() }).ToListAsync());
        Assert.That(states.Single().Key, Is.EqualTo(ScheduledMessageState.Sent));
        TestContext.Out.WriteLine("claims per dispatcher: " + string.Join(", ", claims.GroupBy(c => c.Dispatcher).Select(g => g.Count())));
    }

    [Test]
    public async Task ClaimOfADispatcherThatDied_IsTakenByAnotherOnceItsLeaseRunsOut_AndTheDeadClaimCanNoLongerMark()
    {
        var host = await Start();
        var now = DateTime.UtcNow;
        var ids = Enumerable.Range(0, 10).Select(_ => NewId.NextGuid()).ToList();
        var dead = Store(host);
        var alive = Store(host);
        foreach (var id in ids)
        {
            await dead.AddAsync(Due(id, now.AddSeconds(-1)), CancellationToken.None);
        }

        var deadToken = NewId.NextGuid();
        Assert.That(await dead.ClaimDueAsync(deadToken, now, TimeSpan.FromSeconds(30), 100, CancellationToken.None), Has.Count.EqualTo(10));
        Assert.That(await alive.ClaimDueAsync(NewId.NextGuid(), now.AddSeconds(29), TimeSpan.FromSeconds(30), 100, CancellationToken.None), Is.Empty,
            "claimed messages are not taken while the lease holds");
        Assert.That(await alive.NextDueAsync(CancellationToken.None), Is.EqualTo(now.AddSeconds(30)).Within(TimeSpan.FromMilliseconds(0.01)),
            "the next wake-up is when the lease runs out");

        var aliveToken = NewId.NextGuid();
        var retaken = await alive.ClaimDueAsync(aliveToken, now.AddSeconds(31), TimeSpan.FromSeconds(30), 100, CancellationToken.None);

        Assert.That(retaken.Select(m => m.Id), Is.EquivalentTo(ids));
        Assert.That(await dead.MarkSentAsync(deadToken, ids, now.AddSeconds(32), "dead", CancellationToken.None), Is.Zero);
        Assert.That(await alive.MarkSentAsync(aliveToken, ids, now.AddSeconds(32), "alive", CancellationToken.None), Is.EqualTo(10));
    }

    [Test]
    public async Task FailedSend_IsRetriedAfterItsDelay_AndAStoppingDispatcherGivesBackWhatItDidNotSend()
    {
        var host = await Start();
        var now = DateTime.UtcNow;
        var store = Store(host);
        var (failed, unsent) = (NewId.NextGuid(), NewId.NextGuid());
        await store.AddAsync(Due(failed, now.AddSeconds(-2)), CancellationToken.None);
        await store.AddAsync(Due(unsent, now.AddSeconds(-1)), CancellationToken.None);
        var token = NewId.NextGuid();
        Assert.That(await store.ClaimDueAsync(token, now, TimeSpan.FromMinutes(1), 10, CancellationToken.None), Has.Count.EqualTo(2));

        await store.RetryLaterAsync(token, failed, now.AddSeconds(8), "broker unreachable", CancellationToken.None);
        await store.ReleaseAsync(token, [unsent], CancellationToken.None);

        var again = await store.ClaimDueAsync(NewId.NextGuid(), now.AddSeconds(1), TimeSpan.FromMinutes(1), 10, CancellationToken.None);
        Assert.That(again.Select(m => m.Id), Is.EqualTo(new[] { unsent }), "a message given back is due again at once");
        var retried = await store.ClaimDueAsync(NewId.NextGuid(), now.AddSeconds(9), TimeSpan.FromMinutes(1), 10, CancellationToken.None);
        Assert.That(retried.Select(m => (m.Id, m.Attempts)), Is.EqualTo(new[] { (failed, 1) }), "a failed send is retried after its delay");
        var row = await host.QueryAsync(db => db.ScheduledMessages.AsNoTracking().SingleAsync(s => s.Id == failed));
        Assert.That(row.LastError, Is.EqualTo("broker unreachable"));
    }

    [Test]
    public async Task Claim_WithThisProcesssBrokers_TakesOnlyTheirMessagesAndRelativeOnes_AndTheNextDueIgnoresTheOthers()
    {
        var host = await Start();
        var now = DateTime.UtcNow;
        var store = Store(host);
        var (mine, other, relative) = (NewId.NextGuid(), NewId.NextGuid(), NewId.NextGuid());
        await store.AddAsync(To(Due(mine, now.AddSeconds(-3)), "rabbitmq://127.0.0.1/One_vhost/charge-card"), CancellationToken.None);
        await store.AddAsync(To(Due(other, now.AddSeconds(-2)), "rabbitmq://127.0.0.1/two/charge-card"), CancellationToken.None);
        await store.AddAsync(Due(relative, now.AddSeconds(-1)), CancellationToken.None);
        string[] brokers = ["rabbitmq://127.0.0.1/one_vhost/"];

        var claimed = await store.ClaimDueAsync(NewId.NextGuid(), now, TimeSpan.FromMinutes(1), 10, brokers, CancellationToken.None);
        Assert.That(claimed.Select(m => m.Id), Is.EqualTo(new[] { mine, relative }), "its broker's (without case) and the relative one");
        Assert.That(await store.NextDueAsync(brokers, CancellationToken.None), Is.EqualTo(now.AddMinutes(1)).Within(TimeSpan.FromMilliseconds(0.01)),
            "the other broker's due message does not wake this dispatcher");
        var others = await store.ClaimDueAsync(NewId.NextGuid(), now, TimeSpan.FromMinutes(1), 10, ["rabbitmq://127.0.0.1/two/"], CancellationToken.None);
        Assert.That(others.Select(m => m.Id), Is.EqualTo(new[] { other }), "left for the process that reaches it");

        static ScheduledMessageLog To(ScheduledMessageLog message, string destination)
        {
            message.Destination = destination;
            return message;
        }
    }

    [Test]
    public async Task Stranded_CountsOnlyOverdueMessagesForBrokersThisProcessDoesNotReach()
    {
        var host = await Start();
        var now = DateTime.UtcNow;
        var store = Store(host);
        await store.AddAsync(To(Due(NewId.NextGuid(), now.AddMinutes(-5)), "rabbitmq://127.0.0.1/one/charge-card"), CancellationToken.None);
        await store.AddAsync(To(Due(NewId.NextGuid(), now.AddMinutes(-3)), "rabbitmq://127.0.0.1/two/charge-card"), CancellationToken.None);
        await store.AddAsync(To(Due(NewId.NextGuid(), now.AddMinutes(-2)), "rabbitmq://127.0.0.1/three/charge-card"), CancellationToken.None);
        await store.AddAsync(To(Due(NewId.NextGuid(), now.AddSeconds(-10)), "rabbitmq://127.0.0.1/two/charge-card"), CancellationToken.None);
        await store.AddAsync(Due(NewId.NextGuid(), now.AddMinutes(-4)), CancellationToken.None);
        string[] brokers = ["rabbitmq://127.0.0.1/ONE/"];

        var (count, destination, scheduled) = await store.StrandedAsync(brokers, now.AddMinutes(-1), CancellationToken.None);
        Assert.That(count, Is.EqualTo(2), "the other brokers' messages overdue by more than a minute; not its own, not a relative one, not a recent one");
        Assert.That(destination, Is.EqualTo("rabbitmq://127.0.0.1/two/charge-card"), "the earliest");
        Assert.That(scheduled, Is.EqualTo(now.AddMinutes(-3)).Within(TimeSpan.FromMilliseconds(0.01)));
        Assert.That((await store.StrandedAsync(["rabbitmq://127.0.0.1/one/", "rabbitmq://127.0.0.1/two/", "rabbitmq://127.0.0.1/three/"],
            now.AddMinutes(-1), CancellationToken.None)).Count, Is.Zero, "all reachable");

        static ScheduledMessageLog To(ScheduledMessageLog message, string destination)
        {
            message.Destination = destination;
            return message;
        }
    }

    [Test]
    public async Task CancellationArrivingBeforeItsMessage_KeepsTheMessageFromBeingSent_AndExpiresItsTask()
    {
        var host = await Start();
        var now = DateTime.UtcNow;
        var store = Store(host);
        var token = NewId.NextGuid();

        Assert.That(await store.CancelAsync(token, now, "test", _ => "cancelled early", CancellationToken.None), Is.EqualTo(CancelOutcome.CancelledBeforeStored));
        var late = Due(token, now.AddSeconds(-1));
        Assert.That(await store.AddAsync(late, CancellationToken.None), Is.EqualTo(ScheduledMessageState.Cancelled));
        await store.ExpireCancelledTaskAsync(late, now, "cancelled early", CancellationToken.None);

        Assert.That(await store.ClaimDueAsync(NewId.NextGuid(), now, TimeSpan.FromMinutes(1), 10, CancellationToken.None), Is.Empty);
        var task = await host.TaskAsync(token);
        Assert.That((task.State, task.IsSetAsStale, task.ErrorMessage, task.Name), Is.EqualTo((TaskState.Expired, true, "cancelled early", "ChargeCard")));
        Assert.That(await store.CancelAsync(token, now, "test", _ => "again", CancellationToken.None), Is.EqualTo(CancelOutcome.NotPending));
        Assert.That(await store.AddAsync(late, CancellationToken.None), Is.Null, "a redelivered schedule stores nothing twice");
    }

    [Test]
    public async Task ThreeSweepers_AtOnce_ExpireEachStaleTaskOnce()
    {
        // Small batches, so that the sweepers interleave.
        var host = await Start(o => o.Sweeper.BatchSize = 20);
        var now = DateTime.UtcNow;
        var tasks = Enumerable.Range(0, 300).Select(i => new TaskLog
        {
            Id = NewId.NextGuid(),
            Name = "Stale",
            DispatchedAt = now.AddMinutes(-10),
            EstimatedTimeOfFirstArrival = now.AddMinutes(-10),
            Stale = now.AddMinutes(-1).AddMilliseconds(i),
        }).ToList();
        await host.QueryAsync(async db =>
        {
            db.TaskLogs.AddRange(tasks);
            return await db.SaveChangesAsync();
        });

        var results = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Task.Run(() =>
        {
            var sweeper = ActivatorUtilities.CreateInstance<TaskLogSweeper>(host.Services);
            return sweeper.SweepOnceAsync(CancellationToken.None);
        })));

        Assert.That(results.Sum(r => r.Expired), Is.EqualTo(300), "each stale task counted by exactly one sweeper");
        var states = await host.QueryAsync(db => db.TaskLogs.Select(t => t.State).Distinct().ToListAsync());
        Assert.That(states, Is.EqualTo(new[] { TaskState.Expired }));
        TestContext.Out.WriteLine("expired per sweeper: " + string.Join(", ", results.Select(r => r.Expired)));
    }

    [Test]
    public async Task Cancellations_RacingTheirSchedules_CancelEveryMessage()
    {
        // MassTransit sends ScheduleMessage and CancelScheduledMessage to one queue: with a prefetch above one they are
        // consumed at once, the cancellation sometimes first, sometimes during the store.
        var host = await Start();
        var at = DateTime.UtcNow.AddMinutes(10);
        var ids = Enumerable.Range(0, 200).Select(_ => NewId.NextGuid()).ToList();
        var adder = Store(host);
        var canceller = Store(host);
        foreach (var chunk in ids.Chunk(20))
        {
            await Task.WhenAll(chunk.SelectMany(id => new[]
            {
                Task.Run(async () =>
                {
                    var message = Due(id, at);
                    if (await adder.AddAsync(message, CancellationToken.None) == ScheduledMessageState.Cancelled)
                    {
                        await adder.ExpireCancelledTaskAsync(message, DateTime.UtcNow, "cancelled first", CancellationToken.None);
                    }
                }),
                Task.Run(() => canceller.CancelAsync(id, DateTime.UtcNow, "test", _ => "cancelled", CancellationToken.None)),
            }));
        }

        var states = await host.QueryAsync(db => db.ScheduledMessages.Where(m => ids.Contains(m.Id))
            .GroupBy(m => m.State).Select(g => new { g.Key, Count = g.Count() }).ToListAsync());
        Assert.That(states.ToDictionary(s => s.Key, s => s.Count), Is.EqualTo(new Dictionary<ScheduledMessageState, int>
        {
            [ScheduledMessageState.Cancelled] = ids.Count,
        }), "every message whose cancellation was consumed is never sent");
        var expired = await host.QueryAsync(db => db.TaskLogs.CountAsync(t => ids.Contains(t.Id) && t.State == TaskState.Expired));
        Assert.That(expired, Is.EqualTo(ids.Count), "and its task is EXPIRED");
    }

    [Test]
    public async Task ACancellation_WhoseMessageIsStoredWhileItRuns_CancelsIt()
    {
        if (provider != LedgerProvider.PostgreSql)
        {
            Assert.Ignore("SQLite has one writer: a cancellation's statements cannot interleave with a store.");
        }

        var host = await Start();
        var id = NewId.NextGuid();
        var at = DateTime.UtcNow.AddMinutes(10);
        await using var store = new Npgsql.NpgsqlConnection(host.Ledger.ConnectionString);
        await store.OpenAsync();
        await using var storing = await store.BeginTransactionAsync();
        await using (var insert = new Npgsql.NpgsqlCommand(
            "INSERT INTO \"JobLogScheduledMessages\" (\"Id\", \"MessageId\", \"MessageType\", \"Destination\", \"ScheduledTime\", " +
            "\"ContentType\", \"Body\", \"State\", \"CreatedAt\", \"Attempts\", \"Host\") " +
            $"VALUES (@id, @id, 'urn:message:Shop:ChargeCard', 'queue:charge-card', @at, 'application/json', '\\x01', {(int)ScheduledMessageState.Pending}, @at, 0, 'test')",
            store, storing))
        {
            insert.Parameters.AddWithValue("id", id);
            insert.Parameters.AddWithValue("at", at);
            await insert.ExecuteNonQueryAsync();
        }

        // The cancellation runs while the store's transaction is open: it must wait for it, not miss the message.
        var cancel = Store(host).CancelAsync(id, DateTime.UtcNow, "test", _ => "cancelled", CancellationToken.None);
        await LedgerHost.EventuallyAsync(
            async () => cancel.IsCompleted || await BlockedByAsync(host.Ledger.ConnectionString, store.ProcessID) > 0,
            because: "the cancellation reached the stored row's lock");
        await storing.CommitAsync();

        Assert.That(await cancel, Is.EqualTo(CancelOutcome.Cancelled));
        var row = await host.QueryAsync(db => db.ScheduledMessages.AsNoTracking().SingleAsync(m => m.Id == id));
        Assert.That((row.State, row.Body), Is.EqualTo((ScheduledMessageState.Cancelled, (byte[]?)null)));
    }

    /// <summary>Backends waiting for a lock that <paramref name="pid"/> holds (asked on a connection of its own: a
    /// transaction sees one snapshot of <c>pg_stat_activity</c>).</summary>
    private static async Task<long> BlockedByAsync(string connectionString, int pid)
    {
        await using var probe = new Npgsql.NpgsqlConnection(connectionString);
        await probe.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(
            "SELECT count(*) FROM pg_stat_activity WHERE @pid = ANY(pg_blocking_pids(pid))", probe);
        command.Parameters.AddWithValue("pid", pid);
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
