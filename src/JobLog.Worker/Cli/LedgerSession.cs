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

    private LedgerSession(ServiceProvider services) => _services = services;

    public IServiceProvider Services => _services;

    public LedgerMaintenance Maintenance => _services.GetRequiredService<LedgerMaintenance>();

    public DateTime Now => _services.GetRequiredService<TimeProvider>().GetUtcNow().UtcDateTime;

    /// <summary>Builds the services from the settings (<c>--Key=Value</c>, appsettings.json, environment variables).</summary>
    /// <exception cref="InvalidOperationException">When the settings cannot make a ledger.</exception>
    public static LedgerSession Open(IReadOnlyList<string> settings) => new(Build(settings));

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
    /// The full path of the SQLite file the settings name, for an error that says which file it could not open; null for
    /// PostgreSQL, an in-memory or URI data source, or settings that cannot be read (their own error says so).
    /// </summary>
    public static string? SqliteFile(IReadOnlyList<string> settings)
    {
        try
        {
            var worker = WorkerSettings.From(Configuration(settings));
            var source = worker.Database == LedgerProvider.Sqlite ? new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(worker.ConnectionString).DataSource : "";
            return source.Length == 0 || source == ":memory:" || source.StartsWith("file:", StringComparison.OrdinalIgnoreCase) ? null : Path.GetFullPath(source);
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
    /// (<see cref="WorkerApp.AddLedger"/>) run unrecorded.
    /// </summary>
    public async Task<int> RunLoggedAsync(string name, IReadOnlyList<string> args, Func<CancellationToken, Task<int>> body, CancellationToken cancellationToken)
    {
        var commands = _services.GetRequiredService<CommandLogger>();
        if (commands.IsExcluded(name))
        {
            return await body(cancellationToken);
        }

        // Once, before the writer starts: a ledger that does not answer is the command's error, said in one line (exit 1),
        // not a start-up migration retried in the background, every attempt logged with its stack, while the command fails
        // anyway and its own record waits in the journal for another process. The worker's run keeps retrying.
        await Maintenance.MigrateAsync(cancellationToken);
        await StartAsync(cancellationToken);
        return await commands.RunAsync(name, args, body, executedFromCommandLine: true, cancellationToken);
    }

    /// <summary>Starts JobLog's hosted services (the writer first among them), once; they stop, draining, when the session ends.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
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
        await using var scope = _services.CreateAsyncScope();
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
