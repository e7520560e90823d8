using System.Diagnostics;
using JobLog.Testing;
using JobLog.Worker.Cli;
using NUnit.Framework;

namespace JobLog.Worker.Tests.Hostile40;

/// <summary>
/// The CLI at its edges: hostile ledger text on every printing command, values at the ends of their range, a ledger
/// setting that names a directory or a file that is not a ledger, and output piped to a reader that stopped reading.
/// </summary>
public class CliEdgeTests
{
    // OSC (retitle; OSC 8 hyperlink; OSC 52 writes the clipboard), CSI (clear, colour), a C1 CSI, BEL, DEL, a bidi override.
    private const string Hostile = "Evil\u001b]0;pwned\u0007\u001b]8;;http://evil.example\u001b\\link\u001b]8;;\u001b\\\u001b]52;c;cm0gLXJmIH4=\u0007\u001b[2J\u001b[31m\u009b31m\u007f\u202eexe.txt";

    private static async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Cli.Cli.RunAsync(args, CliConsole.Redirected(output, error), recordCommand: false);
        return (exit, output.ToString(), error.ToString());
    }

    private static IEnumerable<char> RawControls(string text) =>
        text.Where(c => c is not ('\n' or '\r') && (char.IsControl(c) || c is >= '\u202a' and <= '\u202e' or >= '\u2066' and <= '\u2069'));

    [Test]
    public async Task EveryPrintingCommand_OverHostileLedgerText_PrintsNoRawControlCharacter()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var at = DateTime.UtcNow.AddMinutes(-2);
        var task = new TaskLog
        {
            Id = Guid.NewGuid(), Name = "Pay" + Hostile, QueueName = "q" + Hostile, Input = "Input=" + Hostile, DispatchedAt = at, Start = at, Stop = at,
            State = TaskState.Failed, Host = "h" + Hostile, Release = "r" + Hostile, ErrorMessage = "dispatch " + Hostile,
        };
        task.Runs.Add(new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, QueueName = task.QueueName, ConsumerType = "C" + Hostile, Start = at, Stop = at,
            State = TaskRunState.Failed, ErrorMessage = "Shop.Declined" + Hostile + ": " + Hostile + "\n   at Shop.Pay" + Hostile + ".Handle()",
            Output = "line 1\n" + Hostile,
        });
        await host.QueryAsync(db =>
        {
            db.Add(task);
            db.Add(new HostLog { InstanceId = Guid.NewGuid(), Name = "m" + Hostile, ProcessId = 1, Release = "r" + Hostile, StartedAt = at, LastHeartbeat = at });
            return db.SaveChangesAsync();
        });
        var settings = "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString;
        List<string[]> lines =
        [
            ["tasks", settings], ["tasks", "--json", settings], ["task", task.Id.ToString(), settings],
            ["task", task.Id.ToString(), "--json", settings], ["hosts", settings], ["hosts", "--json", settings],
        ];
        foreach (var by in new[] { "exception", "type", "queue" })
        {
            var (exit, json, error) = await RunAsync("failures", "--by", by, "--json", settings);
            Assert.That(exit, Is.Zero, error);
            var groups = System.Text.RegularExpressions.Regex.Matches(json, "\"id\":\"([^\"]+)\"").Select(m => m.Groups[1].Value).ToList();
            Assert.That(groups, Is.Not.Empty, json);
            lines.Add(["failures", "--by", by, settings]);
            lines.AddRange(groups.Select(g => new[] { "failures", "--by", by, "--group", g, settings }));
        }

        foreach (var args in lines)
        {
            var (exit, output, error) = await RunAsync(args);

            Assert.That(exit, Is.Zero, string.Join(" ", args[..^1]) + ": " + error);
            Assert.That(RawControls(output + error).Select(c => (int)c), Is.Empty, string.Join(" ", args[..^1]) + ": " + output);
            Assert.That(output, Does.Contain("Evil").And.Contain("pwned"), string.Join(" ", args[..^1]) + ": the text is shown, escaped");
        }
    }

    [TestCase("tasks", "--from", "0001-01-01T00:00:00Z", "--to", "9999-12-31T23:59:59.9999999Z")]
    [TestCase("tasks", "--from", "0001-01-01", "--limit", "500")]
    [TestCase("tasks", "--since", "36500d", "--state", "failed")]
    [TestCase("tasks", "--since", "1s", "--limit", "1")]
    [TestCase("tasks", "--cursor", "0-00000000000000000000000000000000")]
    [TestCase("hosts", "--from", "0001-01-01T00:00:00Z", "--to", "9999-12-31T23:59:59Z", "--limit", "500")]
    [TestCase("failures", "--since", "36500d", "--by", "queue")]
    [TestCase("purge", "--type", "all", "--older-than", "36500d", "--batch-size", "100000")]
    [TestCase("purge", "--type", "tasks", "--older-than", "1s", "--failed-older-than", "never", "--batch-size", "1", "--dry-run")]
    public async Task AValueAtTheEndOfItsRange_IsTaken_AndAnswers(params string[] args)
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var at = DateTime.UtcNow.AddDays(-2);
        await host.QueryAsync(db =>
        {
            db.Add(new TaskLog { Id = Guid.NewGuid(), Name = "Old", DispatchedAt = at, Start = at, Stop = at, State = TaskState.Failed });
            return db.SaveChangesAsync();
        });

        var (exit, output, error) = await RunAsync([.. args, "--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString]);

        Assert.That(exit, Is.Zero, output + error);
        Assert.That(error, Does.Not.Contain("   at "));
    }

    // Not /dev/null: as root, SQLite's journal and JobLog's migration lock would be made beside it, in /dev.
    [TestCase("a directory")]
    [TestCase("a text file")]
    public async Task ALedgerSettingNamingSomethingThatIsNotALedger_ExitsWith1_InALineThatNamesTheFile(string what)
    {
        var directory = Directory.CreateTempSubdirectory("joblog-hostile40-");
        try
        {
            var path = what == "a directory" ? directory.FullName : Path.Combine(directory.FullName, "passwd");
            if (what == "a text file")
            {
                await File.WriteAllTextAsync(path, string.Concat(Enumerable.Repeat("root:x:0:0:root:/root:/bin/bash\n", 200)));
            }

            foreach (var command in new[] { "tasks", "failures", "migrate" })
            {
                var (exit, output, error) = await RunAsync(command, "--ConnectionStrings:JobLog=Data Source=" + path);

                Assert.That(exit, Is.EqualTo(1), command + ": " + output + error);
                Assert.That(error.TrimEnd().Split('\n'), Has.Length.EqualTo(1), command + ": " + error);
                Assert.That(error, Does.Contain(path).And.Not.Contain("   at "), command + ": the line names the file");
            }

            if (what == "a text file")
            {
                Assert.That((await File.ReadAllTextAsync(path)).Length, Is.EqualTo(200 * 32), "the file is left as it was");
            }
        }
        finally
        {
            directory.Delete(recursive: true);
            // Before session 41 the migration's lock file was made beside the ledger's path, here beside the directory, and kept.
            File.Delete(directory.FullName + ".joblog-migrate.lock");
        }
    }

    [Test]
    public async Task OutputPipedToAReaderThatStops_ExitsQuietly_WithoutAStackTrace()
    {
        // `joblog task ID | head -1`: the reader closes the pipe after a line, while a megabyte of error is still to come.
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var at = DateTime.UtcNow.AddMinutes(-2);
        var task = new TaskLog
        {
            Id = Guid.NewGuid(), Name = "Big", DispatchedAt = at, Start = at, Stop = at, State = TaskState.Failed, ErrorMessage = "E" + new string('e', 1024 * 1024),
        };
        task.Runs.Add(new TaskRunLog
        {
            Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, ConsumerType = "C", Start = at, Stop = at, State = TaskRunState.Failed,
            ErrorMessage = "X" + string.Concat(Enumerable.Repeat("line of an error\n", 100_000)), Output = string.Concat(Enumerable.Repeat("output\n", 100_000)),
        });
        await host.QueryAsync(db =>
        {
            db.Add(task);
            for (var i = 0; i < 600; i++)
            {
                db.Add(new TaskLog { Id = Guid.NewGuid(), Name = "Row" + i + new string('n', 100), Input = new string('i', 300), DispatchedAt = at, State = TaskState.Succeeded });
            }

            return db.SaveChangesAsync();
        });

        foreach (var args in new[] { new[] { "task", task.Id.ToString() }, ["tasks", "--limit", "500"] })
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "JobLog.Worker.dll"));
            foreach (var arg in args)
            {
                start.ArgumentList.Add(arg);
            }

            start.ArgumentList.Add("--ConnectionStrings:JobLog=" + host.Ledger.ConnectionString);
            using var process = Process.Start(start)!;
            var error = process.StandardError.ReadToEndAsync();
            var first = await process.StandardOutput.ReadLineAsync();
            process.StandardOutput.Close();
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            try
            {
                await process.WaitForExitAsync(bound.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                Assert.Fail($"{args[0]}: still running 120 s after its reader stopped");
            }

            Assert.That(first, Is.Not.Null.And.Not.Empty, args[0]);
            Assert.That(process.ExitCode, Is.Zero, args[0] + ": " + await error);
            Assert.That(await error, Is.Empty, args[0]);
        }
    }
}
