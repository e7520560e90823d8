using System.Diagnostics;
using System.Text;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary>The worker (<c>run</c>, the default command) as a user runs it: a process, stopped from the terminal.</summary>
public class RunStopTests
{
    [Test]
    public async Task Run_StoppedByCtrlCWhileItStarts_StopsWithoutAnUnhandledException()
    {
        // Ctrl+C while the ledger's migration held the start (a slow disk, another process migrating) ended the process
        // with "Unhandled exception. System.OperationCanceledException" and its stack trace: the host's start throws when
        // the application stops during it, and the CLI let that through.
        Assume.That(!DemoStopTests.IgnoredHere(2), "SIGINT is ignored by this test process, so by the worker it starts");
        await using var ledger = TestLedger.Sqlite();
        // Another JobLog process migrating the ledger: the start waits for its lock (SqliteMigrationLock).
        var file = new SqliteConnectionStringBuilder(ledger.ConnectionString).DataSource;
        await using var migrating = new FileStream(file + ".joblog-migrate.lock", FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        using var worker = WorkerProcess.Start(
            "run", "--urls", "http://127.0.0.1:0", "--ConnectionStrings:JobLog=" + ledger.ConnectionString,
            "--Logging:LogLevel:Default=Warning", "--Logging:LogLevel:Microsoft.Extensions.Hosting=Debug");
        try
        {
            // The host's first line; its signal handlers are registered right after it, and the start then waits for the lock.
            await worker.SaidAsync("Hosting starting", TimeSpan.FromSeconds(120));
            await Task.Delay(TimeSpan.FromSeconds(3));
            await worker.SignalAsync("INT");

            var text = await worker.ExitedAsync(TimeSpan.FromSeconds(60));

            Assert.That(text, Does.Not.Contain("Unhandled exception"), text);
            Assert.That(text, Does.Contain("Stopped while starting"), text);
            Assert.That(worker.Process.ExitCode, Is.EqualTo(0), text);
        }
        finally
        {
            worker.Kill();
        }
    }

    [Test]
    public async Task Run_WithDemo_SaysAtOnceWhereTheDashboardIs_AndHowToStop()
    {
        // --demo said "open <url>/joblog" only after it had published and sent its HTTP requests, among the consumers'
        // logs and stack traces, and never how to stop the worker.
        Assume.That(!DemoStopTests.IgnoredHere(2), "SIGINT is ignored by this test process, so by the worker it starts");
        await using var ledger = TestLedger.Sqlite();
        using var worker = WorkerProcess.Start(
            "--demo", "--urls", "http://127.0.0.1:0", "--ConnectionStrings:JobLog=" + ledger.ConnectionString, "--Logging:LogLevel:Default=Warning",
            "--Logging:LogLevel:JobLog.Worker=Information");
        try
        {
            var line = await worker.SaidAsync("/joblog", TimeSpan.FromSeconds(120));

            Assert.That(line, Does.Match(@"open http://127\.0\.0\.1:[1-9][0-9]*/joblog\b"), line);
            Assert.That(line, Does.Contain("Ctrl+C stops the worker"), line);
            await worker.SignalAsync("INT");
            var text = await worker.ExitedAsync(TimeSpan.FromSeconds(60));
            Assert.That(worker.Process.ExitCode, Is.EqualTo(0), text);
        }
        finally
        {
            worker.Kill();
        }
    }

    /// <summary>The built JobLog.Worker.dll run by <c>dotnet</c>, its output collected line by line.</summary>
    private sealed class WorkerProcess : IDisposable
    {
        private readonly StringBuilder _output = new();
        private readonly List<(string Text, TaskCompletionSource<string> Said)> _waits = [];

        private WorkerProcess(Process process) => Process = process;

        public Process Process { get; }

        public static WorkerProcess Start(params string[] args)
        {
            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "JobLog.Worker.dll"));
            foreach (var arg in args)
            {
                start.ArgumentList.Add(arg);
            }

            var worker = new WorkerProcess(Process.Start(start)!);
            worker.Process.OutputDataReceived += (_, e) => worker.Add(e.Data);
            worker.Process.ErrorDataReceived += (_, e) => worker.Add(e.Data);
            worker.Process.BeginOutputReadLine();
            worker.Process.BeginErrorReadLine();
            return worker;
        }

        /// <summary>The first line that contains <paramref name="text"/>.</summary>
        public Task<string> SaidAsync(string text, TimeSpan timeout)
        {
            var said = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_output)
            {
                if (_output.ToString().Split('\n').FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal)) is { } line)
                {
                    return Task.FromResult(line);
                }

                _waits.Add((text, said));
            }

            return said.Task.WaitAsync(timeout);
        }

        public async Task SignalAsync(string signal)
        {
            using var kill = Process.Start("kill", ["-" + signal, Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync();
        }

        /// <summary>Waits for the exit; everything it wrote.</summary>
        public async Task<string> ExitedAsync(TimeSpan timeout)
        {
            await Process.WaitForExitAsync().WaitAsync(timeout);
            Process.WaitForExit();
            lock (_output)
            {
                return _output.ToString();
            }
        }

        public void Kill()
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
            }
        }

        public void Dispose() => Process.Dispose();

        private void Add(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (_output)
            {
                _output.AppendLine(line);
                foreach (var wait in _waits.Where(w => line.Contains(w.Text, StringComparison.Ordinal)).ToList())
                {
                    wait.Said.TrySetResult(line);
                    _waits.Remove(wait);
                }
            }
        }
    }
}
