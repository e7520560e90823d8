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
    public static async Task<int> RunAsync(CliContext context, CancellationToken cancellationToken)
    {
        var output = context.Console.Out;
        var app = WorkerApp.Build([.. context.Settings], b => b.WebHost.UseUrls("http://127.0.0.1:0"));
        // The web host's console lifetime takes SIGINT and SIGTERM (it stops the application, and the process would wait
        // for the demo's 30 s): the demo stops with the application, and exits with the signal's code (128 + signal).
        var signal = 0;
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => signal = 130);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => signal = 143);
        await app.StartAsync(cancellationToken);
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, app.Lifetime.ApplicationStopping);
        var ct = stopping.Token;
        try
        {
            var time = app.Services.GetRequiredService<TimeProvider>();
            var maintenance = app.Services.GetRequiredService<LedgerMaintenance>();
            var bus = app.Services.GetRequiredService<IBus>();
            var started = time.GetUtcNow().UtcDateTime;
            var count = await DemoPublisher.PublishAsync(bus, 1, ct);
            await output.WriteLineAsync($"Published {count} demo tasks; waiting for them to finish…");
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
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            await output.WriteLineAsync("Stopped before the demo tasks finished.");
            return signal == 0 ? 130 : signal;
        }
        finally
        {
            await app.StopAsync();
        }
    }
}
