using JobLog.Sweeping;
using JobLog.Worker.Demo;
using JobLog.Worker.DemoHttp;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Worker.Cli;

/// <summary>The Worker's command line: <c>run</c> (default), <c>demo</c>, <c>sweep</c>, <c>migrate</c>, <c>help</c>.</summary>
internal static class Cli
{
    public const string Usage = $"""
        JobLog worker

        Usage: JobLog.Worker [command] [options]

        Commands:
          run [--demo]      Run the worker with its dashboard (default). --demo publishes demo tasks at start.
          demo              Run the demo tasks to completion and print the ledger's counts by state.
          sweep             Expire stale tasks once and exit.
          migrate           Create or migrate the ledger schema and exit.
        {TasksCommand.Usage}
        {PurgeCommand.Usage}
          help              Show this text.

        Settings (appsettings.json, environment variables or --Key=Value):
          ConnectionStrings:JobLog   ledger connection string (default: Data Source=joblog.db)
          JobLog:Database            sqlite (default) or postgres
          RabbitMq:Host              use RabbitMQ instead of the in-memory transport
          urls                       where the dashboard listens (default: http://127.0.0.1:5080)
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        var command = args.Length > 0 && !args[0].StartsWith('-') ? args[0].ToLowerInvariant() : "run";
        var rest = args.Length > 0 && !args[0].StartsWith('-') ? args[1..] : args;
        try
        {
            return await LoggedAsync(command, rest, async ledger => command switch
            {
                "run" => await RunWorkerAsync(rest),
                "demo" => await DemoAsync(rest),
                "sweep" => await SweepAsync(rest, ledger),
                "migrate" => await MigrateAsync(rest, ledger),
                "tasks" => await TasksCommand.ListAsync(rest, TerminalWriter.Wrap(Console.Out)),
                "task" => await TasksCommand.ShowAsync(rest, TerminalWriter.Wrap(Console.Out)),
                "purge" => await PurgeCommand.PurgeAsync(rest, TerminalWriter.Wrap(Console.Out)),
                "restore" => await PurgeCommand.RestoreAsync(rest, TerminalWriter.Wrap(Console.Out)),
                "help" or "--help" or "-h" => Help(),
                _ => Unknown(command),
            });
        }
        catch (InvalidOperationException ex) when (ex.Source?.StartsWith("JobLog", StringComparison.Ordinal) == true)
        {
            await Console.Error.WriteLineAsync("error: " + ex.Message);
            return 2;
        }
    }

    /// <summary>
    /// Runs a one-shot command through <see cref="CommandLogger"/> as executed from the command line: its console output,
    /// exit code and error land in the ledger (a writer runs for the command and drains before exit). The worker itself
    /// (<c>run</c>) and <c>help</c> are excluded (<see cref="WorkerApp.AddLedger"/>). The body gets the ledger's services
    /// (null when the settings cannot make one): a command that migrates must use their schema, which the command's own
    /// record waits for, rather than migrate the same database a second time at the same moment.
    /// </summary>
    private static async Task<int> LoggedAsync(string command, string[] args, Func<ServiceProvider?, Task<int>> body)
    {
        ServiceProvider ledger;
        try
        {
            ledger = LedgerOnly(args);
        }
        catch (InvalidOperationException)
        {
            // Settings the ledger cannot use: the command runs unlogged and reports them itself if it needs them.
            return await body(null);
        }

        await using (ledger)
        {
            var commands = ledger.GetRequiredService<CommandLogger>();
            if (commands.IsExcluded(command))
            {
                return await body(ledger);
            }

            var writer = ledger.GetRequiredService<JobLog.Recording.LedgerWriter>();
            await writer.StartAsync(CancellationToken.None);
            try
            {
                return await commands.RunAsync(command, args, _ => body(ledger), executedFromCommandLine: true);
            }
            finally
            {
                await writer.StopAsync(CancellationToken.None);
            }
        }
    }

    private static int Help()
    {
        Console.WriteLine(Usage);
        return 0;
    }

    private static int Unknown(string command)
    {
        Console.Error.WriteLine($"error: unknown command '{command}'.");
        Console.Error.WriteLine(Usage);
        return 2;
    }

    private static async Task<int> RunWorkerAsync(string[] args)
    {
        var demo = args.Contains("--demo");
        var app = WorkerApp.Build(args.Where(a => a != "--demo").ToArray());
        if (demo)
        {
            app.Lifetime.ApplicationStarted.Register(() => _ = Task.Run(async () =>
            {
                var bus = app.Services.GetRequiredService<IBus>();
                var count = await DemoPublisher.PublishAsync(bus, 3, app.Lifetime.ApplicationStopping);
                await DemoHttpEndpoints.ExerciseAsync(app.Services, app.Lifetime.ApplicationStopping);
                app.Logger.LogInformation("Published {Count} demo tasks; open {Url}/joblog", count, app.Urls.FirstOrDefault());
            }));
        }

        await app.RunAsync();
        return 0;
    }

    private static async Task<int> DemoAsync(string[] args)
    {
        var app = WorkerApp.Build(args, b => b.WebHost.UseUrls("http://127.0.0.1:0"));
        await app.StartAsync();
        try
        {
            var bus = app.Services.GetRequiredService<IBus>();
            var clock = app.Services.GetRequiredService<TimeProvider>();
            var started = clock.GetUtcNow().UtcDateTime;
            var count = await DemoPublisher.PublishAsync(bus, 1, CancellationToken.None);
            Console.WriteLine($"Published {count} demo tasks; waiting for them to finish…");
            Console.WriteLine($"Sent {await DemoHttpEndpoints.ExerciseAsync(app.Services, CancellationToken.None)} demo HTTP requests.");
            var factory = app.Services.GetRequiredService<IServiceScopeFactory>();
            var deadline = clock.GetUtcNow().UtcDateTime.AddSeconds(30);
            Dictionary<TaskState, int> counts;
            do
            {
                await Task.Delay(500);
                await app.Services.GetRequiredService<JobLog.Recording.LedgerRecorder>().FlushAsync(TimeSpan.FromSeconds(5));
                await app.Services.GetRequiredService<TaskLogSweeper>().SweepOnceAsync(CancellationToken.None);
                await using var scope = factory.CreateAsyncScope();
                var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
                counts = await db.TaskLogs.Where(t => t.DispatchedAt >= started.AddSeconds(-1))
                    .GroupBy(t => t.State).Select(g => new { g.Key, Count = g.Count() })
                    .ToDictionaryAsync(g => g.Key, g => g.Count);
            }
            while (clock.GetUtcNow().UtcDateTime < deadline && (counts.GetValueOrDefault(TaskState.Waiting) + counts.GetValueOrDefault(TaskState.Active)
                + counts.GetValueOrDefault(TaskState.Retried) > 0 || counts.GetValueOrDefault(TaskState.Expired) == 0));

            Console.WriteLine("Tasks by state:");
            foreach (var state in Enum.GetValues<TaskState>())
            {
                Console.WriteLine($"  {state.ToString().ToUpperInvariant(),-10} {counts.GetValueOrDefault(state)}");
            }

            return 0;
        }
        finally
        {
            await app.StopAsync();
        }
    }

    private static async Task<int> SweepAsync(string[] args, ServiceProvider? ledger)
    {
        await using var own = ledger is null ? LedgerOnly(args) : null;
        var provider = ledger ?? own!;
        await provider.GetRequiredService<JobLog.Storage.LedgerSchema>().TryMigrateAsync(CancellationToken.None);
        var result = await provider.GetRequiredService<TaskLogSweeper>().SweepOnceAsync(CancellationToken.None);
        Console.WriteLine($"expired {result.Expired}, healed {result.Healed}");
        return 0;
    }

    private static async Task<int> MigrateAsync(string[] args, ServiceProvider? ledger)
    {
        await using var own = ledger is null ? LedgerOnly(args) : null;
        var provider = ledger ?? own!;
        await provider.GetRequiredService<JobLog.Storage.LedgerSchema>().TryMigrateAsync(CancellationToken.None);
        Console.WriteLine("ledger schema is up to date");
        return 0;
    }

    /// <summary>The ledger's services without the bus or the web server (for one-shot commands).</summary>
    internal static ServiceProvider LedgerOnly(string[] args)
    {
        var configuration = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddLogging(l => l.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning));
        WorkerApp.AddLedger(services, configuration, WorkerSettings.From(configuration));
        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true, ValidateOnBuild = true });
    }
}
