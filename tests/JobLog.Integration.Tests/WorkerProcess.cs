using System.Diagnostics;
using JobLog.Testing;
using JobLog.Testing.Processes;

namespace JobLog.Integration.Tests;

/// <summary>
/// A JobLog Worker (src/JobLog.Worker) running as its own process against the test's PostgreSQL ledger and RabbitMQ
/// vhost. Only processes started here are ever stopped or killed, by their own handle.
/// </summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly ChildProcess _process;
    private readonly string _directory;

    private WorkerProcess(ChildProcess process, string directory)
    {
        _process = process;
        _directory = directory;
    }

    public string Name => _process.Name;

    public int Pid => _process.Pid;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>The Worker's own name for its scheduler dispatcher (<c>ScheduledMessageLog.SentBy</c>): machine/pid.</summary>
    public string DispatcherName => $"{Environment.MachineName}/{Pid}";

    public static string WorkerDll => BuiltApplication.Dll("src/JobLog.Worker", "JobLog.Worker.dll");

    /// <summary>Starts <c>dotnet JobLog.Worker.dll run</c> on the ledger and vhost; returns once it dispatches scheduled messages.</summary>
    /// <param name="name">The worker's name in the test's messages.</param>
    /// <param name="ledger">The PostgreSQL ledger.</param>
    /// <param name="vhost">The RabbitMQ vhost.</param>
    /// <param name="settings">The application's own settings the process runs with (time zone, Npgsql switches).</param>
    /// <param name="startedWhen">The output that says the Worker started (default: its scheduler dispatcher's start).</param>
    public static async Task<WorkerProcess> StartAsync(
        string name, TestLedger ledger, RabbitMqVhost vhost, ProcessSettings? settings = null, string startedWhen = "JobLog scheduler dispatcher")
    {
        var worker = Start(name, ledger, ["run", "--urls", "http://127.0.0.1:0", "--RabbitMq:Host=" + RabbitMqVhost.Host, "--RabbitMq:VirtualHost=" + vhost.Name], settings);
        await worker.WaitForOutputAsync(startedWhen, TimeSpan.FromSeconds(90));
        return worker;
    }

    /// <summary>Runs a one-shot Worker command (<c>migrate</c>, <c>sweep</c>, …) on the ledger to its exit.</summary>
    public static async Task<(int ExitCode, string Output)> RunCommandAsync(string command, TestLedger ledger, ProcessSettings? settings = null, TimeSpan? timeout = null)
    {
        await using var worker = Start(command, ledger, [command], settings);
        await worker._process.WaitForExitAsync(timeout ?? TimeSpan.FromSeconds(90));
        return (worker.ExitCode, worker.Output);
    }

    private static WorkerProcess Start(string name, TestLedger ledger, string[] arguments, ProcessSettings? settings)
    {
        var directory = Path.Combine(Path.GetTempPath(), "joblog-workers", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        var info = new ProcessStartInfo("dotnet") { WorkingDirectory = directory };
        if (settings?.LegacyTimestampBehavior == true)
        {
            // AppContext switches are process-wide and read once: the process gets them from its runtimeconfig, as an
            // application that calls AppContext.SetSwitch at start (or sets it in its project file) would.
            var runtimeConfig = Path.Combine(directory, "legacy.runtimeconfig.json");
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.ChangeExtension(WorkerDll, ".runtimeconfig.json")))!;
            json["runtimeOptions"]!["configProperties"]!["Npgsql.EnableLegacyTimestampBehavior"] = true;
            File.WriteAllText(runtimeConfig, json.ToJsonString());
            foreach (var argument in new[] { "exec", "--runtimeconfig", runtimeConfig })
            {
                info.ArgumentList.Add(argument);
            }
        }

        info.ArgumentList.Add(WorkerDll);
        foreach (var argument in arguments.Concat(["--JobLog:Database=postgres", "--ConnectionStrings:JobLog=" + ledger.ConnectionString]))
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        info.Environment["Logging__Console__FormatterName"] = "simple";
        if (settings?.TimeZone is { } zone)
        {
            // Both the process's local time and the PostgreSQL session's time zone (Npgsql sends PGTZ at connect).
            info.Environment["TZ"] = zone;
            info.Environment["PGTZ"] = zone;
        }

        return new WorkerProcess(ChildProcess.Start(name, info), directory);
    }

    public string Output => _process.Output;

    public bool HasOutput(string text) => _process.HasOutput(text);

    public Task WaitForOutputAsync(string text, TimeSpan timeout) => _process.WaitForOutputAsync(text, timeout);

    /// <summary>SIGKILL: the process dies at once, in the middle of whatever it does.</summary>
    public Task KillAsync() => _process.KillAsync();

    /// <summary>SIGTERM: the host shuts down gracefully.</summary>
    public Task StopAsync(TimeSpan timeout) => _process.StopAsync(timeout);

    public string Tail(int lines = 60) => _process.Tail(lines);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _process.DisposeAsync();
        }
        finally
        {
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
                // Best effort: a temp directory.
            }
        }
    }
}

/// <summary>The application's own settings a Worker process runs with.</summary>
/// <param name="LegacyTimestampBehavior">Sets the AppContext switch <c>Npgsql.EnableLegacyTimestampBehavior</c>.</param>
/// <param name="TimeZone">The process's and the database session's time zone (<c>TZ</c>, <c>PGTZ</c>), e.g. America/New_York.</param>
public sealed record ProcessSettings(bool LegacyTimestampBehavior = false, string? TimeZone = null);
