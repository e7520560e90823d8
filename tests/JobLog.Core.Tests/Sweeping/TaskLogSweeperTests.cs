using JobLog.Storage;
using JobLog.Recording;
using JobLog.Sweeping;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Sweeping;

[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class TaskLogSweeperTests(LedgerProvider provider)
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);
    private LedgerHost _host = null!;
    private LedgerRecorder _recorder = null!;
    private FakeTimeProvider _clock = null!;

    [SetUp]
    public async Task SetUp()
    {
        _clock = new FakeTimeProvider(new DateTimeOffset(T0));
        _host = await LedgerHost.StartAsync(
            await Ledgers.CreateAsync(provider),
            o => o.Sweeper.BatchSize = 7,
            s => s.AddSingleton<TimeProvider>(_clock));
        _recorder = _host.Services.GetRequiredService<LedgerRecorder>();
    }

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    private Guid Dispatch(DateTime? stale)
    {
        var id = Guid.NewGuid();
        _recorder.Enqueue(new TaskDispatched(new TaskPayload
        {
            Id = id, Name = "Report", DispatchedAt = T0, EstimatedTimeOfFirstArrival = T0, Stale = stale,
        }));
        return id;
    }

    private RunPayload StartRun(Guid id)
    {
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = "Report", ConsumerType = "C", Start = T0.AddSeconds(1) };
        _recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = id, Name = "Report", DispatchedAt = T0 }, false));
        return run;
    }

    private TaskLogSweeper Sweeper => _host.Services.GetRequiredService<TaskLogSweeper>();

    [TestCase(false)]
    [TestCase(true)]
    public async Task Claim_WalksThePartialIndexOfUnfinishedTasks(bool bounded)
    {
        var plan = await _host.QueryAsync(async db =>
        {
            await db.Database.OpenConnectionAsync();
            await using var command = db.Database.GetDbConnection().CreateCommand();
            var claim = TaskLogSweeper.ClaimStatement(LedgerDatabase.For(provider), bounded);
            // PostgreSQL would scan a table this small: the test asks whether the index can serve the claim at all.
            command.CommandText = provider == LedgerProvider.Sqlite ? "EXPLAIN QUERY PLAN " + claim : "SET enable_seqscan = off; EXPLAIN " + claim;
            foreach (var (name, value) in new (string, object)[] { ("@p0", T0), ("@p1", 1000), ("@p2", T0.AddHours(-1)) }.Take(bounded ? 3 : 2))
            {
                var parameter = command.CreateParameter();
                parameter.ParameterName = name;
                parameter.Value = value;
                command.Parameters.Add(parameter);
            }

            var lines = new List<string>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                lines.Add(Convert.ToString(reader.GetValue(reader.FieldCount - 1), System.Globalization.CultureInfo.InvariantCulture)!);
            }

            return string.Join("\n", lines);
        });

        Assert.That(plan, Does.Contain("IX_JobLogTasks_Unfinished_Stale"));
        Assert.That(plan, Does.Not.Contain("TEMP B-TREE"), "walked in Stale order, not sorted");
        if (bounded)
        {
            // A later batch's claim starts the walk at its connection's last claimed deadline (an index range, not a
            // filter): the old index entries of the tasks already swept are not read again.
            Assert.That(plan, provider == LedgerProvider.Sqlite ? Does.Contain("Stale>? AND Stale<?") : Does.Match("Index Cond: .*\\\"Stale\\\" >= "));
        }
    }

    [Test]
    public async Task SweepStatement_OnSqlite_FindsEachClaimedTaskByItsKey()
    {
        if (provider != LedgerProvider.Sqlite)
        {
            Assert.Ignore("SQLite's plan.");
        }

        var plan = await _host.QueryAsync(async db =>
        {
            await db.Database.OpenConnectionAsync();
            await using var command = db.Database.GetDbConnection().CreateCommand();
            command.CommandText = "EXPLAIN QUERY PLAN " + TaskLogSweeper.SweepStatement(LedgerDatabase.For(provider));
            foreach (var (name, value) in new (string, object)[] { ("@p0", "[]"), ("@p1", T0) })
            {
                var parameter = command.CreateParameter();
                parameter.ParameterName = name;
                parameter.Value = value;
                command.Parameters.Add(parameter);
            }

            var lines = new List<string>();
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                lines.Add(reader.GetString(3));
            }

            return lines;
        });

        // One batch reads its claimed tasks by id, never the whole table (a statement per batch of a million-task ledger).
        Assert.That(plan.Where(l => l.StartsWith("SCAN", StringComparison.Ordinal) && !l.Contains("json_each", StringComparison.Ordinal) && l != "SCAN d"),
            Is.Empty, string.Join("\n", plan));
        Assert.That(plan.Count(l => l.Contains("(Id=?)", StringComparison.Ordinal)), Is.GreaterThanOrEqualTo(2), string.Join("\n", plan));
    }

    [Test]
    public async Task SweepStatement_OnPostgreSql_ClosesTheExpiredTasksActiveRunsItself()
    {
        if (provider != LedgerProvider.PostgreSql)
        {
            Assert.Ignore("SQLite closes them in a statement of their own.");
        }

        // One statement writes the tasks and their runs: the rollup rows its triggers lock are held only until its commit,
        // not through a second statement while the other connections' batches wait on them.
        var expired = Dispatch(T0.AddSeconds(2));
        StartRun(expired);
        var healed = Dispatch(T0.AddSeconds(2));
        var finished = StartRun(healed);
        await _host.FlushAsync();
        var database = LedgerDatabase.For(provider);
        await _host.QueryAsync(async db =>
        {
            await db.Database.OpenConnectionAsync();
            var connection = db.Database.GetDbConnection();
            await using (var finish = database.Command(connection, null,
                $"UPDATE \"{LedgerModel.Runs}\" SET \"State\" = @p2, \"Stop\" = @p1 WHERE \"Id\" = @p0", finished.Id, T0.AddSeconds(1), (int)TaskRunState.Succeeded))
            {
                await finish.ExecuteNonQueryAsync();
            }

            await using var sweep = database.Command(connection, null, TaskLogSweeper.SweepStatement(database), database.IdList([expired, healed]), T0.AddSeconds(3));
            return await sweep.ExecuteNonQueryAsync();
        });

        var (task, other) = (await _host.TaskAsync(expired), await _host.TaskAsync(healed));
        Assert.That((task.State, task.IsSetAsStale, task.Runs.Single().State, task.Runs.Single().ErrorMessage),
            Is.EqualTo((TaskState.Expired, true, TaskRunState.Expired, TaskLogSweeper.StaleRunError)));
        Assert.That((other.State, other.Runs.Single().State), Is.EqualTo((TaskState.Succeeded, TaskRunState.Succeeded)), "a healed task's run is left");
    }

    [Test]
    public async Task Sweep_StaleWaitingTask_IsExpiredAndMarked()
    {
        var id = Dispatch(T0.AddSeconds(2));
        await _host.FlushAsync();
        _clock.Advance(TimeSpan.FromSeconds(3));

        var result = await Sweeper.SweepOnceAsync(CancellationToken.None);

        var task = await _host.TaskAsync(id);
        Assert.That(result.Expired, Is.EqualTo(1));
        Assert.That((task.State, task.IsSetAsStale, task.Stop), Is.EqualTo((TaskState.Expired, true, (DateTime?)T0.AddSeconds(3))));
    }

    [Test]
    public async Task Sweep_BeforeTheDeadline_LeavesTheTask()
    {
        var id = Dispatch(T0.AddSeconds(2));
        await _host.FlushAsync();
        _clock.Advance(TimeSpan.FromSeconds(1));

        var result = await Sweeper.SweepOnceAsync(CancellationToken.None);

        Assert.That(result, Is.EqualTo(new SweepResult(0, 0)));
        Assert.That((await _host.TaskAsync(id)).State, Is.EqualTo(TaskState.Waiting));
    }

    [Test]
    public async Task Sweep_TaskWithoutStaleDeadline_IsNeverExpired()
    {
        var id = Dispatch(null);
        await _host.FlushAsync();
        _clock.Advance(TimeSpan.FromDays(365));

        await Sweeper.SweepOnceAsync(CancellationToken.None);

        Assert.That((await _host.TaskAsync(id)).State, Is.EqualTo(TaskState.Waiting));
    }

    [Test]
    public async Task Sweep_ActiveRunOfAStaleTask_IsExpiredToo()
    {
        var id = Dispatch(T0.AddSeconds(2));
        var run = StartRun(id);
        await _host.FlushAsync();
        _clock.Advance(TimeSpan.FromSeconds(3));

        await Sweeper.SweepOnceAsync(CancellationToken.None);
        // A late finish from the worker does not resurrect it: the first final state wins.
        _recorder.Enqueue(new RunFinished(run.Id, id, TaskRunState.Succeeded, T0.AddSeconds(4), null, null, null));
        await _host.FlushAsync();

        var task = await _host.TaskAsync(id);
        Assert.That((task.State, task.Runs.Single().State), Is.EqualTo((TaskState.Expired, TaskRunState.Expired)));
    }

    [Test]
    public async Task Sweep_TaskWhoseStoredStateLagsAFinishedRun_IsHealed()
    {
        var id = Dispatch(T0.AddSeconds(2));
        var run = StartRun(id);
        await _host.FlushAsync();
        // Simulate a derivation that another process missed: the run finished but the task still says ACTIVE.
        await _host.QueryAsync(db => db.Database.ExecuteSqlAsync(
            $"UPDATE \"JobLogTaskRuns\" SET \"State\" = 3, \"Stop\" = \"Start\" WHERE \"TaskId\" = {id}"));
        _clock.Advance(TimeSpan.FromSeconds(3));

        var result = await Sweeper.SweepOnceAsync(CancellationToken.None);

        var task = await _host.TaskAsync(id);
        Assert.That((result.Healed, result.Expired), Is.EqualTo((1, 0)));
        Assert.That((task.State, task.IsSetAsStale), Is.EqualTo((TaskState.Failed, false)));
        Assert.That(run.Id, Is.EqualTo(task.Runs.Single().Id));
    }

    [Test]
    public async Task Sweep_DerivesEachTaskFromEachConsumersLatestRun_AndEveryRunsStart()
    {
        // The runs as a lagging derivation left them (State, Start, Stop, Retries by hand); the task's stored state is
        // ACTIVE or WAITING. Each consumer's latest attempt (highest Retries) decides the state and the stop, every
        // attempt's start the start (LedgerSql.DerivedColumns; PostgreSQL's sweep derives them in one read of the runs).
        var s = TimeSpan.FromSeconds(1);
        var cases = new (TaskState State, bool Expired, DateTime? Stop, (string Consumer, int Retries, TaskRunState State, DateTime Start, DateTime? Stop)[] Runs)[]
        {
            (TaskState.Failed, false, T0 + 4 * s,
                [("C", 0, TaskRunState.Active, T0 + s, null), ("C", 1, TaskRunState.Succeeded, T0 + 2 * s, T0 + 3 * s), ("D", 0, TaskRunState.Failed, T0 + 1.5 * s, T0 + 4 * s)]),
            (TaskState.Succeeded, false, T0 + 5 * s,
                [("C", 1, TaskRunState.Succeeded, T0 + 2 * s, T0 + 5 * s), ("C", 0, TaskRunState.Failed, T0 + s, T0 + 1.5 * s)]),
            (TaskState.Expired, true, null, [("C", 0, TaskRunState.Succeeded, T0 + s, T0 + 2 * s), ("D", 0, TaskRunState.Active, T0 + 1.2 * s, null)]),
            (TaskState.Expired, true, null, [("C", 0, TaskRunState.Retried, T0 + s, T0 + 2 * s)]),
            (TaskState.Cancelled, false, T0 + 3 * s, [("C", 0, TaskRunState.Cancelled, T0 + s, T0 + 3 * s), ("C", 0, TaskRunState.Succeeded, T0 + 1.1 * s, T0 + 2 * s)]),
            (TaskState.Expired, true, null, []),
        };
        var ids = new List<Guid>();
        foreach (var c in cases)
        {
            var id = Dispatch(T0.AddSeconds(10));
            ids.Add(id);
            foreach (var r in c.Runs)
            {
                var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = "Report", ConsumerType = r.Consumer, Start = T0.AddSeconds(1) };
                _recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = id, Name = "Report", DispatchedAt = T0 }, false));
                await _host.FlushAsync();
                var (state, start, stop, retries, runId) = ((int)r.State, r.Start, r.Stop, r.Retries, run.Id);
                await _host.QueryAsync(db => db.Database.ExecuteSqlAsync(
                    $"UPDATE \"JobLogTaskRuns\" SET \"State\" = {state}, \"Start\" = {start}, \"Stop\" = {stop}, \"Retries\" = {retries} WHERE \"Id\" = {runId}"));
            }
        }

        await _host.FlushAsync();
        _clock.Advance(TimeSpan.FromSeconds(11));
        var result = await Sweeper.SweepOnceAsync(CancellationToken.None);

        var now = _clock.GetUtcNow().UtcDateTime;
        for (var i = 0; i < cases.Length; i++)
        {
            var task = await _host.TaskAsync(ids[i]);
            var (state, expired, stop, runs) = cases[i];
            Assert.That((task.State, task.IsSetAsStale, task.Start, task.Stop),
                Is.EqualTo((state, expired, runs.Length == 0 ? (DateTime?)null : runs.Min(r => r.Start), expired ? now : stop)), $"case {i}");
        }

        Assert.That((result.Expired, result.Healed), Is.EqualTo((3, 2)));
    }

    [Test]
    public async Task Sweep_BatchesOfExpiredAndHealedTasks_KeepTheRollupsAndFailureGroupsEqualToTheCounts()
    {
        // 30 tasks over two names, two kinds and four hours, each ACTIVE with an ACTIVE run; a third of them with that run
        // finished by hand (a derivation another process missed: healed to FAILED or SUCCEEDED, at their own minute), the
        // failed ones with a failure group stored; the rest expire at the sweep's minute. Batches of 7: five batches.
        var tasks = new List<Guid>();
        for (var i = 0; i < 30; i++)
        {
            var at = T0.AddMinutes(i * 7);
            var name = i % 2 == 0 ? "Report" : "Invoice";
            var id = Guid.NewGuid();
            var task = new TaskPayload { Id = id, Name = name, DispatchedAt = at, EstimatedTimeOfFirstArrival = at, Stale = at.AddSeconds(30), IsInternal = i % 10 == 9 };
            _recorder.Enqueue(new TaskDispatched(task));
            _recorder.Enqueue(new RunStarted(new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = name, ConsumerType = "C", Start = at.AddSeconds(1) }, task, false));
            tasks.Add(id);
        }

        await _host.FlushAsync();
        var failed = tasks.Where((_, i) => i % 6 == 0).ToList();
        var succeeded = tasks.Where((_, i) => i % 6 == 3).ToList();
        await _host.QueryAsync(async db =>
        {
            foreach (var (ids, state) in new[] { (failed, 3), (succeeded, 2) })
            {
                foreach (var id in ids)
                {
                    await db.Database.ExecuteSqlAsync($"UPDATE \"JobLogTaskRuns\" SET \"State\" = {state}, \"Stop\" = \"Start\" WHERE \"TaskId\" = {id}");
                    await db.Database.ExecuteSqlAsync($"UPDATE \"JobLogTasks\" SET \"FailureGroupException\" = {"g-" + state} WHERE \"Id\" = {id}");
                }
            }

            return 0;
        });
        _clock.SetUtcNow(new DateTimeOffset(T0.AddHours(5).AddSeconds(17)));

        var result = await Sweeper.SweepOnceAsync(CancellationToken.None);

        Assert.That((result.Expired, result.Healed), Is.EqualTo((20, 10)));

        var rows = await _host.QueryAsync(db => db.TaskLogs.AsNoTracking().ToListAsync());
        Assert.That(rows.Count(t => t.State == TaskState.Failed), Is.EqualTo(5), "the test's own premise");
        var counts = await _host.QueryAsync(db => db.Set<TaskStateCount>().AsNoTracking().ToListAsync());
        Assert.That(counts.Where(c => c.Count != 0).Select(c => (c.State, c.Name, c.IsInternal, c.Count)),
            Is.EquivalentTo(rows.GroupBy(t => (t.State, t.Name, t.IsInternal)).Select(g => (g.Key.State, g.Key.Name, g.Key.IsInternal, (long)g.Count()))), "per state and name");
        var minutes = await _host.QueryAsync(db => db.Set<TaskMinuteCount>().AsNoTracking().ToListAsync());
        Assert.That(minutes.Select(m => (m.Minute, m.State, m.Name, m.IsInternal, m.Count)),
            Is.EquivalentTo(rows.Where(t => t.Stop is not null)
                .GroupBy(t => (new DateTime(t.Stop!.Value.Ticks - (t.Stop.Value.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc), t.State, t.Name, t.IsInternal))
                .Select(g => (g.Key.Item1, g.Key.State, g.Key.Name, g.Key.IsInternal, (long)g.Count()))), "per minute, no empty minute rows");
        var hours = await _host.QueryAsync(db => db.Set<TaskHourCount>().AsNoTracking().ToListAsync());
        Assert.That(hours.Select(h => (h.Hour, h.State, h.Name, h.IsInternal, h.Count)),
            Is.EquivalentTo(rows.Where(t => t.Stop is not null)
                .GroupBy(t => (new DateTime(t.Stop!.Value.Ticks - (t.Stop.Value.Ticks % TimeSpan.TicksPerHour), DateTimeKind.Utc), t.State, t.Name, t.IsInternal))
                .Select(g => (g.Key.Item1, g.Key.State, g.Key.Name, g.Key.IsInternal, (long)g.Count()))), "per hour, no empty hour rows");
        var groups = await _host.QueryAsync(db => db.Set<FailureGroupCount>().AsNoTracking().Where(g => g.Count != 0).ToListAsync());
        var open = await _host.QueryAsync(db => db.TaskLogs.AsNoTracking().Where(t => t.State == TaskState.Failed && t.Resolution == null)
            .Select(t => new { Group = EF.Property<string?>(t, JobLog.Querying.FailureGroupColumns.Exception), t.IsInternal }).ToListAsync());
        Assert.That(groups.Select(g => (g.GroupId, g.IsInternal, g.Count)),
            Is.EquivalentTo(open.Where(t => t.Group != null).GroupBy(t => (t.Group!, t.IsInternal)).Select(g => (g.Key.Item1, g.Key.IsInternal, (long)g.Count()))),
            "the open failures per group");
    }

    [Test]
    public async Task Sweep_MoreTasksThanOneBatch_ExpiresAllOfThem()
    {
        var ids = Enumerable.Range(0, 30).Select(_ => Dispatch(T0.AddSeconds(1))).ToList();
        await _host.FlushAsync();
        _clock.Advance(TimeSpan.FromSeconds(2));

        var result = await Sweeper.SweepOnceAsync(CancellationToken.None);

        Assert.That(result.Expired, Is.EqualTo(30));
        Assert.That(await _host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.State == TaskState.Expired)), Is.EqualTo(ids.Count));
    }

    [Test]
    public async Task Sweep_ABacklogOfManyBatches_ExpiresEachTaskOnceWithItsRun_InParallelBatches()
    {
        // 60 stale tasks in batches of 7 (the fixture's), half with an ACTIVE run: PostgreSQL sweeps them on several
        // connections at once (Parallelism 4, the default), SQLite one batch at a time.
        var ids = Enumerable.Range(0, 60).Select(_ => Dispatch(T0.AddSeconds(1))).ToList();
        foreach (var id in ids.Where((_, i) => i % 2 == 0))
        {
            StartRun(id);
        }

        await _host.FlushAsync();
        _clock.Advance(TimeSpan.FromSeconds(2));

        var result = await Sweeper.SweepOnceAsync(CancellationToken.None);

        Assert.That(result.Expired, Is.EqualTo(60));
        Assert.That(Sweeper.LastSweep?.Result.Expired, Is.EqualTo(60));
        var tasks = await _host.QueryAsync(db => db.TaskLogs.Include(t => t.Runs).AsNoTracking().ToListAsync());
        Assert.That(tasks.Where(t => t.State == TaskState.Expired && t.IsSetAsStale).Select(t => t.Id), Is.EquivalentTo(ids));
        Assert.That(tasks.SelectMany(t => t.Runs).Select(r => r.State).ToList(), Has.Count.EqualTo(30).And.All.EqualTo(TaskRunState.Expired));
        Assert.That((await Sweeper.SweepOnceAsync(CancellationToken.None)).Expired, Is.Zero);
    }

    [Test]
    public async Task Sweep_TwoSweepersAtOnce_ExpireEachTaskExactlyOnce()
    {
        for (var i = 0; i < 200; i++)
        {
            Dispatch(T0.AddSeconds(1));
        }

        await _host.FlushAsync();
        _clock.Advance(TimeSpan.FromSeconds(2));
        await using var other = await LedgerHost.StartAsync(
            _host.Ledger, o => o.MigrateOnStartup = false, s => s.AddSingleton<TimeProvider>(_clock));
        var second = other.Services.GetRequiredService<TaskLogSweeper>();

        var results = await Task.WhenAll(
            Task.Run(() => Sweeper.SweepOnceAsync(CancellationToken.None)),
            Task.Run(() => second.SweepOnceAsync(CancellationToken.None)));

        Assert.That(results.Sum(r => r.Expired), Is.EqualTo(200));
    }

    [Test]
    public async Task Sweep_TwoSweepersAtOnce_OverManyBatches_ExpireEachTaskOnceWithItsRun_AndTheRollupsEqualTheCounts()
    {
        // Two processes' sweepers over the same backlog, each on several connections (PostgreSQL: Parallelism 4, batches
        // of 7; the deadlines tie in pairs): each task is expired by one of them only, its ACTIVE run with it, and the
        // rollups count each task once.
        var ids = Enumerable.Range(0, 120).Select(i => Dispatch(T0.AddSeconds(1).AddTicks(i / 2 * 10))).ToList();
        foreach (var id in ids.Where((_, i) => i % 3 == 0))
        {
            StartRun(id);
        }

        await _host.FlushAsync();
        _clock.Advance(TimeSpan.FromSeconds(2));
        await using var other = await LedgerHost.StartAsync(
            _host.Ledger, o => { o.MigrateOnStartup = false; o.Sweeper.BatchSize = 7; }, s => s.AddSingleton<TimeProvider>(_clock));
        var second = other.Services.GetRequiredService<TaskLogSweeper>();

        var results = await Task.WhenAll(
            Task.Run(() => Sweeper.SweepOnceAsync(CancellationToken.None)),
            Task.Run(() => second.SweepOnceAsync(CancellationToken.None)));

        Assert.That((results.Sum(r => r.Expired), results.Sum(r => r.Healed)), Is.EqualTo((120, 0)));
        var tasks = await _host.QueryAsync(db => db.TaskLogs.Include(t => t.Runs).AsNoTracking().ToListAsync());
        Assert.That(tasks.Where(t => t.State == TaskState.Expired && t.IsSetAsStale).Select(t => t.Id), Is.EquivalentTo(ids));
        Assert.That(tasks.SelectMany(t => t.Runs).Select(r => (r.State, r.ErrorMessage)).ToList(),
            Has.Count.EqualTo(40).And.All.EqualTo((TaskRunState.Expired, TaskLogSweeper.StaleRunError)));
        var counts = await _host.QueryAsync(db => db.Set<TaskStateCount>().AsNoTracking().Where(c => c.Count != 0).ToListAsync());
        Assert.That(counts.Select(c => (c.State, c.Name, c.Count)), Is.EquivalentTo(new[] { (TaskState.Expired, "Report", 120L) }));
        var minutes = await _host.QueryAsync(db => db.Set<TaskMinuteCount>().AsNoTracking().Where(c => c.Count != 0).ToListAsync());
        Assert.That(minutes.Sum(m => m.Count), Is.EqualTo(120), "each expiry counted in its minute once");
    }

    [Test]
    public async Task Sweep_ARunFinishedWhileTheSweepWaitsForItsTask_IsNotOverwrittenAsExpired()
    {
        if (provider != LedgerProvider.PostgreSql)
        {
            Assert.Ignore("SQLite's claim and sweep hold the database's write lock: a finish cannot commit between them.");
        }

        // Ten stale tasks, one with an ACTIVE run; its consumer's finish is being written (the run and the task, in a
        // transaction of their own) when the sweep begins, and commits while the sweep runs. The sweep may have read the
        // run as ACTIVE: the finish wins all the same (the task and its run stay SUCCEEDED), the other nine expire.
        var ids = Enumerable.Range(0, 10).Select(_ => Dispatch(T0.AddSeconds(2))).ToList();
        var run = StartRun(ids[4]);
        await _host.FlushAsync();
        _clock.Advance(TimeSpan.FromSeconds(3));

        await using var finish = await _host.OpenJobLogSessionAsync();
        await using var transaction = await finish.BeginTransactionAsync();
        await using (var command = finish.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText =
                $"UPDATE \"JobLogTaskRuns\" SET \"State\" = {(int)TaskRunState.Succeeded}, \"Stop\" = \"Start\" WHERE \"Id\" = '{run.Id}'; " +
                $"UPDATE \"JobLogTasks\" SET \"State\" = {(int)TaskState.Succeeded}, \"Stop\" = '{T0.AddSeconds(1):O}' WHERE \"Id\" = '{ids[4]}'";
            await command.ExecuteNonQueryAsync();
        }

        var sweep = Task.Run(() => Sweeper.SweepOnceAsync(CancellationToken.None));
        // The sweep either skipped the locked task, or waits for its lock: commit the finish only then.
        await LedgerHost.EventuallyAsync(async () => sweep.IsCompleted || await _host.QueryAsync(db => db.Database
            .SqlQueryRaw<int>("SELECT count(*)::int AS \"Value\" FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
            .SingleAsync()) > 0, because: "the sweep done or waiting for the finishing task's lock");
        await transaction.CommitAsync();
        var result = await sweep;

        var tasks = await _host.QueryAsync(db => db.TaskLogs.Include(t => t.Runs).AsNoTracking().ToListAsync());
        var finished = tasks.Single(t => t.Id == ids[4]);
        Assert.That((finished.State, finished.IsSetAsStale, finished.Runs.Single().State),
            Is.EqualTo((TaskState.Succeeded, false, TaskRunState.Succeeded)), "the consumer's finish");
        Assert.That(tasks.Where(t => t.State == TaskState.Expired).Select(t => t.Id), Is.EquivalentTo(ids.Where((_, i) => i != 4)));
        Assert.That(result.Expired, Is.EqualTo(9));
        var counts = await _host.QueryAsync(db => db.Set<TaskStateCount>().AsNoTracking().Where(c => c.Count != 0).ToListAsync());
        Assert.That(counts.Select(c => (c.State, c.Count)), Is.EquivalentTo(new[] { (TaskState.Expired, 9L), (TaskState.Succeeded, 1L) }));
    }
}
