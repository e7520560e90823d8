using System.Diagnostics;
using JobLog.Testing;
using JobLog.Worker.Cli;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary>The worker's <c>demo</c> command as a user runs it: a process, stopped from the terminal.</summary>
public class DemoStopTests
{
    [TestCase("INT", 130)]
    [TestCase("TERM", 143)]
    [TestCase("QUIT", 131)]
    public async Task Demo_StoppedBySignal_StopsAtOnce_WithoutItsSummary_AndExitsWithTheSignalsCode(string signal, int code)
    {
        // The web host's console lifetime took SIGINT and SIGTERM and the demo, which did not watch it, ran on to its end
        // (up to 30 s), printed its counts and exited 0, as if it had not been stopped.
        // A background job of a non-interactive shell (`cmd &`) starts with SIGINT and SIGQUIT ignored, and its children
        // inherit that: .NET then leaves them ignored (as nohup means), so a demo started from here cannot be stopped by
        // them, whatever it does (a clean-clone CI run in the background failed the QUIT case so). A user's terminal does
        // not ignore them; this environment says nothing about the demo.
        var number = signal switch { "INT" => 2, "QUIT" => 3, _ => 15 };
        Assume.That(!IgnoredHere(number), $"SIG{signal} is ignored by this test process, so by the demo it starts");
        var ledger = TestLedger.Sqlite();
        var worker = Path.Combine(AppContext.BaseDirectory, "JobLog.Worker.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { worker, "demo", "--ConnectionStrings:JobLog=" + ledger.ConnectionString, "--Logging:LogLevel:Default=Warning" })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var output = new System.Text.StringBuilder();
        var published = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }

            // At the publish, not after the HTTP requests that follow it: the demo cannot end before its stale task expires,
            // 4 s after the publish, while the requests may take most of that (a clean-clone CI run signalled after them,
            // when the demo was one loop from its summary, and read the summary).
            if (e.Data?.StartsWith("Published ", StringComparison.Ordinal) == true)
            {
                published.TrySetResult();
            }
        };
        process.BeginOutputReadLine();
        var errors = process.StandardError.ReadToEndAsync();
        try
        {
            await published.Task.WaitAsync(TimeSpan.FromSeconds(60));
            using (var kill = Process.Start("kill", ["-" + signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }

            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            string text;
            lock (output)
            {
                text = output.ToString();
            }

            Assert.That(text, Does.Not.Contain("Tasks by state:"), "stopped before its summary\n" + text + await errors);
            Assert.That(text, Does.Contain("Stopped before the demo tasks finished."));
            Assert.That(text, Does.Contain("waiting for them to finish (at most 30 s; Ctrl+C stops)"), "it said how to stop it");
            Assert.That(process.ExitCode, Is.EqualTo(code));
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            await ledger.DisposeAsync();
        }
    }

    [TestCase(true)]
    [TestCase(false)]
    public async Task Demo_StoppedByTheApplicationItself_ExitsWith1_AndSaysSo(bool afterStart)
    {
        // A background service that fails stops the host (BackgroundServiceExceptionBehavior.StopHost): nothing signalled
        // the demo, yet it exited 130, the code of Ctrl+C, as if the user had stopped it. Failing while the host started,
        // it ended the host's start with an OperationCanceledException, which the CLI did not catch.
        await using var ledger = TestLedger.Sqlite();
        var output = new StringWriter();
        var context = new CliContext(
            CliConsole.Redirected(output), ["--ConnectionStrings:JobLog=" + ledger.ConnectionString, "--Logging:LogLevel:Default=None"], ["demo"], recordCommand: false);

        var exit = await DemoCommand.RunAsync(context, CancellationToken.None, b => b.Services.AddHostedService(s => new FailingService(s.GetRequiredService<IHostApplicationLifetime>(), afterStart)));

        Assert.That(exit, Is.EqualTo(1), output.ToString());
        Assert.That(output.ToString(), Does.Contain("the application stopped on its own").And.Not.Contain("Tasks by state:"));
    }

    [Test]
    public async Task Demo_WhenItEnds_DisposesItsApplication_SoItsSignalHandlersGoWithIt()
    {
        // The demo's SignalLifetime (SIGINT, SIGQUIT, SIGTERM: cancelled, the application stopped) is a service of the
        // demo's application, disposed with it: the application was never disposed, so the handlers stayed registered
        // after the demo returned and the process ignored Ctrl+C from then on. A probe of the same container shows it.
        await using var ledger = TestLedger.Sqlite();
        var output = new StringWriter();
        var context = new CliContext(
            CliConsole.Redirected(output), ["--ConnectionStrings:JobLog=" + ledger.ConnectionString, "--Logging:LogLevel:Default=None"], ["demo"], recordCommand: false);
        var probe = new DisposeProbe();

        var exit = await DemoCommand.RunAsync(context, CancellationToken.None, b =>
        {
            b.Services.AddSingleton<DisposeProbe>(_ => probe);
            b.Services.AddHostedService(s =>
            {
                _ = s.GetRequiredService<DisposeProbe>();
                return new FailingService(s.GetRequiredService<IHostApplicationLifetime>(), afterStart: true);
            });
        });

        Assert.That((exit, probe.Disposed), Is.EqualTo((1, true)), output.ToString());
    }

    private sealed class DisposeProbe : IDisposable
    {
        public bool Disposed { get; private set; }

        public void Dispose() => Disposed = true;
    }

    /// <summary>A background service that fails as soon as it runs, or once the application has started.</summary>
    private sealed class FailingService(IHostApplicationLifetime lifetime, bool afterStart) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using (lifetime.ApplicationStarted.Register(started.SetResult))
            {
                await (afterStart ? started.Task : Task.CompletedTask);
            }

            await Task.Yield();
            throw new InvalidOperationException("The service failed.");
        }
    }

    /// <summary>Whether <paramref name="signal"/> is ignored by this process (the SigIgn mask in /proc/self/status).</summary>
    internal static bool IgnoredHere(int signal) =>
        File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal)) is { } line
        && (ulong.Parse(line["SigIgn:".Length..].Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture) & (1UL << (signal - 1))) != 0;
}
