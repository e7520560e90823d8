using System.IO.Compression;
using System.Text;
using System.Text.Json;
using JobLog.Maintenance;
using JobLog.Recording;
using JobLog.Redaction;
using JobLog.Retention;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Retention;

/// <summary>
/// A task with many large runs (a poison message redelivered through crash loops, each redelivery a run, each text at
/// <see cref="RedactionOptions.MaxBodyLength"/> and non-ASCII, so six bytes of JSON a character) is backed up so that
/// <c>restore</c> reads it back whole, and the rows after it too. The restore's line bound (256 MiB) is lowered for the
/// test through its internal knob; the sizes it stands for are printed and checked.
/// </summary>
[TestFixture(LedgerProvider.Sqlite, false)]
[TestFixture(LedgerProvider.PostgreSql, false)]
[TestFixture(LedgerProvider.PostgreSql, true)]
public class BackupOfLargeTasksTests(LedgerProvider provider, bool partitioned)
{
    private const int LoweredLineBound = 2 * 1024 * 1024;
    private static readonly DateTime T0 = DateTime.UtcNow.AddDays(-40);
    private LedgerHost _host = null!;
    private string _directory = null!;

    [SetUp]
    public async Task SetUp()
    {
        _directory = Path.Combine(Path.GetTempPath(), "joblog-backup-large-" + Guid.NewGuid().ToString("N"));
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider), o => o.Partitioning.Enabled = partitioned);
    }

    [TearDown]
    public async Task TearDown()
    {
        await _host.DisposeAsync();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Test]
    public async Task Purge_OfATaskWithRunsPastTheRestoresLineBound_WritesABackupThatRestoresEveryTaskAndRun()
    {
        var runBytes = Encoding.UTF8.GetByteCount(JsonSerializer.Serialize(PoisonRun(Guid.NewGuid(), 0), LedgerBackup.JsonOptions));
        var runsToTheRealBound = (LedgerBackup.MaxLineBytes + runBytes - 1) / runBytes;
        TestContext.Out.WriteLine($"one run with five texts of 10,000 'ж' is {runBytes:N0} bytes of JSON: {runsToTheRealBound:N0} such runs make a line past 256 MiB");
        Assert.That(runsToTheRealBound, Is.LessThan(1000), "a few hundred redeliveries of one poison message reach the real bound");

        var before = Small("before", T0);
        var poison = Task("Poison", T0.AddMinutes(1), TaskState.Failed);
        var runs = (LoweredLineBound / runBytes) + 3;
        for (var i = 0; i < runs; i++)
        {
            poison.Runs.Add(PoisonRun(poison.Id, i));
        }

        var after = Small("after", T0.AddMinutes(2));
        await SeedAsync(before, poison, after);
        var snapshot = await SnapshotAsync();

        var purge = await _host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(
            new LedgerPurgeRequest(LedgerKind.Tasks, DateTime.UtcNow.AddDays(-30), DateTime.UtcNow.AddDays(-30), BackupDirectory: _directory));
        Assert.That(purge.Deleted, Is.EqualTo(3));
        Assert.That(await _host.QueryAsync(db => db.TaskRunLogs.CountAsync()), Is.Zero);

        var restored = await RestoreAsync(purge.BackupFile!, LoweredLineBound);

        Assert.That((restored.Restored, restored.Skipped, restored.EndedEarly), Is.EqualTo((3, 0, (string?)null)));
        Assert.That(await SnapshotAsync(), Is.EqualTo(snapshot), "every task and run as it was");
        var lines = ReadLines(purge.BackupFile!);
        Assert.That(lines.Max(l => Encoding.UTF8.GetByteCount(l)), Is.LessThanOrEqualTo(LedgerBackup.SplitBytes), "no line past the split bound");
        Assert.That(lines, Has.Some.StartsWith("{\"SplitTask\":"), "the poison task's runs in lines of their own");

        var again = await RestoreAsync(purge.BackupFile!, LoweredLineBound);
        Assert.That((again.Restored, again.Skipped), Is.EqualTo((0, 3)), "restoring twice is harmless");
        Assert.That(await SnapshotAsync(), Is.EqualTo(snapshot));
    }

    [Test]
    public async Task Restore_OfABackupCutInsideASplitTasksRuns_RestoresTheWholeTasksBeforeIt_NotThatTask_AndSaysWhere()
    {
        var (file, poison, _) = await PurgePoisonAsync();
        var lines = ReadLines(file);
        var cutAt = lines.FindIndex(l => l.StartsWith("{\"RunsOf\":", StringComparison.Ordinal) && l.Contains("\"Runs\":", StringComparison.Ordinal)) + 1;
        var cut = Path.Combine(_directory, "cut.jsonl.gz");
        WriteLines(cut, lines.Take(cutAt));

        var restored = await RestoreAsync(cut, LoweredLineBound);

        // The file's order is the runs' task ids': the small tasks whose lines precede the poison task's are whole.
        var wholeBefore = lines.FindIndex(l => l.StartsWith("{\"SplitTask\":", StringComparison.Ordinal)) - 1;
        Assert.That(restored.Restored, Is.EqualTo(wholeBefore));
        Assert.That(restored.EndedEarly, Does.Contain($"line {cutAt + 1}").And.Contain($"inside task {poison}'s runs").And.Contain("cut"));
        Assert.That(await _host.QueryAsync(db => db.TaskLogs.CountAsync()), Is.EqualTo(wholeBefore));
        Assert.That(await _host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Id == poison)), Is.Zero, "the poison task not restored in part");
        Assert.That(await _host.QueryAsync(db => db.TaskRunLogs.CountAsync(r => r.TaskId == poison)), Is.Zero, "nor any of its runs");
    }

    [Test]
    public async Task Restore_OfABackupCutInsideALine_RestoresTheWholeRowsBeforeIt_AndSaysWhere()
    {
        var (file, _, _) = await PurgePoisonAsync();
        var lines = ReadLines(file);
        var cut = Path.Combine(_directory, "cut-line.jsonl.gz");
        WriteLines(cut, lines.Take(lines.Count - 2).Append(lines[^2][..(lines[^2].Length / 2)]), endWithNewLine: false);

        var restored = await RestoreAsync(cut, LoweredLineBound);

        Assert.That(restored.Restored, Is.EqualTo(2), "every task but the last");
        Assert.That(restored.EndedEarly, Does.Contain($"line {lines.Count - 1}: the file ends inside this line"));
    }

    [TestCase("runs of another task")]
    [TestCase("a count that is not theirs")]
    [TestCase("a garbled line")]
    [TestCase("a missing run line")]
    public async Task Restore_OfABackupWithALineItCannotRead_RestoresNothing_AndSaysWhere(string damage)
    {
        var (file, poison, _) = await PurgePoisonAsync();
        var lines = ReadLines(file);
        var first = lines.FindIndex(l => l.StartsWith("{\"RunsOf\":", StringComparison.Ordinal));
        var count = lines.FindIndex(l => l.StartsWith("{\"RunsOf\":", StringComparison.Ordinal) && l.Contains("\"Count\":", StringComparison.Ordinal));
        switch (damage)
        {
            case "runs of another task":
                lines[first] = lines[first].Replace(poison.ToString(), Guid.NewGuid().ToString(), StringComparison.Ordinal);
                break;
            case "a count that is not theirs":
                lines[count] = System.Text.RegularExpressions.Regex.Replace(lines[count], "\"Count\":\\d+", "\"Count\":1");
                break;
            case "a garbled line":
                lines[first] = lines[first][..100] + "}";
                break;
            default:
                lines.RemoveAt(first);
                break;
        }

        var damaged = Path.Combine(_directory, "damaged.jsonl.gz");
        WriteLines(damaged, lines);

        var error = Assert.ThrowsAsync<InvalidDataException>(() => RestoreAsync(damaged, LoweredLineBound));

        var line = damage == "a count that is not theirs" ? count + 1 : damage == "a missing run line" ? count : first + 1;
        Assert.That(error!.Message, Does.Contain($"damaged.jsonl.gz, line {line}:"));
        Assert.That(await _host.QueryAsync(db => db.TaskLogs.CountAsync()), Is.Zero, "nothing restored: " + error.Message);
    }

    private async Task<(string File, Guid Poison, Guid Before)> PurgePoisonAsync()
    {
        var before = Small("before", T0);
        var poison = Task("Poison", T0.AddMinutes(1), TaskState.Failed);
        for (var i = 0; i < 8; i++)
        {
            poison.Runs.Add(PoisonRun(poison.Id, i));
        }

        var after = Small("after", T0.AddMinutes(2));
        await SeedAsync(before, poison, after);
        var purge = await _host.Services.GetRequiredService<LedgerMaintenance>().PurgeAsync(
            new LedgerPurgeRequest(LedgerKind.Tasks, DateTime.UtcNow.AddDays(-30), DateTime.UtcNow.AddDays(-30), BackupDirectory: _directory));
        Assert.That(purge.Deleted, Is.EqualTo(3));
        return (purge.BackupFile!, poison.Id, before.Id);
    }

    /// <summary>
    /// The rows, through the restore of a backup as version 1 wrote it (each task one line with its runs): a partitioned
    /// ledger takes no row EF Core inserts, and this is how an old backup restores.
    /// </summary>
    private async Task SeedAsync(params TaskLog[] tasks)
    {
        var file = Path.Combine(_directory, "seed-v1.jsonl.gz");
        Directory.CreateDirectory(_directory);
        WriteLines(file, tasks.Select(t => JsonSerializer.Serialize(t, LedgerBackup.JsonOptions))
            .Prepend("{\"format\":\"joblog-backup\",\"version\":1,\"kind\":\"tasks\",\"createdAt\":\"2026-12-04T20:13:12Z\"}"));
        var seeded = await _host.Services.GetRequiredService<LedgerMaintenance>().RestoreAsync(file);
        Assert.That((seeded.Restored, seeded.EndedEarly), Is.EqualTo((tasks.Length, (string?)null)));
        Assert.That(await _host.QueryAsync(db => db.TaskRunLogs.CountAsync()), Is.EqualTo(tasks.Sum(t => t.Runs.Count)));
        File.Delete(file);
    }

    private static void WriteLines(string file, IEnumerable<string> lines, bool endWithNewLine = true)
    {
        using var writer = new StreamWriter(new GZipStream(File.Create(file), CompressionLevel.Fastest), new UTF8Encoding(false)) { NewLine = "\n" };
        writer.Write(string.Join("\n", lines) + (endWithNewLine ? "\n" : ""));
    }

    private Task<(LedgerKind Kind, int Restored, int Skipped, string? EndedEarly)> RestoreAsync(string file, int maxLineBytes) =>
        LedgerBackup.RestoreAsync(
            _host.Services.GetRequiredService<JobLogContextFactory>(),
            new RecordMasking(_host.Services.GetRequiredService<Redactor>()),
            file, 500, CancellationToken.None, maxLineBytes);

    private Task<string> SnapshotAsync() => _host.QueryAsync(async db =>
    {
        var tasks = await db.TaskLogs.AsNoTracking().Include(t => t.Runs).OrderBy(t => t.DispatchedAt).ToListAsync();
        foreach (var t in tasks)
        {
            t.Runs = [.. t.Runs.OrderBy(r => r.Retries)];
        }

        return JsonSerializer.Serialize(tasks, LedgerBackup.JsonOptions);
    });

    private static readonly string Text = new('ж', 10_000);

    private static TaskRunLog PoisonRun(Guid taskId, int i) => new()
    {
        Id = Guid.NewGuid(), TaskId = taskId, Name = "Poison", ConsumerType = "PoisonConsumer", QueueName = "poison",
        Start = T0.AddMinutes(1).AddSeconds(i), Stop = T0.AddMinutes(1).AddSeconds(i + 1), State = i == 0 ? TaskRunState.Failed : TaskRunState.Retried,
        Retries = i, Redelivered = i > 0, Input = Text, TaskArgs = "[\"" + Text[..9_990] + "\"]", TaskKwargs = "{\"A\":\"" + Text[..9_980] + "\"}",
        ErrorMessage = Text, Output = Text,
    };

    private static TaskLog Task(string name, DateTime at, TaskState state) => new()
    {
        Id = Guid.NewGuid(), Name = name, QueueName = "q", DispatchedAt = at, EstimatedTimeOfFirstArrival = at, State = state,
        Start = at.AddSeconds(1), Stop = at.AddMinutes(1), Input = "Label=" + name, TaskKwargs = "{\"Label\":\"" + name + "\"}", Host = "h",
    };

    private static TaskLog Small(string name, DateTime at)
    {
        var task = Task(name, at, TaskState.Failed);
        task.Runs.Add(new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = task.Id, Name = name, ConsumerType = "C", Start = at.AddSeconds(1), Stop = at.AddSeconds(2),
            State = TaskRunState.Failed, ErrorMessage = "boom", Output = "line",
        });
        return task;
    }

    private static List<string> ReadLines(string file)
    {
        using var reader = new StreamReader(new GZipStream(File.OpenRead(file), CompressionMode.Decompress));
        var lines = new List<string>();
        while (reader.ReadLine() is { } line)
        {
            lines.Add(line);
        }

        return lines;
    }
}
