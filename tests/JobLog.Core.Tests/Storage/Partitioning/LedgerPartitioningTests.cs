using System.Text.Json;
using JobLog.Maintenance;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Retention;
using JobLog.Storage;
using JobLog.Storage.Partitioning;
using JobLog.Storage.PostgreSql;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Partitioning;

/// <summary>Daily partitions of the PostgreSQL ledger (docs/scale.md#partitioning), on a throwaway database per test.</summary>
public class LedgerPartitioningTests
{
    private static readonly DateTime T0 = new(2026, 3, 10, 12, 0, 0, DateTimeKind.Utc);
    private FakeTimeProvider _clock = null!;
    private LedgerHost? _host;

    [SetUp]
    public void SetUp() => _clock = new FakeTimeProvider(new DateTimeOffset(T0));

    [TearDown]
    public async Task TearDown()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
    }

    [Test]
    public void ARandomId_WhoseLastBytesReadAsAPlausibleTime_IsDated_SoTestsOfTheUndatedPartitionDrawUndatedIds()
    {
        var bytes = Guid.NewGuid().ToByteArray(bigEndian: true);
        var ticks48 = T0.Ticks >> 16;
        for (var i = 15; i >= 10; i--)
        {
            bytes[i] = (byte)ticks48;
            ticks48 >>= 8;
        }

        var version4 = new Guid(bytes, bigEndian: true);
        Assert.That(version4.Version, Is.EqualTo(4));
        Assert.That(PartitionDay.Of(version4), Is.EqualTo(PartitionDay.Of(T0)), "a version 4 id can read as a NewId's time");
        var drawn = Enumerable.Range(0, 20_000).Select(_ => UndatedIds.New()).ToList();
        Assert.That(drawn.Select(PartitionDay.Of).Distinct(), Is.EqualTo(new[] { PartitionDay.Undated }));
        Assert.That(drawn.Distinct().Count(), Is.EqualTo(drawn.Count));
    }

    [Test]
    public async Task PartitionDay_InSql_IsTheSameAsInCSharp()
    {
        var host = await StartAsync(partitioned: true);
        var ids = new List<Guid> { Guid.Empty, Guid.AllBitsSet };
        var random = new Random(15);
        for (var i = 0; i < 300; i++)
        {
            var at = new DateTimeOffset(2019, 12, 30, 0, 0, 0, TimeSpan.Zero).AddHours(random.NextDouble() * 24 * 365 * 90);
            ids.Add(Guid.CreateVersion7(at));
            ids.Add(NewIdLike(at.UtcDateTime, random));
            ids.Add(Guid.NewGuid());
        }

        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"SELECT {PartitionDay.Function}(x) FROM unnest($1::uuid[]) WITH ORDINALITY AS u(x, n) ORDER BY n", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = ids.ToArray() });
        var fromSql = new List<int>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                fromSql.Add(reader.GetInt32(0));
            }
        }

        Assert.That(fromSql, Is.EqualTo(ids.Select(PartitionDay.Of).ToList()));
        Assert.That(ids.Select(PartitionDay.Of).Count(d => d != PartitionDay.Undated), Is.GreaterThan(400), "most v7 and NewId-like ids are dated");
        Assert.That(PartitionDay.Of(Guid.CreateVersion7(new DateTimeOffset(T0))), Is.EqualTo(PartitionDay.Of(T0)));
        Assert.That(PartitionDay.Of(NewIdLike(T0, random)), Is.EqualTo(PartitionDay.Of(T0)));
    }

    [Test]
    public async Task Maintenance_CreatesPartitionsAhead_ForTasksAndRuns()
    {
        var host = await StartAsync(partitioned: true);
        var today = PartitionDay.Of(T0);
        Assert.That(await DaysAsync(host), Is.EqualTo(Days(today, today + 3)), "start-up created today and three days ahead");

        _clock.Advance(TimeSpan.FromDays(2));
        await host.Services.GetRequiredService<LedgerPartitionService>().RunOnceAsync(CancellationToken.None);

        Assert.That(await DaysAsync(host), Is.EqualTo(Days(today, today + 5)));
    }

    [Test]
    public async Task Maintenance_WhenTheDefaultPartitionHoldsRowsOfANewDay_MovesThemIn()
    {
        var host = await StartAsync(partitioned: true);
        var later = T0.AddDays(6);
        var id = Guid.CreateVersion7(new DateTimeOffset(later));
        Succeed(host, id, "Ahead", later);
        await host.FlushAsync();
        Assert.That(await PartitionOfAsync(host, LedgerModel.Tasks, id), Is.EqualTo("JobLogTasks_default"));

        _clock.Advance(TimeSpan.FromDays(4));
        await host.Services.GetRequiredService<LedgerPartitionService>().RunOnceAsync(CancellationToken.None);

        Assert.That(await PartitionOfAsync(host, LedgerModel.Tasks, id), Is.EqualTo("JobLogTasks_" + PartitionDay.Suffix(PartitionDay.Of(later))));
        Assert.That(await PartitionOfAsync(host, LedgerModel.Runs, id), Is.EqualTo("JobLogTaskRuns_" + PartitionDay.Suffix(PartitionDay.Of(later))));
        await AssertRollupsEqualCountsAsync(host, "after the move");
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task PublisherThenConsumer_TwoUpserts_AreOneRowInTheIdsDay(bool dated)
    {
        var host = await StartAsync(partitioned: true);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var id = dated ? Guid.CreateVersion7(new DateTimeOffset(T0)) : UndatedIds.New();
        var consumerFirst = dated ? Guid.CreateVersion7(new DateTimeOffset(T0.AddMinutes(1))) : UndatedIds.New();

        // Publisher, then consumer: the consumer's seed finds the publisher's row.
        recorder.Enqueue(new TaskDispatched(Task(id, "Order", T0)));
        await host.FlushAsync();
        var run = Start(recorder, id, "Order", T0.AddSeconds(1));
        await host.FlushAsync();
        recorder.Enqueue(new RunFinished(run, id, TaskRunState.Succeeded, T0.AddSeconds(2), null, null, null));

        // Consumer, then publisher: the publisher's upsert updates the consumer's row.
        Start(recorder, consumerFirst, "Order", T0.AddSeconds(3));
        await host.FlushAsync();
        recorder.Enqueue(new TaskDispatched(Task(consumerFirst, "Order", T0.AddSeconds(2)) with { QueueName = "orders" }));
        await host.FlushAsync();

        var rows = await host.QueryAsync(db => db.TaskLogs.AsNoTracking().Where(t => t.Id == id || t.Id == consumerFirst).ToListAsync());
        Assert.That(rows.Count(t => t.Id == id), Is.EqualTo(1));
        Assert.That(rows.Count(t => t.Id == consumerFirst), Is.EqualTo(1));
        Assert.That(rows.Single(t => t.Id == id).State, Is.EqualTo(TaskState.Succeeded));
        Assert.That(rows.Single(t => t.Id == consumerFirst).QueueName, Is.EqualTo("orders"), "the producer's fields won");
        var partition = dated ? "JobLogTasks_" + PartitionDay.Suffix(PartitionDay.Of(T0)) : "JobLogTasks_undated";
        Assert.That(await PartitionOfAsync(host, LedgerModel.Tasks, id), Is.EqualTo(partition));
        Assert.That(await PartitionOfAsync(host, LedgerModel.Runs, id), Is.EqualTo(partition.Replace("JobLogTasks", "JobLogTaskRuns", StringComparison.Ordinal)));
    }

    [Test]
    public async Task Retention_DropsOldDays_KeepsWhatTheBatchedPurgeWouldKeep()
    {
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        var older = T0.AddDays(-41);
        await using (var connection = new NpgsqlConnection(host.Ledger.ConnectionString))
        {
            await connection.OpenAsync();
            await LedgerPartitioning.EnsureAheadAsync(connection, older, 1, CancellationToken.None);
        }

        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var oldSuccess = Guid.CreateVersion7(new DateTimeOffset(old));
        var olderSuccess = Guid.CreateVersion7(new DateTimeOffset(older));
        var oldFailure = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(1)));
        var oldUnfinished = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(2)));
        var oldButEndedLate = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(3)));
        var newSuccess = Guid.CreateVersion7(new DateTimeOffset(T0.AddDays(-1)));
        var undatedOld = UndatedIds.New();
        Succeed(host, oldSuccess, "Invoice", old);
        Succeed(host, olderSuccess, "Invoice", older);
        Succeed(host, undatedOld, "Invoice", old);
        recorder.Enqueue(new TaskDispatched(Task(oldFailure, "Invoice", old)));
        recorder.Enqueue(new RunFinished(Start(recorder, oldFailure, "Invoice", old), oldFailure, TaskRunState.Failed, old.AddSeconds(5), "boom", null, null));
        recorder.Enqueue(new TaskDispatched(Task(oldUnfinished, "Invoice", old)));
        Start(recorder, oldUnfinished, "Invoice", old);
        recorder.Enqueue(new TaskDispatched(Task(oldButEndedLate, "Invoice", old)));
        recorder.Enqueue(new RunFinished(Start(recorder, oldButEndedLate, "Invoice", old), oldButEndedLate, TaskRunState.Succeeded, T0.AddDays(-2), null, null, null));
        Succeed(host, newSuccess, "Report", T0.AddDays(-1));
        await host.FlushAsync();
        Assert.That(await PartitionOfAsync(host, LedgerModel.Tasks, oldSuccess), Is.EqualTo("JobLogTasks_" + PartitionDay.Suffix(PartitionDay.Of(old))));

        var result = await host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(
            new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90)));

        var left = await host.TasksAsync();
        Assert.That(left.Select(t => t.Id), Is.EquivalentTo(new[] { oldFailure, oldUnfinished, oldButEndedLate, newSuccess }));
        Assert.That(result.Succeeded, Is.EqualTo(3), "two dropped with their days, the undated one by the batched purge");
        Assert.That(result.Failed, Is.Zero);
        Assert.That(left.Single(t => t.Id == oldFailure).Runs, Has.Count.EqualTo(1), "a kept task keeps its runs");
        Assert.That(left.Single(t => t.Id == oldUnfinished).Runs.Single().State, Is.EqualTo(TaskRunState.Active));
        var days = await DaysAsync(host);
        Assert.That(days, Does.Not.Contain(PartitionDay.Of(old)).And.Not.Contain(PartitionDay.Of(older)));
        Assert.That(days, Does.Contain(PartitionDay.Of(T0)));
        Assert.That(await PartitionOfAsync(host, LedgerModel.Tasks, oldFailure), Is.EqualTo("JobLogTasks_k" + PartitionDay.Suffix(PartitionDay.Of(old))[1..]),
            "the kept rows are their day's partition again");
        Assert.That(await PartitionOfAsync(host, LedgerModel.Runs, oldFailure), Is.EqualTo("JobLogTaskRuns_k" + PartitionDay.Suffix(PartitionDay.Of(old))[1..]));
        await AssertRollupsEqualCountsAsync(host, "after the drop");

        // The kept rows still take the writer's upserts (same id, same key): a retry of the failure updates its row.
        recorder.Enqueue(new RunFinished(Start(recorder, oldFailure, "Invoice", T0), oldFailure, TaskRunState.Succeeded, T0.AddSeconds(1), null, null, null));
        await host.FlushAsync();
        var retried = await host.TaskAsync(oldFailure);
        Assert.That(retried.State, Is.EqualTo(TaskState.Succeeded));
        Assert.That(retried.Runs, Has.Count.EqualTo(2));
        await AssertRollupsEqualCountsAsync(host, "after the retry");
    }

    [Test]
    public async Task Retention_ADaysDrop_ForgetsTheOpenRunsOfItsDroppedTasks_KeepsThoseOfItsKeptOnes()
    {
        // The side table of open runs (OpenRuns) is kept by triggers, and a partition's drop fires none: the drop deletes the
        // rows of the runs it dropped after its commit (session 34; before, they stayed until their host was gone and the host
        // pass forgot them).
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, old, 0, CancellationToken.None);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var instance = Guid.NewGuid();
        Guid OpenRun(Guid task)
        {
            var run = new RunPayload { Id = Guid.NewGuid(), TaskId = task, Name = "Invoice", ConsumerType = "C", Start = old.AddSeconds(1), HostInstanceId = instance };
            recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = task, Name = "Invoice", DispatchedAt = old }, false));
            return run.Id;
        }

        // A task whose first run's host went away mid-run and whose redelivery succeeded elsewhere: done, its first run
        // still ACTIVE (and open in the side table); and an unfinished task, kept by the drop with its run.
        var done = Guid.CreateVersion7(new DateTimeOffset(old));
        var unfinished = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(1)));
        var orphan = OpenRun(done);
        var kept = OpenRun(unfinished);
        await host.FlushAsync();
        await using (var succeed = new NpgsqlCommand(
            $"UPDATE \"{LedgerModel.Tasks}\" SET \"State\" = {(int)TaskState.Succeeded}, \"Stop\" = @stop WHERE \"Id\" = @id", connection))
        {
            succeed.Parameters.AddWithValue("stop", old.AddMinutes(5));
            succeed.Parameters.AddWithValue("id", done);
            Assert.That(await succeed.ExecuteNonQueryAsync(), Is.EqualTo(1));
        }

        Assert.That(await OpenRunsAsync(connection), Is.EquivalentTo(new[] { orphan, kept }), "the premise: both runs open");

        var result = await host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(
            new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90)));

        Assert.That(result.Succeeded, Is.EqualTo(1));
        Assert.That((await host.TasksAsync()).Select(t => t.Id), Is.EqualTo(new[] { unfinished }));
        Assert.That(await OpenRunsAsync(connection), Is.EqualTo(new[] { kept }), "the dropped run's row gone, the kept run's still open");
        Assert.That(await ScalarAsync<int>(connection, $"SELECT \"Count\" FROM ({OpenRuns.ActiveByHost}) c"), Is.EqualTo(1), "the hosts page counts the kept run");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    private static async Task<List<Guid>> OpenRunsAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand($"SELECT \"RunId\" FROM \"{OpenRuns.Table}\"", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var ids = new List<Guid>();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetGuid(0));
        }

        return ids;
    }

    [Test]
    public async Task Retention_EmptiesTheDayRollupsByTheirDayPartitions_DroppedWithNothingKept_TruncatedWithKeptRows()
    {
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        var older = T0.AddDays(-41);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, older, 1, CancellationToken.None);
        Assert.That(await RollupPartitionsAsync(connection), Is.SupersetOf(new[] { RollupPartition(DayRollups.Tasks, older), RollupPartition(DayRollups.Runs, older),
            RollupPartition(DayRollups.Tasks, old), RollupPartition(DayRollups.Runs, old), RollupPartition(DayRollups.Tasks, T0) }),
            "the day rollups have the ledger's days, made ahead with them");

        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var oldFailure = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(1)));
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(older)), "Invoice", older);
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(old)), "Invoice", old);
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(old.AddHours(2))), "Report", old.AddHours(2));
        recorder.Enqueue(new TaskDispatched(Task(oldFailure, "Invoice", old)));
        recorder.Enqueue(new RunFinished(Start(recorder, oldFailure, "Invoice", old), oldFailure, TaskRunState.Failed, old.AddSeconds(5), "boom", null, null));
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(T0)), "Report", T0);
        await host.FlushAsync();
        Assert.That(await ScalarAsync<long>(connection, $"SELECT COUNT(*) FROM \"{RollupPartition(DayRollups.Tasks, old)}\" WHERE \"Count\" <> 0"), Is.EqualTo(3),
            "the old day's rollup rows are in its partition");

        var result = await host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(
            new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90)));

        Assert.That(result.Succeeded, Is.EqualTo(3));
        Assert.That((await host.TasksAsync()).Select(t => t.State), Is.EquivalentTo(new[] { TaskState.Failed, TaskState.Succeeded }), "the failure kept, today's success");
        var partitions = await RollupPartitionsAsync(connection);
        Assert.That(partitions, Has.None.EqualTo(RollupPartition(DayRollups.Tasks, older)).And.None.EqualTo(RollupPartition(DayRollups.Runs, older)),
            "a day with nothing kept: its rollup partitions dropped");
        Assert.That(partitions, Has.Member(RollupPartition(DayRollups.Tasks, old)).And.Member(RollupPartition(DayRollups.Runs, old)));
        Assert.That(await ScalarAsync<string>(connection,
                $"SELECT string_agg(\"State\"::text || ' ' || \"Name\" || ' ' || \"Count\"::text, ', ') FROM \"{RollupPartition(DayRollups.Tasks, old)}\" WHERE \"Count\" <> 0"),
            Is.EqualTo($"{(int)TaskState.Failed} Invoice 1"), "a day with kept rows: its rollup partition holds theirs alone");
        await AssertRollupsEqualCountsAsync(host, "after the drop");

        // The kept failure retried, then expired by the batched purge: the day's _k partitions go, with its rollup partitions.
        recorder.Enqueue(new RunFinished(Start(recorder, oldFailure, "Invoice", T0), oldFailure, TaskRunState.Succeeded, T0.AddSeconds(1), null, null, null));
        await host.FlushAsync();
        await AssertRollupsEqualCountsAsync(host, "after the retry");
        _clock.Advance(TimeSpan.FromDays(2));
        await host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(1), T0.AddDays(1)));
        await host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(1), T0.AddDays(1)));
        Assert.That(await RollupPartitionsAsync(connection), Has.None.EqualTo(RollupPartition(DayRollups.Tasks, old)).And.None.EqualTo(RollupPartition(DayRollups.Runs, old)),
            "the emptied kept day's rollup partitions dropped with its _k partitions");
        await AssertRollupsEqualCountsAsync(host, "after the kept day went");
    }

    [Test]
    public async Task DayRollups_OfALedgerPartitionedBeforeTheirDays_BecomePartitioned_TheirRowsTheDefault_AndTheDropsDeleteThem()
    {
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, old, 1, CancellationToken.None);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var oldFailure = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(1)));
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(old)), "Invoice", old);
        recorder.Enqueue(new TaskDispatched(Task(oldFailure, "Invoice", old)));
        recorder.Enqueue(new RunFinished(Start(recorder, oldFailure, "Invoice", old), oldFailure, TaskRunState.Failed, old.AddSeconds(5), "boom", null, null));
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(T0)), "Report", T0);
        await host.FlushAsync();

        // A ledger partitioned before session 31: the two day rollups plain tables (their rows, key and minute index), the
        // minute views over them.
        foreach (var table in DayRollups.DayTables)
        {
            await using var command = new NpgsqlCommand(
                $"CREATE TABLE \"{table}_plain\" (LIKE \"{table}\"); INSERT INTO \"{table}_plain\" SELECT * FROM \"{table}\"; " +
                $"DROP TABLE \"{table}\" CASCADE; ALTER TABLE \"{table}_plain\" RENAME TO \"{table}\"; " +
                $"ALTER TABLE \"{table}\" ADD PRIMARY KEY (\"{PartitionDay.Column}\", \"Minute\"{(table == DayRollups.Tasks ? ", \"State\"" : "")}, \"Name\"{(table == DayRollups.Tasks ? ", \"IsInternal\"" : "")}); " +
                $"CREATE INDEX \"IX_{table}_Minute\" ON \"{table}\" (\"Minute\")", connection);
            await command.ExecuteNonQueryAsync();
        }

        await using (var command = new NpgsqlCommand(
            $"CREATE VIEW \"{LedgerRollups.Minutes}\" AS SELECT \"Minute\", \"State\", \"Name\", \"IsInternal\", \"Count\" FROM \"{DayRollups.Tasks}\" WHERE \"Minute\" > '-infinity' AND \"Count\" <> 0; " +
            $"CREATE VIEW \"{RunRollups.Minutes}\" AS SELECT \"Minute\", \"Name\", \"Runs\", \"TotalMilliseconds\", \"MaxMilliseconds\" FROM \"{DayRollups.Runs}\" WHERE \"Runs\" <> 0", connection))
        {
            await command.ExecuteNonQueryAsync();
        }

        Assert.That(await ScalarAsync<bool>(connection, DayRollups.PartitionedSql), Is.False);
        await AssertRollupsEqualCountsAsync(host, "as a session 30 ledger");

        await host.Services.GetRequiredService<LedgerPartitionService>().RunOnceAsync(CancellationToken.None);

        Assert.That(await ScalarAsync<bool>(connection, DayRollups.PartitionedSql), Is.True);
        await AssertMinutesAreViewsAsync(connection);
        var partitions = await RollupPartitionsAsync(connection);
        Assert.That(partitions, Has.Member(DayRollups.Tasks + "_default").And.Member(DayRollups.Runs + "_default").And.Member(RollupPartition(DayRollups.Tasks, T0)),
            "the old tables are the default partitions; today's partition made, its rows moved in from the default");
        Assert.That(partitions, Has.None.EqualTo(RollupPartition(DayRollups.Tasks, old)), "a past day's rows stay in the default");
        Assert.That(await ScalarAsync<long>(connection, $"SELECT COUNT(*) FROM \"{DayRollups.Tasks}_default\" WHERE \"{PartitionDay.Column}\" = {PartitionDay.Of(old)} AND \"Count\" <> 0"), Is.EqualTo(2));
        Assert.That(await ScalarAsync<long>(connection, $"SELECT COUNT(*) FROM \"{DayRollups.Tasks}_default\" WHERE \"{PartitionDay.Column}\" = {PartitionDay.Of(T0)}"), Is.Zero);
        await AssertRollupsEqualCountsAsync(host, "after the day rollups were partitioned");
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(T0.AddMinutes(3))), "Report", T0.AddMinutes(3));
        await host.FlushAsync();
        await AssertRollupsEqualCountsAsync(host, "after a write");

        var result = await host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(
            new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90)));

        Assert.That(result.Succeeded, Is.EqualTo(1));
        Assert.That(await ScalarAsync<long>(connection, $"SELECT COUNT(*) FROM \"{DayRollups.Tasks}_default\" WHERE \"{PartitionDay.Column}\" = {PartitionDay.Of(old)} AND \"Count\" <> 0"), Is.EqualTo(1),
            "the dropped day's rows deleted from the default, the kept failure's left");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    private static string RollupPartition(string table, DateTime day) => table + "_" + PartitionDay.Suffix(PartitionDay.Of(day));

    private static async Task<List<string>> RollupPartitionsAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid " +
            $"WHERE i.inhparent IN (to_regclass('\"{DayRollups.Tasks}\"'), to_regclass('\"{DayRollups.Runs}\"'))", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var names = new List<string>();
        while (await reader.ReadAsync())
        {
            names.Add(reader.GetString(0));
        }

        return names;
    }

    [Test]
    public async Task Retention_DropsTheDaysPartitionsAfterTheLockedCommit_AndThoseALeftDropDetached()
    {
        // A day's partitions are detached (renamed _x) in its locked transaction and dropped after its commit, so that
        // freeing their files (1.7 s at 10 M) happens without the tables locked; detached ones a stopped drop left behind
        // (after its commit, before their drop) go with the next drop; a table of another name is not the drop's.
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        var older = T0.AddDays(-41);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, older, 1, CancellationToken.None);
        var left = new[] { LedgerModel.Tasks, LedgerModel.Runs }.Select(t => LedgerPartitioning.DetachedName(t, PartitionDay.Of(old.AddDays(-100)))).ToList();
        await using (var leftovers = new NpgsqlCommand(
            string.Concat(left.Select(n => $"CREATE TABLE \"{n}\" (LIKE \"{LedgerModel.Tasks}\");")) + "CREATE TABLE \"Invoices_x20250101\" (\"Id\" integer);", connection))
        {
            await leftovers.ExecuteNonQueryAsync();
        }

        var locks = new List<double>();
        var meters = host.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Scope == meters && instrument.Name == "joblog.retention.day_lock_duration")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, value, _, _) =>
        {
            lock (locks)
            {
                locks.Add(value);
            }
        });
        listener.Start();

        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var oldSuccess = Guid.CreateVersion7(new DateTimeOffset(old));
        var olderSuccess = Guid.CreateVersion7(new DateTimeOffset(older));
        var oldFailure = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(1)));
        Succeed(host, oldSuccess, "Invoice", old);
        Succeed(host, olderSuccess, "Invoice", older);
        recorder.Enqueue(new TaskDispatched(Task(oldFailure, "Invoice", old)));
        recorder.Enqueue(new RunFinished(Start(recorder, oldFailure, "Invoice", old), oldFailure, TaskRunState.Failed, old.AddSeconds(5), "boom", null, null));
        await host.FlushAsync();

        var result = await host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(
            new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90)));

        Assert.That(result.Succeeded, Is.EqualTo(2));
        Assert.That((await host.TasksAsync()).Select(t => t.Id), Is.EquivalentTo(new[] { oldFailure }));
        await using (var tables = new NpgsqlCommand(
            "SELECT relname::text FROM pg_class WHERE relkind IN ('r', 'p') AND relnamespace = current_schema()::regnamespace AND relname ~ '_[pxk][0-9]{8}$' " +
            $"AND (relname LIKE '{LedgerModel.Tasks}%' OR relname LIKE '{LedgerModel.Runs}%' OR relname LIKE 'Invoices%')", connection))
        {
            var names = new List<string>();
            await using var reader = await tables.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                names.Add(reader.GetString(0));
            }

            Assert.That(names, Has.None.Match("^JobLog[A-Za-z]+_x"), "the days' detached partitions and the ones left behind are dropped");
            Assert.That(names, Does.Contain("Invoices_x20250101"), "a table of another name is left");
            Assert.That(names, Does.Contain(LedgerModel.Tasks + "_k" + PartitionDay.Suffix(PartitionDay.Of(old))[1..]), "the kept failure's day");
            Assert.That(names, Has.None.EqualTo(LedgerModel.Tasks + "_" + PartitionDay.Suffix(PartitionDay.Of(old))));
        }

        Assert.That(locks, Has.Count.EqualTo(2).And.All.GreaterThan(0), "one lock time for each dropped day");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task Retention_BuildsTheKeptRowsBeforeTheLock_AndAttachesThemWithTheParentsIndexes()
    {
        // The kept rows' tables are built (rows, indexes, a check of their day) before the day's lock, which attaches
        // them: PostgreSQL adopts their indexes as the partitions of the parents' (docs/scale.md "Session 20 (lead)").
        var (host, connection, old, (success, failure, unfinished)) = await OldDayAsync();
        await using var owned = connection;

        var built = new List<int>();
        var drop = await LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None,
            built: day =>
            {
                built.Add(day);
                return System.Threading.Tasks.Task.CompletedTask;
            });

        Assert.That(built, Is.EqualTo(new[] { PartitionDay.Of(old) }), "built before the lock");
        Assert.That((drop.Days, drop.Succeeded, drop.Kept, drop.Rebuilt), Is.EqualTo((2, 1, 2, 0)), "the old day and the (empty) day after it");
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Select(t => t.Id), Is.EquivalentTo(new[] { failure, unfinished }));
        Assert.That(tasks.Single(t => t.Id == failure).Runs.Single().ErrorMessage, Is.EqualTo("card declined"));
        var suffix = PartitionDay.Suffix(PartitionDay.Of(old))[1..];
        foreach (var parent in new[] { LedgerModel.Tasks, LedgerModel.Runs, PostgreSqlSearch.Table })
        {
            var kept = parent + "_k" + suffix;
            Assert.That(await ScalarAsync<long>(connection, $"""
                SELECT count(*) FROM pg_index p WHERE p.indrelid = '"{parent}"'::regclass AND NOT EXISTS (
                    SELECT 1 FROM pg_inherits h JOIN pg_index c ON c.indexrelid = h.inhrelid WHERE h.inhparent = p.indexrelid AND c.indrelid = '"{kept}"'::regclass)
                """), Is.Zero, $"every index of {parent} has its partition on {kept}");
            Assert.That(await ScalarAsync<long>(connection, $"SELECT count(*) FROM pg_index WHERE indrelid = '\"{kept}\"'::regclass"),
                Is.EqualTo(await ScalarAsync<long>(connection, $"SELECT count(*) FROM pg_index WHERE indrelid = '\"{parent}\"'::regclass")), $"{kept}: no other index");
            Assert.That(await ScalarAsync<long>(connection, $"SELECT count(*) FROM pg_constraint WHERE conrelid = '\"{kept}\"'::regclass AND contype = 'c'"), Is.Zero,
                $"{kept}: the build's check of its day is gone");
        }

        Assert.That(await ScalarAsync<string>(connection,
            $"SELECT string_agg(\"Text\", '|' ORDER BY \"Text\") FROM \"{PostgreSqlSearch.Table}\" WHERE \"TaskId\" = '{failure}'"), Does.Contain("card declined"));
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'"), Is.Zero,
            "no built table left");
        Assert.That(success, Is.Not.AnyOf(tasks.Select(t => t.Id).ToArray()));
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task Retention_KeptRowsChangedBetweenTheirBuildAndTheLock_AreReadAgainUnderIt()
    {
        // Between the build and the lock: the kept failure is retried and fails again (a new run, its task updated), and a
        // success of the day is delivered again and fails (a row that becomes one to keep). The built tables are not
        // what the day holds any more: under the lock the noted tasks' built rows go and those kept now are read again by
        // their ids (FinishBuilt; until session 36 every kept row was read and built again under the lock).
        var (host, connection, old, (success, failure, unfinished)) = await OldDayAsync();
        await using var owned = connection;
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();

        var drop = await LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None,
            built: async _ =>
            {
                recorder.Enqueue(new RunFinished(Start(recorder, failure, "Invoice", old.AddHours(1)), failure, TaskRunState.Failed, old.AddHours(1).AddSeconds(1), "gateway refused", null, null));
                recorder.Enqueue(new RunFinished(Start(recorder, success, "Invoice", old.AddHours(2)), success, TaskRunState.Failed, old.AddHours(2).AddSeconds(1), "out of stock", null, null));
                await host.FlushAsync();
            });

        Assert.That((drop.Days, drop.Kept, drop.Rebuilt), Is.EqualTo((2, 3, 0)), "the built tables finished under the lock from the noted ids, not built again");
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Select(t => t.Id), Is.EquivalentTo(new[] { success, failure, unfinished }), "the success that failed since is kept");
        Assert.That(tasks.Single(t => t.Id == failure).Runs.Select(r => r.ErrorMessage), Is.EquivalentTo(new[] { "card declined", "gateway refused" }));
        Assert.That(tasks.Single(t => t.Id == success).State, Is.EqualTo(TaskState.Failed));
        var suffix = PartitionDay.Suffix(PartitionDay.Of(old))[1..];
        Assert.That(await PartitionOfAsync(host, LedgerModel.Runs, failure), Is.EqualTo(LedgerModel.Runs + "_k" + suffix));
        Assert.That(await ScalarAsync<string>(connection,
            $"SELECT string_agg(\"Text\", '|' ORDER BY \"Text\") FROM \"{PostgreSqlSearch.Table}\" WHERE \"TaskId\" IN ('{failure}', '{success}') AND \"IsError\""),
            Is.EqualTo("card declined|gateway refused|out of stock"), "the search text of the rows as they are now");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'"), Is.Zero,
            "the built tables are dropped");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task Retention_RowsTheDropDeletesWrittenBetweenTheBuildAndTheLock_AreNoted_AndLeaveTheBuildAsItIs()
    {
        // Between the build and the lock, a task of the old day is dispatched and succeeds then (a late producer): the day's
        // triggers note its id, and under the lock the note is checked alone (session 30: the kept rows are not read again).
        // It is no kept row and none it becomes: the built tables are attached as they are, and the new success goes with the day.
        var (host, connection, old, (success, failure, unfinished)) = await OldDayAsync();
        await using var owned = connection;
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var late = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(3)));
        var noted = new List<Guid>();

        var drop = await LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None,
            built: async _ =>
            {
                recorder.Enqueue(new TaskDispatched(Task(late, "Invoice", old.AddMinutes(3))));
                recorder.Enqueue(new RunFinished(Start(recorder, late, "Invoice", old.AddMinutes(4)), late, TaskRunState.Succeeded, old.AddMinutes(5), null, null, null));
                await host.FlushAsync();
                var notes = await ScalarAsync<string>(connection, "SELECT relname::text FROM pg_class WHERE relname ~ '^JobLogTasks_v[0-9]{8}_'");
                await using var read = new NpgsqlCommand($"SELECT DISTINCT \"Id\" FROM \"{notes}\"", connection);
                await using var reader = await read.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    noted.Add(reader.GetGuid(0));
                }
            });

        Assert.That(noted, Is.EqualTo(new[] { late }), "the late task's id, noted by the day's triggers (its row and its run's)");
        Assert.That((drop.Days, drop.Succeeded, drop.Kept, drop.Rebuilt), Is.EqualTo((2, 2, 2, 0)), "the build attached as it was");
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Select(t => t.Id), Is.EquivalentTo(new[] { failure, unfinished }));
        Assert.That(tasks.Select(t => t.Id), Does.Not.Contain(success).And.Not.Contain(late));
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'"), Is.Zero, "no built table left");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_trigger WHERE tgname ~ '_v[0-9]{8}_'"), Is.Zero, "no trigger left");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task Retention_AWriterBetweenItsRunsAndItsTasks_WhileTheBuildMakesTheDaysTriggers_DeadlocksNeither()
    {
        // The writer's batch updates runs by id (a lock on every runs partition, the old day's too), then derives their
        // tasks by id (every tasks partition): the build, which locks the day's two partitions for its triggers, must take
        // them in that order, or each waits for the other (review of session 30: 'deadlock detected', 40P01).
        var (host, connection, _, _) = await OldDayAsync();
        await using var owned = connection;
        await using var writer = new NpgsqlConnection(host.Ledger.ConnectionString);
        await writer.OpenAsync();
        await using var transaction = await writer.BeginTransactionAsync();
        await ScalarAsync<int>(writer, $"UPDATE \"{LedgerModel.Runs}\" SET \"Id\" = \"Id\" WHERE \"Id\" = ANY(ARRAY['{Guid.NewGuid()}']::uuid[]); SELECT 1");
        var pid = await ScalarAsync<int>(connection, "SELECT pg_backend_pid()");
        var writerPid = await ScalarAsync<int>(writer, "SELECT pg_backend_pid()");

        var drop = LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None);
        while (!await ScalarAsync<bool>(writer, $"SELECT {writerPid} = ANY(pg_blocking_pids({pid}))"))
        {
            Assert.That(drop.IsCompleted, Is.False, "the build waits for the writer's lock on the day's runs");
            await System.Threading.Tasks.Task.Delay(20);
        }

        Assert.That(await ScalarAsync<string>(writer, $"SELECT query FROM pg_stat_activity WHERE pid = {pid}"), Does.Contain("CREATE TRIGGER"), "the build's triggers wait");
        Exception? writerError = null;
        try
        {
            await ScalarAsync<int>(writer, $"UPDATE \"{LedgerModel.Tasks}\" SET \"Id\" = \"Id\" WHERE \"Id\" = ANY(ARRAY['{Guid.NewGuid()}']::uuid[]); SELECT 1");
            await transaction.CommitAsync();
        }
        catch (PostgresException e)
        {
            writerError = e;
        }

        Exception? dropError = null;
        try
        {
            await drop;
        }
        catch (PostgresException e)
        {
            dropError = e;
        }

        Assert.That((writerError?.Message, dropError?.Message), Is.EqualTo(((string?)null, (string?)null)), "neither the writer nor the drop fails");
        Assert.That((await drop).Kept, Is.EqualTo(2));
    }

    [Test]
    public async Task Retention_KeptRowsBuiltAhead_ThenResolvedRetriedPurgedAndRestored_AreKeptOrDroppedAsWithoutTheBuild()
    {
        // The partition pass builds the old day's kept rows ahead of its drop (BuildAheadAsync, with the lowest cutoffs the
        // drop can have: the day's end); between that build and the drop the day changes in every way a ledger's day does.
        // The drop adopts the build, brings it up to date under its lock (FinishBuilt) and keeps exactly the rows it keeps
        // without one: the rows a drop with these cutoffs keeps, as they are now.
        var (host, connection, old, (success, failure, unfinished)) = await OldDayAsync();
        await using var owned = connection;
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        // A success of the day that ended two days later (kept by the build's cutoff, the day's end; not by the drop's), a
        // failure purged after the build, and one purged before it and restored after it.
        var lateSuccess = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(3)));
        var purged = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(4)));
        var restored = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(5)));
        recorder.Enqueue(new TaskDispatched(Task(lateSuccess, "Invoice", old.AddMinutes(3))));
        recorder.Enqueue(new RunFinished(Start(recorder, lateSuccess, "Invoice", old.AddDays(2)), lateSuccess, TaskRunState.Succeeded, old.AddDays(2).AddSeconds(1), null, null, null));
        foreach (var id in new[] { purged, restored })
        {
            recorder.Enqueue(new TaskDispatched(Task(id, "Invoice", old) with { Input = $"Invoice(Order=ORD-{id:N})" }));
            recorder.Enqueue(new RunFinished(Start(recorder, id, "Invoice", old.AddMinutes(6)), id, TaskRunState.Failed, old.AddMinutes(6).AddSeconds(1), "declined " + id.ToString("N")[..6], null, null));
        }

        await host.FlushAsync();
        await ScalarAsync<int>(connection, $"""
            CREATE TEMP TABLE saved_tasks AS SELECT * FROM "{LedgerModel.Tasks}" WHERE "Id" = '{restored}';
            CREATE TEMP TABLE saved_runs AS SELECT * FROM "{LedgerModel.Runs}" WHERE "TaskId" = '{restored}';
            DELETE FROM "{LedgerModel.Runs}" WHERE "TaskId" = '{restored}';
            DELETE FROM "{LedgerModel.Tasks}" WHERE "Id" = '{restored}';
            SELECT 1
            """);
        var day = PartitionDay.Of(old);
        var suffix = PartitionDay.Suffix(day)[1..];

        var built = await LedgerPartitioning.BuildAheadAsync(connection, T0.AddDays(-30), TimeSpan.Zero, TimeSpan.FromDays(60), TimeSpan.Zero, CancellationToken.None);

        Assert.That(built, Is.EqualTo(new[] { day }), "the old day built ahead (the empty day after it has nothing to keep)");
        var builtTasks = await ScalarAsync<string>(connection, $"SELECT relname::text FROM pg_class WHERE relkind = 'r' AND relname ~ '^{LedgerModel.Tasks}_b{suffix}_[0-9]+_[0-9a-f]{{4}}$'");
        Assert.That(await ScalarAsync<string>(connection, $"SELECT string_agg(\"Id\"::text, ',' ORDER BY \"Id\") FROM \"{builtTasks}\""),
            Is.EqualTo(string.Join(",", new[] { failure, unfinished, lateSuccess, purged }.Select(i => i.ToString()).Order(StringComparer.Ordinal))),
            "built: the failures, the unfinished task and the success that ended after the day");

        recorder.Enqueue(new RunFinished(Start(recorder, failure, "Invoice", old.AddHours(1)), failure, TaskRunState.Failed, old.AddHours(1).AddSeconds(1), "gateway refused", null, null));
        recorder.Enqueue(new RunFinished(Start(recorder, success, "Invoice", old.AddHours(2)), success, TaskRunState.Failed, old.AddHours(2).AddSeconds(1), "out of stock", null, null));
        recorder.Enqueue(new RunFinished(Start(recorder, unfinished, "Invoice", old.AddHours(3)), unfinished, TaskRunState.Succeeded, old.AddHours(3).AddSeconds(1), null, null, null));
        await host.FlushAsync();
        await ScalarAsync<int>(connection, $"""
            DELETE FROM "{LedgerModel.Runs}" WHERE "TaskId" = '{purged}';
            DELETE FROM "{LedgerModel.Tasks}" WHERE "Id" = '{purged}';
            INSERT INTO "{LedgerModel.Tasks}" SELECT * FROM saved_tasks;
            INSERT INTO "{LedgerModel.Runs}" SELECT * FROM saved_runs;
            SELECT 1
            """);

        var drop = await LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None);

        Assert.That((drop.Days, drop.Ahead, drop.Rebuilt, drop.Kept), Is.EqualTo((2, 1, 0, 3)), "the build adopted and finished, not read again under the lock");
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Select(t => t.Id), Is.EquivalentTo(new[] { success, failure, restored }),
            "the success that failed since and the restored failure kept; the resolved, the purged and the late success gone");
        Assert.That(tasks.Single(t => t.Id == failure).Runs.Select(r => r.ErrorMessage), Is.EquivalentTo(new[] { "card declined", "gateway refused" }));
        Assert.That(tasks.Single(t => t.Id == success).State, Is.EqualTo(TaskState.Failed));
        Assert.That(tasks.Single(t => t.Id == restored).Runs, Has.Count.EqualTo(1));
        foreach (var id in new[] { success, failure, restored })
        {
            Assert.That(await PartitionOfAsync(host, LedgerModel.Tasks, id), Is.EqualTo(LedgerModel.Tasks + "_k" + suffix));
            Assert.That(await PartitionOfAsync(host, LedgerModel.Runs, id), Is.EqualTo(LedgerModel.Runs + "_k" + suffix));
        }

        Assert.That(await ScalarAsync<string>(connection,
            $"SELECT string_agg(\"Text\", '|' ORDER BY \"Text\") FROM \"{PostgreSqlSearch.Table}\" WHERE \"IsError\""),
            Is.EqualTo(string.Join("|", new[] { "card declined", "declined " + restored.ToString("N")[..6], "gateway refused", "out of stock" }.Order(StringComparer.Ordinal))),
            "the search's error text of the kept rows as they are now");
        Assert.That(await ScalarAsync<long>(connection, $"SELECT count(DISTINCT \"TaskId\") FROM \"{PostgreSqlSearch.Table}\" WHERE NOT \"IsError\""), Is.EqualTo(3),
            "the search's input text of the three kept tasks");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'"), Is.Zero, "no built table left");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_trigger WHERE tgname ~ '_v[0-9]{8}_'"), Is.Zero, "no trigger left");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task Retention_KeptRowsBuiltAhead_NothingNotedSince_TheLockTakesTheAggregatesMadeBeforeIt_AsExactAsTheRows()
    {
        // Nothing written into the day between the build ahead and the drop (most days past their retention): the built rows'
        // aggregates (counts, failure groups, day rollups) are made before the lock, after the trim to the drop's cutoffs, and
        // the lock takes them instead of reading the built rows (docs/scale.md "Session 38 (retention)"). Exact as the rows: a
        // failure past the drop's failure cutoff goes (its groups lose it), one ended after it stays with its runs, a success
        // kept by the build's cutoff and not by the drop's is trimmed, one ended after the drop's cutoff stays.
        var (host, connection, old, day, ids) = await OldDayWithLateRowsAsync();
        await using var owned = connection;
        var suffix = PartitionDay.Suffix(day)[1..];
        Assert.That(await ScalarAsync<string>(connection, OpenFailureGroupsFromRows), Does.Contain("0:E1:False=2"), "both failures of the day counted in their group");

        var built = await LedgerPartitioning.BuildAheadAsync(connection, T0.AddDays(-30), TimeSpan.Zero, TimeSpan.FromDays(60), TimeSpan.Zero, CancellationToken.None);
        Assert.That(built, Is.EqualTo(new[] { day }));
        Assert.That(await ScalarAsync<string>(connection, MarkedKinds(suffix)), Is.EqualTo("rrrrttttt"),
            "the build ahead's aggregates, with its mark: five tasks' keys and four runs' minutes (both failures kept: no group loses one)");
        var marked = "";
        var drop = await LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-35), CancellationToken.None,
            built: async _ => marked = await ScalarAsync<string>(connection, MarkedKinds(suffix)));

        Assert.That(marked, Is.EqualTo("fffrrttt"),
            "before the lock, the aggregates made again after the trim: its three tasks' keys, their two runs' minutes, the failure groups' three losses");
        Assert.That((drop.Days, drop.Ahead, drop.Rebuilt, drop.Kept, drop.Failed), Is.EqualTo((2, 1, 0, 3, 1)), "the build adopted; the early failure gone");
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Select(t => t.Id), Is.EquivalentTo(new[] { ids.Unfinished, ids.LateFailure, ids.LateSuccess }),
            "the unfinished task, the failure ended after the failure cutoff and the success ended after the success cutoff kept");
        Assert.That(tasks.Single(t => t.Id == ids.LateFailure).Runs.Select(r => r.ErrorMessage), Is.EqualTo(new[] { "late decline" }));
        foreach (var id in new[] { ids.Unfinished, ids.LateFailure, ids.LateSuccess })
        {
            Assert.That(await PartitionOfAsync(host, LedgerModel.Tasks, id), Is.EqualTo(LedgerModel.Tasks + "_k" + suffix));
        }

        Assert.That(await ScalarAsync<string>(connection, OpenFailureGroupsFromRows), Is.EqualTo("0:E1:False=1,1:Invoice:False=1,2:orders:False=1"),
            "the late failure alone open in its groups");
        Assert.That(await ScalarAsync<string>(connection, OpenFailureGroupsCounted), Is.EqualTo(await ScalarAsync<string>(connection, OpenFailureGroupsFromRows)),
            "the failure groups' counts equal the open failures' groups");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'"), Is.Zero, "no built table left");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_description WHERE description LIKE '%Aggregates%'"), Is.Zero, "no mark left");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task Retention_KeptRowsBuiltAhead_ChangedAfterTheirAggregatesWereMade_TheLockReadsTheRowsAgain()
    {
        // The aggregates are made before the lock; a write into the day after them (a kept failure retried and succeeding, a
        // failure of the day restored, a success of the day failing) is noted, and the lock then makes them from the finished
        // built rows: the rollups, counts and failure groups are those of the rows it keeps now.
        var (host, connection, old, day, ids) = await OldDayWithLateRowsAsync();
        await using var owned = connection;
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var restored = await FailureSetAsideAsync(host, connection, old, T0.AddDays(-20).AddHours(2));
        var suffix = PartitionDay.Suffix(day)[1..];

        var built = await LedgerPartitioning.BuildAheadAsync(connection, T0.AddDays(-30), TimeSpan.Zero, TimeSpan.FromDays(60), TimeSpan.Zero, CancellationToken.None);
        Assert.That(built, Is.EqualTo(new[] { day }));
        var marked = false;
        var drop = await LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-35), CancellationToken.None,
            built: async _ =>
            {
                marked = await ScalarAsync<bool>(connection,
                    $"SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.relname ~ '^{LedgerModel.Tasks}_v{suffix}_' AND obj_description(c.oid, 'pg_class')::jsonb ? 'Aggregates')");
                recorder.Enqueue(new RunFinished(Start(recorder, ids.LateFailure, "Invoice", T0.AddDays(-19)), ids.LateFailure, TaskRunState.Succeeded,
                    T0.AddDays(-19).AddSeconds(2), null, null, null));
                recorder.Enqueue(new RunFinished(Start(recorder, ids.Success, "Invoice", T0.AddDays(-18)), ids.Success, TaskRunState.Failed,
                    T0.AddDays(-18).AddSeconds(4), "out of stock", null, null));
                await host.FlushAsync();
                await ScalarAsync<int>(connection, $"""
                    INSERT INTO "{LedgerModel.Tasks}" SELECT * FROM saved_tasks;
                    INSERT INTO "{LedgerModel.Runs}" SELECT * FROM saved_runs;
                    SELECT 1
                    """);
            });

        Assert.That(marked, Is.True, "the aggregates were made before the lock");
        Assert.That((drop.Days, drop.Ahead, drop.Rebuilt, drop.Kept), Is.EqualTo((2, 1, 0, 5)), "the build adopted and finished under the lock");
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Select(t => t.Id), Is.EquivalentTo(new[] { ids.Unfinished, ids.LateFailure, ids.LateSuccess, ids.Success, restored }),
            "the retried failure (now a late success), the success that failed since and the restored failure kept with the others");
        Assert.That(tasks.Single(t => t.Id == ids.LateFailure).State, Is.EqualTo(TaskState.Succeeded));
        Assert.That(tasks.Single(t => t.Id == ids.LateFailure).Runs, Has.Count.EqualTo(2));
        Assert.That(tasks.Single(t => t.Id == restored).Runs.Select(r => r.ErrorMessage), Is.EqualTo(new[] { "restored decline" }));
        Assert.That(await ScalarAsync<string>(connection, OpenFailureGroupsFromRows), Is.EqualTo("0:E1:False=1"), "the restored failure alone open in a group");
        Assert.That(await ScalarAsync<string>(connection, OpenFailureGroupsCounted), Is.EqualTo("0:E1:False=1"), "the failure groups' counts equal the open failures' groups");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'"), Is.Zero, "no built table left");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task Retention_KeptRowsBuiltAhead_ADropWithTheBuildsCutoffs_TakesTheBuildsAggregates_AsExactAsTheRows()
    {
        // The drop's cutoffs are the build's (the trim removes nothing): the aggregates the build ahead made with its mark are
        // those the lock takes.
        var (host, connection, old, day, ids) = await OldDayWithLateRowsAsync();
        await using var owned = connection;
        var suffix = PartitionDay.Suffix(day)[1..];
        var built = await LedgerPartitioning.BuildAheadAsync(connection, T0.AddDays(-30), TimeSpan.Zero, TimeSpan.FromDays(60), TimeSpan.Zero, CancellationToken.None);
        Assert.That(built, Is.EqualTo(new[] { day }));
        var dayEnd = PartitionDay.Start(day + 1);
        var marked = "";
        var drop = await LedgerPartitioning.DropExpiredAsync(connection, dayEnd, dayEnd.AddDays(-60), CancellationToken.None,
            built: async _ => marked = await ScalarAsync<string>(connection, MarkedKinds(suffix)));

        Assert.That(marked, Is.EqualTo("rrrrttttt"), "the build's aggregates, kept through a trim that removed nothing");
        Assert.That((drop.Days, drop.Ahead, drop.Rebuilt, drop.Kept, drop.Succeeded), Is.EqualTo((1, 1, 0, 5, 1)), "the build adopted; the success ended on its day gone");
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Select(t => t.Id), Is.EquivalentTo(new[] { ids.Failure, ids.Unfinished, ids.LateFailure, ids.TrimmedSuccess, ids.LateSuccess }));
        Assert.That(await ScalarAsync<string>(connection, OpenFailureGroupsCounted), Is.EqualTo("0:E1:False=2,1:Invoice:False=2,2:orders:False=2"),
            "both failures kept in their groups");
        Assert.That(await ScalarAsync<string>(connection, OpenFailureGroupsFromRows), Is.EqualTo(await ScalarAsync<string>(connection, OpenFailureGroupsCounted)));
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task Retention_KeptRowsBuiltAhead_ADropWithTheBuildsCutoffs_DoesNotTrimTheBuild_AndKeepsWhatChangedSince()
    {
        // The drop's cutoffs are the build's: the built rows are those it keeps, so it does not scan them before its lock (the
        // trim, 92-113 ms of a 2 M day's retention at load 27, docs/scale.md "Session 38 (retention)"). A SHARE lock on the
        // built tasks (deletes wait, reads pass) shows where the drop first writes them: the trim's statement, or the lock's.
        // Between the build and the drop, a success of the day failed, a failure kept longer was retried and succeeded, and a
        // failure of the day was restored: noted, and read again under the lock.
        var (host, connection, old, day, ids) = await OldDayWithLateRowsAsync();
        await using var owned = connection;
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var restored = await FailureSetAsideAsync(host, connection, old, old.AddHours(5));
        var suffix = PartitionDay.Suffix(day)[1..];
        var built = await LedgerPartitioning.BuildAheadAsync(connection, T0.AddDays(-30), TimeSpan.Zero, TimeSpan.FromDays(60), TimeSpan.Zero, CancellationToken.None);
        Assert.That(built, Is.EqualTo(new[] { day }));
        recorder.Enqueue(new RunFinished(Start(recorder, ids.Success, "Invoice", T0.AddDays(-18)), ids.Success, TaskRunState.Failed, T0.AddDays(-18).AddSeconds(4), "out of stock", null, null));
        recorder.Enqueue(new RunFinished(Start(recorder, ids.Failure, "Invoice", T0.AddDays(-19)), ids.Failure, TaskRunState.Succeeded, T0.AddDays(-19).AddSeconds(2), null, null, null));
        await host.FlushAsync();
        await ScalarAsync<int>(connection, """
            INSERT INTO "JobLogTasks" SELECT * FROM saved_tasks;
            INSERT INTO "JobLogRuns" SELECT * FROM saved_runs;
            SELECT 1
            """.Replace("JobLogTasks", LedgerModel.Tasks, StringComparison.Ordinal).Replace("JobLogRuns", LedgerModel.Runs, StringComparison.Ordinal));
        var builtTasks = await ScalarAsync<string>(connection, $"SELECT relname::text FROM pg_class WHERE relkind = 'r' AND relname ~ '^{LedgerModel.Tasks}_b{suffix}_[0-9]+_[0-9a-f]{{4}}$'");

        await using var blocker = new NpgsqlConnection(host.Ledger.ConnectionString);
        await blocker.OpenAsync();
        // Watched from a connection of its own, outside the blocker's transaction: in one, pg_stat_activity is read once and
        // kept (stats_fetch_consistency), and showed the drop's statement of the first poll.
        await using var watcher = new NpgsqlConnection(host.Ledger.ConnectionString);
        await watcher.OpenAsync();
        var dropper = await ScalarAsync<int>(connection, "SELECT pg_backend_pid()");
        var dayEnd = PartitionDay.Start(day + 1);
        string? waiting = null;
        PartitionDrop drop;
        await using (var held = await blocker.BeginTransactionAsync())
        {
            await ScalarAsync<int>(blocker, $"LOCK TABLE \"{builtTasks}\" IN SHARE MODE; SELECT 1");
            var dropping = LedgerPartitioning.DropExpiredAsync(connection, dayEnd, dayEnd.AddDays(-60), CancellationToken.None);
            var bound = DateTime.UtcNow.AddMinutes(2);
            while (waiting is null && !dropping.IsCompleted && DateTime.UtcNow < bound)
            {
                var query = await ScalarAsync<string>(watcher, $"""
                    SELECT coalesce((SELECT a.query FROM pg_stat_activity a WHERE a.pid = {dropper} AND a.wait_event_type = 'Lock'
                        AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted AND l.relation = '"{builtTasks}"'::regclass)), '')
                    """);
                waiting = query == "" ? null : query;
                await System.Threading.Tasks.Task.Delay(20);
            }

            await held.RollbackAsync();
            drop = await dropping;
        }

        Assert.That(waiting, Is.Not.Null, "the drop wrote the built tasks (under its lock: the noted rows and the attach)");
        Assert.That(waiting, Does.Not.Contain("joblog_unkept"), "the drop's first write of the built tasks is its lock's, not a trim's");
        Assert.That((drop.Days, drop.Ahead, drop.Rebuilt, drop.Kept, drop.Succeeded), Is.EqualTo((1, 1, 0, 7, 0)), "the build adopted and finished under the lock");
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Select(t => t.Id), Is.EquivalentTo(new[] { ids.Success, ids.Failure, ids.Unfinished, ids.LateFailure, ids.TrimmedSuccess, ids.LateSuccess, restored }),
            "the built rows, the success that failed since, the failure that succeeded since (after the cutoff) and the restored failure");
        Assert.That(tasks.Single(t => t.Id == ids.Success).State, Is.EqualTo(TaskState.Failed));
        Assert.That(tasks.Single(t => t.Id == ids.Failure).State, Is.EqualTo(TaskState.Succeeded));
        Assert.That(tasks.Single(t => t.Id == ids.Failure).Runs, Has.Count.EqualTo(2));
        Assert.That(tasks.Single(t => t.Id == restored).Runs.Select(r => r.ErrorMessage), Is.EqualTo(new[] { "restored decline" }));
        foreach (var id in new[] { ids.Success, ids.Failure, restored })
        {
            Assert.That(await PartitionOfAsync(host, LedgerModel.Tasks, id), Is.EqualTo(LedgerModel.Tasks + "_k" + suffix));
        }

        Assert.That(await ScalarAsync<string>(connection, OpenFailureGroupsCounted), Is.EqualTo(await ScalarAsync<string>(connection, OpenFailureGroupsFromRows)),
            "the failure groups' counts equal the open failures' groups");
        Assert.That(await ScalarAsync<string>(connection, OpenFailureGroupsFromRows), Does.Contain("0:E1:False=2"), "the late failure and the restored one open in E1");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'"), Is.Zero, "no built table left");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task Retention_KeptRowsBuiltAhead_TrimmedByADropThatThenDied_ALaterDropWithTheBuildsCutoffs_KeepsWhatTheyKeep()
    {
        // A drop with later cutoffs than the build's trims the build (its transaction commits), then dies before its lock
        // (SIGKILL, a lost connection: the build's tables stay, as nothing is there to drop them). A later drop with the
        // build's own cutoffs (an earlier date asked, a longer retention configured) must not adopt the trimmed build as the
        // build's: the rows the trim removed are rows it keeps. Before the fix its mark still named the build's cutoffs: the
        // early failure and the success trimmed were dropped with the day.
        var (host, connection, _, day, ids) = await OldDayWithLateRowsAsync();
        await using var owned = connection;
        var built = await LedgerPartitioning.BuildAheadAsync(connection, T0.AddDays(-30), TimeSpan.Zero, TimeSpan.FromDays(60), TimeSpan.Zero, CancellationToken.None);
        Assert.That(built, Is.EqualTo(new[] { day }));
        var dropper = await ScalarAsync<int>(connection, "SELECT pg_backend_pid()");
        await using var killer = new NpgsqlConnection(host.Ledger.ConnectionString);
        await killer.OpenAsync();
        var killed = false;
        Assert.That(async () => await LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-35), CancellationToken.None,
            built: async d =>
            {
                if (d == day)
                {
                    killed = await ScalarAsync<bool>(killer, $"SELECT pg_terminate_backend({dropper})");
                }
            }), Throws.InstanceOf<Exception>(), "the drop whose session was ended");
        Assert.That(killed, Is.True, "the drop's session ended after its trim");
        Assert.That(await ScalarAsync<long>(killer, $"SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname ~ '^{LedgerModel.Tasks}_b{PartitionDay.Suffix(day)[1..]}_'"),
            Is.EqualTo(1), "the trimmed build left behind");

        await using var next = new NpgsqlConnection(host.Ledger.ConnectionString);
        await next.OpenAsync();
        var dayEnd = PartitionDay.Start(day + 1);
        var drop = await LedgerPartitioning.DropExpiredAsync(next, dayEnd, dayEnd.AddDays(-60), CancellationToken.None);

        Assert.That((drop.Days, drop.Kept), Is.EqualTo((1, 5)), "the day dropped, the build's cutoffs' rows kept");
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Select(t => t.Id), Is.EquivalentTo(new[] { ids.Failure, ids.Unfinished, ids.LateFailure, ids.TrimmedSuccess, ids.LateSuccess }),
            "what a drop with the build's cutoffs keeps, the trimmed rows among them");
        Assert.That(await ScalarAsync<string>(next, OpenFailureGroupsCounted), Is.EqualTo(await ScalarAsync<string>(next, OpenFailureGroupsFromRows)),
            "the failure groups' counts equal the open failures' groups");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    /// <summary>
    /// A failure of the old day (dispatched at <paramref name="old"/> + 7 min, failed at <paramref name="failedAt"/>, grouped
    /// in E1) recorded, then set aside in the session's temporary tables <c>saved_tasks</c>/<c>saved_runs</c> and deleted,
    /// for the test to restore later (an <c>INSERT … SELECT</c> from them).
    /// </summary>
    private static async Task<Guid> FailureSetAsideAsync(LedgerHost host, NpgsqlConnection connection, DateTime old, DateTime failedAt)
    {
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var restored = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(7)));
        recorder.Enqueue(new TaskDispatched(Task(restored, "Invoice", old.AddMinutes(7))));
        recorder.Enqueue(new RunFinished(Start(recorder, restored, "Invoice", failedAt), restored, TaskRunState.Failed, failedAt.AddSeconds(3), "restored decline", null, null));
        await host.FlushAsync();
        await ScalarAsync<int>(connection, $"""
            UPDATE "{LedgerModel.Tasks}" SET "{FailureGroupColumns.Exception}" = 'E1' WHERE "Id" = '{restored}';
            CREATE TEMP TABLE saved_tasks AS SELECT * FROM "{LedgerModel.Tasks}" WHERE "Id" = '{restored}';
            CREATE TEMP TABLE saved_runs AS SELECT * FROM "{LedgerModel.Runs}" WHERE "TaskId" = '{restored}';
            DELETE FROM "{LedgerModel.Runs}" WHERE "TaskId" = '{restored}';
            DELETE FROM "{LedgerModel.Tasks}" WHERE "Id" = '{restored}';
            SELECT 1
            """);
        return restored;
    }

    /// <summary>The kinds of the aggregates in the mark of the day's build (<c>suffix</c>: yyyyMMdd), in order; <c>none</c> without.</summary>
    private static string MarkedKinds(string suffix) =>
        $"SELECT coalesce(string_agg(a->>'Kind', '' ORDER BY a->>'Kind'), 'none') FROM pg_class c, jsonb_array_elements(obj_description(c.oid, 'pg_class')::jsonb -> 'Aggregates') a " +
        $"WHERE c.relname ~ '^{LedgerModel.Tasks}_v{suffix}_'";

    /// <summary>The open failures' groups counted from the rows: grouping:id:internal=count, in order.</summary>
    private static readonly string OpenFailureGroupsFromRows = $"""
        SELECT coalesce(string_agg(x, ',' ORDER BY x), '') FROM (
            SELECT g.b || ':' || g.id || ':' || (CASE WHEN t."IsInternal" THEN 'True' ELSE 'False' END) || '=' || count(*) AS x FROM "{LedgerModel.Tasks}" t
            CROSS JOIN LATERAL (VALUES (0, t."{FailureGroupColumns.Exception}"), (1, t."{FailureGroupColumns.Type}"), (2, t."{FailureGroupColumns.Queue}")) g(b, id)
            WHERE t."State" = 4 AND t."Resolution" IS NULL AND g.id IS NOT NULL GROUP BY g.b, g.id, t."IsInternal") s
        """;

    /// <summary>The failure groups' counts (<c>JobLogFailureGroups</c>), as <see cref="OpenFailureGroupsFromRows"/>.</summary>
    private static readonly string OpenFailureGroupsCounted = $"""
        SELECT coalesce(string_agg(x, ',' ORDER BY x), '') FROM (
            SELECT "Grouping" || ':' || "GroupId" || ':' || (CASE WHEN "IsInternal" THEN 'True' ELSE 'False' END) || '=' || "Count" AS x FROM "JobLogFailureGroups" WHERE "Count" <> 0) s
        """;

    /// <summary>
    /// <see cref="OldDayAsync"/>'s day (its failure ends on the day, before the failure cutoff T0 - 35 d) with: a failure of the
    /// day that ended at T0 - 20 d (kept), a success that ended at T0 - 38 d (after the day, before the success cutoff T0 - 30 d:
    /// built ahead, then trimmed) and one at T0 - 25 d (kept); both failures grouped (exception E1, type, queue).
    /// </summary>
    private async Task<(LedgerHost Host, NpgsqlConnection Connection, DateTime Old, int Day, (Guid Success, Guid Failure, Guid Unfinished, Guid LateFailure, Guid TrimmedSuccess, Guid LateSuccess) Ids)>
        OldDayWithLateRowsAsync()
    {
        var (host, connection, old, (success, failure, unfinished)) = await OldDayAsync();
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var lateFailure = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(3)));
        var trimmed = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(4)));
        var lateSuccess = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(5)));
        foreach (var (id, minutes) in new[] { (lateFailure, 3), (trimmed, 4), (lateSuccess, 5) })
        {
            recorder.Enqueue(new TaskDispatched(Task(id, "Invoice", old.AddMinutes(minutes))));
        }

        recorder.Enqueue(new RunFinished(Start(recorder, lateFailure, "Invoice", T0.AddDays(-20)), lateFailure, TaskRunState.Failed, T0.AddDays(-20).AddSeconds(7), "late decline", null, null));
        recorder.Enqueue(new RunFinished(Start(recorder, trimmed, "Invoice", T0.AddDays(-38)), trimmed, TaskRunState.Succeeded, T0.AddDays(-38).AddSeconds(1), null, null, null));
        recorder.Enqueue(new RunFinished(Start(recorder, lateSuccess, "Invoice", T0.AddDays(-25).AddHours(3)), lateSuccess, TaskRunState.Succeeded, T0.AddDays(-25).AddHours(3).AddSeconds(9), null, null, null));
        await host.FlushAsync();
        await ScalarAsync<int>(connection, $"""
            UPDATE "{LedgerModel.Tasks}" SET "{FailureGroupColumns.Exception}" = 'E1', "{FailureGroupColumns.Type}" = 'Invoice', "{FailureGroupColumns.Queue}" = 'orders'
                WHERE "Id" IN ('{failure}', '{lateFailure}');
            SELECT 1
            """);
        return (host, connection, old, PartitionDay.Of(old), (success, failure, unfinished, lateFailure, trimmed, lateSuccess));
    }

    [Test]
    public async Task Retention_ADropKilledBetweenItsBuildAndItsLock_TheNextDropDropsTheBuildsTables_NotAnHourLater()
    {
        // A drop's process SIGKILLed after it built the day's kept rows into tables of its own and before its lock (its server
        // session ends with it): those tables stayed until a pass more than an hour later (docs/scale.md, session 39). The
        // build names its session; the next drop finds it gone and drops them, and drops the day.
        var (host, connection, old, (_, failure, unfinished)) = await OldDayAsync();
        await using var owned = connection;
        var day = PartitionDay.Of(old);
        await using (var doomed = new NpgsqlConnection(host.Ledger.ConnectionString))
        {
            await doomed.OpenAsync();
            var pid = await ScalarAsync<int>(doomed, "SELECT pg_backend_pid()");
            Assert.That(async () => await LedgerPartitioning.DropExpiredAsync(doomed, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None,
                built: async d =>
                {
                    Assert.That(await ScalarAsync<bool>(connection, $"SELECT pg_terminate_backend({pid})"), Is.True);
                    while (await ScalarAsync<bool>(connection, $"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {pid})"))
                    {
                        await System.Threading.Tasks.Task.Delay(20);
                    }
                }), Throws.InstanceOf<Exception>(), "the drop whose session was ended");
        }

        Assert.That(await ScalarAsync<long>(connection, $"SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relname ~ '^{LedgerModel.Tasks}_b{PartitionDay.Suffix(day)[1..]}_'"),
            Is.EqualTo(1), "the killed drop's build left behind");

        await using var next = new NpgsqlConnection(host.Ledger.ConnectionString);
        await next.OpenAsync();
        var drop = await LedgerPartitioning.DropExpiredAsync(next, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None);

        Assert.That(drop.Days, Is.GreaterThan(0));
        Assert.That(await DaysAsync(host), Does.Not.Contain(day), "the day dropped");
        Assert.That((await host.TasksAsync()).Select(t => t.Id), Is.SupersetOf(new[] { failure, unfinished }), "the kept rows kept");
        Assert.That(await ScalarAsync<string>(next, "SELECT coalesce(string_agg(relname::text, ', '), '') FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'"), Is.Empty,
            "the killed drop's build tables dropped by the next drop, not an hour later");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task Retention_ABuildWhoseSessionIsStillThere_IsNotAnotherDropsToDrop()
    {
        // The other side of the rule above: a build younger than an hour whose session is there (another process's, on its way
        // to its lock) is left alone by a drop of another process.
        var (host, connection, old, _) = await OldDayAsync();
        await using var owned = connection;
        var day = PartitionDay.Of(old);
        await using var other = new NpgsqlConnection(host.Ledger.ConnectionString);
        await other.OpenAsync();
        string? leftAlone = null;
        await LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None,
            built: async d =>
            {
                await LedgerPartitioning.DropAbandonedBuildsAsync(other, CancellationToken.None);
                leftAlone = await ScalarAsync<string>(other, $"SELECT coalesce(string_agg(relname::text, ', '), '') FROM pg_class WHERE relname ~ '_[bv]{PartitionDay.Suffix(day)[1..]}_'");
            });

        Assert.That(leftAlone, Does.Contain($"{LedgerModel.Tasks}_b{PartitionDay.Suffix(day)[1..]}_").And.Contain($"{LedgerModel.Tasks}_v{PartitionDay.Suffix(day)[1..]}_"),
            "the live build's tables left to it");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'"), Is.Zero, "and dropped or attached by its own drop");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task Retention_ABuildAheadWhoseSessionIsKilledBeforeItsIndexes_IsNotAdopted_AndTheNextPassBuildsTheDayAgain()
    {
        // The partition pass's build ahead loses its server process between its rows' copy and its indexes (the session
        // terminated, as a crash or a restart of the application leaves it): the tables it made stay, without the mark of a
        // complete build, so no drop adopts them. The next pass builds the day again and the drop adopts that one; a change
        // between the two is kept.
        var (host, connection, old, (success, failure, unfinished)) = await OldDayAsync();
        await using var owned = connection;
        var day = PartitionDay.Of(old);
        Exception? error = null;
        await using (var doomed = new NpgsqlConnection(host.Ledger.ConnectionString))
        {
            await doomed.OpenAsync();
            var pid = await ScalarAsync<int>(doomed, "SELECT pg_backend_pid()");
            try
            {
                await LedgerPartitioning.BuildAheadAsync(doomed, T0.AddDays(-30), TimeSpan.Zero, TimeSpan.FromDays(60), TimeSpan.Zero, CancellationToken.None,
                    copied: async _ =>
                    {
                        Assert.That(await ScalarAsync<bool>(connection, $"SELECT pg_terminate_backend({pid})"), Is.True);
                        while (await ScalarAsync<bool>(connection, $"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {pid})"))
                        {
                            await System.Threading.Tasks.Task.Delay(20);
                        }
                    });
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
            {
                error = e;
            }
        }

        Assert.That(error, Is.Not.Null, "the build's session ended under it");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'"), Is.GreaterThan(0), "the killed build's tables are left");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_class WHERE relname ~ '_v[0-9]{8}_' AND obj_description(oid, 'pg_class') LIKE '%\"Succeeded\"%'"), Is.Zero,
            "none marked complete (a mark names its cutoffs; the comment before it names the build's session)");

        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        recorder.Enqueue(new RunFinished(Start(recorder, failure, "Invoice", old.AddHours(1)), failure, TaskRunState.Failed, old.AddHours(1).AddSeconds(1), "gateway refused", null, null));
        await host.FlushAsync();
        var built = await LedgerPartitioning.BuildAheadAsync(connection, T0.AddDays(-30), TimeSpan.Zero, TimeSpan.FromDays(60), TimeSpan.Zero, CancellationToken.None);
        recorder.Enqueue(new RunFinished(Start(recorder, success, "Invoice", old.AddHours(2)), success, TaskRunState.Failed, old.AddHours(2).AddSeconds(1), "out of stock", null, null));
        await host.FlushAsync();

        var drop = await LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None);

        Assert.That(built, Is.EqualTo(new[] { day }), "the next pass builds the day again");
        Assert.That((drop.Days, drop.Ahead, drop.Rebuilt, drop.Kept), Is.EqualTo((2, 1, 0, 3)), "the second build adopted");
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Select(t => t.Id), Is.EquivalentTo(new[] { success, failure, unfinished }));
        Assert.That(tasks.Single(t => t.Id == failure).Runs.Select(r => r.ErrorMessage), Is.EquivalentTo(new[] { "card declined", "gateway refused" }));
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_trigger WHERE tgname ~ '_v[0-9]{8}_'"), Is.Zero, "the triggers went with the day");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task PartitionPass_WithTheRetentionOn_BuildsTheNextDayToDropAhead_AndOnlyIt()
    {
        // The hourly partition pass with AddJobLogRetention: the old day's drop is due in an hour (its end an hour after the
        // success cutoff), so its kept rows are built and marked complete; the day after it, due a day later, is not.
        var old = T0.AddDays(-40);
        var dayEnd = PartitionDay.Start(PartitionDay.Of(old) + 1);
        _host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o => o.Partitioning.Enabled = true,
            services: s =>
            {
                s.AddSingleton<TimeProvider>(_clock);
                s.AddJobLogRetention(r =>
                {
                    r.Tasks.Succeeded = T0 - dayEnd + TimeSpan.FromHours(1);
                    r.Tasks.Failed = TimeSpan.FromDays(90);
                });
            });
        var host = _host;
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, old, 1, CancellationToken.None);
        WriteOldDay(host, old);
        await host.FlushAsync();

        await host.Services.GetRequiredService<LedgerPartitionService>().RunOnceAsync(CancellationToken.None);

        var suffix = PartitionDay.Suffix(PartitionDay.Of(old))[1..];
        var next = PartitionDay.Suffix(PartitionDay.Of(old) + 1)[1..];
        Assert.That(await ScalarAsync<long>(connection,
            $"SELECT count(*) FROM pg_class WHERE relname ~ '^{LedgerModel.Tasks}_v{suffix}_' AND obj_description(oid, 'pg_class') IS NOT NULL"), Is.EqualTo(1),
            "the old day's build, complete");
        Assert.That(await ScalarAsync<long>(connection, $"SELECT count(*) FROM pg_class WHERE relname ~ '_[bv]{next}_'"), Is.Zero, "nothing of the day after");
    }

    [Test]
    public async Task RetentionPass_LeavesItsLastDroppedDayDetachedForThePartitionPass_WhileAPurgeDropsItsOwn()
    {
        // The retention's pass (LedgerRetentionService) drops two old days: the first day's detached partitions go before the
        // second day's drop, the second's are left (nothing waits for their files' drop) and the partition pass's build
        // ahead drops them. A purge through LedgerMaintenance (the CLI's) drops the partitions it detached before it returns.
        var (host, connection, old, (success, failure, unfinished)) = await OldDayAsync();
        await using var owned = connection;
        var day = PartitionDay.Of(old);
        await LedgerPartitioning.EnsureAheadAsync(connection, old, 2, CancellationToken.None);
        WriteOldDay(host, old.AddDays(1));
        await host.FlushAsync();
        var retention = new LedgerRetentionService(
            host.Services.GetRequiredService<LedgerSchema>(), host.Services.GetRequiredService<LedgerPurger>(),
            Options.Create(new JobLogRetentionOptions { Tasks = { Succeeded = T0 - PartitionDay.Start(day + 2), Failed = TimeSpan.FromDays(90) } }),
            _clock, NullLogger<LedgerRetentionService>.Instance, host.Services.GetRequiredService<JobLogContextFactory>());
        Task<string> DetachedAsync() => ScalarAsync<string>(connection,
            $"SELECT coalesce(string_agg(relname::text, ',' ORDER BY relname), '') FROM pg_class WHERE relname ~ '^({LedgerModel.Tasks}|{LedgerModel.Runs})_x[0-9]{{8}}$'");

        await retention.RunOnceAsync(CancellationToken.None);

        var second = PartitionDay.Suffix(day + 1)[1..];
        Assert.That(await DetachedAsync(), Is.EqualTo($"{LedgerModel.Runs}_x{second},{LedgerModel.Tasks}_x{second}"),
            "the second day's partitions left detached, the first day's dropped");
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Select(t => t.Name).Distinct(), Is.EqualTo(new[] { "Invoice" }));
        Assert.That(tasks.Count(t => t.State == TaskState.Succeeded), Is.Zero, "both days' successes gone");
        Assert.That(tasks.Select(t => t.Id).ToList(), Is.SupersetOf(new[] { failure, unfinished }).And.Count.EqualTo(4), "each day's failure and unfinished task kept");
        Assert.That(success, Is.Not.AnyOf(tasks.Select(t => t.Id).ToArray()));
        await AssertRollupsEqualCountsAsync(host, "after the retention's pass");

        await LedgerPartitioning.BuildAheadAsync(connection, T0, TimeSpan.FromDays(30), TimeSpan.FromDays(90), LedgerPartitioning.AheadMargin, CancellationToken.None);

        Assert.That(await DetachedAsync(), Is.Empty, "the partition pass dropped them");

        var purge = await host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(
            new LedgerPurgeRequest(LedgerKind.Tasks, PartitionDay.Start(day + 3), T0.AddDays(-90)));

        Assert.That(await DetachedAsync(), Is.Empty, "the purge dropped the third day's partitions it detached");
        Assert.That(await ScalarAsync<bool>(connection, $"SELECT to_regclass('\"{LedgerModel.Tasks}_{PartitionDay.Suffix(day + 2)}\"') IS NULL"), Is.True, "the third day dropped");
        Assert.That(purge.Deleted, Is.Zero);
        Assert.That((await host.TasksAsync()).Count, Is.EqualTo(4));
    }

    [Test]
    public async Task Retention_ADaysDrop_DoesNotWaitForAnotherDaysPartitionHeldAsAnAutovacuumHoldsIt()
    {
        // Session 41 (scale), 10 M: a whole day's drop waited 1,005 ms in its LOCK TABLE for an autovacuum of today's
        // partition (SHARE UPDATE EXCLUSIVE), until PostgreSQL cancelled the vacuum (deadlock_timeout). The drop takes the
        // parents only (everything JobLog does to a partition goes through its parent, which the lock holds): another day's
        // partition held in that mode, as a vacuum or an ANALYZE holds it, does not hold the drop up.
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, old, 1, CancellationToken.None);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var oldSuccess = Guid.CreateVersion7(new DateTimeOffset(old));
        var oldFailure = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(1)));
        var today = Guid.CreateVersion7(new DateTimeOffset(T0));
        Succeed(host, oldSuccess, "Invoice", old);
        recorder.Enqueue(new TaskDispatched(Task(oldFailure, "Invoice", old)));
        recorder.Enqueue(new RunFinished(Start(recorder, oldFailure, "Invoice", old), oldFailure, TaskRunState.Failed, old.AddSeconds(5), "boom", null, null));
        Succeed(host, today, "Report", T0);
        await host.FlushAsync();
        var day = PartitionDay.Suffix(PartitionDay.Of(T0));
        var (waited, result) = await PartitionHold.RunAsync(host.Ledger.ConnectionString, connection, PartitionHold.Day(day),
            () => host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90))),
            // What waits, for the failure's reader.
            whileWaiting: async () => TestContext.Out.WriteLine("waiting: " + await ScalarAsync<string>(connection, "SELECT string_agg(l.pid || ' ' || l.granted || ' ' || l.mode || ' ' || coalesce(l.relation::regclass::text, l.locktype) || ' :: ' || left(a.query, 200) || ' blockers ' || pg_blocking_pids(l.pid)::text, E'\\n') FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.datname = current_database() AND l.pid <> pg_backend_pid()")));
        Assert.That(waited, Is.False, "the day's drop waited for today's partitions");
        Assert.That(result.Succeeded, Is.EqualTo(1));
        Assert.That((await host.TasksAsync()).Select(t => t.Id), Is.EquivalentTo(new[] { oldFailure, today }));
        Assert.That(await DaysAsync(host), Does.Not.Contain(PartitionDay.Of(old)));
        Assert.That(await PartitionOfAsync(host, LedgerModel.Tasks, oldFailure), Is.EqualTo("JobLogTasks_k" + PartitionDay.Suffix(PartitionDay.Of(old))[1..]));
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task BatchedPurge_OnAPartitionedLedger_DeletesInItsBatchsDaysOnly_NotWaitingForAnotherDaysPartitions()
    {
        // The batched purge deletes a batch by ids; on a partitioned ledger the ids' days (the partition key is derived from
        // the id) bound its deletes to their partitions. Another day's partitions held in SHARE mode by a long transaction
        // (reads pass, writes wait) do not hold it up; without the days, the DELETEs planned on every partition waited.
        var host = await StartAsync(partitioned: true);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        var old = T0.AddDays(-2).Date;
        await LedgerPartitioning.EnsureAheadAsync(connection, old, 3, CancellationToken.None);
        var purged = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(10)));
        var other = Guid.CreateVersion7(new DateTimeOffset(T0));
        Succeed(host, purged, "Invoice", old.AddMinutes(10));
        Succeed(host, other, "Invoice", T0);
        await host.FlushAsync();
        var day = PartitionDay.Suffix(PartitionDay.Of(T0));
        // Watched from a connection of its own, outside the holder's transaction: in one, pg_stat_activity is read once and
        // kept (stats_fetch_consistency), and showed the drop's statement of the first poll.
        await using var watcher = new NpgsqlConnection(host.Ledger.ConnectionString);
        await watcher.OpenAsync();
        // The cutoff inside the old day: the day is not dropped, its success goes by the batched purge.
        var (waited, result) = await PartitionHold.RunAsync(host.Ledger.ConnectionString, watcher, PartitionHold.Day(day),
            () => host.Services.GetRequiredService<LedgerPurger>().PurgeAsync(new PurgeRequest(LedgerKind.Tasks, old.AddHours(12), null), CancellationToken.None),
            mode: "SHARE");
        Assert.That(waited, Is.False, "the purge waited for another day's partitions");
        Assert.That(result.Succeeded, Is.EqualTo(1));
        Assert.That((await host.TasksAsync()).Select(t => t.Id), Is.EqualTo(new[] { other }));
        Assert.That(await ScalarAsync<long>(connection, $"SELECT count(*) FROM \"{LedgerModel.Runs}\" WHERE \"TaskId\" = '{purged}'"), Is.Zero, "its run gone with it");
        await AssertRollupsEqualCountsAsync(host, "after the purge");
    }

    [Test]
    public async Task Retention_AMigrationBetweenTheBuildAndTheLock_ReadsTheKeptRowsAgainUnderIt()
    {
        // An upgrade's migration runs between the build and the lock: a column and an index added, an index dropped. The
        // built tables were made as the parents were: attaching them failed ("table is missing column"), or left an
        // index of their own. They are dropped and the kept rows read under the lock, as the parents are now.
        var (host, connection, old, (success, failure, unfinished)) = await OldDayAsync();
        await using var owned = connection;

        var drop = await LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None,
            built: async _ =>
            {
                await using var migration = new NpgsqlCommand($"""
                    ALTER TABLE "{LedgerModel.Tasks}" ADD COLUMN "Tenant" text;
                    CREATE INDEX "IX_JobLogTasks_Tenant" ON "{LedgerModel.Tasks}" ("Tenant");
                    DROP INDEX "IX_JobLogTasks_TraceId";
                    """, connection);
                await migration.ExecuteNonQueryAsync();
            });

        Assert.That((drop.Days, drop.Kept, drop.Rebuilt), Is.EqualTo((2, 2, 1)), "the kept rows read again under the lock");
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Select(t => t.Id), Is.EquivalentTo(new[] { failure, unfinished }));
        Assert.That(success, Is.Not.AnyOf(tasks.Select(t => t.Id).ToArray()));
        var kept = LedgerModel.Tasks + "_k" + PartitionDay.Suffix(PartitionDay.Of(old))[1..];
        Assert.That(await ScalarAsync<long>(connection, $"SELECT count(*) FROM pg_attribute WHERE attrelid = '\"{kept}\"'::regclass AND attname = 'Tenant'"), Is.EqualTo(1));
        Assert.That(await ScalarAsync<long>(connection, $"SELECT count(*) FROM pg_index WHERE indrelid = '\"{kept}\"'::regclass"),
            Is.EqualTo(await ScalarAsync<long>(connection, $"SELECT count(*) FROM pg_index WHERE indrelid = '\"{LedgerModel.Tasks}\"'::regclass")), "the parent's indexes, no other");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'"), Is.Zero, "the built tables are dropped");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task Retention_FailingBetweenTheBuildAndTheCommit_DropsTheBuiltTables_AndKeepsTheDay()
    {
        // A lock that times out, a stop, an attach that fails: the build's tables go at once, the day stays for the next
        // drop (review of session 20: they were left for an hour, a new set each retry).
        var (host, connection, old, (_, failure, unfinished)) = await OldDayAsync();
        await using var owned = connection;

        var error = Assert.ThrowsAsync<TimeoutException>(() => LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None,
            built: _ => throw new TimeoutException("the lock timed out")));

        Assert.That(error!.Message, Is.EqualTo("the lock timed out"));
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'"), Is.Zero, "no built table left");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_trigger WHERE tgname ~ '_v[0-9]{8}_'"), Is.Zero, "no trigger of the build's left on the day");
        Assert.That(await PartitionOfAsync(host, LedgerModel.Tasks, failure), Is.EqualTo(LedgerModel.Tasks + "_" + PartitionDay.Suffix(PartitionDay.Of(old))));
        var drop = await LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None);
        Assert.That(drop.Kept, Is.EqualTo(2));
        Assert.That((await host.TasksAsync()).Select(t => t.Id), Is.EquivalentTo(new[] { failure, unfinished }));
        await AssertRollupsEqualCountsAsync(host, "after the failed and the second drop");
    }

    [Test]
    public async Task Retention_ADayAnotherProcessDropsDuringItsBuild_IsPassedOver()
    {
        // Two processes' maintenance on one ledger: the other drops the day after this one saw its partitions and before
        // its build copied the kept rows (review of session 20: the copy's 42P01 "relation does not exist" was thrown out of
        // the drop, and the maintenance pass failed).
        var (host, connection, old, _) = await OldDayAsync();
        await using var owned = connection;
        var suffix = PartitionDay.Suffix(PartitionDay.Of(old));
        await using var other = new NpgsqlConnection(host.Ledger.ConnectionString);
        await other.OpenAsync();
        await using var transaction = await other.BeginTransactionAsync();
        // The other process's drop locks the parents (and so every partition), as LedgerPartitioning.DropExpiredAsync does:
        // since session 30 the build's first transaction holds the parents (LIKE) while it makes its triggers on the day's
        // partitions, so a lock of the day's partition alone, then a detach from the parent, deadlocked with it.
        await ScalarAsync<int>(other, $"LOCK TABLE \"{LedgerModel.Tasks}\" IN ACCESS EXCLUSIVE MODE; SELECT 1");
        var pid = await ScalarAsync<int>(connection, "SELECT pg_backend_pid()");
        var otherPid = await ScalarAsync<int>(other, "SELECT pg_backend_pid()");

        var drop = LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None);
        while (!await ScalarAsync<bool>(other, $"SELECT {otherPid} = ANY(pg_blocking_pids({pid}))"))
        {
            Assert.That(drop.IsCompleted, Is.False, "the drop waits for the day's partition");
            await System.Threading.Tasks.Task.Delay(20);
        }

        Assert.That(await ScalarAsync<string>(other, $"SELECT query FROM pg_stat_activity WHERE pid = {pid}"), Does.Contain("(LIKE \"" + LedgerModel.Tasks + "\""),
            "the build's tables wait");
        await ScalarAsync<int>(other, $"""
            ALTER TABLE "{LedgerModel.Tasks}" DETACH PARTITION "{LedgerModel.Tasks}_{suffix}";
            ALTER TABLE "{LedgerModel.Runs}" DETACH PARTITION "{LedgerModel.Runs}_{suffix}";
            DROP TABLE "{LedgerModel.Tasks}_{suffix}", "{LedgerModel.Runs}_{suffix}";
            SELECT 1
            """);
        await transaction.CommitAsync();

        var result = await drop;
        Assert.That((result.Succeeded, result.Failed, result.Kept), Is.EqualTo((0, 0, 0)), "the other process dropped the day: none of its rows counted here");
        Assert.That(await ScalarAsync<long>(connection, "SELECT count(*) FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'"), Is.Zero, "no built table left");
    }

    [Test]
    public async Task Retention_DropsTheBuiltTablesADropLeftMoreThanAnHourAgo_NotYoungerOnesNorOtherTables()
    {
        var host = await StartAsync(partitioned: true);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        var now = await ScalarAsync<long>(connection, "SELECT floor(extract(epoch FROM clock_timestamp()))::bigint");
        var abandoned = $"{LedgerModel.Tasks}_b20250101_{now - 3700}_00af";
        var young = $"{LedgerModel.Runs}_b20250101_{now - 60}_00af";
        var versions = $"{LedgerModel.Tasks}_v20250101_{now - 3700}_00af";
        var foreign = $"Invoices_b20250101_{now - 3700}_00af";
        await using (var create = new NpgsqlCommand(
            $"CREATE TABLE \"{abandoned}\" (LIKE \"{LedgerModel.Tasks}\"); CREATE TABLE \"{young}\" (LIKE \"{LedgerModel.Runs}\"); CREATE TABLE \"{foreign}\" (\"Id\" integer); CREATE UNLOGGED TABLE \"{versions}\" (\"Id\" uuid)", connection))
        {
            await create.ExecuteNonQueryAsync();
        }

        await LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None);

        Assert.That(await ScalarAsync<string>(connection, "SELECT string_agg(relname::text, ',' ORDER BY relname) FROM pg_class WHERE relname ~ '_[bv]20250101_'"),
            Is.EqualTo(string.Join(",", new[] { young, foreign }.Order(StringComparer.Ordinal))));
    }

    /// <summary>A partitioned ledger with a day 40 days old: a success, a failure ("card declined") and an unfinished task.</summary>
    private async Task<(LedgerHost Host, NpgsqlConnection Connection, DateTime Old, (Guid Success, Guid Failure, Guid Unfinished) Ids)> OldDayAsync()
    {
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, old, 1, CancellationToken.None);
        var ids = WriteOldDay(host, old);
        await host.FlushAsync();
        return (host, connection, old, ids);
    }

    private static (Guid Success, Guid Failure, Guid Unfinished) WriteOldDay(LedgerHost host, DateTime old)
    {
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var success = Guid.CreateVersion7(new DateTimeOffset(old));
        var failure = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(1)));
        var unfinished = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(2)));
        foreach (var id in new[] { success, failure, unfinished })
        {
            recorder.Enqueue(new TaskDispatched(Task(id, "Invoice", old) with { Input = $"Invoice(Order=ORD-{id:N})" }));
        }

        recorder.Enqueue(new RunFinished(Start(recorder, success, "Invoice", old.AddSeconds(1)), success, TaskRunState.Succeeded, old.AddSeconds(2), null, null, null));
        recorder.Enqueue(new RunFinished(Start(recorder, failure, "Invoice", old.AddSeconds(1)), failure, TaskRunState.Failed, old.AddSeconds(5), "card declined", null, null));
        Start(recorder, unfinished, "Invoice", old.AddSeconds(1));
        return (success, failure, unfinished);
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    [Test]
    public async Task PurgeWithBackup_ThenRestore_PutsTasksAndRunsBackInTheirPartitions()
    {
        var host = await StartAsync(partitioned: true);
        var ids = new[] { Guid.CreateVersion7(new DateTimeOffset(T0)), Guid.CreateVersion7(new DateTimeOffset(T0.AddDays(1))), UndatedIds.New() };
        foreach (var id in ids)
        {
            Succeed(host, id, "Invoice", T0);
        }

        await host.FlushAsync();
        var before = Snapshot(await host.TasksAsync());
        var backups = Path.Combine(Path.GetTempPath(), "joblog-partition-restore-" + Guid.NewGuid().ToString("N"));
        try
        {
            var maintenance = host.Services.GetRequiredService<LedgerMaintenance>();
            var purge = await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(1), null, BackupDirectory: backups));
            Assert.That(purge.Deleted, Is.EqualTo(3));
            Assert.That(await host.TasksAsync(), Is.Empty);

            var restored = await maintenance.RestoreAsync(purge.BackupFile!);

            Assert.That(restored.Restored, Is.EqualTo(3));
            Assert.That(Snapshot(await host.TasksAsync()), Is.EqualTo(before));
            Assert.That(await PartitionOfAsync(host, LedgerModel.Runs, ids[1]), Is.EqualTo("JobLogTaskRuns_" + PartitionDay.Suffix(PartitionDay.Of(T0.AddDays(1)))));
            await AssertRollupsEqualCountsAsync(host, "after the restore");
        }
        finally
        {
            Directory.Delete(backups, recursive: true);
        }
    }

    [Test]
    public async Task Conversion_OfAnUnpartitionedLedger_KeepsEveryRowIndexAndTrigger()
    {
        var host = await StartAsync(partitioned: false);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var random = new Random(7);
        for (var i = 0; i < 60; i++)
        {
            var at = T0.AddHours(-i * 7);
            var id = (i % 3) switch { 0 => Guid.CreateVersion7(new DateTimeOffset(at)), 1 => NewIdLike(at, random), _ => Guid.NewGuid() };
            recorder.Enqueue(new TaskDispatched(Task(id, i % 2 == 0 ? "Invoice" : "Report", at)));
            if (i % 5 != 0)
            {
                recorder.Enqueue(new RunFinished(Start(recorder, id, "Invoice", at), id, i % 4 == 0 ? TaskRunState.Failed : TaskRunState.Succeeded, at.AddSeconds(3), "e", null, null));
            }
        }

        await host.FlushAsync();
        var before = Snapshot(await host.TasksAsync());
        var indexesBefore = await IndexesAsync(host);
        var database = LedgerDatabase.For(LedgerProvider.PostgreSql);
        await using (var db = host.Services.GetRequiredService<JobLogContextFactory>().Create())
        {
            Assert.That(await database.IsPartitionedAsync(db, CancellationToken.None), Is.False);
            await database.ApplyPartitioningAsync(db, new PartitioningOptions { Enabled = true }, T0, CancellationToken.None);
            Assert.That(await database.IsPartitionedAsync(db, CancellationToken.None), Is.True);
        }

        Assert.That(Snapshot(await host.TasksAsync()), Is.EqualTo(before));
        Assert.That(await IndexesAsync(host), Is.EquivalentTo(indexesBefore), "every index of the old tables, on the new ones");
        await AssertRollupsEqualCountsAsync(host, "after the conversion");

        // The running writer's next batch fails on the new table, and it reopens on the partitioned statements.
        var late = Guid.CreateVersion7(new DateTimeOffset(T0));
        Succeed(host, late, "Invoice", T0);
        await host.FlushAsync();
        Assert.That((await host.TaskAsync(late)).State, Is.EqualTo(TaskState.Succeeded));
        await AssertRollupsEqualCountsAsync(host, "after a write on the converted ledger (the triggers came along)");
    }

    [Test]
    public async Task DayRollups_AddedToALedgerPartitionedWithoutThem_CountItsRows_AndServeTheNextDrop()
    {
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, old, 1, CancellationToken.None);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var oldUnfinished = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(2)));
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(old)), "Invoice", old);
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(old.AddHours(1))), "Report", old.AddHours(1));
        recorder.Enqueue(new TaskDispatched(Task(oldUnfinished, "Invoice", old)));
        Start(recorder, oldUnfinished, "Invoice", old);
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(T0)), "Invoice", T0);
        await host.FlushAsync();

        // A ledger converted before the day rollups existed (session 7): no day rollup tables or triggers, and the minute
        // rollups are tables kept by their own triggers (the migrations' SQL), as they were until session 9.
        await using (var command = new NpgsqlCommand(
            $"DROP VIEW \"{LedgerRollups.Minutes}\", \"{RunRollups.Minutes}\"; " +
            $"CREATE TABLE \"{LedgerRollups.Minutes}\" (\"Minute\" timestamptz NOT NULL, \"State\" integer NOT NULL, \"Name\" varchar({LedgerModel.NameLength}) NOT NULL, " +
            "\"IsInternal\" boolean NOT NULL, \"Count\" bigint NOT NULL, PRIMARY KEY (\"Minute\", \"State\", \"Name\", \"IsInternal\")); " +
            $"CREATE TABLE \"{RunRollups.Minutes}\" (\"Minute\" timestamptz NOT NULL, \"Name\" varchar({LedgerModel.NameLength}) NOT NULL, \"Runs\" bigint NOT NULL, " +
            "\"TotalMilliseconds\" bigint NOT NULL, \"MaxMilliseconds\" bigint NOT NULL, PRIMARY KEY (\"Minute\", \"Name\")); " +
            $"TRUNCATE \"{LedgerRollups.Counts}\"; " + LedgerRollups.PostgreSqlDown + RunRollups.PostgreSqlDown + LedgerRollups.PostgreSqlUp + RunRollups.PostgreSqlUp +
            $"DROP TABLE \"{DayRollups.Tasks}\", \"{DayRollups.Runs}\"; " +
            "DROP TRIGGER \"JobLogTasks_Days_Insert\" ON \"JobLogTasks\"; DROP TRIGGER \"JobLogTasks_Days_Delete\" ON \"JobLogTasks\"; " +
            "DROP TRIGGER \"JobLogTasks_Days_Update\" ON \"JobLogTasks\"; DROP TRIGGER \"JobLogTaskRuns_Days_Insert\" ON \"JobLogTaskRuns\"; " +
            "DROP TRIGGER \"JobLogTaskRuns_Days_Delete\" ON \"JobLogTaskRuns\"; DROP TRIGGER \"JobLogTaskRuns_Days_Update\" ON \"JobLogTaskRuns\"", connection))
        {
            await command.ExecuteNonQueryAsync();
        }

        await AssertRollupsEqualCountsAsync(host, "as a session 7 ledger");
        await host.Services.GetRequiredService<LedgerPartitionService>().RunOnceAsync(CancellationToken.None);
        await AssertMinutesAreViewsAsync(connection);
        await AssertRollupsEqualCountsAsync(host, "after the day rollups were added");
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(T0.AddMinutes(1))), "Report", T0.AddMinutes(1));
        await host.FlushAsync();
        await AssertRollupsEqualCountsAsync(host, "after a write through the counts-only triggers");

        var result = await host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(
            new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90)));

        Assert.That(result.Succeeded, Is.EqualTo(2));
        Assert.That((await host.TasksAsync()).Select(t => t.Id).ToList(), Has.Member(oldUnfinished).And.Count.EqualTo(3), "the unfinished one and the two of today");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
        Assert.That((await LedgerPartitioning.DaysAsync(connection, CancellationToken.None, kept: true))[LedgerModel.Tasks], Is.EquivalentTo(new[] { PartitionDay.Of(old) }));

        // The kept task ends, the batched purge deletes it, and the next drop removes its day's emptied partitions.
        recorder.Enqueue(new RunFinished(Start(recorder, oldUnfinished, "Invoice", old.AddMinutes(5)), oldUnfinished, TaskRunState.Succeeded, old.AddMinutes(6), null, null, null));
        await host.FlushAsync();
        var maintenance = host.Services.GetRequiredService<LedgerMaintenance>();
        await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90)));
        Assert.That((await host.TasksAsync()).Select(t => t.Id).ToList(), Does.Not.Contain(oldUnfinished));
        await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90)));
        Assert.That(await LedgerPartitioning.DaysAsync(connection, CancellationToken.None, kept: true), Is.Empty);
        await AssertRollupsEqualCountsAsync(host, "after the kept partitions went");
    }

    [Test]
    public async Task DayHours_AddedToALedgerPartitionedBeforeThem_CountItsRows_AndServeTheNextDrop()
    {
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, old, 1, CancellationToken.None);
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(old)), "Invoice", old);
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(old.AddHours(1))), "Report", old.AddHours(1));
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(T0)), "Invoice", T0);
        await host.FlushAsync();

        // A ledger partitioned before session 13: no day hours, and the hour rollup the table the migration made (empty).
        await using (var command = new NpgsqlCommand(
            $"DROP VIEW \"{LedgerRollups.Hours}\", \"{RunRollups.Hours}\"; DROP TABLE \"{DayRollups.TaskHours}\", \"{DayRollups.RunHours}\"; " +
            $"CREATE TABLE \"{LedgerRollups.Hours}\" (\"Hour\" timestamptz NOT NULL, \"State\" integer NOT NULL, \"Name\" varchar({LedgerModel.NameLength}) NOT NULL, " +
            "\"IsInternal\" boolean NOT NULL, \"Count\" bigint NOT NULL, PRIMARY KEY (\"Hour\", \"State\", \"Name\", \"IsInternal\")); " +
            $"CREATE TABLE \"{RunRollups.Hours}\" (\"Hour\" timestamptz NOT NULL, \"Name\" varchar({LedgerModel.NameLength}) NOT NULL, \"Runs\" bigint NOT NULL, " +
            "\"TotalMilliseconds\" bigint NOT NULL, \"MaxMilliseconds\" bigint NOT NULL, PRIMARY KEY (\"Hour\", \"Name\"))", connection))
        {
            await command.ExecuteNonQueryAsync();
        }

        await host.Services.GetRequiredService<LedgerPartitionService>().RunOnceAsync(CancellationToken.None);
        await using (var command = new NpgsqlCommand(
            $"SELECT string_agg(relkind::text, '' ORDER BY relname) FROM pg_class WHERE relname IN ('{LedgerRollups.Hours}', '{RunRollups.Hours}')", connection))
        {
            Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo("vv"), "the hour rollups are views over the day hours");
        }

        await AssertRollupsEqualCountsAsync(host, "after the day hours were added");
        Succeed(host, Guid.CreateVersion7(new DateTimeOffset(T0.AddMinutes(70))), "Report", T0.AddMinutes(70));
        await host.FlushAsync();
        await AssertRollupsEqualCountsAsync(host, "after a write");
        await host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(-30), T0.AddDays(-90)));
        Assert.That(await host.TasksAsync(), Has.Count.EqualTo(2), "the old day dropped");
        await AssertRollupsEqualCountsAsync(host, "after the drop");
    }

    [Test]
    public async Task Sweep_OnAPartitionedLedger_ExpiresTheStaleTasksOfEachDayWithTheirRuns()
    {
        var host = await StartAsync(partitioned: true);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var stale = new List<Guid>();
        for (var day = 0; day < 3; day++)
        {
            var at = T0.AddDays(day - 2);
            var waiting = Guid.CreateVersion7(new DateTimeOffset(at));
            var active = Guid.CreateVersion7(new DateTimeOffset(at.AddMinutes(1)));
            recorder.Enqueue(new TaskDispatched(Task(waiting, "Invoice", at) with { Stale = T0.AddMinutes(-5) }));
            recorder.Enqueue(new TaskDispatched(Task(active, "Invoice", at) with { Stale = T0.AddMinutes(-5) }));
            Start(recorder, active, "Invoice", at);
            stale.AddRange([waiting, active]);
        }

        var healthy = Guid.CreateVersion7(new DateTimeOffset(T0));
        recorder.Enqueue(new TaskDispatched(Task(healthy, "Invoice", T0) with { Stale = T0.AddHours(1) }));
        await host.FlushAsync();

        var result = await host.Services.GetRequiredService<JobLog.Sweeping.TaskLogSweeper>().SweepOnceAsync(CancellationToken.None);

        Assert.That(result.Expired, Is.EqualTo(6));
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Where(t => t.State == TaskState.Expired).Select(t => t.Id), Is.EquivalentTo(stale));
        var runs = tasks.Where(t => t.State == TaskState.Expired).SelectMany(t => t.Runs).Select(r => r.State).ToList();
        Assert.That(runs, Has.Count.EqualTo(3).And.All.EqualTo(TaskRunState.Expired));
        Assert.That(tasks.Single(t => t.Id == healthy).State, Is.EqualTo(TaskState.Waiting));
        await AssertRollupsEqualCountsAsync(host, "after the sweep");
    }

    [Test]
    public async Task Sweep_OnAPartitionedLedger_InParallelBatches_ExpiresEachStaleTaskOnce_AndTheRollupsStayEqual()
    {
        // Batches of 4 on 3 connections at once: every batch's statement triggers add to the same rollup rows (state,
        // name, the sweep's minute, the days).
        var host = await StartAsync(partitioned: true, o =>
        {
            o.Sweeper.BatchSize = 4;
            o.Sweeper.Parallelism = 3;
        });
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var stale = new List<Guid>();
        for (var day = 0; day < 3; day++)
        {
            for (var i = 0; i < 15; i++)
            {
                var at = T0.AddDays(day - 2).AddMinutes(i);
                var id = Guid.CreateVersion7(new DateTimeOffset(at));
                recorder.Enqueue(new TaskDispatched(Task(id, i % 3 == 0 ? "Invoice" : "Report", at) with { Stale = T0.AddMinutes(-5) }));
                if (i % 2 == 0)
                {
                    Start(recorder, id, i % 3 == 0 ? "Invoice" : "Report", at);
                }

                stale.Add(id);
            }
        }

        await host.FlushAsync();

        var result = await host.Services.GetRequiredService<JobLog.Sweeping.TaskLogSweeper>().SweepOnceAsync(CancellationToken.None);

        Assert.That(result.Expired, Is.EqualTo(45));
        var tasks = await host.TasksAsync();
        Assert.That(tasks.Where(t => t.State == TaskState.Expired).Select(t => t.Id), Is.EquivalentTo(stale));
        Assert.That(tasks.SelectMany(t => t.Runs).Select(r => r.State).ToList(), Has.Count.EqualTo(24).And.All.EqualTo(TaskRunState.Expired));
        await AssertRollupsEqualCountsAsync(host, "after the parallel sweep");
    }

    [Test]
    public async Task SweepStatements_OnAPartitionedLedger_RunOnlyInTheClaimedDaysPartitions_InTheGenericPlan()
    {
        // Npgsql prepares the sweeper's statements and PostgreSQL runs their generic plan, which prunes partitions when it
        // starts only by scalar parameters: with the days as one array parameter, every partition was probed for every id.
        var host = await StartAsync(partitioned: true);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var id = Guid.CreateVersion7(new DateTimeOffset(T0.AddMinutes(-30)));
        recorder.Enqueue(new TaskDispatched(Task(id, "Invoice", T0.AddMinutes(-30)) with { Stale = T0.AddMinutes(-5) }));
        Start(recorder, id, "Invoice", T0.AddMinutes(-29));
        await host.FlushAsync();
        var day = PartitionDay.Of(T0);
        var database = LedgerDatabase.For(LedgerProvider.PostgreSql);

        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        var partitions = await LedgerPartitioning.DaysAsync(connection, CancellationToken.None);
        Assert.That(partitions[LedgerModel.Tasks], Has.Count.GreaterThan(1), "the ledger has other days' partitions to leave out");
        var n = 0;
        foreach (var (statement, tables) in new[]
                 {
                     // The tasks' update and the runs' expiry, one statement (TaskLogSweeper.ExpireRuns).
                     (JobLog.Sweeping.TaskLogSweeper.PartitionedSweepStatement(database, 1), new[] { LedgerModel.Tasks, LedgerModel.Runs }),
                 })
        {
            var name = "s" + n++;
            await using var transaction = await connection.BeginTransactionAsync();
            await using var command = new NpgsqlCommand(
                $"SET LOCAL plan_cache_mode = force_generic_plan; PREPARE {name}(uuid[], timestamptz, int) AS " + System.Text.RegularExpressions.Regex.Replace(statement, "@p([0-9]+)", m => "$" + (int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) + 1)),
                connection, transaction);
            await command.ExecuteNonQueryAsync();
            command.CommandText = $"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE {name}(ARRAY['{id}']::uuid[], now(), {day})";
            var plan = new List<string>();
            await using (var reader = await command.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    plan.Add(reader.GetString(0));
                }
            }

            await transaction.RollbackAsync();
            var executed = plan.Where(line => !line.Contains("never executed", StringComparison.Ordinal)).ToList();
            foreach (var table in tables)
            {
                var own = table + "_" + PartitionDay.Suffix(day);
                Assert.That(executed.Where(line => line.Contains(" on \"" + table + "_", StringComparison.Ordinal) && !line.Contains("Update on", StringComparison.Ordinal)),
                    Is.Not.Empty.And.All.Contains(own), $"{table}: only {own} is read\n{string.Join("\n", plan)}");
            }
        }
    }

    [TestCase("force_custom_plan")]
    [TestCase("force_generic_plan")]
    public async Task SweepStatement_OnAPartitionedLedger_FindsTheTasksItUpdatesByTheirIds_NotByScanningTheirDays(string plans)
    {
        // A spread backlog's batch spans days. Joined to the claimed rows alone, the tasks' update read every task of those
        // days into a hash: 300,000 tasks for a batch of 1,000 over three days of a 1 M ledger, 0.5 s of its 1.5 s
        // (docs/scale.md, "Session 29 (scale)"). Three days of 20,000 tasks here, one in 200 stale, each row about as wide as a
        // task with its message (arguments the search text leaves out).
        var host = await StartAsync(partitioned: true);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, T0.AddDays(-4), 5, CancellationToken.None);
        var days = Enumerable.Range(1, 3).Select(k => PartitionDay.Of(T0.AddDays(-k))).Order().ToArray();
        await using (var fill = new NpgsqlCommand(
            $"""
            INSERT INTO "{LedgerModel.Tasks}" ("Id", "Name", "TaskArgs", "DispatchedAt", "Stale", "IsSetAsStale", "State", "PartitionDay")
            SELECT gen_random_uuid(), 'Invoice', repeat('x', 700), d.at + i * interval '4 seconds', d.at + i * interval '4 seconds' + interval '5 minutes', FALSE,
                CASE WHEN i % 200 = 0 THEN 2 ELSE 3 END, d.day
            FROM unnest(@days, @starts) AS d(day, at), generate_series(0, 19999) AS i;
            ANALYZE "{LedgerModel.Tasks}";
            """, connection))
        {
            fill.Parameters.AddWithValue("days", days);
            fill.Parameters.AddWithValue("starts", Enumerable.Range(1, 3).Select(k => T0.AddDays(-k).Date).Order().ToArray());
            await fill.ExecuteNonQueryAsync();
        }

        var stale = new List<Guid>();
        await using (var read = new NpgsqlCommand($"""SELECT "Id" FROM "{LedgerModel.Tasks}" WHERE "State" = 2""", connection))
        await using (var reader = await read.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                stale.Add(reader.GetGuid(0));
            }
        }

        var statement = JobLog.Sweeping.TaskLogSweeper.PartitionedSweepStatement(LedgerDatabase.For(LedgerProvider.PostgreSql), days.Length);
        await using var transaction = await connection.BeginTransactionAsync();
        await using var command = new NpgsqlCommand(
            $"SET LOCAL plan_cache_mode = {plans}; PREPARE spread(uuid[], timestamptz, int, int, int) AS " +
            System.Text.RegularExpressions.Regex.Replace(statement, "@p([0-9]+)", m => "$" + (int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) + 1)),
            connection, transaction);
        await command.ExecuteNonQueryAsync();
        command.CommandText = $"""
            EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
            EXECUTE spread('{"{" + string.Join(",", stale) + "}"}', now(), {days[0]}, {days[1]}, {days[2]})
            """;
        var plan = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                plan.Add(reader.GetString(0));
            }
        }

        await transaction.RollbackAsync();
        var text = string.Join("\n", plan);
        Assert.That(plan.Where(line => line.Contains("Update on \"" + LedgerModel.Tasks + "\"", StringComparison.Ordinal)), Has.Some.Contains("actual rows=300 "), text);
        Assert.That(plan.Where(line => line.Contains("Seq Scan on \"" + LedgerModel.Tasks + "_", StringComparison.Ordinal) && !line.Contains("never executed", StringComparison.Ordinal)),
            Is.Empty, text);
    }

    private async Task<LedgerHost> StartAsync(bool partitioned, Action<JobLogOptions>? configure = null)
    {
        _host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o =>
            {
                o.Partitioning.Enabled = partitioned;
                configure?.Invoke(o);
            },
            services: s => s.AddSingleton<TimeProvider>(_clock));
        return _host;
    }

    [Test]
    public async Task RunDays_WhenTheLongestRunOfAMinuteIsShortenedOrDeleted_ReadTheLongestAgain()
    {
        // The overview's run rollup is a view over the day rollups on a partitioned ledger, so their longest must be exact.
        var host = await StartAsync(partitioned: true);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await AssertMinutesAreViewsAsync(connection);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var shortId = Guid.CreateVersion7(new DateTimeOffset(T0));
        var longId = Guid.CreateVersion7(new DateTimeOffset(T0.AddSeconds(1)));
        recorder.Enqueue(new TaskDispatched(Task(shortId, "Invoice", T0)));
        recorder.Enqueue(new RunFinished(Start(recorder, shortId, "Invoice", T0.AddSeconds(1)), shortId, TaskRunState.Succeeded, T0.AddSeconds(4), null, null, null));
        recorder.Enqueue(new TaskDispatched(Task(longId, "Invoice", T0)));
        recorder.Enqueue(new RunFinished(Start(recorder, longId, "Invoice", T0.AddSeconds(2)), longId, TaskRunState.Failed, T0.AddSeconds(30), "boom", null, null));
        await host.FlushAsync();
        await AssertRollupsEqualCountsAsync(host, "after the writer");

        await using (var command = new NpgsqlCommand($"UPDATE \"{LedgerModel.Runs}\" SET \"Stop\" = \"Start\" + interval '2 seconds' WHERE \"TaskId\" = @id", connection))
        {
            command.Parameters.AddWithValue("id", longId);
            Assert.That(await command.ExecuteNonQueryAsync(), Is.EqualTo(1));
        }

        await AssertRollupsEqualCountsAsync(host, "after the longest run was shortened");
        await using (var command = new NpgsqlCommand($"DELETE FROM \"{LedgerModel.Runs}\" WHERE \"TaskId\" = @id", connection))
        {
            command.Parameters.AddWithValue("id", shortId);
            Assert.That(await command.ExecuteNonQueryAsync(), Is.EqualTo(1));
        }

        await AssertRollupsEqualCountsAsync(host, "after the (now) longest run was deleted");
    }

    [Test]
    public async Task MinuteViews_RefuseTheWritesOfAnOlderHost_InsteadOfChangingOtherDaysCounts()
    {
        // An older JobLog host's day drop subtracted from the minute tables by (minute, key): through a plain view that
        // reached every day's rows of that minute (review of session 9). The views refuse writes instead.
        var host = await StartAsync(partitioned: true);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var id = Guid.CreateVersion7(new DateTimeOffset(T0));
        recorder.Enqueue(new TaskDispatched(Task(id, "Invoice", T0)));
        recorder.Enqueue(new RunFinished(Start(recorder, id, "Invoice", T0.AddSeconds(1)), id, TaskRunState.Succeeded, T0.AddSeconds(4), null, null, null));
        await host.FlushAsync();

        foreach (var sql in new[]
        {
            $"UPDATE \"{LedgerRollups.Minutes}\" SET \"Count\" = \"Count\" - 1",
            $"DELETE FROM \"{LedgerRollups.Minutes}\"",
            $"UPDATE \"{RunRollups.Minutes}\" SET \"Runs\" = \"Runs\" - 1",
            $"INSERT INTO \"{RunRollups.Minutes}\" VALUES ('2026-03-10 12:00:00+00', 'Invoice', 1, 1, 1)",
        })
        {
            await using var command = new NpgsqlCommand(sql, connection);
            var error = Assert.ThrowsAsync<PostgresException>(() => command.ExecuteNonQueryAsync(), sql);
            Assert.That(error!.MessageText, Does.Contain("upgrade every host"));
        }

        await AssertRollupsEqualCountsAsync(host, "nothing changed");
    }

    /// <summary>On a partitioned ledger the minute rollups are views over the day rollups and the run rollup's own triggers are gone.</summary>
    private static async Task AssertMinutesAreViewsAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT (SELECT string_agg(relkind::text, '' ORDER BY relname) FROM pg_class WHERE relname IN ('{LedgerRollups.Minutes}', '{RunRollups.Minutes}')) || " +
            $"(SELECT COUNT(*) FROM pg_trigger WHERE tgname LIKE 'JobLogTaskRuns_Rollup_%')", connection);
        Assert.That(await command.ExecuteScalarAsync(), Is.EqualTo("vv0"), "two views, no run rollup trigger");
    }

    private static void Succeed(LedgerHost host, Guid id, string name, DateTime at)
    {
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        recorder.Enqueue(new TaskDispatched(Task(id, name, at)));
        recorder.Enqueue(new RunFinished(Start(recorder, id, name, at.AddSeconds(1)), id, TaskRunState.Succeeded, at.AddSeconds(2), null, null, null));
    }

    private static TaskPayload Task(Guid id, string name, DateTime at) => new() { Id = id, Name = name, DispatchedAt = at, EstimatedTimeOfFirstArrival = at };

    private static Guid Start(LedgerRecorder recorder, Guid id, string name, DateTime at)
    {
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = name, ConsumerType = "C", Start = at };
        recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = id, Name = name, DispatchedAt = at }, false));
        return run.Id;
    }

    /// <summary>An id laid out as MassTransit's <c>NewId.NextGuid()</c>: the top 48 bits of the ticks in the last six bytes.</summary>
    private static Guid NewIdLike(DateTime at, Random random)
    {
        var bytes = new byte[16];
        random.NextBytes(bytes);
        var ticks48 = at.Ticks >> 16;
        for (var i = 15; i >= 10; i--)
        {
            bytes[i] = (byte)ticks48;
            ticks48 >>= 8;
        }

        return new Guid(bytes, bigEndian: true);
    }

    private static List<int> Days(int from, int to) => Enumerable.Range(from, to - from + 1).ToList();

    private static async Task<List<int>> DaysAsync(LedgerHost host)
    {
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        var days = await LedgerPartitioning.DaysAsync(connection, CancellationToken.None);
        Assert.That(days[LedgerModel.Runs], Is.EquivalentTo(days[LedgerModel.Tasks]), "runs have the tasks' days");
        return [.. days[LedgerModel.Tasks].Order()];
    }

    private static async Task<string?> PartitionOfAsync(LedgerHost host, string table, Guid taskId)
    {
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        var column = table == LedgerModel.Tasks ? "Id" : "TaskId";
        await using var command = new NpgsqlCommand($"SELECT DISTINCT tableoid::regclass::text FROM \"{table}\" WHERE \"{column}\" = $1", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = taskId });
        return ((string?)await command.ExecuteScalarAsync())?.Trim('"');
    }

    private static async Task<List<string>> IndexesAsync(LedgerHost host)
    {
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT c.relname::text || ' ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid " +
            "WHERE i.indrelid IN ('\"JobLogTasks\"'::regclass, '\"JobLogTaskRuns\"'::regclass) AND NOT i.indisprimary", connection);
        var list = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            list.Add(reader.GetString(0).Replace(" ONLY ", " ", StringComparison.Ordinal));
        }

        return list;
    }

    private static List<string> Snapshot(List<TaskLog> tasks)
    {
        foreach (var task in tasks)
        {
            task.Runs = [.. task.Runs.OrderBy(r => r.Id)];
        }

        return [.. tasks.OrderBy(t => t.Id).Select(t => JsonSerializer.Serialize(t, LedgerBackup.JsonOptions))];
    }

    private static async Task AssertRollupsEqualCountsAsync(LedgerHost host, string when)
    {
        var tasks = await host.QueryAsync(db => db.TaskLogs.AsNoTracking().ToListAsync());
        var counts = await host.QueryAsync(db => db.Set<TaskStateCount>().AsNoTracking().ToListAsync());
        var minutes = await host.QueryAsync(db => db.Set<TaskMinuteCount>().AsNoTracking().ToListAsync());
        var expectedCounts = tasks.GroupBy(t => (t.State, t.Name, t.IsInternal)).Select(g => (g.Key.State, g.Key.Name, g.Key.IsInternal, (long)g.Count()));
        Assert.That(counts.Where(c => c.Count != 0).Select(c => (c.State, c.Name, c.IsInternal, c.Count)), Is.EquivalentTo(expectedCounts), "per state and name, " + when);
        var expectedMinutes = tasks.Where(t => t.Stop is not null)
            .GroupBy(t => (new DateTime(t.Stop!.Value.Ticks - (t.Stop.Value.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc), t.State, t.Name, t.IsInternal))
            .Select(g => (g.Key.Item1, g.Key.State, g.Key.Name, g.Key.IsInternal, (long)g.Count()));
        // On a partitioned ledger the minute rollup is a view with a row per day of a minute and key: readers sum.
        Assert.That(minutes.GroupBy(m => (m.Minute, m.State, m.Name, m.IsInternal)).Select(g => (g.Key.Minute, g.Key.State, g.Key.Name, g.Key.IsInternal, g.Sum(m => m.Count))),
            Is.EquivalentTo(expectedMinutes), "per minute, " + when);
        var hours = await host.QueryAsync(db => db.Set<TaskHourCount>().AsNoTracking().ToListAsync());
        var expectedHours = tasks.Where(t => t.Stop is not null)
            .GroupBy(t => (new DateTime(t.Stop!.Value.Ticks - (t.Stop.Value.Ticks % TimeSpan.TicksPerHour), DateTimeKind.Utc), t.State, t.Name, t.IsInternal))
            .Select(g => (g.Key.Item1, g.Key.State, g.Key.Name, g.Key.IsInternal, (long)g.Count()));
        Assert.That(hours.GroupBy(m => (m.Hour, m.State, m.Name, m.IsInternal)).Select(g => (g.Key.Hour, g.Key.State, g.Key.Name, g.Key.IsInternal, g.Sum(m => m.Count))),
            Is.EquivalentTo(expectedHours), "per hour, " + when);

        // The run rollup too: a dropped partition fires no trigger.
        var runs = await host.QueryAsync(db => db.TaskRunLogs.AsNoTracking().ToListAsync());
        var runMinutes = await host.QueryAsync(db => db.Set<RunMinuteDurations>().AsNoTracking().ToListAsync());
        var expectedRunMinutes = runs.Where(r => (int)r.State is 2 or 3 or 4 && r.Stop is not null)
            .Select(r => (Minute: new DateTime(r.Start.Ticks - (r.Start.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc), r.Name,
                Ms: (long)Math.Round((r.Stop!.Value - r.Start).TotalMilliseconds)))
            .GroupBy(r => (r.Minute, r.Name))
            .Select(g => (g.Key.Minute, g.Key.Name, (long)g.Count(), g.Sum(r => r.Ms), g.Max(r => r.Ms)));
        Assert.That(runMinutes.GroupBy(m => (m.Minute, m.Name)).Select(g => (g.Key.Minute, g.Key.Name, g.Sum(m => m.Runs), g.Sum(m => m.TotalMilliseconds), g.Max(m => m.MaxMilliseconds))),
            Is.EquivalentTo(expectedRunMinutes),
            "finished runs per minute, " + when);
        var runHours = await host.QueryAsync(db => db.Set<RunHourDurations>().AsNoTracking().ToListAsync());
        var expectedRunHours = runs.Where(r => (int)r.State is 2 or 3 or 4 && r.Stop is not null)
            .Select(r => (Hour: new DateTime(r.Start.Ticks - (r.Start.Ticks % TimeSpan.TicksPerHour), DateTimeKind.Utc), r.Name,
                Ms: (long)Math.Round((r.Stop!.Value - r.Start).TotalMilliseconds)))
            .GroupBy(r => (r.Hour, r.Name))
            .Select(g => (g.Key.Hour, g.Key.Name, (long)g.Count(), g.Sum(r => r.Ms), g.Max(r => r.Ms)));
        Assert.That(runHours.GroupBy(m => (m.Hour, m.Name)).Select(g => (g.Key.Hour, g.Key.Name, g.Sum(m => m.Runs), g.Sum(m => m.TotalMilliseconds), g.Max(m => m.MaxMilliseconds))),
            Is.EquivalentTo(expectedRunHours), "finished runs per hour, " + when);
        await AssertDayRollupsEqualCountsAsync(host, tasks, runs, when);
    }

    /// <summary>On a partitioned ledger, the day rollups (<see cref="DayRollups"/>) against the rows they count.</summary>
    private static async Task AssertDayRollupsEqualCountsAsync(LedgerHost host, List<TaskLog> tasks, List<TaskRunLog> runs, string when)
    {
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using (var exists = new NpgsqlCommand(DayRollups.ExistSql, connection))
        {
            if (!(bool)(await exists.ExecuteScalarAsync())!)
            {
                return;
            }
        }

        var taskDays = new List<(int, DateTime, TaskState, string, bool, long)>();
        await using (var command = new NpgsqlCommand($"SELECT \"{PartitionDay.Column}\", \"Minute\", \"State\", \"Name\", \"IsInternal\", \"Count\" FROM \"{DayRollups.Tasks}\" WHERE \"Count\" <> 0", connection))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                taskDays.Add((reader.GetInt32(0), reader.GetFieldValue<DateTime>(1), (TaskState)reader.GetInt32(2), reader.GetString(3), reader.GetBoolean(4), reader.GetInt64(5)));
            }
        }

        static DateTime Minute(DateTime t) => new(t.Ticks - (t.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc);
        var expected = tasks.GroupBy(t => (PartitionDay.Of(t.Id), t.Stop is { } stop ? Minute(stop) : DateTime.MinValue, t.State, t.Name, t.IsInternal))
            .Select(g => (g.Key.Item1, g.Key.Item2, g.Key.State, g.Key.Name, g.Key.IsInternal, (long)g.Count()));
        Assert.That(taskDays, Is.EquivalentTo(expected), "tasks per day, minute (-infinity: unfinished), state and name, " + when);

        var runDays = new List<(int, DateTime, string, long, long, long)>();
        await using (var command = new NpgsqlCommand($"SELECT \"{PartitionDay.Column}\", \"Minute\", \"Name\", \"Runs\", \"TotalMilliseconds\", \"MaxMilliseconds\" FROM \"{DayRollups.Runs}\" WHERE \"Runs\" <> 0", connection))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                runDays.Add((reader.GetInt32(0), reader.GetFieldValue<DateTime>(1), reader.GetString(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5)));
            }
        }

        var counted = runs.Where(r => (int)r.State is 2 or 3 or 4 && r.Stop is not null)
            .Select(r => (Day: PartitionDay.Of(r.TaskId), Minute: Minute(r.Start), r.Name, Ms: (long)Math.Round((r.Stop!.Value - r.Start).TotalMilliseconds)))
            .GroupBy(r => (r.Day, r.Minute, r.Name)).ToList();
        Assert.That(runDays.Select(r => (r.Item1, r.Item2, r.Item3, r.Item4, r.Item5)),
            Is.EquivalentTo(counted.Select(g => (g.Key.Day, g.Key.Minute, g.Key.Name, (long)g.Count(), g.Sum(r => r.Ms)))), "finished runs per day, minute and name, " + when);
        foreach (var g in counted)
        {
            Assert.That(runDays.Single(r => (r.Item1, r.Item2, r.Item3) == g.Key).Item6, Is.EqualTo(g.Max(r => r.Ms)), "the longest, " + when);
        }
    }
}
