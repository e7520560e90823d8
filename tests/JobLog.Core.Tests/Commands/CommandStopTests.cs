using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NUnit.Framework;

namespace JobLog.Core.Tests.Commands;

/// <summary>
/// A console application's command stopped with Ctrl+C: the host's console lifetime turns SIGINT into
/// <c>StopApplication()</c>, which cancels <c>ApplicationStopping</c> (the token the command runs with) while the host
/// stops its services, JobLog's writer among them.
/// </summary>
[NonParallelizable]
public class CommandStopTests
{
    [Test]
    public async Task Command_CancelledByTheHostStopping_IsRecordedFinishedBeforeTheProcessEnds()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        var commands = host.Services.GetRequiredService<CommandLogger>();
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var command = commands.RunAsync("import", ["--file", "orders.csv"], async ct =>
        {
            Console.WriteLine("importing orders.csv");
            running.SetResult();
            await Task.Delay(Timeout.Infinite, ct);
            return 0;
        }, executedFromCommandLine: true, lifetime.ApplicationStopping);
        await running.Task;
        lifetime.StopApplication();
        var stopping = host.Host.StopAsync();

        Assert.CatchAsync<OperationCanceledException>(() => command, "the cancellation reaches the caller unchanged");
        await stopping;
        // What the ledger holds once the process is gone: read with the host stopped.
        var log = await host.QueryAsync(db => db.CommandLogs.AsNoTracking().SingleAsync());
        Assert.That(log.IsSuccessful, Is.False, "finished, not left running");
        Assert.That(log.Stop, Is.Not.Null);
        Assert.That(log.ExitCode, Is.Null);
        Assert.That(log.ErrorMessage, Does.StartWith("System.Threading.Tasks.TaskCanceledException: A task was canceled."));
        Assert.That(log.Output, Is.EqualTo("importing orders.csv\n"));
    }
}
