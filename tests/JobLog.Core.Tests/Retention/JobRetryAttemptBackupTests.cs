using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using JobLog.Maintenance;
using JobLog.Recording;
using JobLog.Retention;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Retention;

/// <summary>
/// A job run's <c>JobRetryAttempt</c> (session 32) through a purge's backup and its restore; a backup written before
/// the column (its runs without the property) still restores, the runs without an attempt.
/// </summary>
[TestFixture(LedgerProvider.Sqlite, false)]
[TestFixture(LedgerProvider.PostgreSql, false)]
[TestFixture(LedgerProvider.PostgreSql, true)]
public class JobRetryAttemptBackupTests(LedgerProvider provider, bool partitioned)
{
    private static readonly DateTime T0 = DateTime.UtcNow.AddDays(-10);
    private LedgerHost _host = null!;
    private string _backups = null!;

    [SetUp]
    public async Task SetUp()
    {
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), o => o.Partitioning.Enabled = partitioned);
        _backups = Path.Combine(Path.GetTempPath(), "joblog-attempt-backup-" + Guid.NewGuid().ToString("N"));
    }

    [TearDown]
    public async Task TearDown()
    {
        await _host.DisposeAsync();
        if (Directory.Exists(_backups))
        {
            Directory.Delete(_backups, recursive: true);
        }
    }

    [Test]
    public async Task PurgeWithBackup_ThenRestore_KeepsTheJobRetryAttempts_AndABackupWithoutThemRestores()
    {
        var job = Guid.NewGuid();
        RecordAttempts(job, 0, 1);
        await _host.FlushAsync();
        var maintenance = _host.Services.GetRequiredService<LedgerMaintenance>();

        var purge = await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(1), T0.AddDays(1), BackupDirectory: _backups));
        Assert.That(purge.Deleted, Is.EqualTo(1));
        Assert.That((await maintenance.RestoreAsync(purge.BackupFile!)).Restored, Is.EqualTo(1));
        Assert.That(await AttemptsAsync(job), Is.EqualTo(new int?[] { 0, 1 }), "restored from today's backup");

        // The same task as a backup written before the column: every run's JobRetryAttempt left out of its line.
        var old = Path.Combine(_backups, "joblog-tasks-before-the-column.jsonl.gz");
        await RewriteWithoutTheAttemptAsync(purge.BackupFile!, old);
        await maintenance.PurgeAsync(new LedgerPurgeRequest(LedgerKind.Tasks, T0.AddDays(1), T0.AddDays(1)));
        Assert.That(await _host.TasksAsync(), Is.Empty);
        Assert.That((await maintenance.RestoreAsync(old)).Restored, Is.EqualTo(1));
        Assert.That(await AttemptsAsync(job), Is.EqualTo(new int?[] { null, null }), "restored from a backup older than the column");
    }

    private void RecordAttempts(Guid job, params int[] attempts)
    {
        var recorder = _host.Services.GetRequiredService<LedgerRecorder>();
        var seed = new TaskPayload { Id = job, Name = "Report", DispatchedAt = T0 };
        for (var i = 0; i < attempts.Length; i++)
        {
            var run = new RunPayload
            {
                Id = Guid.NewGuid(), TaskId = job, Name = "Report", ConsumerType = "ReportConsumer", Start = T0.AddSeconds(i), JobRetryAttempt = attempts[i],
            };
            recorder.Enqueue(new RunStarted(run, seed, false));
            recorder.Enqueue(new RunFinished(run.Id, job, i == attempts.Length - 1 ? TaskRunState.Succeeded : TaskRunState.Retried, run.Start.AddMilliseconds(5), null, null, null));
        }
    }

    private Task<List<int?>> AttemptsAsync(Guid job) =>
        _host.QueryAsync(db => db.TaskRunLogs.AsNoTracking().Where(r => r.TaskId == job).OrderBy(r => r.Retries).Select(r => r.JobRetryAttempt).ToListAsync());

    private static async Task RewriteWithoutTheAttemptAsync(string from, string to)
    {
        var lines = new List<string>();
        using (var reader = new StreamReader(new GZipStream(File.OpenRead(from), CompressionMode.Decompress)))
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                lines.Add(line);
            }
        }

        // Written before the column, the backup was of version 1 too: a task a line, no end line (LedgerBackup).
        var header = JsonNode.Parse(lines[0])!.AsObject();
        header["version"] = 1;
        lines[0] = header.ToJsonString();
        lines.RemoveAll(line => !line.Contains("\"Runs\"", StringComparison.Ordinal) && !line.Contains("\"format\"", StringComparison.Ordinal));
        for (var i = 1; i < lines.Count; i++)
        {
            var task = JsonNode.Parse(lines[i])!.AsObject();
            foreach (var run in task["Runs"]!.AsArray())
            {
                Assert.That(run!.AsObject().Remove(nameof(TaskRunLog.JobRetryAttempt)), Is.True, "today's backup carries the column");
            }

            lines[i] = task.ToJsonString();
        }

        await using var writer = new StreamWriter(new GZipStream(File.Create(to), CompressionLevel.Fastest), new UTF8Encoding(false)) { NewLine = "\n" };
        foreach (var line in lines)
        {
            await writer.WriteLineAsync(line);
        }
    }
}
