using System.IO.Compression;
using System.Text;
using System.Text.Json;
using JobLog.Maintenance;
using JobLog.Retention;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Retention;

/// <summary>
/// A backup is a file anyone can edit: a run in it may name another task of the ledger as its task, or carry the id of a
/// run the ledger holds. Neither may touch the ledger's rows: a run is its task's, and a run already there is skipped.
/// </summary>
[TestFixture(LedgerProvider.Sqlite, false)]
[TestFixture(LedgerProvider.PostgreSql, false)]
[TestFixture(LedgerProvider.PostgreSql, true)]
public class RestoreCollidingIdsTests(LedgerProvider provider, bool partitioned)
{
    private static readonly DateTime T0 = new(2026, 11, 1, 8, 0, 0, DateTimeKind.Utc);
    private LedgerHost _host = null!;
    private string _directory = null!;

    [SetUp]
    public async Task SetUp()
    {
        _directory = Path.Combine(Path.GetTempPath(), "joblog-restore-ids-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), o => o.Partitioning.Enabled = partitioned);
    }

    [TearDown]
    public async Task TearDown()
    {
        await _host.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Test]
    public async Task Restore_OfRunsNamingAnotherTaskOrCarryingAnExistingRunsId_LeavesTheLedgersRowsAlone()
    {
        var existing = Task("existing");
        existing.Runs.Add(Run(existing.Id, "the ledger's own run"));
        await RestoreAsync(existing);

        var hostile = Task("hostile");
        hostile.Runs.Add(Run(existing.Id, "a run that names the existing task"));
        hostile.Runs.Add(Run(hostile.Id, "a run with the id of the existing task's run"));
        hostile.Runs[1].Id = existing.Runs[0].Id;
        var result = await RestoreAsync(hostile);

        Assert.That((result.Restored, result.Skipped), Is.EqualTo((1, 0)));
        var runs = await _host.QueryAsync(db => db.TaskRunLogs.AsNoTracking().OrderBy(r => r.Output).Select(r => new { r.Id, r.TaskId, r.Output }).ToListAsync());
        Assert.That(runs.Select(r => (r.TaskId, r.Output)), Is.EqualTo(new[]
        {
            (hostile.Id, "a run that names the existing task"),
            (existing.Id, "the ledger's own run"),
        }), "the run is its task's; the existing run kept, not doubled");
    }

    private const string Row = "\"Id\":\"33333333-3333-3333-3333-333333333333\",\"Name\":\"T\",\"DispatchedAt\":\"2026-01-01T00:00:00Z\",\"State\":3";

    [TestCase("{" + Row + ",\"Name\":\"Smuggled\"}", "Name", TestName = "{m}(a key twice)")]
    [TestCase("{" + Row + ",\"Runs\":[{\"Id\":\"44444444-4444-4444-4444-444444444444\",\"Id\":\"55555555-5555-5555-5555-555555555555\",\"Name\":\"T\",\"ConsumerType\":\"C\",\"Start\":\"2026-01-01T00:00:00Z\",\"State\":1}]}", "Id", TestName = "{m}(a run's key twice)")]
    [TestCase("{}", "Id", TestName = "{m}(an empty object)")]
    [TestCase("{\"Name\":\"T\",\"DispatchedAt\":\"2026-01-01T00:00:00Z\",\"State\":3}", "Id", TestName = "{m}(no id)")]
    [TestCase("{\"SplitTask\":{" + Row + "}}", "Id", TestName = "{m}(a version 2 line in a version 1 file)")]
    [TestCase("{" + Row + ",\"Runs\":[{\"Id\":\"44444444-4444-4444-4444-444444444444\",\"Name\":\"T\",\"ConsumerType\":\"C\",\"Start\":\"2026-01-01T00:00:00Z\",\"State\":1,\"Retries\":1e999}]}", "line 2", TestName = "{m}(a huge number)")]
    [TestCase("{" + Row + ",\"State\":99999999999999999999}", "line 2", TestName = "{m}(a state past long)")]
    public async Task Restore_OfHostileJson_IsRefusedWithTheLine_AndRestoresNothing(string line, string why)
    {
        var error = Assert.ThrowsAsync<InvalidDataException>(() => RestoreLinesAsync(1, line));

        Assert.That(error!.Message, Does.Contain("line 2").And.Contain(why));
        Assert.That(await _host.QueryAsync(db => db.TaskLogs.CountAsync()), Is.Zero);
    }

    [Test]
    public async Task Restore_OfALineNestedPastTheReadersDepth_IsRefusedWithTheLine()
    {
        var deep = "{" + Row + ",\"Unknown\":" + new string('[', 100_000) + new string(']', 100_000) + "}";

        var error = Assert.ThrowsAsync<InvalidDataException>(() => RestoreLinesAsync(2, deep));

        Assert.That(error!.Message, Does.Contain("line 2").And.Contain("depth"));
        Assert.That(await _host.QueryAsync(db => db.TaskLogs.CountAsync()), Is.Zero);
    }

    [Test]
    public async Task Restore_WithTheLargestBatchSizeAnIntHolds_RestoresTheFile_WithoutReservingTheBatchUpFront()
    {
        // A batch size is the caller's (the CLI's --batch-size): int.MaxValue made a list of that capacity before the
        // first row, an OutOfMemoryException for a file of one task.
        var task = Task("one");
        task.Runs.Add(Run(task.Id, "its run"));
        var file = Path.Combine(_directory, Guid.NewGuid().ToString("N") + ".jsonl.gz");
        await using (var writer = new StreamWriter(new GZipStream(File.Create(file), CompressionLevel.Fastest), new UTF8Encoding(false)))
        {
            await writer.WriteLineAsync("{\"format\":\"joblog-backup\",\"version\":1,\"kind\":\"tasks\",\"createdAt\":\"2026-12-04T20:13:12Z\"}");
            await writer.WriteLineAsync(JsonSerializer.Serialize(task, LedgerBackup.JsonOptions));
        }

        var result = await _host.Services.GetRequiredService<LedgerMaintenance>().RestoreAsync(file, int.MaxValue);

        Assert.That((result.Restored, result.Skipped, result.EndedEarly), Is.EqualTo((1, 0, (string?)null)));
        Assert.That(await _host.QueryAsync(db => db.TaskRunLogs.CountAsync(r => r.TaskId == task.Id)), Is.EqualTo(1));
    }

    private async Task<LedgerRestoreResult> RestoreLinesAsync(int version, params string[] lines)
    {
        var file = Path.Combine(_directory, Guid.NewGuid().ToString("N") + ".jsonl.gz");
        await using (var writer = new StreamWriter(new GZipStream(File.Create(file), CompressionLevel.Fastest), new UTF8Encoding(false)))
        {
            await writer.WriteLineAsync("{\"format\":\"joblog-backup\",\"version\":" + version + ",\"kind\":\"tasks\",\"createdAt\":\"2026-12-04T20:13:12Z\"}");
            foreach (var line in lines)
            {
                await writer.WriteLineAsync(line);
            }
        }

        return await _host.Services.GetRequiredService<LedgerMaintenance>().RestoreAsync(file);
    }

    private async Task<LedgerRestoreResult> RestoreAsync(TaskLog task)
    {
        var file = Path.Combine(_directory, Guid.NewGuid().ToString("N") + ".jsonl.gz");
        await using (var writer = new StreamWriter(new GZipStream(File.Create(file), CompressionLevel.Fastest), new UTF8Encoding(false)))
        {
            await writer.WriteLineAsync("{\"format\":\"joblog-backup\",\"version\":1,\"kind\":\"tasks\",\"createdAt\":\"2026-12-04T20:13:12Z\"}");
            await writer.WriteLineAsync(JsonSerializer.Serialize(task, LedgerBackup.JsonOptions));
        }

        return await _host.Services.GetRequiredService<LedgerMaintenance>().RestoreAsync(file);
    }

    private static TaskLog Task(string name) => new()
    {
        Id = Guid.NewGuid(), Name = name, QueueName = "q", DispatchedAt = T0, EstimatedTimeOfFirstArrival = T0, State = TaskState.Failed,
        Start = T0, Stop = T0.AddSeconds(2), Host = "h",
    };

    private static TaskRunLog Run(Guid taskId, string output) => new()
    {
        Id = Guid.NewGuid(), TaskId = taskId, Name = "T", ConsumerType = "C", Start = T0, Stop = T0.AddSeconds(1),
        State = TaskRunState.Failed, Output = output,
    };
}
