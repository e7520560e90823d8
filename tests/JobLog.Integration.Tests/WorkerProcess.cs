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
    public static async Task<WorkerProcess> StartAsync(string name, TestLedger ledger, RabbitMqVhost vhost)
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
        foreach (var argument in new[]
        {
            WorkerDll, "run", "--urls", "http://127.0.0.1:0", "--JobLog:Database=postgres",
            "--ConnectionStrings:JobLog=" + ledger.ConnectionString, "--RabbitMq:Host=" + RabbitMqVhost.Host,
            "--RabbitMq:VirtualHost=" + vhost.Name,
        })
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        info.Environment["Logging__Console__FormatterName"] = "simple";
        var process = Process.Start(info) ?? throw new InvalidOperationException("dotnet did not start");
        var worker = new WorkerProcess(name, process, directory);
        process.OutputDataReceived += (_, e) => worker.Append(e.Data);
        process.ErrorDataReceived += (_, e) => worker.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await worker.WaitForOutputAsync("JobLog scheduler dispatcher", TimeSpan.FromSeconds(90));
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
