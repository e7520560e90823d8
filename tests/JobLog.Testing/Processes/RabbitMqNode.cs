using System.Diagnostics;
using System.Globalization;

namespace JobLog.Testing.Processes;

/// <summary>
/// A RabbitMQ node of the test's own (its own node name, ports and data directory), so that a test can restart its
/// broker without disturbing the shared one. Needs root (the node runs as the <c>rabbitmq</c> user) and the
/// rabbitmq-server that scripts/start-services.sh installs.
/// </summary>
public sealed class RabbitMqNode : IAsyncDisposable
{
    private readonly string _directory;

    private readonly int _distributionPort = MachineCommands.FreePort();

    private RabbitMqNode(string name, string directory, int port)
    {
        Name = name;
        _directory = directory;
        Port = port;
    }

    /// <summary>The node's name (<c>name@localhost</c>).</summary>
    public string Name { get; }

    /// <summary>Its AMQP port on 127.0.0.1 (user guest/guest, vhost <c>/</c>).</summary>
    public int Port { get; }

    public static async Task<RabbitMqNode> StartAsync()
    {
        if (Environment.UserName != "root")
        {
            Services.Missing("root, to run an own RabbitMQ node", new UnauthorizedAccessException("not root"));
        }

        var id = Guid.NewGuid().ToString("N")[..8];
        var directory = Path.Combine(Path.GetTempPath(), "joblog-faults", "rabbit-" + id);
        Directory.CreateDirectory(directory);
        var port = MachineCommands.FreePort();
        await File.WriteAllTextAsync(Path.Combine(directory, "enabled_plugins"), "[].");
        await File.WriteAllTextAsync(Path.Combine(directory, "rabbitmq.conf"), $"listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n");
        var node = new RabbitMqNode($"joblog-fault-{id}@localhost", directory, port);
        try
        {
            await MachineCommands.RunAsync("chown", ["-R", "rabbitmq:rabbitmq", directory]);
            await node.ServerAsync(["-detached"]);
            await node.AwaitStartupAsync();
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            await node.DisposeAsync();
            Services.Missing("RabbitMQ (an own node)", ex);
        }

        return node;
    }

    /// <summary>Stops the broker (connections are cut; durable queues and persistent messages are kept), then starts it again after <paramref name="down"/>.</summary>
    public async Task RestartAsync(TimeSpan down)
    {
        await CtlAsync("stop_app");
        await Task.Delay(down);
        await CtlAsync("start_app");
        await AwaitStartupAsync();
    }

    /// <summary>
    /// Raises (<paramref name="on"/>) or clears the node's memory alarm, as a broker short of memory does: with the
    /// high watermark at 0 every publishing connection is blocked until it is cleared (back to the default 0.4).
    /// </summary>
    public Task SetMemoryAlarmAsync(bool on) => CtlAsync("set_vm_memory_high_watermark", on ? "0" : "0.4");

    public async ValueTask DisposeAsync()
    {
        try
        {
            await CtlAsync("stop");
        }
        catch (InvalidOperationException)
        {
            // Not running.
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp directory.
        }
    }

    private async Task AwaitStartupAsync()
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await CtlAsync("await_startup", "-t", "60");
                return;
            }
            catch (InvalidOperationException) when (clock.Elapsed < TimeSpan.FromSeconds(120))
            {
                // The node has not registered with epmd yet.
                await Task.Delay(1000);
            }
        }
    }

    private Task CtlAsync(params string[] args) => MachineCommands.RunAsync("rabbitmqctl", ["-q", "-n", Name, .. args], NodeEnvironment());

    private Task ServerAsync(string[] args) => MachineCommands.RunAsync("rabbitmq-server", args, NodeEnvironment());

    private Dictionary<string, string> NodeEnvironment() => new()
    {
        ["RABBITMQ_NODENAME"] = Name,
        ["RABBITMQ_NODE_PORT"] = Port.ToString(CultureInfo.InvariantCulture),
        ["RABBITMQ_DIST_PORT"] = _distributionPort.ToString(CultureInfo.InvariantCulture),
        ["RABBITMQ_MNESIA_BASE"] = Path.Combine(_directory, "mnesia"),
        ["RABBITMQ_LOG_BASE"] = Path.Combine(_directory, "log"),
        ["RABBITMQ_ENABLED_PLUGINS_FILE"] = Path.Combine(_directory, "enabled_plugins"),
        ["RABBITMQ_CONFIG_FILE"] = Path.Combine(_directory, "rabbitmq"),
        ["RABBITMQ_PID_FILE"] = Path.Combine(_directory, "pid"),
    };
}
