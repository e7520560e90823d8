using System.Text.Json;
using JobLog.Maintenance;
using JobLog.Recording;
using JobLog.Retention;
using JobLog.Storage;
using JobLog.Storage.Partitioning;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Partitioning;

/// <summary>
/// Daily partitions of the PostgreSQL ledger's request and command logs (docs/scale.md#partitioning: inbound requests,
/// outbound requests with their related objects, commands), on a throwaway database per test.
/// </summary>
public class LogPartitioningTests
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
            _host = null;
        }
    }

    [Test]
    public void KeyedStatements_NameTheKeyInTheValuesAndTheConflictTarget_AndLeaveOtherStatements()
    {
        var related = OnConflictSql.Of(UpsertStatement.Of(LedgerModel.RelatedObjects, LedgerColumns.RelatedObject, update: false));
        var input = OnConflictSql.Of(UpsertStatement.Of(LedgerModel.InputRequests, LedgerColumns.InputRequest, update: true, "\"JobLogInputRequests\".\"Status\" = 0"));

        Assert.That(PartitionedLogStatements.Keyed(related), Does.Contain($"\"ObjectId\", \"{PartitionDay.Column}\") VALUES (")
            .And.Contain($", {PartitionDay.Function}(@p1)) ON CONFLICT (\"Id\", \"{PartitionDay.Column}\") DO NOTHING"), "a related object is keyed by its request's id");
        Assert.That(PartitionedLogStatements.Keyed(input), Does.Contain($", {PartitionDay.Function}(@p0)) ON CONFLICT (\"Id\", \"{PartitionDay.Column}\") DO UPDATE SET")
            .And.EndWith("WHERE \"JobLogInputRequests\".\"Status\" = 0"));
        Assert.That(PartitionedLogStatements.Keyed(LedgerSql.SetExtraData), Is.SameAs(LedgerSql.SetExtraData));
        Assert.That(() => PartitionedLogStatements.Keyed("INSERT INTO \"JobLogCommands\" (\"Id\") SELECT 1"), Throws.InvalidOperationException);
    }

    [Test]
    public async Task Maintenance_CreatesPartitionsAhead_ForRequestsAndCommands()
    {
        var host = await StartAsync(partitioned: true);
        var today = PartitionDay.Of(T0);
        await AssertDaysAsync(host, today, today + 3, "start-up created today and three days ahead");

        _clock.Advance(TimeSpan.FromDays(2));
        await host.Services.GetRequiredService<LedgerPartitionService>().RunOnceAsync(CancellationToken.None);

        await AssertDaysAsync(host, today, today + 5, "the maintenance pass");
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task StartThenEnd_TwoUpserts_AreOneRowInTheIdsDay(bool dated)
    {
        var host = await StartAsync(partitioned: true);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        Guid NewId(DateTime at) => dated ? Guid.CreateVersion7(new DateTimeOffset(at)) : UndatedIds.New();
        var input = NewId(T0);
        var output = NewId(T0.AddSeconds(1));
        var command = NewId(T0.AddSeconds(2));
        var run = Guid.NewGuid();

        recorder.Enqueue(new InputRequestRecorded(Inbound(input, T0, null)));
        recorder.Enqueue(new OutputRequestRecorded(Outbound(output, T0.AddSeconds(1), null, run)));
        recorder.Enqueue(new CommandRecorded(Command(command, T0.AddSeconds(2), null)));
        await host.FlushAsync();
        recorder.Enqueue(new InputRequestRecorded(Inbound(input, T0, RequestLogStatus.Info)));
        recorder.Enqueue(new OutputRequestRecorded(Outbound(output, T0.AddSeconds(1), RequestLogStatus.Error, run)));
        recorder.Enqueue(new CommandRecorded(Command(command, T0.AddSeconds(2), true)));
        await host.FlushAsync();

        var inputs = await host.QueryAsync(db => db.InputRequestLogs.AsNoTracking().ToListAsync());
        var outputs = await host.QueryAsync(db => db.OutputRequestLogs.AsNoTracking().Include(r => r.RelatedObjects).ToListAsync());
        var commands = await host.QueryAsync(db => db.CommandLogs.AsNoTracking().ToListAsync());
        Assert.That(inputs.Single().Status, Is.EqualTo(RequestLogStatus.Info));
        Assert.That(outputs.Single().Status, Is.EqualTo(RequestLogStatus.Error));
        Assert.That(outputs.Single().RelatedObjects.Single().TaskRunLogId, Is.EqualTo(run), "the second upsert's related object met the first's");
        Assert.That(commands.Single().IsSuccessful, Is.True);
        var suffix = dated ? PartitionDay.Suffix(PartitionDay.Of(T0)) : "undated";
        Assert.That(await PartitionOfAsync(host, LedgerModel.InputRequests, "Id", input), Is.EqualTo(LedgerModel.InputRequests + "_" + suffix));
        Assert.That(await PartitionOfAsync(host, LedgerModel.OutputRequests, "Id", output), Is.EqualTo(LedgerModel.OutputRequests + "_" + suffix));
        Assert.That(await PartitionOfAsync(host, LedgerModel.RelatedObjects, "OutputRequestId", output), Is.EqualTo(LedgerModel.RelatedObjects + "_" + suffix),
            "a related object lives in its request's day");
        Assert.That(await PartitionOfAsync(host, LedgerModel.Commands, "Id", command), Is.EqualTo(LedgerModel.Commands + "_" + suffix));
    }

    [Test]
    public async Task Retention_DropsOldDays_KeepsWhatTheBatchedPurgeWouldKeep()
    {
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        await using (var connection = new NpgsqlConnection(host.Ledger.ConnectionString))
        {
            await connection.OpenAsync();
            await LedgerPartitioning.EnsureAheadAsync(connection, old.AddDays(-1), 1, CancellationToken.None);
        }

        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        Guid At(DateTime at) => Guid.CreateVersion7(new DateTimeOffset(at));
        var inSuccess = At(old);
        var inOlderSuccess = At(old.AddDays(-1));
        var inFailure = At(old.AddMinutes(1));
        var inIncomplete = At(old.AddMinutes(2));
        var inEndedLate = At(old.AddMinutes(3));
        var inNew = At(T0.AddDays(-1));
        var inUndated = UndatedIds.New();
        recorder.Enqueue(new InputRequestRecorded(Inbound(inSuccess, old, RequestLogStatus.Info)));
        recorder.Enqueue(new InputRequestRecorded(Inbound(inOlderSuccess, old.AddDays(-1), RequestLogStatus.Info)));
        recorder.Enqueue(new InputRequestRecorded(Inbound(inFailure, old, RequestLogStatus.Error)));
        recorder.Enqueue(new InputRequestRecorded(Inbound(inIncomplete, old, null)));
        recorder.Enqueue(new InputRequestRecorded(Inbound(inEndedLate, old, RequestLogStatus.Info) with { ResponseTimestamp = T0.AddDays(-2) }));
        recorder.Enqueue(new InputRequestRecorded(Inbound(inNew, T0.AddDays(-1), RequestLogStatus.Info)));
        recorder.Enqueue(new InputRequestRecorded(Inbound(inUndated, old, RequestLogStatus.Info)));

        var outSuccess = At(old);
        var outFailure = At(old.AddMinutes(1));
        recorder.Enqueue(new OutputRequestRecorded(Outbound(outSuccess, old, RequestLogStatus.Info, Guid.NewGuid())));
        recorder.Enqueue(new OutputRequestRecorded(Outbound(outFailure, old, RequestLogStatus.Warning, Guid.NewGuid())));

        var commandSuccess = At(old);
        var commandFailure = At(old.AddMinutes(1));
        var commandRunning = At(old.AddMinutes(2));
        recorder.Enqueue(new CommandRecorded(Command(commandSuccess, old, true)));
        recorder.Enqueue(new CommandRecorded(Command(commandFailure, old, false)));
        recorder.Enqueue(new CommandRecorded(Command(commandRunning, old, null)));
        await host.FlushAsync();
        Assert.That(await PartitionOfAsync(host, LedgerModel.InputRequests, "Id", inSuccess), Is.EqualTo(LedgerModel.InputRequests + "_" + PartitionDay.Suffix(PartitionDay.Of(old))));

        var maintenance = host.Services.GetRequiredService<LedgerMaintenance>();
        var inputs = await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.InputRequests, T0.AddDays(-30), T0.AddDays(-90)));
        var outputs = await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.OutputRequests, T0.AddDays(-30), T0.AddDays(-90)));
        var commands = await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Commands, T0.AddDays(-30), T0.AddDays(-90)));

        Assert.That(inputs.Succeeded, Is.EqualTo(3), "two dropped with their days, the undated one by the batched purge");
        Assert.That(inputs.Failed, Is.Zero);
        Assert.That(await host.QueryAsync(db => db.InputRequestLogs.Select(r => r.Id).ToListAsync()), Is.EquivalentTo(new[] { inFailure, inIncomplete, inEndedLate, inNew }));
        Assert.That((outputs.Succeeded, outputs.Failed), Is.EqualTo((1, 0)));
        var leftOutputs = await host.QueryAsync(db => db.OutputRequestLogs.AsNoTracking().Include(r => r.RelatedObjects).ToListAsync());
        Assert.That(leftOutputs.Select(r => r.Id), Is.EqualTo(new[] { outFailure }));
        Assert.That(leftOutputs.Single().RelatedObjects, Has.Count.EqualTo(1), "a kept request keeps its related objects");
        Assert.That(await host.QueryAsync(db => db.OutputRequestRelatedObjects.CountAsync()), Is.EqualTo(1), "the dropped request's related object went with its day");
        Assert.That((commands.Succeeded, commands.Failed), Is.EqualTo((1, 0)));
        Assert.That(await host.QueryAsync(db => db.CommandLogs.Select(c => c.Id).ToListAsync()), Is.EquivalentTo(new[] { commandFailure, commandRunning }));

        var oldDay = PartitionDay.Of(old);
        await using (var connection = new NpgsqlConnection(host.Ledger.ConnectionString))
        {
            await connection.OpenAsync();
            var days = await LedgerPartitioning.LogDaysAsync(connection, kept: false, CancellationToken.None);
            var kept = await LedgerPartitioning.LogDaysAsync(connection, kept: true, CancellationToken.None);
            foreach (var (table, _, _) in LedgerPartitioning.LogTables)
            {
                Assert.That(days[table], Does.Not.Contain(oldDay).And.Not.Contain(oldDay - 1).And.Contain(PartitionDay.Of(T0)), table);
                Assert.That(kept[table], Is.EquivalentTo(new[] { oldDay }), table + ": the kept rows are their day's partition again");
            }
        }

        Assert.That(await PartitionOfAsync(host, LedgerModel.RelatedObjects, "OutputRequestId", outFailure), Is.EqualTo(LedgerModel.RelatedObjects + "_k" + PartitionDay.Suffix(oldDay)[1..]));

        // The kept rows still take the writer's upserts (same id, same key): the incomplete request and the command end.
        recorder.Enqueue(new InputRequestRecorded(Inbound(inIncomplete, old, RequestLogStatus.Info)));
        recorder.Enqueue(new CommandRecorded(Command(commandRunning, old, true)));
        await host.FlushAsync();
        Assert.That(await host.QueryAsync(db => db.InputRequestLogs.Where(r => r.Id == inIncomplete).Select(r => r.Status).SingleAsync()), Is.EqualTo(RequestLogStatus.Info));
        Assert.That(await host.QueryAsync(db => db.CommandLogs.Where(c => c.Id == commandRunning).Select(c => c.IsSuccessful).SingleAsync()), Is.True);

        // Once the batched purge has emptied them, the next pass drops the kept partitions.
        await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Commands, T0, T0));
        await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Commands, T0, T0));
        await using (var connection = new NpgsqlConnection(host.Ledger.ConnectionString))
        {
            await connection.OpenAsync();
            var kept = await LedgerPartitioning.LogDaysAsync(connection, kept: true, CancellationToken.None);
            Assert.That(kept.ContainsKey(LedgerModel.Commands), Is.False, "the emptied kept partition of the commands went");
            Assert.That(kept[LedgerModel.InputRequests], Is.EquivalentTo(new[] { oldDay }), "another kind's kept partitions stay");
        }
    }

    [Test]
    public async Task Retention_ALogDaysDrop_AndAnEmptiedKeptDaysDrop_DoNotWaitForAnotherDaysPartitionsHeldAsAnAutovacuumHoldsThem()
    {
        // Session 41 fixed the tasks' drop (a LOCK TABLE on a partitioned table takes every partition, so an autovacuum of
        // today's, SHARE UPDATE EXCLUSIVE, held a week-old day's drop up to deadlock_timeout, every writer queued behind it).
        // The logs' drop and their emptied kept days' drop took the same lock; the outbound requests lock two parents (the
        // requests and their related objects), so each name needs its own ONLY: today's partitions of both are held here.
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, old, 1, CancellationToken.None);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var success = Guid.CreateVersion7(new DateTimeOffset(old));
        var failure = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(1)));
        var today = Guid.CreateVersion7(new DateTimeOffset(T0));
        recorder.Enqueue(new OutputRequestRecorded(Outbound(success, old, RequestLogStatus.Info, Guid.NewGuid())));
        recorder.Enqueue(new OutputRequestRecorded(Outbound(failure, old, RequestLogStatus.Warning, Guid.NewGuid())));
        recorder.Enqueue(new OutputRequestRecorded(Outbound(today, T0, RequestLogStatus.Info, Guid.NewGuid())));
        await host.FlushAsync();
        var day = PartitionDay.Suffix(PartitionDay.Of(T0));
        string[] held = [$"{LedgerModel.OutputRequests}_{day}", $"{LedgerModel.RelatedObjects}_{day}"];
        var maintenance = host.Services.GetRequiredService<LedgerMaintenance>();

        // The old day's drop (the failure kept in its _k partitions), then the batched purge of the failure, then the drop of
        // the emptied _k partitions: each with today's partitions held.
        var drop = await PartitionHold.RunAsync(host.Ledger.ConnectionString, connection, held,
            () => maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.OutputRequests, T0.AddDays(-30), T0.AddDays(-90))));
        var kept = await LedgerPartitioning.LogDaysAsync(connection, kept: true, CancellationToken.None);
        Assert.That(kept[LedgerModel.OutputRequests], Is.EquivalentTo(new[] { PartitionDay.Of(old) }), "the failure kept in the day's _k partition");
        await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.OutputRequests, T0, T0));
        var emptied = await PartitionHold.RunAsync(host.Ledger.ConnectionString, connection, held,
            () => maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.OutputRequests, T0, T0)));

        Assert.That(drop.Waited, Is.False, "the day's drop waited for today's partitions");
        Assert.That(emptied.Waited, Is.False, "the emptied kept day's drop waited for today's partitions");
        Assert.That((drop.Result.Succeeded, drop.Result.Failed), Is.EqualTo((1, 0)));
        Assert.That(await host.QueryAsync(db => db.OutputRequestLogs.Select(r => r.Id).ToListAsync()), Is.EqualTo(new[] { today }));
        kept = await LedgerPartitioning.LogDaysAsync(connection, kept: true, CancellationToken.None);
        Assert.That(kept.ContainsKey(LedgerModel.OutputRequests) || kept.ContainsKey(LedgerModel.RelatedObjects), Is.False, "the emptied _k partitions went");
        Assert.That((await LedgerPartitioning.LogDaysAsync(connection, kept: false, CancellationToken.None))[LedgerModel.OutputRequests],
            Does.Not.Contain(PartitionDay.Of(old)).And.Contain(PartitionDay.Of(T0)));
    }

    [Test]
    public async Task PurgeWithBackup_ThenRestore_PutsRequestsAndCommandsBackInTheirPartitions()
    {
        var host = await StartAsync(partitioned: true);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var ids = new[] { Guid.CreateVersion7(new DateTimeOffset(T0)), Guid.CreateVersion7(new DateTimeOffset(T0.AddDays(1))), UndatedIds.New() };
        foreach (var id in ids)
        {
            recorder.Enqueue(new InputRequestRecorded(Inbound(id, T0, RequestLogStatus.Info)));
            recorder.Enqueue(new OutputRequestRecorded(Outbound(id, T0, RequestLogStatus.Error, Guid.NewGuid())));
            recorder.Enqueue(new CommandRecorded(Command(id, T0, false)));
        }

        await host.FlushAsync();
        var before = await SnapshotAsync(host);
        var backups = Path.Combine(Path.GetTempPath(), "joblog-log-partition-restore-" + Guid.NewGuid().ToString("N"));
        try
        {
            var maintenance = host.Services.GetRequiredService<LedgerMaintenance>();
            foreach (var kind in new[] { LedgerKind.InputRequests, LedgerKind.OutputRequests, LedgerKind.Commands })
            {
                var purge = await maintenance.PurgeAsync(new LedgerPurgeRequest(kind, T0.AddDays(2), T0.AddDays(2), BackupDirectory: backups));
                Assert.That(purge.Deleted, Is.EqualTo(3), kind.ToString());
                var restored = await maintenance.RestoreAsync(purge.BackupFile!);
                Assert.That(restored.Restored, Is.EqualTo(3), kind.ToString());
            }

            Assert.That(await SnapshotAsync(host), Is.EqualTo(before));
            var day = PartitionDay.Suffix(PartitionDay.Of(T0.AddDays(1)));
            Assert.That(await PartitionOfAsync(host, LedgerModel.InputRequests, "Id", ids[1]), Is.EqualTo(LedgerModel.InputRequests + "_" + day));
            Assert.That(await PartitionOfAsync(host, LedgerModel.RelatedObjects, "OutputRequestId", ids[1]), Is.EqualTo(LedgerModel.RelatedObjects + "_" + day));
            Assert.That(await PartitionOfAsync(host, LedgerModel.Commands, "Id", ids[2]), Is.EqualTo(LedgerModel.Commands + "_undated"));
        }
        finally
        {
            if (Directory.Exists(backups))
            {
                Directory.Delete(backups, recursive: true);
            }
        }
    }

    [Test]
    public async Task Conversion_OfUnpartitionedLogs_KeepsEveryRowAndIndex_AndTheWriterGoesOn()
    {
        var host = await StartAsync(partitioned: false);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var ids = new List<Guid>();
        for (var i = 0; i < 30; i++)
        {
            var at = T0.AddHours(-i * 7);
            var id = i % 3 == 2 ? Guid.NewGuid() : Guid.CreateVersion7(new DateTimeOffset(at));
            ids.Add(id);
            recorder.Enqueue(new InputRequestRecorded(Inbound(id, at, i % 4 == 0 ? null : RequestLogStatus.Info)));
            recorder.Enqueue(new OutputRequestRecorded(Outbound(id, at, RequestLogStatus.Warning, Guid.NewGuid()) with { InputRequestId = id }));
            recorder.Enqueue(new CommandRecorded(Command(id, at, i % 5 == 0 ? null : true)));
        }

        await host.FlushAsync();
        var before = await SnapshotAsync(host);
        var indexesBefore = await IndexesAsync(host);
        var database = LedgerDatabase.For(LedgerProvider.PostgreSql);
        await using (var db = host.Services.GetRequiredService<JobLogContextFactory>().Create())
        {
            Assert.That(await database.IsPartitionedAsync(db, LedgerKind.OutputRequests, CancellationToken.None), Is.False);
            await database.ApplyPartitioningAsync(db, new PartitioningOptions { Enabled = true }, T0, CancellationToken.None);
            foreach (var kind in Enum.GetValues<LedgerKind>())
            {
                Assert.That(await database.IsPartitionedAsync(db, kind, CancellationToken.None), Is.True, kind.ToString());
            }
        }

        Assert.That(await SnapshotAsync(host), Is.EqualTo(before));
        Assert.That(await IndexesAsync(host), Is.EquivalentTo(indexesBefore), "every index of the old tables, on the new ones");
        Assert.That(await PartitionOfAsync(host, LedgerModel.RelatedObjects, "OutputRequestId", ids[0]), Is.EqualTo(LedgerModel.RelatedObjects + "_" + PartitionDay.Suffix(PartitionDay.Of(T0))));

        // The running writer's next batch fails on the new tables, and it reopens on the keyed statements.
        var late = Guid.CreateVersion7(new DateTimeOffset(T0.AddMinutes(1)));
        recorder.Enqueue(new InputRequestRecorded(Inbound(late, T0, null)));
        recorder.Enqueue(new InputRequestRecorded(Inbound(late, T0, RequestLogStatus.Info)));
        recorder.Enqueue(new OutputRequestRecorded(Outbound(late, T0, RequestLogStatus.Info, Guid.NewGuid())));
        recorder.Enqueue(new CommandRecorded(Command(late, T0, true)));
        await host.FlushAsync();
        Assert.That(await host.QueryAsync(db => db.InputRequestLogs.Where(r => r.Id == late).Select(r => r.Status).SingleAsync()), Is.EqualTo(RequestLogStatus.Info));
        Assert.That(await host.QueryAsync(db => db.OutputRequestRelatedObjects.CountAsync(o => o.OutputRequestId == late)), Is.EqualTo(1));
        Assert.That(await host.QueryAsync(db => db.CommandLogs.CountAsync(c => c.Id == late)), Is.EqualTo(1));
    }

    [Test]
    public async Task Retention_ALogDaysCountsAndKeptRows_AreReadBeforeItsLock_WhichOnlySwapsThePartitions()
    {
        // Session 43: the day's partition was read under the lock (0.34-0.49 s cold at 10 M, twice with kept rows). The kept
        // rows are built into tables of their own, with their indexes, before it; the lock finds nothing noted and attaches them.
        var (host, connection, old, (success, failure, incomplete)) = await OldOutboundDayAsync();
        await using var owned = connection;
        var day = PartitionDay.Of(old);
        long builtRequests = -1, builtRelated = -1;

        var drop = await LedgerPartitioning.DropExpiredLogsAsync(connection, LedgerKind.OutputRequests, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None, buildFrom: 0,
            built: async d =>
            {
                Assert.That(d, Is.EqualTo(day));
                builtRequests = await CountBuiltAsync(host, LedgerModel.OutputRequests, d);
                builtRelated = await CountBuiltAsync(host, LedgerModel.RelatedObjects, d);
            });

        Assert.That((builtRequests, builtRelated), Is.EqualTo((2L, 2L)), "the failure and the unfinished request, with their related objects, built before the lock");
        Assert.That((drop.Days, drop.Succeeded, drop.Failed, drop.Kept), Is.EqualTo((1, 1, 0, 2)));
        Assert.That(drop.Rebuilt, Is.Zero, "the lock read nothing of the day");
        var left = await host.QueryAsync(db => db.OutputRequestLogs.AsNoTracking().Include(r => r.RelatedObjects).ToListAsync());
        Assert.That(left.Select(r => r.Id), Is.EquivalentTo(new[] { failure, incomplete }));
        Assert.That(left.Select(r => r.RelatedObjects.Count), Is.All.EqualTo(1));
        Assert.That(await PartitionOfAsync(host, LedgerModel.OutputRequests, "Id", failure), Is.EqualTo(LedgerModel.OutputRequests + "_k" + PartitionDay.Suffix(day)[1..]));
        Assert.That(await PartitionOfAsync(host, LedgerModel.RelatedObjects, "OutputRequestId", incomplete), Is.EqualTo(LedgerModel.RelatedObjects + "_k" + PartitionDay.Suffix(day)[1..]));
        Assert.That(await PartitionOfAsync(host, LedgerModel.OutputRequests, "Id", success), Is.Null);
        foreach (var table in new[] { LedgerModel.OutputRequests, LedgerModel.RelatedObjects })
        {
            Assert.That(await ScalarAsync<long>(connection, $"SELECT count(*) FROM pg_index WHERE indrelid = '\"{table}_k{PartitionDay.Suffix(day)[1..]}\"'::regclass"),
                Is.EqualTo(await ScalarAsync<long>(connection, $"SELECT count(*) FROM pg_index WHERE indrelid = '\"{table}\"'::regclass")), table + ": the parent's indexes");
            Assert.That(await ScalarAsync<long>(connection, $"SELECT count(*) FROM pg_constraint WHERE conrelid = '\"{table}_k{PartitionDay.Suffix(day)[1..]}\"'::regclass AND conname = 'joblog_built_day'"),
                Is.Zero, table + ": the build's check of the day dropped");
        }

        Assert.That(await BuildTablesAsync(connection), Is.Empty, "the build's tables attached or dropped");

        // The kept rows still take the writer's upserts: the unfinished request ends.
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        recorder.Enqueue(new OutputRequestRecorded(Outbound(incomplete, old, RequestLogStatus.Info, Guid.NewGuid())));
        await host.FlushAsync();
        Assert.That(await host.QueryAsync(db => db.OutputRequestLogs.Where(r => r.Id == incomplete).Select(r => r.Status).SingleAsync()), Is.EqualTo(RequestLogStatus.Info));
    }

    [Test]
    public async Task Retention_RequestsWrittenIntoTheDayDuringItsBuild_AreDroppedOrKeptAsTheLockSeesThem()
    {
        // Between the build and the lock the unfinished request ends (now the drop's) and a failure of the day arrives (one to
        // keep): both noted, so the lock reads the day itself, and counts and keeps what is there then.
        var (host, connection, old, (success, failure, incomplete)) = await OldOutboundDayAsync();
        await using var owned = connection;
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var late = Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(5)));

        var drop = await LedgerPartitioning.DropExpiredLogsAsync(connection, LedgerKind.OutputRequests, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None, buildFrom: 0,
            built: async d =>
            {
                recorder.Enqueue(new OutputRequestRecorded(Outbound(incomplete, old, RequestLogStatus.Info, Guid.NewGuid())));
                recorder.Enqueue(new OutputRequestRecorded(Outbound(late, old.AddMinutes(5), RequestLogStatus.Error, Guid.NewGuid())));
                await host.FlushAsync();
            });

        Assert.That((drop.Days, drop.Succeeded, drop.Failed, drop.Kept, drop.Rebuilt), Is.EqualTo((1, 2, 0, 2, 1)), "the day read under the lock");
        var left = await host.QueryAsync(db => db.OutputRequestLogs.AsNoTracking().Include(r => r.RelatedObjects).ToListAsync());
        Assert.That(left.Select(r => r.Id), Is.EquivalentTo(new[] { failure, late }));
        Assert.That(left.Select(r => r.RelatedObjects.Count), Is.All.EqualTo(1));
        Assert.That(await host.QueryAsync(db => db.OutputRequestRelatedObjects.CountAsync()), Is.EqualTo(2), "the dropped requests' related objects went with the day");
        Assert.That(await BuildTablesAsync(connection), Is.Empty, "the unused build dropped");
        Assert.That(success, Is.Not.EqualTo(Guid.Empty));
    }

    [Test]
    public async Task Retention_ALogDropKilledBetweenItsBuildAndItsLock_TheNextDropDropsTheBuildsTables()
    {
        // A drop's server session ended after its build (its process killed): its tables name that session, so the next drop
        // finds it gone, drops them, and drops the day keeping what it keeps.
        var (host, connection, old, (_, failure, incomplete)) = await OldOutboundDayAsync();
        await using var owned = connection;
        await using (var doomed = new NpgsqlConnection(host.Ledger.ConnectionString))
        {
            await doomed.OpenAsync();
            var pid = await ScalarAsync<int>(doomed, "SELECT pg_backend_pid()");
            Assert.That(async () => await LedgerPartitioning.DropExpiredLogsAsync(doomed, LedgerKind.OutputRequests, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None, buildFrom: 0,
                built: async d =>
                {
                    Assert.That(await ScalarAsync<bool>(connection, $"SELECT pg_terminate_backend({pid})"), Is.True);
                    while (await ScalarAsync<bool>(connection, $"SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = {pid})"))
                    {
                        await System.Threading.Tasks.Task.Delay(20);
                    }
                }), Throws.InstanceOf<Exception>(), "the drop whose session was ended");
        }

        Assert.That(await BuildTablesAsync(connection), Has.Count.EqualTo(3), "the killed drop's notes and two built tables left behind");

        await using var next = new NpgsqlConnection(host.Ledger.ConnectionString);
        await next.OpenAsync();
        var drop = await LedgerPartitioning.DropExpiredLogsAsync(next, LedgerKind.OutputRequests, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None, buildFrom: 0);

        Assert.That((drop.Days, drop.Succeeded, drop.Kept), Is.EqualTo((1, 1, 2)));
        Assert.That(await host.QueryAsync(db => db.OutputRequestLogs.Select(r => r.Id).ToListAsync()), Is.EquivalentTo(new[] { failure, incomplete }));
        Assert.That(await BuildTablesAsync(next), Is.Empty, "the killed drop's build dropped by the next drop, not an hour later");
    }

    /// <summary>An old day of outbound requests (each with a related object): a success, a failure and an unfinished one.</summary>
    private async Task<(LedgerHost Host, NpgsqlConnection Connection, DateTime Old, (Guid Success, Guid Failure, Guid Incomplete) Ids)> OldOutboundDayAsync()
    {
        var host = await StartAsync(partitioned: true);
        var old = T0.AddDays(-40);
        var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await LedgerPartitioning.EnsureAheadAsync(connection, old, 0, CancellationToken.None);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var ids = (Guid.CreateVersion7(new DateTimeOffset(old)), Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(1))), Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(2))));
        recorder.Enqueue(new OutputRequestRecorded(Outbound(ids.Item1, old, RequestLogStatus.Info, Guid.NewGuid())));
        recorder.Enqueue(new OutputRequestRecorded(Outbound(ids.Item2, old.AddMinutes(1), RequestLogStatus.Warning, Guid.NewGuid())));
        recorder.Enqueue(new OutputRequestRecorded(Outbound(ids.Item3, old.AddMinutes(2), null, Guid.NewGuid())));
        await host.FlushAsync();
        Assert.That(await PartitionOfAsync(host, LedgerModel.OutputRequests, "Id", ids.Item1), Is.EqualTo(LedgerModel.OutputRequests + "_" + PartitionDay.Suffix(PartitionDay.Of(old))));
        return (host, connection, old, ids);
    }

    private static async Task<long> CountBuiltAsync(LedgerHost host, string table, int day)
    {
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        var name = await ScalarAsync<string>(connection, $"SELECT relname::text FROM pg_class WHERE relkind = 'r' AND relname ~ '^{table}_b{PartitionDay.Suffix(day)[1..]}_'");
        return await ScalarAsync<long>(connection, $"SELECT count(*) FROM \"{name}\"");
    }

    private static async Task<List<string>> BuildTablesAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand("SELECT relname::text FROM pg_class WHERE relkind = 'r' AND relname ~ '_[bv][0-9]{8}_' ORDER BY 1", connection);
        var list = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            list.Add(reader.GetString(0));
        }

        return list;
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private async Task<LedgerHost> StartAsync(bool partitioned)
    {
        _host = await LedgerHost.StartAsync(await TestLedger.PostgresAsync(), o => o.Partitioning.Enabled = partitioned,
            services: s => s.AddSingleton<TimeProvider>(_clock));
        return _host;
    }

    private static InputRequestPayload Inbound(Guid id, DateTime at, RequestLogStatus? status) => new()
    {
        Id = id, Host = "shop.example", Method = "GET", Path = "/api/cart/" + id.ToString("N")[..6], Slug = "/api/cart", RequestTimestamp = at,
        ResponseTimestamp = status is null ? null : at.AddMilliseconds(40), ResponseCode = status is null ? null : 200,
        Status = status ?? RequestLogStatus.Incomplete, UserId = "u1", Ip = "10.0.0.1",
    };

    private static OutputRequestPayload Outbound(Guid id, DateTime at, RequestLogStatus? status, Guid run) => new()
    {
        Id = id, Host = "payments.example", Method = "POST", Path = "/charge", RequestTimestamp = at,
        ResponseTimestamp = status is null ? null : at.AddMilliseconds(90), ResponseCode = status is null ? null : 502,
        Status = status ?? RequestLogStatus.Incomplete,
        RelatedObjects = [new RelatedObjectPayload { Id = RelatedId(id), TaskRunLogId = run }],
    };

    /// <summary>The id of a request's related object: the same at its start and its end, as the recorder sends it.</summary>
    private static Guid RelatedId(Guid request)
    {
        var bytes = request.ToByteArray(bigEndian: true);
        bytes[15] ^= 0xFF;
        return new Guid(bytes, bigEndian: true);
    }

    private static CommandPayload Command(Guid id, DateTime at, bool? successful) => new()
    {
        Id = id, Name = "import", Input = "--all", Start = at, Stop = successful is null ? null : at.AddSeconds(5), IsSuccessful = successful,
        ExitCode = successful is null ? null : successful.Value ? 0 : 1, Host = "h1",
    };

    private static async Task AssertDaysAsync(LedgerHost host, int from, int to, string because)
    {
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        var days = await LedgerPartitioning.LogDaysAsync(connection, kept: false, CancellationToken.None);
        foreach (var (table, _, _) in LedgerPartitioning.LogTables)
        {
            Assert.That(days[table].Order(), Is.EqualTo(Enumerable.Range(from, to - from + 1)), table + ", " + because);
        }
    }

    private static async Task<string?> PartitionOfAsync(LedgerHost host, string table, string column, Guid id)
    {
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"SELECT DISTINCT tableoid::regclass::text FROM \"{table}\" WHERE \"{column}\" = $1", connection);
        command.Parameters.Add(new NpgsqlParameter { Value = id });
        return ((string?)await command.ExecuteScalarAsync())?.Trim('"');
    }

    private static async Task<List<string>> IndexesAsync(LedgerHost host)
    {
        await using var connection = new NpgsqlConnection(host.Ledger.ConnectionString);
        await connection.OpenAsync();
        var tables = string.Join(", ", LedgerPartitioning.LogTables.Select(t => $"'\"{t.Table}\"'::regclass"));
        await using var command = new NpgsqlCommand(
            "SELECT c.relname::text || ' ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid " +
            $"WHERE i.indrelid IN ({tables}) AND NOT i.indisprimary", connection);
        var list = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            list.Add(reader.GetString(0).Replace(" ONLY ", " ", StringComparison.Ordinal));
        }

        return list;
    }

    private static async Task<List<string>> SnapshotAsync(LedgerHost host)
    {
        var inputs = await host.QueryAsync(db => db.InputRequestLogs.AsNoTracking().OrderBy(r => r.Id).ToListAsync());
        var outputs = await host.QueryAsync(db => db.OutputRequestLogs.AsNoTracking().Include(r => r.RelatedObjects).OrderBy(r => r.Id).ToListAsync());
        var commands = await host.QueryAsync(db => db.CommandLogs.AsNoTracking().OrderBy(c => c.Id).ToListAsync());
        return
        [
            .. inputs.Select(r => JsonSerializer.Serialize(r, LedgerBackup.JsonOptions)),
            .. outputs.Select(r => JsonSerializer.Serialize(r, LedgerBackup.JsonOptions)),
            .. commands.Select(c => JsonSerializer.Serialize(c, LedgerBackup.JsonOptions)),
        ];
    }
}
