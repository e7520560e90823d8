using System.Data.Common;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>
/// In Journaled mode the writer holds a dispatch back while more records are queued, so that it meets its run and the task
/// row is written once (<see cref="HeldDispatches"/>). The writer is driven batch by batch here (batches of two records),
/// on a host that is not started, so each batch holds exactly the records the test says.
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
[Platform("Linux")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class HeldDispatchTests(LedgerProvider provider)
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);
    private string _journal = null!;
    private TestLedger _ledger = null!;

    [SetUp]
    public async Task SetUp()
    {
        _journal = Directory.CreateTempSubdirectory("joblog-held-").FullName;
        _ledger = await Ledgers.CreateAsync(provider);
    }

    [TearDown]
    public async Task TearDown()
    {
        await _ledger.DisposeAsync();
        Directory.Delete(_journal, recursive: true);
    }

    [Test]
    public async Task ADispatchAndItsRun_InTwoBatches_WriteTheTaskRowOnce()
    {
        var host = await StartAsync();
        await CountTaskUpdatesAsync(host);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var writer = host.Services.GetRequiredService<LedgerWriter>();
        var (a, b) = (Guid.NewGuid(), Guid.NewGuid());

        // Batches: [dispatch A, dispatch B], [run A], [run B].
        await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(a), Dispatch(b), Start(a), Finish(a), Start(b), Finish(b));
        await DrainAsync(writer, recorder);

        var tasks = await host.QueryAsync(db => db.TaskLogs.AsNoTracking().Where(t => t.Id == a || t.Id == b).ToListAsync());
        Assert.That(tasks.Select(t => t.State), Is.All.EqualTo(TaskState.Succeeded));
        Assert.That(tasks.Select(t => t.Host), Is.All.EqualTo("publisher"), "the producer's fields");
        Assert.That(tasks.Select(t => t.Stop), Is.All.EqualTo(T0.AddSeconds(2)));
        Assert.That(await TaskUpdatesAsync(host), Is.Zero, "each task row inserted with its derived state, never updated");
        await AssertRollupsEqualRowsAsync(host);
        await StopAsync(host);
    }

    [Test]
    public async Task AHeldDispatch_WhoseRunNeverComes_IsWrittenOnceItsHoldIsOver()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(T0));
        var host = await StartAsync(clock: clock);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var writer = host.Services.GetRequiredService<LedgerWriter>();
        var (a, b) = (Guid.NewGuid(), Guid.NewGuid());

        await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(a), Dispatch(b), Start(b), Finish(b));
        await writer.WriteNextBatchAsync(CancellationToken.None);
        Assert.That(writer.Held, Is.EqualTo(2), "both held");
        await writer.WriteNextBatchAsync(CancellationToken.None);
        Assert.That(writer.Held, Is.EqualTo(1), "B went with its run, A waits");
        Assert.That(await host.QueryAsync(db => db.TaskLogs.AnyAsync(t => t.Id == a)), Is.False);

        clock.Advance(LedgerWriter.MaxHold);
        await writer.WriteNextBatchAsync(CancellationToken.None);

        Assert.That(writer.Held, Is.Zero);
        Assert.That(recorder.Backlog, Is.Zero, "everything committed");
        var waiting = await host.QueryAsync(db => db.TaskLogs.AsNoTracking().SingleAsync(t => t.Id == a));
        Assert.That(waiting.State, Is.EqualTo(TaskState.Waiting));
        Assert.That(waiting.Host, Is.EqualTo("publisher"));
        Assert.That((await host.QueryAsync(db => db.TaskLogs.AsNoTracking().SingleAsync(t => t.Id == b))).State, Is.EqualTo(TaskState.Succeeded));
        await AssertRollupsEqualRowsAsync(host);
        await StopAsync(host);
    }

    [Test]
    public async Task AFlush_WritesTheHeldDispatches()
    {
        var host = await StartAsync();
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var writer = host.Services.GetRequiredService<LedgerWriter>();
        var (a, b, c) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());

        await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(a), Dispatch(b), Dispatch(c));
        await writer.WriteNextBatchAsync(CancellationToken.None);
        Assert.That(writer.Held, Is.EqualTo(2), "the test's premise");

        var flush = recorder.FlushAsync(TimeSpan.FromSeconds(120));
        await writer.WriteNextBatchAsync(CancellationToken.None);

        Assert.That(await flush, Is.True);
        Assert.That(writer.Held, Is.Zero);
        var ids = await host.QueryAsync(db => db.TaskLogs.AsNoTracking().Select(t => t.Id).ToListAsync());
        Assert.That(ids, Is.EquivalentTo(new[] { a, b, c }));
        await StopAsync(host);
    }

    [Test]
    public async Task AFlush_AfterLaterRecordsWereCommittedPastAHeldDispatch_Completes()
    {
        // The Courier tests' hang: the records committed after a held dispatch count as committed only once it is; when it
        // is then written alone, the watermark must reach the highest record written so far, not only its own.
        var host = await StartAsync();
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var writer = host.Services.GetRequiredService<LedgerWriter>();
        var (a, b) = (Guid.NewGuid(), Guid.NewGuid());

        await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(a));
        await writer.WriteNextBatchAsync(CancellationToken.None);
        Assert.That(writer.Held, Is.EqualTo(1), "the test's premise");
        var last = await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(b), Start(b)) + 1;
        await writer.WriteNextBatchAsync(CancellationToken.None);
        Assert.That(recorder.CommittedUpTo, Is.LessThan(last), "b's records wait for a's");

        var flush = recorder.FlushAsync(TimeSpan.FromSeconds(120));
        await writer.WriteNextBatchAsync(CancellationToken.None);

        Assert.That(await flush, Is.True);
        Assert.That(recorder.CommittedUpTo, Is.EqualTo(last));
        await StopAsync(host);
    }

    [Test]
    public async Task WithTheWriterRunning_ADispatchWhoseRunNeverComes_IsWrittenWithoutAFlush()
    {
        var host = await StartAsync(start: true);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var a = Guid.NewGuid();

        await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(a));

        // The idle writer wakes when the hold is over (no flush, no further record).
        await LedgerHost.EventuallyAsync(() => host.QueryAsync(db => db.TaskLogs.AnyAsync(t => t.Id == a)), because: "the dispatch written");
        await StopAsync(host);
    }

    [Test]
    public async Task AQuietWriter_HoldsNoDispatch_ItIsInTheLedgerAtOnce()
    {
        // Holding pays only under load; a dispatch of a quiet application (batches under a quarter of MaxBatchSize)
        // is written with its batch, not an hour later.
        var host = await StartAsync(start: true, maxBatchSize: 2000, hold: TimeSpan.FromHours(1));
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var writer = host.Services.GetRequiredService<LedgerWriter>();
        var a = Guid.NewGuid();

        await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(a));

        await LedgerHost.EventuallyAsync(() => host.QueryAsync(db => db.TaskLogs.AnyAsync(t => t.Id == a)), because: "the dispatch written without a flush");
        Assert.That(writer.Held, Is.Zero);
        await StopAsync(host);
    }

    // Session 28 (faults), the ledger made again empty: the stop's drain gave up at its first failed attempt once
    // everything was on disk, also when the database answered (its next attempt migrates an empty ledger), and the records
    // waited in the journal for a next process that a replica scaled down never starts.
    [Test]
    public async Task HeldDispatches_AreWrittenOnShutdown([Values] bool ledgerMadeAgainEmptyBeforeTheStop)
    {
        var host = await StartAsync();
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var writer = host.Services.GetRequiredService<LedgerWriter>();
        var (a, b, c) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());

        await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(a), Dispatch(b), Dispatch(c));
        await writer.WriteNextBatchAsync(CancellationToken.None);
        Assert.That(writer.Held, Is.EqualTo(2), "the test's premise");
        if (ledgerMadeAgainEmptyBeforeTheStop)
        {
            await EmptyTheLedgerAsync(host);
        }

        await writer.StopAsync(CancellationToken.None);

        Assert.That(writer.Held, Is.Zero);
        Assert.That(recorder.Backlog, Is.Zero, "nothing left in the journal for a next process");
        var ids = await host.QueryAsync(db => db.TaskLogs.AsNoTracking().Select(t => t.Id).ToListAsync());
        Assert.That(ids, Is.EquivalentTo(new[] { a, b, c }));
        await StopAsync(host);
    }

    [Test]
    public async Task AHeldDispatch_StaysInTheJournalPastLaterCommits_AndIsReplayedAfterACrash()
    {
        var host = await StartAsync();
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var writer = host.Services.GetRequiredService<LedgerWriter>();
        var (a, b, c) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());

        // Batches: [dispatch A, dispatch B] (both held), [run B] (commits B, A still held), then the crash.
        var first = await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(a), Dispatch(b), Start(b), Finish(b), Dispatch(c));
        await writer.WriteNextBatchAsync(CancellationToken.None);
        await writer.WriteNextBatchAsync(CancellationToken.None);
        Assert.That(writer.Held, Is.EqualTo(1), "the test's premise: A is held, B was committed after it");
        Assert.That(recorder.CommittedUpTo, Is.LessThan(first), "nothing from the held dispatch on counts as committed");

        // A crash: the process goes without its writer's drain; what its journal holds is left for the next one.
        host.Host.Dispose();
        var next = await StartAsync(start: true);
        await LedgerHost.EventuallyAsync(
            async () => await next.QueryAsync(db => db.TaskLogs.CountAsync()) == 3, because: "the journal replayed, the held dispatch with it");
        var tasks = await next.QueryAsync(db => db.TaskLogs.AsNoTracking().ToListAsync());
        Assert.That(tasks.Single(t => t.Id == a).State, Is.EqualTo(TaskState.Waiting));
        Assert.That(tasks.Single(t => t.Id == b).State, Is.EqualTo(TaskState.Succeeded));
        Assert.That(tasks.Single(t => t.Id == c).State, Is.EqualTo(TaskState.Waiting));
        await AssertRollupsEqualRowsAsync(next);
        await StopAsync(next);
    }

    private async Task<LedgerHost> StartAsync(bool start = false, TimeProvider? clock = null, int maxBatchSize = 2, TimeSpan? hold = null)
    {
        var host = await LedgerHost.StartAsync(_ledger, o =>
        {
            o.Durability = LedgerDurability.Journaled;
            o.SpoolDirectory = _journal;
            o.MaxBatchSize = maxBatchSize;
            o.DispatchHold = hold ?? LedgerWriter.MaxHold;
        }, services: s =>
        {
            if (clock is not null)
            {
                s.AddSingleton(clock);
            }
        }, start: start);
        if (!start)
        {
            await host.Services.GetRequiredService<LedgerSchema>().EnsureReadyAsync(CancellationToken.None);
        }

        return host;
    }

    /// <summary>Drops every table of the ledger, JobLog's migration history with them: a database dropped and made again empty.</summary>
    private async Task EmptyTheLedgerAsync(LedgerHost host)
    {
        await using var connection = await host.OpenJobLogSessionAsync();
        await using var command = connection.CreateCommand();
        if (provider == LedgerProvider.PostgreSql)
        {
            command.CommandText = "DROP SCHEMA public CASCADE; CREATE SCHEMA public";
            await command.ExecuteNonQueryAsync();
            return;
        }

        // IF EXISTS: a full-text index's shadow tables go with it.
        command.CommandText = "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'table') AND name NOT LIKE 'sqlite%' ORDER BY type DESC";
        var objects = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                objects.Add($"DROP {reader.GetString(0).ToUpperInvariant()} IF EXISTS \"{reader.GetString(1)}\"");
            }
        }

        command.CommandText = "PRAGMA foreign_keys = OFF; " + string.Join("; ", objects);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Stops and disposes the host, not the ledger (the fixture's).</summary>
    private static async Task StopAsync(LedgerHost host)
    {
        await host.Host.StopAsync();
        host.Host.Dispose();
    }

    private static async Task DrainAsync(LedgerWriter writer, LedgerRecorder recorder)
    {
        for (var i = 0; i < 20 && (recorder.Backlog > 0 || writer.Held > 0); i++)
        {
            await writer.WriteNextBatchAsync(CancellationToken.None);
        }

        Assert.That(recorder.Backlog, Is.Zero, "drained");
    }

    private static TaskDispatched Dispatch(Guid id) => new(new TaskPayload
    {
        Id = id, Name = "ChargeCard", QueueName = "charge-card", Input = "Amount=10", TaskKwargs = "{\"amount\":10}", DispatchedAt = T0,
        Host = "publisher", Release = "1.2.3",
    });

    private static RunStarted Start(Guid taskId)
    {
        var run = new RunPayload
        {
            Id = RunIdOf(taskId), TaskId = taskId, Name = "ChargeCard", QueueName = "charge-card", ConsumerType = "ChargeCardConsumer",
            Input = "Amount=10", Start = T0.AddSeconds(1), Host = "consumer",
        };
        return new RunStarted(run, new TaskPayload { Id = taskId, Name = "ChargeCard", QueueName = "charge-card", DispatchedAt = T0 }, false);
    }

    private static RunFinished Finish(Guid taskId) =>
        new(RunIdOf(taskId), taskId, TaskRunState.Succeeded, T0.AddSeconds(2), null, null, null);

    private static Guid RunIdOf(Guid taskId)
    {
        var bytes = taskId.ToByteArray();
        bytes[0] ^= 0xFF;
        return new Guid(bytes);
    }

    /// <summary>Counts every UPDATE of a task row into a table of the test's own (the writer's bulk path falls back to triggers).</summary>
    private static async Task CountTaskUpdatesAsync(LedgerHost host) =>
        await ExecuteAsync(host, host.Ledger.Provider == LedgerProvider.Sqlite
            ? """
              CREATE TABLE "TestTaskUpdates" ("Id" TEXT NOT NULL);
              CREATE TRIGGER "TestCountTaskUpdates" AFTER UPDATE ON "JobLogTasks" BEGIN INSERT INTO "TestTaskUpdates" VALUES (NEW."Id"); END;
              """
            : """
              CREATE TABLE "TestTaskUpdates" ("Id" uuid NOT NULL);
              CREATE FUNCTION test_count_task_updates() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN INSERT INTO "TestTaskUpdates" VALUES (NEW."Id"); RETURN NULL; END $$;
              CREATE TRIGGER "TestCountTaskUpdates" AFTER UPDATE ON "JobLogTasks" FOR EACH ROW EXECUTE FUNCTION test_count_task_updates();
              """);

    private static async Task<long> TaskUpdatesAsync(LedgerHost host) =>
        await host.QueryAsync(async db =>
        {
            var connection = db.Database.GetDbConnection();
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT COUNT(*) FROM \"TestTaskUpdates\"";
            return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
        });

    private static Task ExecuteAsync(LedgerHost host, string sql) =>
        host.QueryAsync(async db =>
        {
            DbConnection connection = db.Database.GetDbConnection();
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = sql;
            return await command.ExecuteNonQueryAsync();
        });

    private static async Task AssertRollupsEqualRowsAsync(LedgerHost host)
    {
        var tasks = await host.QueryAsync(db => db.TaskLogs.AsNoTracking().ToListAsync());
        var counts = await host.QueryAsync(db => db.Set<TaskStateCount>().AsNoTracking().ToListAsync());
        var minutes = await host.QueryAsync(db => db.Set<TaskMinuteCount>().AsNoTracking().ToListAsync());
        var expectedCounts = tasks.GroupBy(t => (t.State, t.Name, t.IsInternal)).Select(g => (g.Key.State, g.Key.Name, g.Key.IsInternal, (long)g.Count()));
        Assert.That(counts.Where(c => c.Count != 0).Select(c => (c.State, c.Name, c.IsInternal, c.Count)), Is.EquivalentTo(expectedCounts), "per state and name");
        var expectedMinutes = tasks.Where(t => t.Stop is not null)
            .GroupBy(t => (new DateTime(t.Stop!.Value.Ticks - (t.Stop.Value.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc), t.State, t.Name, t.IsInternal))
            .Select(g => (g.Key.Item1, g.Key.State, g.Key.Name, g.Key.IsInternal, (long)g.Count()));
        Assert.That(minutes.Where(m => m.Count != 0).Select(m => (m.Minute, m.State, m.Name, m.IsInternal, m.Count)), Is.EquivalentTo(expectedMinutes), "per minute");
    }
}
