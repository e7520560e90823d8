using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary>A command run from a shell against a ledger it cannot reach: a process, as a user runs it.</summary>
public class UnreachableLedgerTests
{
    [TestCase("tasks")]
    [TestCase("failures")]
    [TestCase("hosts")]
    public async Task ReadOnlyCommand_OnAPostgreSqlThatDoesNotAnswer_SaysWhyInOneLine_AndExits1(string command)
    {
        // It printed about 200 lines of the start-up migration's retries (fail: LedgerSchema[1025] with their stack traces)
        // before its one-line error, and left its own record journaled for the next process.
        foreach (var (what, connectionString, reason) in new[]
        {
            ("nothing on the port", $"Host=127.0.0.1;Port={FreePort()};Username=joblog;Password=joblog;Database=x;Timeout=5", "Failed to connect"),
            ("no such database", "Host=127.0.0.1;Port=5432;Username=joblog;Password=joblog;Database=joblog_nosuchdb_s29;Timeout=5", "3D000"),
        })
        {
            var spool = Path.Combine(Path.GetTempPath(), "joblog-unreachable-" + Guid.NewGuid().ToString("N"));
            try
            {
                var (exit, output, error) = await RunWorkerAsync(
                    command, "--JobLog:Database=postgres", "--ConnectionStrings:JobLog=" + connectionString, "--JobLog:SpoolDirectory=" + spool);
                var lines = (output + error).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

                Assert.That(exit, Is.EqualTo(1), what);
                Assert.That(lines, Has.Length.EqualTo(1), $"{what}: one line\n{output}{error}");
                Assert.That(lines[0], Does.StartWith("error: ").And.Contain(reason), what);
            }
            finally
            {
                if (Directory.Exists(spool))
                {
                    Directory.Delete(spool, recursive: true);
                }
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<(int Exit, string Output, string Error)> RunWorkerAsync(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "JobLog.Worker.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        try
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
            return (process.ExitCode, await output, await error);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }
}
