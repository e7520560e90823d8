using System.CommandLine;
using JobLog.Maintenance;
using JobLog.Worker.Demo;
using JobLog.Worker.DemoHttp;
using MassTransit;

namespace JobLog.Worker.Cli;

/// <summary>
/// The Worker's command line, on System.CommandLine (help, completion, parse errors and their exit codes come from the
/// library): <c>run</c> (default), <c>demo</c>, <c>sweep</c>, <c>migrate</c>, <c>tasks</c>, <c>task</c>, <c>purge</c>,
/// <c>restore</c>, <c>hosts</c>, <c>help</c>. Settings (<c>--ConnectionStrings:JobLog=...</c>, any option whose name holds a
/// <c>:</c>) are taken out first and given to the configuration. A value the command cannot use exits with 2.
/// </summary>
internal static class Cli
{
    public const string Description = """
        JobLog worker: runs the demo worker with its dashboard, and reads and maintains the ledger.

        Settings (appsettings.json, environment variables or --Key=Value):
          ConnectionStrings:JobLog   ledger connection string (default: Data Source=joblog.db)
          JobLog:Database            sqlite (default) or postgres
          JobLog:<option>            any JobLogOptions property, e.g. JobLog:Durability=Committed,
                                     JobLog:Sweeper:Interval=00:00:10 (README: the options)
          RabbitMq:Host              use RabbitMQ instead of the in-memory transport
          urls                       where the dashboard listens (default: http://127.0.0.1:5080)
        """;

    public static Task<int> RunAsync(string[] args) => RunAsync(args, CliConsole.Standard());

    /// <summary>Runs a command line.</summary>
    /// <param name="args">The arguments.</param>
    /// <param name="console">Where it writes.</param>
    /// <param name="recordCommand">
    /// True (a user ran it from a shell): the command is recorded in the ledger; false when code calls a command.
    /// </param>
    public static async Task<int> RunAsync(string[] args, CliConsole console, bool recordCommand = true)
    {
        var (rest, settings) = CliSettings.Split(args);
        var context = new CliContext(console, settings, args, recordCommand);
        var root = Root(context);
        // SIGTERM is the host's to handle (a graceful stop: drain, flush the ledger, exit 0), not the parser's. Its parse
        // errors echo the arguments, which may be ledger text a script passed on: control characters as visible escapes.
        var invocation = new InvocationConfiguration
        {
            Output = console.Out, Error = TerminalWriter.Wrap(console.Error), EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null,
        };
        try
        {
            var parse = root.Parse(rest);
            var exit = await parse.InvokeAsync(invocation);
            // System.CommandLine says what it could not read (and the help) and exits 1; a usage error is 2 here, as
            // the commands' own are, so that 1 keeps meaning "not found" or "failed".
            return parse.Errors.Count > 0 && exit == 1 ? 2 : exit;
        }
        catch (Exception ex) when (ex is CliUsageException or Microsoft.Extensions.Options.OptionsValidationException
            || (ex is InvalidOperationException && ex.Source?.StartsWith("JobLog", StringComparison.Ordinal) == true))
        {
            await console.ErrorAsync(ex.Message);
            return 2;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Anything else (a ledger that cannot be opened or created, a disk that refuses): said in a line, exit 1, not
            // an unhandled exception (a stack trace and SIGABRT, exit 134). The host has logged the details.
            await console.ErrorAsync($"{ex.GetType().Name}: {ex.Message}{LedgerFile(ex, settings)}");
            return 1;
        }
    }

    /// <summary>
    /// SQLite's errors name no file (<c>SQLite Error 14: 'unable to open database file'</c>): with a directory, a text
    /// file or a device as the ledger, the line did not say which; it now ends <c>Ledger file: PATH (a directory).</c>
    /// </summary>
    private static string LedgerFile(Exception ex, IReadOnlyList<string> settings)
    {
        for (var inner = ex; inner is not null; inner = inner.InnerException)
        {
            if (inner is Microsoft.Data.Sqlite.SqliteException sqlite && LedgerSession.SqliteFile(settings) is { } path)
            {
                var what = Directory.Exists(path) ? " (a directory)" : File.Exists(path) ? "" : " (not there)";
                // SQLITE_CANTOPEN over a file that is there, no shared-memory file beside it: a WAL ledger (JobLog's) in a
                // directory SQLite cannot write (a read-only mount, another user's directory), where even a read-only
                // connection needs to create PATH-shm. Only an immutable connection reads it then.
                var hint = (sqlite.SqliteErrorCode & 0xFF) == 14 && what.Length == 0 && !File.Exists(path + "-shm")
                    ? $" SQLite reads a WAL ledger in a directory it cannot write only when opened immutable: Data Source=file:{path}?immutable=1 (for a ledger no process writes meanwhile)."
                    : "";
                return $" Ledger file: {path}{what}.{hint}";
            }
        }

        return "";
    }

    internal static RootCommand Root(CliContext context)
    {
        var demo = new Option<bool>("--demo") { Description = "Publish demo tasks and requests at start." };
        var urls = new Option<string?>("--urls") { Description = "Where the dashboard listens (default: " + WorkerSettings.DefaultUrls + ")." };
        var root = new RootCommand(Description) { demo, urls };
        root.SetAction((parse, ct) => RunWorkerAsync(parse, demo, urls, context));

        var run = new Command("run", "Run the worker with its dashboard (the default). Other options are passed to the web host.")
        {
            demo, urls,
        };
        run.TreatUnmatchedTokensAsErrors = false;
        run.SetAction((parse, ct) => RunWorkerAsync(parse, demo, urls, context));
        root.Subcommands.Add(run);

        var demoCommand = new Command("demo", "Run the demo tasks to completion and print the ledger's counts by state.");
        demoCommand.SetAction((_, ct) => context.WithLedgerAsync("demo", _ => DemoCommand.RunAsync(context, ct), ct, createsLedger: true));
        root.Subcommands.Add(demoCommand);

        var sweep = new Command("sweep", "Expire stale tasks, and the runs of hosts that stopped sending heartbeats, once and exit.");
        sweep.SetAction((_, ct) => context.WithLedgerAsync("sweep", async session =>
        {
            await session.Maintenance.MigrateAsync(ct);
            var result = await context.Console.WithProgressAsync(
                _ => "sweeping stale tasks…",
                progress => SweepAsync(session, progress, ct));
            await context.Console.Out.WriteLineAsync(result.HostRuns == 0
                ? $"expired {result.Expired}, healed {result.Healed}"
                : $"expired {result.Expired}, healed {result.Healed}, closed {result.HostRuns} runs of hosts that are gone");
            return 0;
        }, ct));
        root.Subcommands.Add(sweep);

        var migrate = new Command("migrate", "Create or migrate the ledger schema and exit.");
        migrate.SetAction((_, ct) => context.WithLedgerAsync("migrate", async session =>
        {
            await session.Maintenance.MigrateAsync(ct);
            await context.Console.Out.WriteLineAsync("ledger schema is up to date");
            return 0;
        }, ct, createsLedger: true));
        root.Subcommands.Add(migrate);

        var replay = new Command(
            "replay",
            "Write to the ledger the records that stopped processes left in the journal's directory (JobLog:SpoolDirectory), and exit.");
        replay.SetAction(async (_, ct) =>
        {
            JobLogOptions? options = null;
            var exit = await context.WithLedgerAsync("replay", async session =>
            {
                // The session's writer takes every segment no live process holds when it starts, and writes them before the
                // session ends (its stop drains them, or says where they stay when the database fails: warning 1007).
                options = session.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<JobLogOptions>>().Value;
                await session.Maintenance.MigrateAsync(ct);
                await session.StartAsync(ct);
                return 0;
            }, ct);
            if (exit != 0 || options?.SpoolDirectory is not { } directory)
            {
                return exit;
            }

            // Counted once the session ended: its own slot, which holds what its writer could not write, is free then.
            var left = LedgerMaintenance.CountJournalLeftOvers(options);
            await context.Console.Out.WriteLineAsync($"journal segments of this ledger left in {directory}: {left} (a live process's own are left to it)");
            if (left == 0)
            {
                return 0;
            }

            await context.Console.ErrorAsync("records stay in the journal, not written to the ledger: run replay again once the database takes them");
            return 1;
        });
        root.Subcommands.Add(replay);

        root.Subcommands.Add(TasksCommand.List(context));
        root.Subcommands.Add(TasksCommand.Show(context));
        root.Subcommands.Add(HostsCommand.List(context));
        root.Subcommands.Add(FailuresCommand.List(context));
        root.Subcommands.Add(PurgeCommand.Purge(context));
        root.Subcommands.Add(PurgeCommand.Restore(context));
        foreach (var failures in FailureCommands.All(context)) root.Subcommands.Add(failures);

        var help = new Command("help", "Show this text.");
        help.SetAction((_, ct) => root.Parse("--help").InvokeAsync(new InvocationConfiguration { Output = context.Console.Out }, ct));
        root.Subcommands.Add(help);
        return root;
    }

    private static async Task<JobLog.Sweeping.SweepResult> SweepAsync(LedgerSession session, IProgress<JobLog.Maintenance.MaintenanceProgress> progress, CancellationToken ct)
    {
        progress.Report(new("stale tasks", 0, null, IsFinished: false));
        var result = await session.Maintenance.SweepAsync(ct);
        progress.Report(new("stale tasks", result.Expired + result.Healed, result.Expired + result.Healed, IsFinished: true));
        return result;
    }

    private static async Task<int> RunWorkerAsync(ParseResult parse, Option<bool> demoOption, Option<string?> urlsOption, CliContext context)
    {
        // The web host reads what System.CommandLine did not: its own options and the settings.
        List<string> args = [.. parse.UnmatchedTokens, .. context.Settings];
        if (parse.GetValue(urlsOption) is { } urls)
        {
            args.Add("--urls=" + urls);
        }

        var app = WorkerApp.Build([.. args]);
        if (parse.GetValue(demoOption))
        {
            app.Lifetime.ApplicationStarted.Register(() => _ = Task.Run(async () =>
            {
                // First, before the consumers' logs and the failing demo tasks' stack traces: where to look, how to stop.
                app.Logger.LogInformation("Publishing the demo tasks and requests; open {Url}/joblog to watch them (Ctrl+C stops the worker).", app.Urls.FirstOrDefault());
                var bus = app.Services.GetRequiredService<IBus>();
                var count = await DemoPublisher.PublishAsync(bus, 3, app.Lifetime.ApplicationStopping);
                var requests = await DemoHttpEndpoints.ExerciseAsync(app.Services, app.Lifetime.ApplicationStopping);
                app.Logger.LogInformation("Published {Count} demo tasks and sent {Requests} demo HTTP requests.", count, requests);
            }));
        }

        // Taken now: RunAsync disposes the application, and its services with it, before its exception reaches this method.
        var stopping = app.Lifetime.ApplicationStopping;
        try
        {
            await app.RunAsync();
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Stopped (Ctrl+C, SIGTERM) while it started, e.g. while the migration waited: the host's start ends with
            // this exception; the stop was asked for, as a stop after the start is.
            await context.Console.Out.WriteLineAsync("Stopped while starting.");
        }

        return 0;
    }
}
