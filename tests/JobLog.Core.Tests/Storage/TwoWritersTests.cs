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
        var (task, billing, shipping, command) = await RecordTwoRunsAsync(first, billingHost: null);
        await using var second = await HoldSecondWriterAsync(ledger, task, shipping, command);

        // Meanwhile this process ends Billing's run: it fails. Its commit either completes (it could not see Shipping's
        // end) or waits for the second process's (then it does).
        first.Services.GetRequiredService<LedgerRecorder>()
            .Enqueue(new RunFinished(billing.Id, task, TaskRunState.Failed, T0.AddSeconds(64), "card declined", null, null));
        await FlushWhileHeldAsync(first, second, ledger, "the first writer committed or waits on the second");

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
        var dead = Guid.NewGuid();
        await first.QueryAsync(async db =>
        {
            var longAgo = DateTime.UtcNow.AddHours(-1);
            db.Hosts.Add(new HostLog { InstanceId = dead, Name = "worker-dead", ProcessId = 1, StartedAt = longAgo, LastHeartbeat = longAgo });
            return await db.SaveChangesAsync();
        });
        var (task, _, shipping, command) = await RecordTwoRunsAsync(first, billingHost: dead);
        await using var second = await HoldSecondWriterAsync(ledger, task, shipping, command);

        // Meanwhile a sweep closes the dead host's run of Billing: it must wait for the writer's task lock to derive.
        var sweep = first.Services.GetRequiredService<JobLog.Sweeping.TaskLogSweeper>().SweepOnceAsync(CancellationToken.None);
        await LedgerHost.EventuallyAsync(async () => sweep.IsCompleted || await BlockedCountAsync(ledger.ConnectionString) == 2,
            TimeSpan.FromSeconds(60), "the sweep finished or waits for the writer");

        await second.ReleaseAsync();
        Assert.That((await sweep).HostRuns, Is.EqualTo(1));

        var stored = await first.TaskAsync(task);
        Assert.That(stored.Runs.Select(r => (r.ConsumerType, r.State)),
            Is.EquivalentTo(new[] { ("Billing", TaskRunState.Expired), ("Shipping", TaskRunState.Succeeded) }));
        Assert.That(stored.State, Is.EqualTo(TaskState.Expired), "derived from both: not ACTIVE with every run ended");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task TaskRow_TwoHostsSeedTheSameMissingTaskAtOnce_OneRowWithBothRuns(bool partitioned)
    {
        // A message the ledger has no dispatch for (its producer does not use JobLog): each consumer's writer inserts the
        // task row from its seed. The second's insert is not committed yet when the first's runs into it.
        var ledger = await Ledgers.CreateAsync(LedgerProvider.PostgreSql);
        Action<JobLogOptions> options = o => o.Partitioning.Enabled = partitioned;
        await using var first = await LedgerHost.StartAsync(ledger, options);
        var recorder = first.Services.GetRequiredService<LedgerRecorder>();
        var now = DateTime.UtcNow;
        var task = Guid.CreateVersion7();
        var seed = new TaskPayload { Id = task, Name = "OrderPlaced", DispatchedAt = now };
        var billing = new RunPayload { Id = Guid.CreateVersion7(), TaskId = task, Name = "OrderPlaced", ConsumerType = "Billing", Start = now };
        var shipping = new RunPayload { Id = Guid.CreateVersion7(), TaskId = task, Name = "OrderPlaced", ConsumerType = "Shipping", Start = now.AddMinutes(1) };
        var command = new CommandPayload { Id = Guid.NewGuid(), Name = "holder", Start = now };
        recorder.Enqueue(new CommandRecorded(command));
        await first.FlushAsync();
        await using var second = await HoldWriterAsync(ledger, command, options, new RunStarted(shipping, seed, false));

        recorder.Enqueue(new RunStarted(billing, seed, false));
        await FlushWhileHeldAsync(first, second, ledger, "the first writer committed or waits on the second's task row");

        var stored = await first.TaskAsync(task);
        Assert.That(stored.Runs.Select(r => (r.ConsumerType, r.State)),
            Is.EquivalentTo(new[] { ("Billing", TaskRunState.Active), ("Shipping", TaskRunState.Active) }));
        Assert.That(stored.State, Is.EqualTo(TaskState.Active));
    }

    // Session 28 (faults): the failed dispatch's UPDATE skips a task with stored runs, but it read the runs on its
    // statement's snapshot. A consumer's writer that had inserted the task's run and locked its row committed while the
    // UPDATE waited for that lock; the UPDATE re-checked the row, not the runs, and the task's only run came before
    // the error: SUCCEEDED with "Dispatch failed".
    [TestCase(false)]
    [TestCase(true)]
    public async Task DispatchFailed_WhileAConsumersWriterHoldsTheTaskWithItsRun_TheErrorIsNotSetAfterTheRun(bool partitioned)
    {
        var ledger = await Ledgers.CreateAsync(LedgerProvider.PostgreSql);
        Action<JobLogOptions> options = o => o.Partitioning.Enabled = partitioned;
        await using var first = await LedgerHost.StartAsync(ledger, options);
        var recorder = first.Services.GetRequiredService<LedgerRecorder>();
        var task = Guid.CreateVersion7();
        var payload = new TaskPayload { Id = task, Name = "OrderPlaced", DispatchedAt = T0 };
        var run = new RunPayload { Id = Guid.CreateVersion7(), TaskId = task, Name = "OrderPlaced", ConsumerType = "Billing", Start = T0.AddSeconds(1) };
        var command = new CommandPayload { Id = Guid.NewGuid(), Name = "holder", Start = T0 };
        recorder.Enqueue(new TaskDispatched(payload));
        recorder.Enqueue(new CommandRecorded(command));
        await first.FlushAsync();
        await using var second = await HoldWriterAsync(ledger, command, options,
            new RunStarted(run, payload, false), new RunFinished(run.Id, task, TaskRunState.Succeeded, T0.AddSeconds(2), null, null, null));

        recorder.Enqueue(new TaskDispatchFailed(task, "Dispatch failed: TaskCanceledException: A task was canceled."));
        await FlushWhileHeldAsync(first, second, ledger, "the failure was written or waits on the consumer's writer");

        var stored = await first.TaskAsync(task);
        Assert.That((stored.State, stored.ErrorMessage), Is.EqualTo((TaskState.Succeeded, (string?)null)));
    }

    // Session 35 (faults): on a partitioned ledger the consumer-side task upsert locks an existing task (session 34, for
    // purges) in its batch's order, before the batch's run updates; the derivation locks its tasks later, sorted. Two
    // processes whose batches start a run of one task and end a run of another, in opposite orders (fan-out: consumer X
    // took t1 then t2, consumer Y t2 then t1), each held the other's next task: PostgreSQL aborted one (40P01), and the
    // writer logged the failed batch with its stack and wrote it again record by record.
    [TestCase(false)]
    [TestCase(true)]
    public async Task TwoWritersStartAndEndRunsOfTwoTasksInOppositeOrders_NeitherDeadlocks_BothCommitAsOneBatch(bool partitioned)
    {
        var ledger = await Ledgers.CreateAsync(LedgerProvider.PostgreSql);
        Action<JobLogOptions> options = o => o.Partitioning.Enabled = partitioned;
        await using var first = await LedgerHost.StartAsync(ledger, options);
        var recorder = first.Services.GetRequiredService<LedgerRecorder>();
        var now = DateTime.UtcNow;
        var t1 = new TaskPayload { Id = Guid.CreateVersion7(), Name = "OrderPlaced", DispatchedAt = now };
        var t2 = new TaskPayload { Id = Guid.CreateVersion7(), Name = "OrderPlaced", DispatchedAt = now };
        RunPayload Run(TaskPayload task, string consumer, int minute) =>
            new() { Id = Guid.CreateVersion7(), TaskId = task.Id, Name = "OrderPlaced", ConsumerType = consumer, Start = now.AddMinutes(minute) };
        var x1 = Run(t1, "X", 0);
        var y2 = Run(t2, "Y", 1);
        recorder.Enqueue(new TaskDispatched(t1));
        recorder.Enqueue(new TaskDispatched(t2));
        recorder.Enqueue(new RunStarted(x1, t1, false));
        recorder.Enqueue(new RunStarted(y2, t2, false));
        await first.FlushAsync();

        // The test holds the runs the two batches end, so that each batch waits there, after its task upsert.
        await using var holder = new NpgsqlConnection(ledger.ConnectionString);
        await holder.OpenAsync();
        var hold = await holder.BeginTransactionAsync();
        await using (var lockRuns = new NpgsqlCommand($"SELECT 1 FROM \"{LedgerModel.Runs}\" WHERE \"Id\" = ANY(@ids) FOR UPDATE", holder, hold))
        {
            lockRuns.Parameters.AddWithValue("ids", new[] { x1.Id, y2.Id });
            await lockRuns.ExecuteNonQueryAsync();
        }

        var logs = new[] { new WarningCollector(Microsoft.Extensions.Logging.LogLevel.Information), new WarningCollector(Microsoft.Extensions.Logging.LogLevel.Information) };
        var x2 = Run(t2, "X", 2);
        var y1 = Run(t1, "Y", 3);
        var hosts = new List<LedgerHost>();
        var commits = new List<Task>();
        foreach (var (log, records) in logs.Zip(new[]
        {
            new LedgerRecord[] { new RunStarted(x2, t2, false), new RunFinished(x1.Id, t1.Id, TaskRunState.Succeeded, now.AddMinutes(2), null, null, null) },
            new LedgerRecord[] { new RunStarted(y1, t1, false), new RunFinished(y2.Id, t2.Id, TaskRunState.Succeeded, now.AddMinutes(3), null, null, null) },
        }))
        {
            var host = await LedgerHost.StartAsync(ledger, options, services => Collect(services, log), start: false);
            hosts.Add(host);
            foreach (var record in records)
            {
                host.Services.GetRequiredService<LedgerRecorder>().Enqueue(record);
            }

            await host.Host.StartAsync();
            commits.Add(host.FlushAsync());
            await BlockedAsync(ledger.ConnectionString, hosts.Count);
        }

        try
        {
            await hold.RollbackAsync();
            await Task.WhenAll(commits);
            var stored = await first.TaskAsync(t1.Id);
            var other = await first.TaskAsync(t2.Id);
            var failures = logs.SelectMany(l => l.Texts(1006).Concat(l.Texts(1055))).ToList();
            TestContext.Out.WriteLine($"partitioned {partitioned}: batches failed or rolled back: {string.Join(" | ", failures)}");
            Assert.Multiple(() =>
            {
                Assert.That(failures, Is.Empty, "neither writer's batch failed nor was rolled back (a deadlock aborts one)");
                Assert.That(stored.Runs.Select(r => (r.ConsumerType, r.State)),
                    Is.EquivalentTo(new[] { ("X", TaskRunState.Succeeded), ("Y", TaskRunState.Active) }));
                Assert.That(other.Runs.Select(r => (r.ConsumerType, r.State)),
                    Is.EquivalentTo(new[] { ("X", TaskRunState.Active), ("Y", TaskRunState.Succeeded) }));
                Assert.That((stored.State, other.State), Is.EqualTo((TaskState.Active, TaskState.Active)));
            });
        }
        finally
        {
            foreach (var host in hosts)
            {
                await host.DisposeAsync();
            }

            await hold.DisposeAsync();
        }
    }

    // Session 35 (faults): a batch the server rolled back to break a deadlock (40P01) was logged as a failed batch with its
    // stack (1006) and written record by record, where a record that met a deadlock again was dropped as rejected.
    [Test]
    public async Task ABatchTheServerRollsBackToBreakADeadlock_IsWrittenAgainWhole_AndToldWithoutAFailure()
    {
        var ledger = await Ledgers.CreateAsync(LedgerProvider.PostgreSql);
        Action<JobLogOptions> options = o => o.Partitioning.Enabled = true;
        await using var first = await LedgerHost.StartAsync(ledger, options);
        var now = DateTime.UtcNow;
        var task = new TaskPayload { Id = Guid.CreateVersion7(), Name = "OrderPlaced", DispatchedAt = now };
        var x = new RunPayload { Id = Guid.CreateVersion7(), TaskId = task.Id, Name = "OrderPlaced", ConsumerType = "X", Start = now };
        var y = new RunPayload { Id = Guid.CreateVersion7(), TaskId = task.Id, Name = "OrderPlaced", ConsumerType = "Y", Start = now.AddMinutes(1) };
        var command = new CommandPayload { Id = Guid.NewGuid(), Name = "holder", Start = now };
        var setup = first.Services.GetRequiredService<LedgerRecorder>();
        setup.Enqueue(new TaskDispatched(task));
        setup.Enqueue(new RunStarted(x, task, false));
        setup.Enqueue(new CommandRecorded(command));
        await first.FlushAsync();

        // The writer's batch locks the task (the consumer's upsert), ends X's run, then writes the command. The test holds
        // X's run (B) and the command's row (A); A asks for the task while the writer waits for B; B lets go, and the
        // writer's wait for the command's row closes the cycle: its check is the first due (A's deadlock_timeout is a
        // minute), so the server rolls the writer's batch back.
        await using var a = new NpgsqlConnection(ledger.ConnectionString);
        await using var b = new NpgsqlConnection(ledger.ConnectionString);
        await a.OpenAsync();
        await b.OpenAsync();
        var holdA = await a.BeginTransactionAsync();
        var holdB = await b.BeginTransactionAsync();
        await using (var lockCommand = new NpgsqlCommand($"SET LOCAL deadlock_timeout = '60s'; SELECT 1 FROM \"{LedgerModel.Commands}\" WHERE \"Id\" = @id FOR UPDATE", a, holdA))
        {
            lockCommand.Parameters.AddWithValue("id", command.Id);
            await lockCommand.ExecuteNonQueryAsync();
        }

        await using (var lockRun = new NpgsqlCommand($"SELECT 1 FROM \"{LedgerModel.Runs}\" WHERE \"Id\" = @id FOR UPDATE", b, holdB))
        {
            lockRun.Parameters.AddWithValue("id", x.Id);
            await lockRun.ExecuteNonQueryAsync();
        }

        var logs = new WarningCollector(Microsoft.Extensions.Logging.LogLevel.Information);
        await using var second = await LedgerHost.StartAsync(ledger, options, services => Collect(services, logs), start: false);
        var recorder = second.Services.GetRequiredService<LedgerRecorder>();
        recorder.Enqueue(new RunStarted(y, task, false));
        recorder.Enqueue(new RunFinished(x.Id, task.Id, TaskRunState.Succeeded, now.AddMinutes(2), null, null, null));
        recorder.Enqueue(new CommandRecorded(command with { Stop = now.AddMinutes(2), IsSuccessful = true }));
        await second.Host.StartAsync();
        var commit = second.FlushAsync();
        await BlockedAsync(ledger.ConnectionString, 1);
        await using var lockTask = new NpgsqlCommand($"SELECT 1 FROM \"{LedgerModel.Tasks}\" WHERE \"Id\" = @id FOR UPDATE", a, holdA);
        lockTask.Parameters.AddWithValue("id", task.Id);
        var taskLocked = lockTask.ExecuteNonQueryAsync();
        await BlockedAsync(ledger.ConnectionString, 2);
        await holdB.RollbackAsync();
        await LedgerHost.EventuallyAsync(() => Task.FromResult(logs.Count(1006) + logs.Count(1055) > 0), TimeSpan.FromSeconds(60), "the writer's batch rolled back");
        await taskLocked;
        await holdA.RollbackAsync();
        await commit;

        var stored = await first.TaskAsync(task.Id);
        TestContext.Out.WriteLine($"logged: {string.Join(" | ", logs.Errors)}");
        Assert.Multiple(() =>
        {
            Assert.That(logs.Count(1006), Is.Zero, "a batch failure (1006, with its stack) for a deadlock");
            Assert.That(logs.Texts(1055), Has.Count.EqualTo(1).And.One.Contains("40P01"), "the rollback told once, in a line");
            Assert.That(stored.Runs.Select(r => (r.ConsumerType, r.State)),
                Is.EquivalentTo(new[] { ("X", TaskRunState.Succeeded), ("Y", TaskRunState.Active) }));
            Assert.That(stored.State, Is.EqualTo(TaskState.Active));
        });
    }

    /// <summary>
    /// The first process records a published task with two consumers' runs started, Billing's (on
    /// <paramref name="billingHost"/>) and Shipping's, and a command whose row the second writer's batch will wait on.
    /// </summary>
    private static async Task<(Guid Task, RunPayload Billing, RunPayload Shipping, CommandPayload Command)> RecordTwoRunsAsync(
        LedgerHost first, Guid? billingHost)
    {
        var recorder = first.Services.GetRequiredService<LedgerRecorder>();
        var task = Guid.NewGuid();
        var payload = new TaskPayload { Id = task, Name = "OrderPlaced", DispatchedAt = T0 };

        // Their runs started in different minutes: the run rollup's row of a minute would otherwise serialize the two
        // commits by chance (both update it).
        var billing = new RunPayload
        {
            Id = Guid.NewGuid(), TaskId = task, Name = "OrderPlaced", ConsumerType = "Billing", Start = T0.AddSeconds(1), HostInstanceId = billingHost,
        };
        var shipping = new RunPayload { Id = Guid.NewGuid(), TaskId = task, Name = "OrderPlaced", ConsumerType = "Shipping", Start = T0.AddSeconds(61) };
        var command = new CommandPayload { Id = Guid.NewGuid(), Name = "holder", Start = T0 };
        recorder.Enqueue(new TaskDispatched(payload));
        recorder.Enqueue(new RunStarted(billing, payload, false));
        recorder.Enqueue(new RunStarted(shipping, payload, false));
        recorder.Enqueue(new CommandRecorded(command));
        await first.FlushAsync();
        return (task, billing, shipping, command);
    }

    /// <summary>
    /// A second process whose batch ends Shipping's run and derives the task, then waits (before its commit) on a row
    /// the test holds: a later statement of the same batch, the command's upsert.
    /// </summary>
    private static Task<HeldWriter> HoldSecondWriterAsync(TestLedger ledger, Guid task, RunPayload shipping, CommandPayload command) =>
        HoldWriterAsync(ledger, command, options: null, new RunFinished(shipping.Id, task, TaskRunState.Succeeded, T0.AddSeconds(62), null, null, null));

    /// <summary>
    /// A second process whose batch writes <paramref name="records"/>, then waits (before its commit) on the row of
    /// <paramref name="command"/> the test holds: a later statement of the same batch, the command's upsert.
    /// </summary>
    private static async Task<HeldWriter> HoldWriterAsync(TestLedger ledger, CommandPayload command, Action<JobLogOptions>? options, params LedgerRecord[] records)
    {
        var holder = new NpgsqlConnection(ledger.ConnectionString);
        await holder.OpenAsync();
        var hold = await holder.BeginTransactionAsync();
        await using (var lockRow = new NpgsqlCommand($"SELECT 1 FROM \"{LedgerModel.Commands}\" WHERE \"Id\" = @id FOR UPDATE", holder, hold))
        {
            lockRow.Parameters.AddWithValue("id", command.Id);
            await lockRow.ExecuteScalarAsync();
        }

        var second = await LedgerHost.StartAsync(ledger, options, start: false);
        var recorder = second.Services.GetRequiredService<LedgerRecorder>();
        foreach (var record in records)
        {
            recorder.Enqueue(record);
        }

        recorder.Enqueue(new CommandRecorded(command with { Stop = command.Start.AddSeconds(63), IsSuccessful = true }));
        await second.Host.StartAsync();
        var commit = second.FlushAsync();
        await BlockedAsync(ledger.ConnectionString, 1);
        return new HeldWriter(holder, hold, second, commit);
    }

    /// <summary>
    /// Flushes the first process's writer, which commits or waits on <paramref name="second"/>'s rows
    /// (<paramref name="because"/>), then lets the second commit, and waits for the first.
    /// </summary>
    private static async Task FlushWhileHeldAsync(LedgerHost first, HeldWriter second, TestLedger ledger, string because)
    {
        var firstCommit = first.FlushAsync();
        await LedgerHost.EventuallyAsync(
            async () => firstCommit.IsCompleted || await BlockedCountAsync(ledger.ConnectionString) == 2, TimeSpan.FromSeconds(60), because);
        await second.ReleaseAsync();
        await firstCommit;
    }

    /// <summary>The second writer, held before its commit by <paramref name="Hold"/>.</summary>
    private sealed record HeldWriter(NpgsqlConnection Holder, NpgsqlTransaction Hold, LedgerHost Second, Task Commit) : IAsyncDisposable
    {
        /// <summary>Lets the second writer commit, and waits for it.</summary>
        public async Task ReleaseAsync()
        {
            await Hold.RollbackAsync();
            await Commit;
        }

        public async ValueTask DisposeAsync()
        {
            await Second.DisposeAsync();
            await Hold.DisposeAsync();
            await Holder.DisposeAsync();
        }
    }

    /// <summary>
    /// Adds <paramref name="log"/> as a logger provider that sees information too (the hosts log warnings and up): the
    /// writer tells a batch the server rolled back as information (1055).
    /// </summary>
    private static void Collect(IServiceCollection services, WarningCollector log) =>
        services.AddSingleton<Microsoft.Extensions.Logging.ILoggerProvider>(log).Configure<Microsoft.Extensions.Logging.LoggerFilterOptions>(o =>
            o.Rules.Add(new Microsoft.Extensions.Logging.LoggerFilterRule(typeof(WarningCollector).FullName, null, Microsoft.Extensions.Logging.LogLevel.Information, null)));

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
