using System.IO.Compression;
using System.Text;
using System.Text.Json;
using JobLog.Maintenance;
using JobLog.Recording;
using JobLog.Retention;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Retention;

/// <summary>
/// A run recorded while a purge works on its task (a late redelivery of a finished task: the writer commits it between the
/// batch's read and its delete, or waits on the purge's lock) is either in the backup file or still in the ledger, never
/// deleted without a copy; a task a late run made ACTIVE again is not deleted; and no run is left without its task. On
/// SQLite a purge batch is one <c>BEGIN IMMEDIATE</c> transaction: the writer waits for it and commits after it.
/// </summary>
[TestFixture(LedgerProvider.PostgreSql, false)]
[TestFixture(LedgerProvider.PostgreSql, true)]
[TestFixture(LedgerProvider.Sqlite, false)]
public class PurgeLateRunTests(LedgerProvider provider, bool partitioned)
{
    private static readonly DateTime T0 = DateTime.UtcNow.AddDays(-40);
    private LedgerHost _host = null!;
    private string _directory = null!;

    [SetUp]
    public async Task SetUp()
    {
        _directory = Path.Combine(Path.GetTempPath(), "joblog-purge-late-" + Guid.NewGuid().ToString("N"));
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), o => o.Partitioning.Enabled = partitioned);
    }

    [TearDown]
    public async Task TearDown()
    {
        _host.Services.GetRequiredService<LedgerPurger>().BetweenReadAndDelete = null;
        await _host.DisposeAsync();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Test]
    public async Task PurgeWithBackup_OfATaskThatGetsALateRunBetweenTheReadAndTheDelete_DeletesNoRowThatIsNotInTheFile()
    {
        var finished = Finished();
        await SeedAsync(finished);
        var late = Guid.NewGuid();
        var hooked = HookALateRun(finished.Id, late, finishes: true);

        var purge = await _host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(
            new LedgerPurgeRequest(LedgerKind.Tasks, DateTime.UtcNow.AddDays(-30), DateTime.UtcNow.AddDays(-30), BackupDirectory: _directory));
        await _host.FlushAsync();

        Assert.That(hooked(), Is.GreaterThanOrEqualTo(1), "the hook ran between the batch's read and its delete");
        var (runsInFile, tasksInFile) = IdsIn(purge.BackupFile);
        var runsInLedger = await _host.QueryAsync(db => db.TaskRunLogs.Select(r => r.Id).ToListAsync());
        var tasksInLedger = await _host.QueryAsync(db => db.TaskLogs.Select(t => t.Id).ToListAsync());
        TestContext.Out.WriteLine($"{provider}, partitioned {partitioned}: late run: in the file {runsInFile.Contains(late)}, in the ledger {runsInLedger.Contains(late)}; task in the file {tasksInFile.Contains(finished.Id)}, in the ledger {tasksInLedger.Contains(finished.Id)}");
        Assert.That(runsInFile.Concat(runsInLedger), Is.SupersetOf(new[] { finished.Runs.Single().Id, late }),
            $"every run is in the backup file ({string.Join(", ", runsInFile)}) or still in the ledger ({string.Join(", ", runsInLedger)}); the late run is {late}");
        Assert.That(tasksInFile.Concat(tasksInLedger), Does.Contain(finished.Id), "the task is in the backup file or still in the ledger");
        Assert.That(await OrphanRunsAsync(), Is.Empty, "no run is left in the ledger without its task");
    }

    [Test]
    public async Task Purge_OfATaskALateRunMakesActiveBetweenTheReadAndTheDelete_KeepsTheTaskAndItsRun([Values] bool backup)
    {
        var finished = Finished();
        await SeedAsync(finished);
        var late = Guid.NewGuid();
        var hooked = HookALateRun(finished.Id, late, finishes: false);

        await _host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(
            new LedgerPurgeRequest(LedgerKind.Tasks, DateTime.UtcNow.AddDays(-30), DateTime.UtcNow.AddDays(-30), BackupDirectory: backup ? _directory : null));
        await _host.FlushAsync();

        Assert.That(hooked(), Is.GreaterThanOrEqualTo(1), "the hook ran between the batch's read and its delete");
        var task = await _host.QueryAsync(db => db.TaskLogs.AsNoTracking().Where(t => t.Id == finished.Id).Select(t => new { t.State }).SingleOrDefaultAsync());
        var runs = await _host.QueryAsync(db => db.TaskRunLogs.Where(r => r.TaskId == finished.Id).Select(r => r.Id).ToListAsync());
        TestContext.Out.WriteLine($"{provider}, partitioned {partitioned}, backup {backup}: task {task?.State.ToString() ?? "deleted"}, runs {runs.Count}");
        Assert.That(task?.State, Is.EqualTo(TaskState.Active), "the task the late run made ACTIVE is still in the ledger, ACTIVE");
        Assert.That(runs, Does.Contain(late), "with its late run");
        Assert.That(await OrphanRunsAsync(), Is.Empty, "no run is left in the ledger without its task");
    }

    private static TaskLog Finished()
    {
        var finished = new TaskLog
        {
            Id = Guid.NewGuid(), Name = "T", QueueName = "q", DispatchedAt = T0, EstimatedTimeOfFirstArrival = T0, State = TaskState.Succeeded,
            Start = T0.AddSeconds(1), Stop = T0.AddSeconds(2), Host = "h",
        };
        finished.Runs.Add(new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = finished.Id, Name = "T", ConsumerType = "C", Start = T0.AddSeconds(1), Stop = T0.AddSeconds(2),
            State = TaskRunState.Succeeded,
        });
        return finished;
    }

    /// <summary>
    /// In the purge's first batch, between its read and its delete: a late run of <paramref name="taskId"/> reaches the writer
    /// (started, and finished if asked), and the hook waits until it is committed, or the writer waits on a lock the purge
    /// holds (PostgreSQL), or 3 s (SQLite: the writer waits on the batch's write lock, which nothing outside it can see).
    /// </summary>
    private Func<int> HookALateRun(Guid taskId, Guid late, bool finishes)
    {
        var hooked = 0;
        _host.Services.GetRequiredService<LedgerPurger>().BetweenReadAndDelete = async (ids, ct) =>
        {
            if (Interlocked.Increment(ref hooked) > 1)
            {
                return;
            }

            var recorder = _host.Services.GetRequiredService<LedgerRecorder>();
            var run = new RunPayload { Id = late, TaskId = taskId, Name = "T", ConsumerType = "C", Start = DateTime.UtcNow };
            recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = taskId, Name = "T", DispatchedAt = T0 }, false));
            if (finishes)
            {
                recorder.Enqueue(new RunFinished(late, taskId, TaskRunState.Succeeded, DateTime.UtcNow, null, "redelivered", null));
            }

            if (provider == LedgerProvider.Sqlite)
            {
                await Task.Delay(TimeSpan.FromSeconds(3), ct);
                return;
            }

            await LedgerHost.EventuallyAsync(
                async () => await RunsOfAsync(taskId) > 1 || await WriterWaitsOnALockAsync(),
                TimeSpan.FromSeconds(60), "the late run committed, or its writer waiting on the purge's lock");
        };
        return () => hooked;
    }

    private Task<List<Guid>> OrphanRunsAsync() =>
        _host.QueryAsync(db => db.TaskRunLogs.Where(r => !db.TaskLogs.Any(t => t.Id == r.TaskId)).Select(r => r.Id).ToListAsync());

    private Task<int> RunsOfAsync(Guid taskId) => _host.QueryAsync(db => db.TaskRunLogs.CountAsync(r => r.TaskId == taskId));

    private async Task<bool> WriterWaitsOnALockAsync()
    {
        await using var connection = new NpgsqlConnection(_host.Ledger.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'", connection);
        return (long)(await command.ExecuteScalarAsync())! > 0;
    }

    /// <summary>The ids of the runs and of the tasks a backup file holds (inline runs, split tasks and their run lines).</summary>
    private static (List<Guid> Runs, List<Guid> Tasks) IdsIn(string? file)
    {
        var (runs, tasks) = (new List<Guid>(), new List<Guid>());
        if (file is null)
        {
            return (runs, tasks);
        }

        using var reader = new StreamReader(new GZipStream(File.OpenRead(file), CompressionMode.Decompress));
        while (reader.ReadLine() is { } line)
        {
            using var json = JsonDocument.Parse(line);
            var row = json.RootElement.TryGetProperty("SplitTask", out var split) ? split : json.RootElement;
            if (row.TryGetProperty("Id", out var id))
            {
                tasks.Add(id.GetGuid());
            }

            if (row.TryGetProperty("Runs", out var rows) && rows.ValueKind == JsonValueKind.Array)
            {
                runs.AddRange(rows.EnumerateArray().Select(r => r.GetProperty("Id").GetGuid()));
            }
        }

        return (runs, tasks);
    }

    /// <summary>The rows through a version 1 restore (a partitioned ledger takes no row EF Core inserts).</summary>
    private async Task SeedAsync(TaskLog task)
    {
        var file = Path.Combine(_directory, "seed-v1.jsonl.gz");
        Directory.CreateDirectory(_directory);
        await using (var writer = new StreamWriter(new GZipStream(File.Create(file), CompressionLevel.Fastest), new UTF8Encoding(false)) { NewLine = "\n" })
        {
            await writer.WriteLineAsync("{\"format\":\"joblog-backup\",\"version\":1,\"kind\":\"tasks\",\"createdAt\":\"2026-12-04T20:13:12Z\"}");
            await writer.WriteLineAsync(JsonSerializer.Serialize(task, LedgerBackup.JsonOptions));
        }

        var seeded = await _host.Services.GetRequiredService<LedgerMaintenance>().RestoreAsync(file);
        Assert.That((seeded.Restored, seeded.EndedEarly), Is.EqualTo((1, (string?)null)));
        File.Delete(file);
    }
}
