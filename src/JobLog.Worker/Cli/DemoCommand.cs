using System.Runtime.InteropServices;
using JobLog.Maintenance;
using JobLog.Worker.Demo;
using JobLog.Worker.DemoHttp;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Worker.Cli;

/// <summary><c>demo</c>: runs the demo tasks to completion and prints the ledger's counts by state.</summary>
internal static class DemoCommand
{
    /// <param name="context">The console and the settings.</param>
    /// <param name="cancellationToken">Stops the demo.</param>
    /// <param name="configure">Adjusts the demo's application (tests).</param>
    public static async Task<int> RunAsync(CliContext context, CancellationToken cancellationToken, Action<WebApplicationBuilder>? configure = null)
    {
        var output = context.Console.Out;
        // Disposed at the end: with it its services, among them SignalLifetime, whose signal handlers would otherwise
        // stay registered (and swallow Ctrl+C) after the demo returned.
        await using var app = WorkerApp.Build([.. context.Settings], b =>
        {
            b.WebHost.UseUrls("http://127.0.0.1:0");
            b.Services.AddSingleton<SignalLifetime>();
            b.Services.AddSingleton<IHostLifetime>(s => s.GetRequiredService<SignalLifetime>());
            configure?.Invoke(b);
        });
        var signals = app.Services.GetRequiredService<SignalLifetime>();
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, app.Lifetime.ApplicationStopping);
        var ct = stopping.Token;
        try
        {
            // In the try: the host's start ends with an OperationCanceledException when the application stops while it starts.
            await app.StartAsync(cancellationToken);
            var time = app.Services.GetRequiredService<TimeProvider>();
            var maintenance = app.Services.GetRequiredService<LedgerMaintenance>();
            var bus = app.Services.GetRequiredService<IBus>();
            var started = time.GetUtcNow().UtcDateTime;
            var count = await DemoPublisher.PublishAsync(bus, 1, ct);
            await output.WriteLineAsync($"Published {count} demo tasks; waiting for them to finish (at most 30 s; Ctrl+C stops)…");
            await output.WriteLineAsync($"Sent {await DemoHttpEndpoints.ExerciseAsync(app.Services, ct)} demo HTTP requests.");
            var deadline = started.AddSeconds(30);
            Dictionary<TaskState, int> counts;
            do
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500), time, ct);
                await maintenance.FlushAsync(TimeSpan.FromSeconds(5));
                await maintenance.SweepAsync();
                await using var scope = app.Services.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
                counts = await db.TaskLogs.Where(t => t.DispatchedAt >= started.AddSeconds(-1))
                    .GroupBy(t => t.State).Select(g => new { g.Key, Count = g.Count() })
                    .ToDictionaryAsync(g => g.Key, g => g.Count, ct);
            }
            while (time.GetUtcNow().UtcDateTime < deadline && (counts.GetValueOrDefault(TaskState.Waiting) + counts.GetValueOrDefault(TaskState.Active)
                + counts.GetValueOrDefault(TaskState.Retried) > 0 || counts.GetValueOrDefault(TaskState.Expired) == 0));

            await output.WriteLineAsync("Tasks by state:");
            foreach (var state in Enum.GetValues<TaskState>())
            {
                await output.WriteLineAsync($"  {state.ToString().ToUpperInvariant(),-10} {counts.GetValueOrDefault(state)}");
            }

            return 0;
        }
        catch (OperationCanceledException) when (app.Lifetime.ApplicationStopping.IsCancellationRequested)
        {
            if (signals.ExitCode is { } code)
            {
                await output.WriteLineAsync("Stopped before the demo tasks finished.");
                return code;
            }

            await output.WriteLineAsync("Stopped before the demo tasks finished: the application stopped on its own, not by a signal (its log says why).");
            return 1;
        }
        finally
        {
            await app.StopAsync();
        }
    }

    /// <summary>
    /// The demo's host lifetime, in place of the console lifetime: SIGINT, SIGQUIT and SIGTERM stop the application (the
    /// process would otherwise wait for the demo's 30 s) once the signal's exit code (128 + signal) is set, so the demo,
    /// which stops with the application, knows whether a signal stopped it. With both lifetimes' handlers on a signal, in
    /// no set order, the application could stop before the demo's handler had run. An application that stopped with no
    /// signal (a background service that failed) is a failure: exit 1.
    /// </summary>
    private sealed class SignalLifetime(IHostApplicationLifetime lifetime) : IHostLifetime, IDisposable
    {
        private PosixSignalRegistration[] _registrations = [];
        private volatile int _exitCode;

        /// <summary>128 + the signal that stopped the application; null while none has.</summary>
        public int? ExitCode => _exitCode == 0 ? null : _exitCode;

        public Task WaitForStartAsync(CancellationToken cancellationToken)
        {
            _registrations = [Register(PosixSignal.SIGINT, 130), Register(PosixSignal.SIGQUIT, 131), Register(PosixSignal.SIGTERM, 143)];
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public void Dispose()
        {
            foreach (var registration in _registrations)
            {
                registration.Dispose();
            }
        }

        private PosixSignalRegistration Register(PosixSignal signal, int code) => PosixSignalRegistration.Create(signal, context =>
        {
            context.Cancel = true;
            _exitCode = code;
            lifetime.StopApplication();
        });
    }
}
