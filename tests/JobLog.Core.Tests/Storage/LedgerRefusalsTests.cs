using JobLog.Storage;
using JobLog.Sweeping;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

/// <summary>
/// A PostgreSQL ledger that turns read-only while the process runs (a primary with <c>default_transaction_read_only</c>,
/// a standby no migration asked), then takes writes again: the sweeper's real pass meets the server's refusal (25006),
/// <see cref="LedgerRefusals"/> says so once and pauses the writing services' passes, lets one pass ask again every
/// <see cref="LedgerRefusals.AskAgainEvery"/>, and resumes them when that pass writes (session 45).
/// </summary>
public class LedgerRefusalsTests
{
    [Test]
    [CancelAfter(120_000)]
    public async Task ALedgerTurnedReadOnly_PausesThePasses_SaidOnce_AsksAgainEveryMinute_AndResumesWhenItTakesWrites(CancellationToken cancellation)
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var ledger = await TestLedger.PostgresAsync();
        await using var host = await LedgerHost.StartAsync(ledger, o => o.Sweeper.Enabled = false, s => s.AddSingleton<TimeProvider>(clock));
        var now = clock.GetUtcNow().UtcDateTime;
        var id = Guid.NewGuid();
        await host.QueryAsync(db =>
        {
            db.Add(new TaskLog
            {
                Id = id, Name = "Charge", QueueName = "charge", DispatchedAt = now.AddHours(-1), Start = now.AddHours(-1),
                State = TaskState.Active, Stale = now.AddMinutes(-30),
            });
            return db.SaveChangesAsync();
        });
        var contexts = host.Services.GetRequiredService<JobLogContextFactory>();
        var sweeper = host.Services.GetRequiredService<TaskLogSweeper>();
        var warnings = new WarningCollector(LogLevel.Information);
        using var logs = LoggerFactory.Create(b => b.AddProvider(warnings).SetMinimumLevel(LogLevel.Information));
        var refusals = new LedgerRefusals(contexts, clock, logs.CreateLogger<LedgerRefusals>());

        Assert.That(refusals.MayWrite(), Is.True, "a writable ledger");
        await SetReadOnlyAsync(ledger, true);

        var refused = Assert.CatchAsync(() => sweeper.SweepOnceAsync(cancellation));
        Assert.Multiple(() =>
        {
            Assert.That(refusals.Refused(refused!), Is.True, "the sweep's refusal is the ledger's read-only one\n" + refused);
            Assert.That(contexts.ReadOnly, Is.True, "read-only from now on");
            Assert.That(refusals.MayWrite(), Is.False, "the passes pause");
            Assert.That(refusals.Refused(new InvalidOperationException("another failure")), Is.False, "another failure is the caller's to log");
        });
        // Another service's pass that was under way meets the refusal too: still said once.
        Assert.That(refusals.Refused(Assert.CatchAsync(() => sweeper.SweepOnceAsync(cancellation))!), Is.True);
        Assert.That(warnings.Count(1057), Is.EqualTo(1), "said once\n" + string.Join("\n", warnings.Errors));
        Assert.That(warnings.Texts(1057).Single(), Does.Contain(ledger.DatabaseName), "naming the ledger");

        clock.Advance(LedgerRefusals.AskAgainEvery - TimeSpan.FromSeconds(1));
        Assert.That(refusals.MayWrite(), Is.False, "not before a minute");
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.That((refusals.MayWrite(), refusals.MayWrite()), Is.EqualTo((true, false)), "after a minute, one pass asks");
        // Still read-only: the asking pass is refused, quietly, and the next one asks a minute later.
        Assert.That(refusals.Refused(Assert.CatchAsync(() => sweeper.SweepOnceAsync(cancellation))!), Is.True);
        Assert.That(refusals.MayWrite(), Is.False);
        Assert.That((await host.TaskAsync(id)).State, Is.EqualTo(TaskState.Active), "nothing written meanwhile");

        await SetReadOnlyAsync(ledger, false);
        clock.Advance(LedgerRefusals.AskAgainEvery);
        Assert.That(refusals.MayWrite(), Is.True, "asks again");
        var swept = await sweeper.SweepOnceAsync(cancellation);
        refusals.Wrote();
        Assert.Multiple(() =>
        {
            Assert.That(swept.Expired, Is.EqualTo(1), "the pass wrote: the stale task expired");
            Assert.That(contexts.ReadOnly, Is.False, "writable again");
            Assert.That((refusals.MayWrite(), refusals.MayWrite()), Is.EqualTo((true, true)), "every pass runs again");
            Assert.That(warnings.Count(1058), Is.EqualTo(1), "said once that writes are taken again");
            Assert.That(warnings.Count(1057), Is.EqualTo(1), "the read-only spell said once");
        });

        // A second spell is said again.
        await SetReadOnlyAsync(ledger, true);
        Assert.That(refusals.Refused(Assert.CatchAsync(() => sweeper.SweepOnceAsync(cancellation))!), Is.True);
        Assert.That(warnings.Count(1057), Is.EqualTo(2), "a new spell, said once more");
        await SetReadOnlyAsync(ledger, false);
    }

    /// <summary>The database's <c>default_transaction_read_only</c>, for the sessions opened from now on.</summary>
    private static async Task SetReadOnlyAsync(TestLedger ledger, bool on)
    {
        await using (var connection = new NpgsqlConnection(ledger.ConnectionString + ";Options=-c default_transaction_read_only=off"))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"ALTER DATABASE \"{ledger.DatabaseName}\" SET default_transaction_read_only = {(on ? "on" : "off")}", connection);
            await command.ExecuteNonQueryAsync();
        }

        NpgsqlConnection.ClearAllPools();
    }
}
