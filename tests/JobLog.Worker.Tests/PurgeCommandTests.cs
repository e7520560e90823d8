using System.IO.Compression;
using System.Text.Json;
using JobLog.Retention;
using JobLog.Testing;
using JobLog.Worker.Cli;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary><c>purge</c> deletes exactly the finished rows its options name, keeps unfinished ones, and its backup restores them.</summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class PurgeCommandTests(LedgerProvider provider)
{
    private LedgerHost _host = null!;
    private string _backup = null!;
    private DateTime _now;

    [SetUp]
    public async Task SetUp()
    {
        _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));
        _backup = Path.Combine(Path.GetTempPath(), "joblog-purge-" + Guid.NewGuid().ToString("N"));
        var now = DateTime.UtcNow;
        _now = new DateTime(now.Ticks - (now.Ticks % TimeSpan.TicksPerMillisecond), DateTimeKind.Utc);
    }

    [TearDown]
    public async Task TearDown()
    {
        await _host.DisposeAsync();
        if (Directory.Exists(_backup))
        {
            Directory.Delete(_backup, recursive: true);
        }
    }

    private string[] Settings =>
        provider == LedgerProvider.PostgreSql
            ? ["--JobLog:Database=postgres", "--ConnectionStrings:JobLog=" + _host.Ledger.ConnectionString]
            : ["--ConnectionStrings:JobLog=" + _host.Ledger.ConnectionString];

    private TaskLog Task(string label, TaskState state, double daysAgo, bool finished = true, int runs = 2)
    {
        var at = _now.AddDays(-daysAgo);
        var task = new TaskLog
        {
            Id = Guid.NewGuid(), Name = label, QueueName = "q", Input = "Label=" + label, TaskKwargs = "{\"Label\":\"" + label + "\"}",
            DispatchedAt = at.AddSeconds(-5), EstimatedTimeOfFirstArrival = at.AddSeconds(-5), State = state,
            Start = runs > 0 ? at.AddSeconds(-4) : null, Stop = finished ? at : null, CorrelationId = Guid.NewGuid(), Host = "h", TraceId = "abc",
        };
        for (var i = 0; i < runs; i++)
        {
            task.Runs.Add(new TaskRunLog
            {
                Id = Guid.NewGuid(), TaskId = task.Id, Name = label, ConsumerType = "C", Start = at.AddSeconds(-4 + i), Stop = finished || i < runs - 1 ? at.AddSeconds(-3 + i) : null,
                State = i < runs - 1 ? TaskRunState.Retried : state switch
                {
                    TaskState.Succeeded => TaskRunState.Succeeded,
                    TaskState.Failed => TaskRunState.Failed,
                    TaskState.Active => TaskRunState.Active,
                    TaskState.Retried => TaskRunState.Retried,
                    _ => TaskRunState.Expired,
                },
                Retries = i, ErrorMessage = i < runs - 1 ? "boom " + i : null, Output = "line " + i, WaitingTime = 1.5,
            });
        }

        return task;
    }

    private async Task SeedAsync(params object[] rows) =>
        await _host.QueryAsync(async db =>
        {
            db.AddRange(rows);
            return await db.SaveChangesAsync();
        });

    private Task<List<Guid>> TaskIdsAsync() => _host.QueryAsync(db => db.TaskLogs.Select(t => t.Id).ToListAsync());

    private static async Task<(int Exit, string Output)> RunAsync(Func<string[], TextWriter, Task<int>> command, params string[] args)
    {
        using var output = new StringWriter();
        var exit = await command(args, output);
        return (exit, output.ToString());
    }

    private Task<string> SnapshotAsync(IEnumerable<Guid> ids)
    {
        var list = ids.ToList();
        return _host.QueryAsync(async db =>
        {
            var tasks = await db.TaskLogs.AsNoTracking().Include(t => t.Runs).Where(t => list.Contains(t.Id)).OrderBy(t => t.Name).ToListAsync();
            foreach (var t in tasks)
            {
                t.Runs = [.. t.Runs.OrderBy(r => r.Retries)];
            }

            return JsonSerializer.Serialize(tasks, LedgerBackup.JsonOptions);
        });
    }

    [Test]
    public async Task PurgeTasks_DeletesOldSuccessesAndOlderFailures_KeepsTheRest_AndTheBackupRestoresThem()
    {
        var oldSucceeded = new[] { Task("ok-40d-a", TaskState.Succeeded, 40), Task("ok-40d-b", TaskState.Succeeded, 40, runs: 1), Task("ok-31d", TaskState.Succeeded, 31) };
        var failedNotOldEnough = new[] { Task("failed-40d", TaskState.Failed, 40), Task("expired-60d", TaskState.Expired, 60, runs: 0) };
        var failedVeryOld = new[] { Task("failed-100d", TaskState.Failed, 100, runs: 3), Task("expired-95d", TaskState.Expired, 95, runs: 1) };
        var recent = new[] { Task("ok-1d", TaskState.Succeeded, 1), Task("failed-2d", TaskState.Failed, 2), Task("ok-29d", TaskState.Succeeded, 29) };
        var unfinished = new[]
        {
            Task("waiting-100d", TaskState.Waiting, 100, finished: false, runs: 0),
            Task("active-100d", TaskState.Active, 100, finished: false),
            Task("retried-100d", TaskState.Retried, 100),
        };
        TaskLog[] all = [.. oldSucceeded, .. failedNotOldEnough, .. failedVeryOld, .. recent, .. unfinished];
        await SeedAsync([.. all]);
        var deleted = oldSucceeded.Concat(failedVeryOld).Select(t => t.Id).ToList();
        var before = await SnapshotAsync(deleted);

        var (dryExit, dryOutput) = await RunAsync(PurgeCommand.PurgeAsync, [.. Settings, "--type", "tasks", "--older-than", "30d", "--failed-older-than", "90d", "--dry-run"]);
        Assert.That(dryExit, Is.Zero);
        Assert.That(dryOutput, Does.Contain("tasks: would delete 5 (3 successes, 2 failures)"));
        Assert.That(await TaskIdsAsync(), Has.Count.EqualTo(all.Length), "a dry run deletes nothing");

        var (exit, output) = await RunAsync(PurgeCommand.PurgeAsync,
            [.. Settings, "--type", "tasks", "--older-than", "30d", "--failed-older-than", "90d", "--backup", _backup, "--batch-size", "2"]);

        Assert.That(exit, Is.Zero, output);
        Assert.That(output, Does.Contain("tasks: deleted 5 (3 successes, 2 failures)"));
        Assert.That(output, Does.Contain("tasks: deleting 5 rows…"), "redirected, the progress bar is a plain line");
        Assert.That(await TaskIdsAsync(), Is.EquivalentTo(all.Select(t => t.Id).Except(deleted)));
        Assert.That(await _host.QueryAsync(db => db.TaskRunLogs.CountAsync(r => deleted.Contains(r.TaskId))), Is.Zero, "their runs went with them");
        Assert.That(await _host.QueryAsync(db => db.TaskRunLogs.CountAsync()), Is.EqualTo(all.Except(oldSucceeded).Except(failedVeryOld).Sum(t => t.Runs.Count)));

        var file = Directory.GetFiles(_backup).Single();
        Assert.That(file, Does.EndWith(".jsonl.gz"));
        var lines = ReadLines(file);
        Assert.That(lines, Has.Count.EqualTo(7), "a header, one line per deleted task, the end line");
        Assert.That(lines[^1], Is.EqualTo("{\"EndOfBackup\":true,\"Rows\":5}"));

        var (restoreExit, restoreOutput) = await RunAsync(PurgeCommand.RestoreAsync, [.. Settings, file]);

        Assert.That(restoreExit, Is.Zero, restoreOutput);
        Assert.That(restoreOutput, Does.Contain("tasks: restored 5, skipped 0"));
        Assert.That(await SnapshotAsync(deleted), Is.EqualTo(before), "every field of the tasks and their runs is back");
        var (_, again) = await RunAsync(PurgeCommand.RestoreAsync, [.. Settings, file]);
        Assert.That(again, Does.Contain("restored 0, skipped 5"), "restoring twice adds nothing");
    }

    [Test]
    public async Task PurgeRequestsAndCommands_KeepIncompleteRows_AndFailuresWhenToldNever()
    {
        InputRequestLog Input(string path, RequestLogStatus status, double daysAgo, bool finished = true) => new()
        {
            Id = Guid.NewGuid(), Host = "h", Method = "GET", Path = path, RequestTimestamp = _now.AddDays(-daysAgo),
            ResponseTimestamp = finished ? _now.AddDays(-daysAgo).AddMilliseconds(5) : null, Status = status, ResponseCode = finished ? 200 : null,
            RequestHeaders = "{\"Accept\":\"*/*\"}", Ip = "10.0.0.1",
        };
        OutputRequestLog Output(string path, RequestLogStatus status, double daysAgo) => new()
        {
            Id = Guid.NewGuid(), Host = "psp", Method = "POST", Path = path, RequestTimestamp = _now.AddDays(-daysAgo),
            ResponseTimestamp = _now.AddDays(-daysAgo).AddMilliseconds(5), Status = status, ResponseCode = status == RequestLogStatus.Info ? 200 : 500,
            RelatedObjects = [new OutputRequestRelatedObject { Id = Guid.NewGuid(), ContentType = "Order", ObjectId = path }],
        };
        CommandLog Command(string name, bool? ok, double daysAgo) => new()
        {
            Id = Guid.NewGuid(), Name = name, Start = _now.AddDays(-daysAgo), Stop = ok is null ? null : _now.AddDays(-daysAgo).AddSeconds(1),
            IsSuccessful = ok, ExitCode = ok is null ? null : ok.Value ? 0 : 1, Output = "out",
        };

        var inputs = new[]
        {
            Input("/old-ok", RequestLogStatus.Info, 40), Input("/old-404", RequestLogStatus.Warning, 40), Input("/old-500", RequestLogStatus.Error, 40),
            Input("/old-incomplete", RequestLogStatus.Incomplete, 40, finished: false), Input("/new-ok", RequestLogStatus.Info, 3),
        };
        var outputs = new[] { Output("/old-ok", RequestLogStatus.Info, 40), Output("/old-500", RequestLogStatus.Error, 40), Output("/new", RequestLogStatus.Info, 1) };
        var commands = new[] { Command("old-ok", true, 40), Command("old-failed", false, 40), Command("old-running", null, 40), Command("new-ok", true, 1) };
        await SeedAsync([.. inputs, .. outputs, .. commands]);

        var (exit, output) = await RunAsync(PurgeCommand.PurgeAsync, [.. Settings, "--type", "input-requests,output-requests", "--older-than", "30d", "--backup", _backup]);
        Assert.That(exit, Is.Zero, output);
        Assert.That(output, Does.Contain("input-requests: deleted 3 (1 successes, 2 failures)"));
        Assert.That(output, Does.Contain("output-requests: deleted 2 (1 successes, 1 failures)"));
        Assert.That(await _host.QueryAsync(db => db.InputRequestLogs.Select(r => r.Path).ToListAsync()), Is.EquivalentTo(new[] { "/old-incomplete", "/new-ok" }));
        Assert.That(await _host.QueryAsync(db => db.OutputRequestLogs.Select(r => r.Path).ToListAsync()), Is.EqualTo(new[] { "/new" }));
        Assert.That(await _host.QueryAsync(db => db.OutputRequestRelatedObjects.Select(o => o.ObjectId).ToListAsync()), Is.EqualTo(new[] { "/new" }));

        var (commandExit, commandOutput) = await RunAsync(PurgeCommand.PurgeAsync, [.. Settings, "--type", "commands", "--older-than", "30d", "--failed-older-than", "never"]);
        Assert.That(commandExit, Is.Zero, commandOutput);
        Assert.That(await _host.QueryAsync(db => db.CommandLogs.Select(c => c.Name).ToListAsync()), Is.EquivalentTo(new[] { "old-failed", "old-running", "new-ok" }));

        foreach (var file in Directory.GetFiles(_backup))
        {
            var (restoreExit, restoreOutput) = await RunAsync(PurgeCommand.RestoreAsync, [.. Settings, file]);
            Assert.That(restoreExit, Is.Zero, restoreOutput);
        }

        Assert.That(await _host.QueryAsync(db => db.InputRequestLogs.CountAsync()), Is.EqualTo(inputs.Length));
        var restoredOutput = await _host.QueryAsync(db => db.OutputRequestLogs.Include(r => r.RelatedObjects).AsNoTracking().SingleAsync(r => r.Path == "/old-500"));
        Assert.That(restoredOutput.RelatedObjects.Single().ObjectId, Is.EqualTo("/old-500"));
        Assert.That(restoredOutput.ResponseCode, Is.EqualTo(500));
    }

    [TestCase("--older-than", "30 days")]
    [TestCase("--type", "everything")]
    [TestCase("--type", ",")]
    [TestCase("--type", " , ")]
    public async Task Purge_WithOptionsItCannotRead_ExitsWith2AndDeletesNothing(string option, string value)
    {
        await SeedAsync(Task("ok-40d", TaskState.Succeeded, 40));
        string[] args = option == "--type" ? [.. Settings, "--type", value, "--older-than", "30d"] : [.. Settings, "--type", "tasks", option, value];

        var (exit, _) = await RunAsync(PurgeCommand.PurgeAsync, args);

        Assert.That(exit, Is.EqualTo(2));
        Assert.That(await TaskIdsAsync(), Has.Count.EqualTo(1));
    }

    [TestCase("--older-than", "0d")]
    [TestCase("--failed-older-than", "0h")]
    public async Task Purge_WithAnAgeOfZero_SaysTheAgeMustBePositive(string option, string value)
    {
        // '0d' looks like '30d': "must look like 90s, 15m, 12h, 30d or 2w, not '0d'" did not say what was wrong with it.
        await SeedAsync(Task("ok-40d", TaskState.Succeeded, 40));
        string[] args = option == "--older-than" ? [.. Settings, "--type", "tasks", option, value] : [.. Settings, "--type", "tasks", "--older-than", "30d", option, value];

        var error = new StringWriter();

        var exit = await JobLog.Worker.Cli.Cli.RunAsync(["purge", .. args], CliConsole.Redirected(new StringWriter(), error), recordCommand: false);

        Assert.That(exit, Is.EqualTo(2));
        Assert.That(error.ToString(), Does.Contain($"{option} must be a positive age").And.Contain($"not '{value}'"));
        Assert.That(await TaskIdsAsync(), Has.Count.EqualTo(1));
    }

    [Test]
    public async Task RetentionService_KeepsFailuresLongerThanSuccesses()
    {
        var ok = Task("ok-40d", TaskState.Succeeded, 40);
        var failed = Task("failed-40d", TaskState.Failed, 40);
        var oldFailed = Task("failed-100d", TaskState.Failed, 100);
        await SeedAsync(ok, failed, oldFailed);
        await using var services = JobLog.Worker.Cli.LedgerSession.Build(Settings);
        var options = Microsoft.Extensions.Options.Options.Create(new JobLogRetentionOptions());
        var service = new LedgerRetentionService(
            services.GetRequiredService<JobLog.Storage.LedgerSchema>(),
            services.GetRequiredService<LedgerPurger>(),
            options,
            TimeProvider.System,
            Microsoft.Extensions.Logging.Abstractions.NullLogger<LedgerRetentionService>.Instance);

        var results = await service.RunOnceAsync(CancellationToken.None);

        Assert.That(results.Single(r => r.Kind == LedgerKind.Tasks), Is.EqualTo(new PurgeResult(LedgerKind.Tasks, 1, 1, null)));
        Assert.That(await TaskIdsAsync(), Is.EqualTo(new[] { failed.Id }), "defaults: successes 30 days, failures 90 days");
    }

    [Test]
    public async Task AddJobLogRetention_RunsAsAHostedService()
    {
        await using var host = await LedgerHost.StartAsync(
            await Ledgers.CreateAsync(provider),
            services: s => s.AddJobLogRetention(o =>
            {
                o.Interval = TimeSpan.FromMilliseconds(200);
                o.Tasks.Failed = null;
            }));
        var ok = Task("ok-40d", TaskState.Succeeded, 40);
        var failed = Task("failed-400d", TaskState.Failed, 400);
        await host.QueryAsync(async db =>
        {
            db.AddRange(ok, failed);
            return await db.SaveChangesAsync();
        });

        await LedgerHost.EventuallyAsync(
            async () => await host.QueryAsync(db => db.TaskLogs.AnyAsync(t => t.Id == ok.Id)) == false,
            because: "the retention service deletes the old success");

        Assert.That(await host.QueryAsync(db => db.TaskLogs.Select(t => t.Id).ToListAsync()), Is.EqualTo(new[] { failed.Id }), "failures kept forever when told");
    }

    [Test]
    public void AddJobLogRetention_WithANegativePeriod_FailsStartUp()
    {
        Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(async () =>
        {
            await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s => s.AddJobLogRetention(o => o.Commands.Succeeded = TimeSpan.FromDays(-1)));
        });
    }

    [TestCase("{\"Id\":\"33333333-3333-3333-3333-333333333333\",\"Name\":", "line 2")]
    [TestCase("{\"Id\":\"not-a-guid\",\"Name\":\"T\"}", "line 2")]
    [TestCase("{\"Id\":\"33333333-3333-3333-3333-333333333333\",\"Name\":\"T\",\"DispatchedAt\":12345}", "line 2")]
    [TestCase("{\"Id\":\"33333333-3333-3333-3333-333333333333\",\"Name\":\"T\",\"DispatchedAt\":\"2026-01-01T00:00:00Z\",\"State\":999}", "State")]
    [TestCase("{\"Id\":\"33333333-3333-3333-3333-333333333333\",\"Name\":null,\"DispatchedAt\":\"2026-01-01T00:00:00Z\",\"State\":3}", "Name")]
    [TestCase("{\"Id\":\"33333333-3333-3333-3333-333333333333\",\"Name\":\"" + Long + "\",\"DispatchedAt\":\"2026-01-01T00:00:00Z\",\"State\":3}", "Name is 251 characters long")]
    public async Task Restore_OfABackupWithARowItCannotRead_ExitsWith2_SaysWhere_AndRestoresNothing(string row, string where)
    {
        Directory.CreateDirectory(_backup);
        var file = Path.Combine(_backup, "edited.jsonl.gz");
        await using (var gzip = new StreamWriter(new GZipStream(File.Create(file), CompressionLevel.Fastest)))
        {
            await gzip.WriteLineAsync("{\"format\":\"joblog-backup\",\"version\":1,\"kind\":\"tasks\",\"createdAt\":\"2026-12-04T20:13:12Z\"}");
            await gzip.WriteLineAsync(row);
        }

        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Cli.Cli.RunAsync(["restore", .. Settings, file], CliConsole.Redirected(output, error), recordCommand: false);

        Assert.That(exit, Is.EqualTo(2), output + "\n" + error);
        Assert.That(error.ToString(), Does.Contain("edited.jsonl.gz").And.Contain(where).And.Not.Contain("   at "));
        Assert.That(await _host.QueryAsync(db => db.TaskLogs.CountAsync()), Is.Zero);
    }

    [Test]
    public async Task Restore_OfABackupWithALineLongerThanItReads_ExitsWith2_WithoutHoldingTheLine()
    {
        // A small gzip that expands to one enormous line: the line is refused once it passes the bound, not read whole.
        Directory.CreateDirectory(_backup);
        var file = Path.Combine(_backup, "bomb.jsonl.gz");
        var head = "{\"Id\":\"33333333-3333-3333-3333-333333333333\",\"Name\":\"T\",\"DispatchedAt\":\"2026-01-01T00:00:00Z\",\"State\":3,\"Input\":\""u8.ToArray();
        var tail = "\"}\n"u8.ToArray();
        await using (var gzip = new GZipStream(File.Create(file), CompressionLevel.Fastest))
        {
            await gzip.WriteAsync("{\"format\":\"joblog-backup\",\"version\":1,\"kind\":\"tasks\",\"createdAt\":\"2026-12-04T20:13:12Z\"}\n"u8.ToArray());
            await gzip.WriteAsync(head);
            var chunk = new byte[1 << 20];
            Array.Fill(chunk, (byte)'a');
            for (long left = LedgerBackup.MaxLineBytes + 1L - head.Length - (tail.Length - 1); left > 0; left -= chunk.Length)
            {
                await gzip.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, left)));
            }

            await gzip.WriteAsync(tail);
        }

        Assert.That(new FileInfo(file).Length, Is.LessThan(LedgerBackup.MaxLineBytes / 64), "a small file");
        using var output = new StringWriter();
        using var error = new StringWriter();
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var exit = await Cli.Cli.RunAsync(["restore", .. Settings, file], CliConsole.Redirected(output, error), recordCommand: false);
        allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;

        Assert.That(exit, Is.EqualTo(2), output + "\n" + error);
        Assert.That(error.ToString(), Does.Contain("bomb.jsonl.gz, line 2").And.Contain("longer than").And.Not.Contain("   at "));
        Assert.That(allocated, Is.LessThan(3L * LedgerBackup.MaxLineBytes), "bytes allocated by the restore");
        Assert.That(await _host.QueryAsync(db => db.TaskLogs.CountAsync()), Is.Zero);
    }

    [Test]
    public async Task Restore_OfAFileThatIsNotGzip_ExitsWith2_NamingTheFile()
    {
        // It said only "error: The archive entry was compressed using an unsupported compression method.".
        Directory.CreateDirectory(_backup);
        var file = Path.Combine(_backup, "plain.jsonl.gz");
        await File.WriteAllTextAsync(file, "{\"format\":\"joblog-backup\",\"version\":1,\"kind\":\"tasks\"}\n");

        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Cli.Cli.RunAsync(["restore", .. Settings, file], CliConsole.Redirected(output, error), recordCommand: false);

        Assert.That(exit, Is.EqualTo(2), output + "\n" + error);
        Assert.That(error.ToString(), Does.Contain("plain.jsonl.gz").And.Contain("gzip").And.Not.Contain("   at "));
    }

    private const string Long = "TTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT"; // one more than a task name's 250

    [Test]
    public async Task Restore_CleansTextAsTheWriterDoes()
    {
        // A NUL in a hand-made backup: PostgreSQL refuses it (22021) after the batches before it were written. (A lone
        // surrogate is refused by the JSON reader, with the file and line.)
        Directory.CreateDirectory(_backup);
        var file = Path.Combine(_backup, "dirty.jsonl.gz");
        await using (var gzip = new StreamWriter(new GZipStream(File.Create(file), CompressionLevel.Fastest)))
        {
            await gzip.WriteLineAsync("{\"format\":\"joblog-backup\",\"version\":1,\"kind\":\"tasks\",\"createdAt\":\"2026-12-04T20:13:12Z\"}");
            await gzip.WriteLineAsync("{\"Id\":\"33333333-3333-3333-3333-333333333333\",\"Name\":\"T\",\"DispatchedAt\":\"2026-01-01T00:00:00Z\",\"State\":3,\"Input\":\"a\\u0000b\"}");
        }

        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Cli.Cli.RunAsync(["restore", .. Settings, file], CliConsole.Redirected(output, error), recordCommand: false);

        Assert.That(exit, Is.Zero, output + "\n" + error);
        Assert.That(await _host.QueryAsync(db => db.TaskLogs.Select(t => t.Input).SingleAsync()), Is.EqualTo("ab"));
    }

    [Test]
    public async Task Purge_WithABackupDirectoryItCannotCreate_ExitsWith2_AndDeletesNothing()
    {
        var old = _now.AddDays(-40);
        await _host.QueryAsync(db =>
        {
            db.CommandLogs.Add(new CommandLog { Id = Guid.NewGuid(), Name = "old", Start = old, Stop = old, IsSuccessful = true, ExitCode = 0, Host = "h" });
            return db.SaveChangesAsync();
        });
        var file = Path.GetTempFileName();
        using var output = new StringWriter();
        using var error = new StringWriter();

        // A directory below a regular file cannot be created.
        var exit = await Cli.Cli.RunAsync(
            ["purge", "--type", "commands", "--older-than", "30d", "--backup", Path.Combine(file, "sub"), .. Settings], CliConsole.Redirected(output, error), recordCommand: false);
        File.Delete(file);

        Assert.That(exit, Is.EqualTo(2), output + "\n" + error);
        Assert.That(error.ToString(), Does.Contain("--backup").And.Not.Contain("   at "));
        Assert.That(await _host.QueryAsync(db => db.CommandLogs.CountAsync()), Is.EqualTo(1), "nothing deleted");
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
