using JobLog.Maintenance;
using JobLog.Querying;

namespace JobLog.Worker.Cli;

/// <summary>
/// The ledger's services for a one-shot command, without the bus or the web server, through JobLog's public API only:
/// <c>AddJobLog</c> (the Worker's <see cref="WorkerApp.AddLedger"/>), its hosted services started and stopped around
/// the command, <see cref="CommandLogger"/>, <see cref="LedgerMaintenance"/> and <see cref="LedgerQueries"/>.
/// </summary>
internal sealed class LedgerSession : IAsyncDisposable
{
    private readonly ServiceProvider _services;
    private readonly List<IHostedService> _started = [];
    private readonly string? _missing;

    private LedgerSession(ServiceProvider services, string? missing)
    {
        _services = services;
        _missing = missing;
    }

    public IServiceProvider Services => _services;

    /// <exception cref="LedgerMissingException">The ledger file is not there (<see cref="MissingLedger"/>).</exception>
    public LedgerMaintenance Maintenance => Ledger().GetRequiredService<LedgerMaintenance>();

    public DateTime Now => _services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime;

    /// <summary>Builds the services from the settings (<c>--Key=Value</c>, appsettings.json, environment variables).</summary>
    /// <exception cref="InvalidOperationException">When the settings cannot make a ledger.</exception>
    public static LedgerSession Open(IReadOnlyList<string> settings) => new(Build(settings), null);

    /// <summary>
    /// The services of a ledger that <paramref name="missing"/> says is not there (<see cref="MissingLedger"/>): the
    /// session reads arguments and the time, and its first use of the ledger (<see cref="Maintenance"/>,
    /// <see cref="QueryAsync{T}"/>, <see cref="StartAsync"/>, <see cref="RunLoggedAsync"/>) throws
    /// <see cref="LedgerMissingException"/> with that text; nothing is created.
    /// </summary>
    public static LedgerSession Open(IReadOnlyList<string> settings, string? missing) => new(Build(settings), missing);

    /// <summary>
    /// Why there is no ledger to open (a line that names the path and says how to make one) when the settings name a
    /// SQLite file that is not there (a path, or a <c>file:</c> URI's), or a directory, or a SQLite database with no file
    /// (in memory: new and empty in each process, so a command has nothing to read or maintain); null when it is there, or
    /// for PostgreSQL. Only <c>migrate</c>, <c>demo</c> and the worker create a ledger.
    /// </summary>
    public static string? MissingLedger(IReadOnlyList<string> settings) => Sqlite(settings) switch
    {
        null => null,
        { Path: null } => "no ledger: ConnectionStrings:JobLog names an in-memory SQLite database, new and empty in each process, "
            + "so this command has nothing to read or maintain. Point it at the ledger's file.",
        { Path: { } path } when File.Exists(path) => null,
        { Path: { } path } when Directory.Exists(path) => $"no ledger at {path}: it is a directory, not a ledger file. Fix ConnectionStrings:JobLog.",
        { Path: { } path } => $"no ledger at {path} (not there); run the migrate command or the worker first to create it, or fix ConnectionStrings:JobLog.",
    };

    private IServiceProvider Ledger() => _missing is null ? _services : throw new LedgerMissingException(_missing);

    /// <summary>The services alone (tests use them to build a service by hand).</summary>
    public static ServiceProvider Build(IReadOnlyList<string> settings)
    {
        var configuration = Configuration(settings);
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddLogging(l => l.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning));
        WorkerApp.AddLedger(services, configuration, WorkerSettings.From(configuration));
        // A one-shot command sweeps only when asked to (the sweep command), and is no host: it records no runs, and each
        // run of it (a cron job's) would stay on the Hosts page for a week.
        services.PostConfigure<JobLogOptions>(o =>
        {
            o.Sweeper.Enabled = false;
            o.WriteHeartbeat = false;
        });
        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true, ValidateOnBuild = true });
    }

    /// <summary>
    /// The full path of the SQLite file the settings name (<see cref="LedgerMaintenance.SqliteFile"/>: a relative path, a
    /// <c>file:</c> URI), for an error that says which file it could not open; null for PostgreSQL, an in-memory database,
    /// or settings that cannot be read (their own error says so).
    /// </summary>
    public static string? SqliteFile(IReadOnlyList<string> settings) => Sqlite(settings)?.Path;

    /// <summary>A SQLite ledger's file (<see cref="SqliteFile"/>; null when it has none: in memory).</summary>
    private sealed record SqliteLedger(string? Path);

    /// <summary>The SQLite ledger the settings name; null for PostgreSQL, or settings that cannot be read.</summary>
    private static SqliteLedger? Sqlite(IReadOnlyList<string> settings)
    {
        try
        {
            var worker = WorkerSettings.From(Configuration(settings));
            return worker.Database == LedgerProvider.Sqlite ? new SqliteLedger(LedgerMaintenance.SqliteFile(worker.ConnectionString)) : null;
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or NotSupportedException or IOException)
        {
            return null;
        }
    }

    private static IConfiguration Configuration(IReadOnlyList<string> settings) =>
        new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine([.. settings])
            .Build();

    /// <summary>
    /// Runs <paramref name="body"/> as a command executed from the command line: its console output, exit code and
    /// error land in the ledger (the writer runs for the command and drains before the session ends). Excluded names
    /// (<see cref="WorkerApp.AddLedger"/>), and every command over a ledger opened read-only
    /// (<see cref="LedgerMaintenance.ReadOnly"/>), run unrecorded.
    /// </summary>
    public async Task<int> RunLoggedAsync(string name, IReadOnlyList<string> args, Func<CancellationToken, Task<int>> body, CancellationToken cancellationToken)
    {
        var commands = Ledger().GetRequiredService<CommandLogger>();
        if (commands.IsExcluded(name) || Maintenance.ReadOnly)
        {
            // A ledger opened read-only (Mode=ReadOnly, ?mode=ro, ?immutable=1; a PostgreSQL standby, or a read-only database
            // or role): the command cannot be recorded there, and the writer must not start. Its reads work; a command that
            // writes fails with the database's own refusal.
            return await body(cancellationToken);
        }

        // Once, before the writer starts: a ledger that does not answer is the command's error, said in one line (exit 1),
        // not a start-up migration retried in the background, every attempt logged with its stack, while the command fails
        // anyway and its own record waits in the journal for another process. The worker's run keeps retrying.
        await Maintenance.MigrateAsync(cancellationToken);
        if (Maintenance.ReadOnly)
        {
            // A PostgreSQL standby or read-only database: its refusal of the migration's first write said so.
            return await body(cancellationToken);
        }

        await StartAsync(cancellationToken);
        return await commands.RunAsync(name, args, body, executedFromCommandLine: true, cancellationToken);
    }

    /// <summary>Starts JobLog's hosted services (the writer first among them), once; they stop, draining, when the session ends.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        Ledger();
        if (_started.Count > 0)
        {
            return;
        }

        foreach (var hosted in _services.GetServices<IHostedService>())
        {
            await hosted.StartAsync(cancellationToken);
            _started.Add(hosted);
        }
    }

    /// <summary>Runs a query in its own scope.</summary>
    public async Task<T> QueryAsync<T>(Func<LedgerQueries, Task<T>> query)
    {
        await using var scope = Ledger().CreateAsyncScope();
        return await query(scope.ServiceProvider.GetRequiredService<LedgerQueries>());
    }

    public async ValueTask DisposeAsync()
    {
        // In reverse: the writer drains what the command recorded before anything it depends on stops.
        for (var i = _started.Count - 1; i >= 0; i--)
        {
            await _started[i].StopAsync(CancellationToken.None);
        }

        await _services.DisposeAsync();
    }
}

/// <summary>A command that does not create a ledger used one whose file is not there (<see cref="LedgerSession.MissingLedger"/>): exit 1.</summary>
internal sealed class LedgerMissingException(string message) : Exception(message);
