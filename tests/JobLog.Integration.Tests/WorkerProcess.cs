using System.Diagnostics;
using System.Text;
using JobLog.Testing;

namespace JobLog.Integration.Tests;

/// <summary>
/// A JobLog Worker (src/JobLog.Worker) running as its own process against the test's PostgreSQL ledger and RabbitMQ
/// vhost. Only processes started here are ever stopped or killed, by their own handle.
/// </summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly Lock _lock = new();
    private readonly string _directory;

    private WorkerProcess(string name, Process process, string directory)
    {
        Name = name;
        _process = process;
        _directory = directory;
    }

    public string Name { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>The Worker's own name for its scheduler dispatcher (<c>ScheduledMessageLog.SentBy</c>): machine/pid.</summary>
    public string DispatcherName => $"{Environment.MachineName}/{Pid}";

    public static string WorkerDll
    {
        get
        {
            // tests/JobLog.Integration.Tests/bin/<Configuration>/net10.0/ → src/JobLog.Worker/bin/<Configuration>/net10.0/
            var bin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            var configuration = bin.Parent!.Name;
            var root = bin;
            while (root is not null && !File.Exists(Path.Combine(root.FullName, "JobLog.sln")))
            {
                root = root.Parent;
            }

            if (root is null)
            {
                throw new InvalidOperationException("JobLog.sln not found above " + AppContext.BaseDirectory);
            }

            var dll = Path.Combine(root.FullName, "src", "JobLog.Worker", "bin", configuration, bin.Name, "JobLog.Worker.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException("Build the Worker first (the test project references it).", dll);
        }
    }

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
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(90));
        try
        {
            await worker._process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"'{command}' did not exit within {timeout ?? TimeSpan.FromSeconds(90)}:\n{worker.Tail()}");
        }

        // The asynchronous readers may still hold the last lines.
        worker._process.WaitForExit();
        return (worker._process.ExitCode, worker.Output);
    }

    private static WorkerProcess Start(string name, TestLedger ledger, string[] arguments, ProcessSettings? settings)
    {
        var directory = Path.Combine(Path.GetTempPath(), "joblog-workers", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = directory,
        };
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

        var process = Process.Start(info) ?? throw new InvalidOperationException("dotnet did not start");
        var worker = new WorkerProcess(name, process, directory);
        process.OutputDataReceived += (_, e) => worker.Append(e.Data);
        process.ErrorDataReceived += (_, e) => worker.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return worker;
    }

    public string Output
    {
        get
        {
            lock (_lock)
            {
                return _output.ToString();
            }
        }
    }

    public bool HasOutput(string text) => Output.Contains(text, StringComparison.Ordinal);

    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!HasOutput(text))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"Worker {Name} exited ({_process.ExitCode}) before printing '{text}':\n{Tail()}");
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Worker {Name} did not print '{text}' within {timeout}:\n{Tail()}");
            }

            await Task.Delay(100);
        }
    }

    /// <summary>SIGKILL: the process dies at once, in the middle of whatever it does.</summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: false);
        await _process.WaitForExitAsync();
    }

    /// <summary>SIGTERM: the host shuts down gracefully.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill!.WaitForExitAsync();
        }

        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
    }

    public string Tail(int lines = 60)
    {
        var all = Output.Split('\n');
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: false);
                await _process.WaitForExitAsync();
            }
        }
        finally
        {
            _process.Dispose();
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

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lock)
        {
            _output.AppendLine(line);
        }
    }
}

/// <summary>The application's own settings a Worker process runs with.</summary>
/// <param name="LegacyTimestampBehavior">Sets the AppContext switch <c>Npgsql.EnableLegacyTimestampBehavior</c>.</param>
/// <param name="TimeZone">The process's and the database session's time zone (<c>TZ</c>, <c>PGTZ</c>), e.g. America/New_York.</param>
public sealed record ProcessSettings(bool LegacyTimestampBehavior = false, string? TimeZone = null);
