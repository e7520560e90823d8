using JobLog.Recording;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

/// <summary>
/// Two processes' writers on one PostgreSQL ledger, interleaved by a held lock: each commits the end of one consumer's
/// run of the same published message (fan-out), and the task must be derived from both.
/// </summary>
[TestFixture]
public class TwoWritersTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    [Test]
    public async Task Derive_TwoHostsEndTheRunsOfOneTaskAtOnce_TheTaskSeesBothEnds()
    {
        var ledger = await Ledgers.CreateAsync(LedgerProvider.PostgreSql);
        await using var first = await LedgerHost.StartAsync(ledger);
        var recorder = first.Services.GetRequiredService<LedgerRecorder>();
        var task = Guid.NewGuid();
        var payload = new TaskPayload { Id = task, Name = "OrderPlaced", DispatchedAt = T0 };
        RunPayload Run(string consumer, DateTime start) => new() { Id = Guid.NewGuid(), TaskId = task, Name = "OrderPlaced", ConsumerType = consumer, Start = start };

        // Their runs started in different minutes: the run rollup's row of a minute would otherwise serialize the two
        // commits by chance (both update it).
        var (billing, shipping) = (Run("Billing", T0.AddSeconds(1)), Run("Shipping", T0.AddSeconds(61)));
        var command = new CommandPayload { Id = Guid.NewGuid(), Name = "holder", Start = T0 };
        recorder.Enqueue(new TaskDispatched(payload));
        recorder.Enqueue(new RunStarted(billing, payload, false));
        recorder.Enqueue(new RunStarted(shipping, payload, false));
        recorder.Enqueue(new CommandRecorded(command));
        await first.FlushAsync();

        // The second process's batch ends Shipping's run, derives the task, then waits (before its commit) on a row
        // the test holds: a later statement of the same batch, the command's upsert.
        await using var holder = new NpgsqlConnection(ledger.ConnectionString);
        await holder.OpenAsync();
        await using var hold = await holder.BeginTransactionAsync();
        await using (var lockRow = new NpgsqlCommand($"SELECT 1 FROM \"{LedgerModel.Commands}\" WHERE \"Id\" = @id FOR UPDATE", holder, hold))
        {
            lockRow.Parameters.AddWithValue("id", command.Id);
            await lockRow.ExecuteScalarAsync();
        }

        await using var second = await LedgerHost.StartAsync(ledger, start: false);
        var secondRecorder = second.Services.GetRequiredService<LedgerRecorder>();
        secondRecorder.Enqueue(new RunFinished(shipping.Id, task, TaskRunState.Succeeded, T0.AddSeconds(62), null, null, null));
        secondRecorder.Enqueue(new CommandRecorded(command with { Stop = T0.AddSeconds(63), IsSuccessful = true }));
        await second.Host.StartAsync();
        var secondCommit = second.FlushAsync();
        await BlockedAsync(ledger.ConnectionString, 1);

        // Meanwhile this process ends Billing's run: it fails. Its commit either completes (it could not see Shipping's
        // end) or waits for the second process's (then it does).
        recorder.Enqueue(new RunFinished(billing.Id, task, TaskRunState.Failed, T0.AddSeconds(64), "card declined", null, null));
        var firstCommit = first.FlushAsync();
        await LedgerHost.EventuallyAsync(
            async () => firstCommit.IsCompleted || await BlockedCountAsync(ledger.ConnectionString) == 2,
            TimeSpan.FromSeconds(60), "the first writer committed or waits on the second");

        await hold.RollbackAsync();
        await Task.WhenAll(firstCommit, secondCommit);

        var stored = await first.TaskAsync(task);
        Assert.That(stored.Runs.Select(r => (r.ConsumerType, r.State)),
            Is.EquivalentTo(new[] { ("Billing", TaskRunState.Failed), ("Shipping", TaskRunState.Succeeded) }));
        Assert.That((stored.State, stored.Stop), Is.EqualTo((TaskState.Failed, (DateTime?)T0.AddSeconds(64))),
            "derived from both ends: a failed consumer makes the task FAILED, not ACTIVE forever");
    }

    [Test]
    public async Task Derive_HostPassExpiresOneRunWhileAWriterEndsAnother_TheTaskSeesBoth()
    {
        var ledger = await Ledgers.CreateAsync(LedgerProvider.PostgreSql);
        await using var first = await LedgerHost.StartAsync(ledger);
        var recorder = first.Services.GetRequiredService<LedgerRecorder>();
        var dead = Guid.NewGuid();
        await first.QueryAsync(async db =>
        {
            var longAgo = DateTime.UtcNow.AddHours(-1);
            db.Hosts.Add(new HostLog { InstanceId = dead, Name = "worker-dead", ProcessId = 1, StartedAt = longAgo, LastHeartbeat = longAgo });
            return await db.SaveChangesAsync();
        });
        var task = Guid.NewGuid();
        var payload = new TaskPayload { Id = task, Name = "OrderPlaced", DispatchedAt = T0 };
        var billing = new RunPayload { Id = Guid.NewGuid(), TaskId = task, Name = "OrderPlaced", ConsumerType = "Billing", Start = T0.AddSeconds(1), HostInstanceId = dead };
        var shipping = new RunPayload { Id = Guid.NewGuid(), TaskId = task, Name = "OrderPlaced", ConsumerType = "Shipping", Start = T0.AddSeconds(61) };
        var command = new CommandPayload { Id = Guid.NewGuid(), Name = "holder", Start = T0 };
        recorder.Enqueue(new TaskDispatched(payload));
        recorder.Enqueue(new RunStarted(billing, payload, false));
        recorder.Enqueue(new RunStarted(shipping, payload, false));
        recorder.Enqueue(new CommandRecorded(command));
        await first.FlushAsync();

        await using var holder = new NpgsqlConnection(ledger.ConnectionString);
        await holder.OpenAsync();
        await using var hold = await holder.BeginTransactionAsync();
        await using (var lockRow = new NpgsqlCommand($"SELECT 1 FROM \"{LedgerModel.Commands}\" WHERE \"Id\" = @id FOR UPDATE", holder, hold))
        {
            lockRow.Parameters.AddWithValue("id", command.Id);
            await lockRow.ExecuteScalarAsync();
        }

        // A live host's writer ends Shipping's run and derives the task, then waits before its commit.
        await using var second = await LedgerHost.StartAsync(ledger, start: false);
        var secondRecorder = second.Services.GetRequiredService<LedgerRecorder>();
        secondRecorder.Enqueue(new RunFinished(shipping.Id, task, TaskRunState.Succeeded, T0.AddSeconds(62), null, null, null));
        secondRecorder.Enqueue(new CommandRecorded(command with { Stop = T0.AddSeconds(63), IsSuccessful = true }));
        await second.Host.StartAsync();
        var secondCommit = second.FlushAsync();
        await BlockedAsync(ledger.ConnectionString, 1);

        // Meanwhile a sweep closes the dead host's run of Billing: it must wait for the writer's task lock to derive.
        var sweep = first.Services.GetRequiredService<JobLog.Sweeping.TaskLogSweeper>().SweepOnceAsync(CancellationToken.None);
        await LedgerHost.EventuallyAsync(async () => sweep.IsCompleted || await BlockedCountAsync(ledger.ConnectionString) == 2,
            TimeSpan.FromSeconds(60), "the sweep finished or waits for the writer");

        await hold.RollbackAsync();
        await secondCommit;
        Assert.That((await sweep).HostRuns, Is.EqualTo(1));

        var stored = await first.TaskAsync(task);
        Assert.That(stored.Runs.Select(r => (r.ConsumerType, r.State)),
            Is.EquivalentTo(new[] { ("Billing", TaskRunState.Expired), ("Shipping", TaskRunState.Succeeded) }));
        Assert.That(stored.State, Is.EqualTo(TaskState.Expired), "derived from both: not ACTIVE with every run ended");
    }

    private static Task BlockedAsync(string connectionString, int count) =>
        LedgerHost.EventuallyAsync(async () => await BlockedCountAsync(connectionString) == count, TimeSpan.FromSeconds(60), $"{count} writer(s) waiting");

    private static async Task<long> BlockedCountAsync(string connectionString)
    {
        await using var probe = new NpgsqlConnection(connectionString);
        await probe.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0", probe);
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
