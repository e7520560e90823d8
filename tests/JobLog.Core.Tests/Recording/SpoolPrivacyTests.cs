using System.Diagnostics;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>
/// The spool is private: another local user can neither plant records that are replayed as real nor make JobLog write
/// through a symlink, and nothing in the spool can stop the host.
/// </summary>
[Platform("Linux")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public class SpoolPrivacyTests
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private string _root = null!;

    [SetUp]
    public void SetUp()
    {
        _root = Path.Combine(Path.GetTempPath(), "joblog-test-privacy-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_root, Private);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_root, recursive: true);

    [Test]
    public void ASpoolFileNamedByAnEarlierVersion_IsTakenUnderTheLedgersName()
    {
        // Versions before session 21 named the file after the connection string: the first process after the upgrade
        // replays it, and what it spools later must be found by a process with another password too (code review).
        const string ledger = "sqlite:/var/lib/app/ledger.db";
        const string former = "Data Source=/var/lib/app/ledger.db;Password=old";
        using (var previous = new LedgerSpool(LedgerSpool.FileFor(_root, former, slot: 3), 1 << 20))
        {
            Assert.That(previous.TryAppend(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "A", DispatchedAt = DateTime.UtcNow })), Is.True);
        }

        using var spool = LedgerSpool.Claim(_root, ledger, 1 << 20, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, formerly: former)!;

        Assert.That(Path.GetFileName(spool.Path), Does.StartWith(Path.GetFileName(LedgerSpool.FileFor(_root, ledger, 0))[..^"0.spool.jsonl".Length]));
        Assert.That(spool.PendingBytes, Is.GreaterThan(0), "the earlier version's records, to replay");
        Assert.That(LedgerSpool.AnyLeftOver(_root, ledger), Is.True, "found under the ledger's name");
        Assert.That(Directory.GetFiles(_root, Path.GetFileName(LedgerSpool.FileFor(_root, former, 3)) + "*"), Is.Empty, "nothing left under the former name");
    }

    [Test]
    public void DefaultSpoolDirectory_IsPerUser()
    {
        var directory = new JobLogOptions().SpoolDirectory!;

        Assert.That(directory, Is.Not.EqualTo(Path.Combine(Path.GetTempPath(), "joblog")));
        Assert.That(Path.GetFileName(directory), Does.StartWith("joblog-").And.EndWith(Environment.IsPrivilegedProcess ? "-0" : ""));
    }

    [Test]
    public async Task Overflow_CreatesTheSpoolDirectory0700_AndItsFiles0600()
    {
        var spool = Path.Combine(_root, "spool");
        await using var host = await StartAsync(spool, start: false, queueCapacity: 1000);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();

        for (var i = 0; i < 1001; i++)
        {
            recorder.Enqueue(Dispatched("T"));
        }

        Assert.That(recorder.Spooled, Is.EqualTo(1));
        Assert.That(File.GetUnixFileMode(spool), Is.EqualTo(Private));
        foreach (var file in Directory.GetFiles(spool))
        {
            Assert.That(File.GetUnixFileMode(file), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite), file);
        }

        recorder.Dispose();
    }

    [Test]
    public async Task PlantedDirectoryThatOthersCanWrite_IsRefused_NothingReplayed_AndTheHostRuns()
    {
        var spool = Path.Combine(_root, "joblog");
        var (ledger, planted) = Plant(spool);
        File.SetUnixFileMode(spool, Private | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute);

        await AssertRefusedAsync(ledger, spool, planted, "others can write");
    }

    [Test]
    public async Task PlantedDirectoryOwnedByAnotherUser_IsRefused_NothingReplayed_AndTheHostRuns()
    {
        RequireRoot();
        var spool = Path.Combine(_root, "joblog");
        var (ledger, planted) = Plant(spool);
        Chown("nobody", spool, recursive: true);

        await AssertRefusedAsync(ledger, spool, planted, "owned by");
    }

    [Test]
    public async Task PlantedSpoolFileOwnedByAnotherUser_IsNotReplayed()
    {
        RequireRoot();
        var spool = Path.Combine(_root, "joblog");
        var (ledger, planted) = Plant(spool);
        Chown("nobody", planted, recursive: false);
        var logs = new WarningCollector();

        await using var host = await StartAsync(spool, ledger, logs);
        await host.Services.GetRequiredService<LedgerRecorder>().FlushAsync(TimeSpan.FromSeconds(10));
        await Task.Delay(500);

        Assert.That(await host.QueryAsync(db => db.TaskLogs.CountAsync()), Is.Zero, "the planted record is not in the ledger");
        Assert.That(logs.Errors, Has.Some.Contains(planted).And.Some.Contains("owned by"));
    }

    [Test]
    public async Task SpoolFileThatIsASymlink_IsNeitherReplayedNorWrittenThrough()
    {
        var spool = Path.Combine(_root, "joblog");
        var (ledger, planted) = Plant(spool);
        var elsewhere = Path.Combine(_root, "elsewhere.jsonl");
        File.Move(planted, elsewhere);
        File.CreateSymbolicLink(planted, elsewhere);
        var before = await File.ReadAllTextAsync(elsewhere);
        var logs = new WarningCollector();

        await using var host = await StartAsync(spool, ledger, logs, queueCapacity: 1000);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await Task.Delay(500);
        for (var i = 0; i < 1050; i++)
        {
            recorder.Enqueue(Dispatched("Overflow"));
        }

        Assert.That(await File.ReadAllTextAsync(elsewhere), Is.EqualTo(before), "nothing written through the link");
        Assert.That(await host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Name == "Planted")), Is.Zero);
        Assert.That(logs.Errors, Has.Some.Contains("symbolic link"));
    }

    [Test]
    public async Task DanglingSymlinkInTheSpool_AtStart_HostStartsAndRecords()
    {
        var spool = Path.Combine(_root, "joblog");
        Directory.CreateDirectory(spool, Private);
        var ledger = TestLedger.Sqlite();
        var options = ledger.Apply(new JobLogOptions());
        File.CreateSymbolicLink(LedgerSpool.FileFor(spool, LedgerDatabase.For(options.Provider).Identity(options.ConnectionString!)), Path.Combine(_root, "nowhere", "gone.jsonl"));
        var logs = new WarningCollector();

        await using var host = await StartAsync(spool, ledger, logs);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        recorder.Enqueue(Dispatched("AfterStart"));
        await host.FlushAsync();

        Assert.That(await host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Name == "AfterStart")), Is.EqualTo(1));
        Assert.That(File.Exists(Path.Combine(_root, "nowhere", "gone.jsonl")), Is.False);
        Assert.That(logs.Errors, Has.Some.Contains("symbolic link"));
    }

    [Test]
    public async Task SpoolFileReplacedByADirectory_DuringReplay_TheHostKeepsRecording()
    {
        var spool = Path.Combine(_root, "joblog");
        var (ledger, planted) = Plant(spool);
        var logs = new WarningCollector();
        await using var host = await StartAsync(spool, ledger, logs, start: false);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        File.Delete(planted);
        Directory.CreateDirectory(planted);

        await host.Host.StartAsync();
        recorder.Enqueue(Dispatched("AfterTheError"));
        await LedgerHost.EventuallyAsync(
            async () => await host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Name == "AfterTheError")) == 1,
            TimeSpan.FromSeconds(20), "records reach the ledger after the spool failed");

        Assert.That(logs.Errors, Has.Some.Contains(planted));
        Directory.Delete(planted);
    }

    private static TaskDispatched Dispatched(string name) =>
        new(new TaskPayload { Id = Guid.NewGuid(), Name = name, DispatchedAt = DateTime.UtcNow });

    /// <summary>A private spool directory holding one record, as a stopped process would leave it.</summary>
    private static (TestLedger Ledger, string File) Plant(string spool)
    {
        Directory.CreateDirectory(spool, Private);
        var ledger = TestLedger.Sqlite();
        var options = ledger.Apply(new JobLogOptions());
        var path = LedgerSpool.FileFor(spool, LedgerDatabase.For(options.Provider).Identity(options.ConnectionString!));
        File.WriteAllText(path, "{\"Kind\":\"dispatched\",\"Task\":{\"Id\":\"" + Guid.NewGuid() + "\",\"Name\":\"Planted\",\"DispatchedAt\":\"2026-01-01T00:00:00Z\"}}\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return (ledger, path);
    }

    private async Task AssertRefusedAsync(TestLedger ledger, string spool, string planted, string reason)
    {
        var logs = new WarningCollector();
        await using var host = await StartAsync(spool, ledger, logs, queueCapacity: 1000);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        for (var i = 0; i < 1030; i++)
        {
            recorder.Enqueue(Dispatched("Live"));
        }

        await Task.Delay(500);
        await host.FlushAsync();

        Assert.That(await host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Name == "Planted")), Is.Zero, "the planted record is not replayed");
        Assert.That(await host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Name == "Live")), Is.GreaterThanOrEqualTo(1000), "the host records");
        Assert.That(Directory.GetFiles(spool), Is.EqualTo(new[] { planted }), "nothing written into the refused directory");
        Assert.That(logs.Errors, Has.Some.Contains(spool).And.Some.Contains(reason));
    }

    private static async Task<LedgerHost> StartAsync(
        string spool, TestLedger? ledger = null, WarningCollector? logs = null, bool start = true, int queueCapacity = 200_000) =>
        await LedgerHost.StartAsync(ledger ?? TestLedger.Sqlite(), o =>
        {
            o.SpoolDirectory = spool;
            o.QueueCapacity = queueCapacity;
        }, services => services.AddSingleton<ILoggerProvider>(logs ?? new WarningCollector()), start);

    private static void RequireRoot()
    {
        if (!Environment.IsPrivilegedProcess)
        {
            Assert.Ignore("Planting files owned by another user needs root (chown); CI runs the tests as root.");
        }
    }

    private static void Chown(string user, string path, bool recursive)
    {
        var start = new ProcessStartInfo("chown") { RedirectStandardError = true };
        if (recursive)
        {
            start.ArgumentList.Add("-R");
        }

        start.ArgumentList.Add(user);
        start.ArgumentList.Add(path);
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.That(process.ExitCode, Is.Zero, error);
    }
}
