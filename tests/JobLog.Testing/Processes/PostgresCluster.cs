using Npgsql;

namespace JobLog.Testing.Processes;

/// <summary>
/// A PostgreSQL cluster of the test's own (initdb in a temporary directory, its own port on loopback), so that a test
/// can stop and start its database without disturbing the shared server. Needs root (the server runs as the
/// <c>postgres</c> user) and PostgreSQL 15's binaries, which scripts/start-services.sh installs.
/// </summary>
public sealed class PostgresCluster : IAsyncDisposable
{
    private const string Bin = "/usr/lib/postgresql/15/bin";

    private readonly string _directory;
    private readonly Link? _link;
    private bool _dataOnASmallDisk;

    private PostgresCluster(string directory, int port, Link? link = null)
    {
        _directory = directory;
        Port = port;
        _link = link;
    }

    public int Port { get; }

    /// <summary>The address the server listens on: loopback, or its end of the link (<see cref="CreateBehindLinkAsync"/>).</summary>
    public string Address => _link?.ServerAddress ?? "127.0.0.1";

    /// <summary>The connection string of the cluster's <c>ledger</c> database (user joblog, trust authentication).</summary>
    public string ConnectionString => $"Host={Address};Port={Port};Username=joblog;Database=ledger;Timeout=5;Pooling=true";

    public static Task<PostgresCluster> CreateAsync() => CreateAsync(null);

    /// <summary>
    /// A cluster whose data directory is a file system of <paramref name="bytes"/> of its own (a tmpfs the test mounts, as
    /// root, unmounted at disposal), its write-ahead log on the machine's disk: <see cref="FillDataDisk"/> fills it, and
    /// then a table or an index that grows is refused (53100, <c>could not extend file</c>) while the server goes on
    /// answering. (A full WAL disk stops the server instead, a PANIC: an outage, which other tests try.)
    /// </summary>
    public static Task<PostgresCluster> CreateOnASmallDiskAsync(long bytes) => CreateAsync(null, bytes);

    /// <summary>Fills the data directory's file system (<see cref="CreateOnASmallDiskAsync"/>) with a file until it refuses; returns the file.</summary>
    public string FillDataDisk()
    {
        var filler = Path.Combine(Data, "joblog-filler");
        using var stream = new FileStream(filler, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        foreach (var size in new[] { 64 * 1024, 4096 })
        {
            // Blocks, then the last pages one at a time: not even a page of a table fits.
            var block = new byte[size];
            try
            {
                while (true)
                {
                    stream.Write(block);
                    stream.Flush();
                }
            }
            catch (IOException)
            {
                // Full at this size.
            }
        }

        return filler;
    }

    /// <summary>
    /// A cluster in a network namespace of its own, reached through a veth pair: <see cref="CutLinkAsync"/> makes the
    /// database silent (every packet dropped, nothing refused), as a failed network path or a frozen host does, unlike
    /// a stopped server, which refuses connections at once.
    /// </summary>
    public static async Task<PostgresCluster> CreateBehindLinkAsync()
    {
        var id = Guid.NewGuid().ToString("N")[..6];
        var subnet = Random.Shared.Next(0, 256);
        var link = new Link($"jl-{id}", $"jlh{id}", $"jln{id}", $"10.231.{subnet}.1", $"10.231.{subnet}.2");
        try
        {
            await MachineCommands.RunAsync("ip", ["netns", "add", link.Namespace]);
            await MachineCommands.RunAsync("ip", ["link", "add", link.HostSide, "type", "veth", "peer", "name", link.ServerSide]);
            await MachineCommands.RunAsync("ip", ["link", "set", link.ServerSide, "netns", link.Namespace]);
            await MachineCommands.RunAsync("ip", ["addr", "add", link.HostAddress + "/30", "dev", link.HostSide]);
            await MachineCommands.RunAsync("ip", ["link", "set", link.HostSide, "up"]);
            await MachineCommands.RunAsync("ip", ["netns", "exec", link.Namespace, "ip", "addr", "add", link.ServerAddress + "/30", "dev", link.ServerSide]);
            await MachineCommands.RunAsync("ip", ["netns", "exec", link.Namespace, "ip", "link", "set", link.ServerSide, "up"]);
            return await CreateAsync(link);
        }
        catch
        {
            await link.RemoveAsync();
            throw;
        }
    }

    /// <summary>
    /// A connection string of the <c>ledger</c> database through the server's Unix socket: the test's own sessions, which a
    /// cut link does not reach.
    /// </summary>
    public string LocalConnectionString => $"Host={_directory};Port={Port};Username=joblog;Database=ledger;Timeout=5;Pooling=false";

    /// <summary>Takes the server's end of the link down: packets to it are dropped without an answer (no refusal, no reset).</summary>
    public Task CutLinkAsync() => SetLinkAsync("down");

    /// <summary>
    /// The server's kernel forgets every TCP connection to it (<c>ss -K</c> in its namespace; with the link cut, the
    /// resets it sends are lost): as when a NAT gateway, load balancer or firewall drops a flow's state silently, or the
    /// database fails over to another machine. The server's sessions end; their clients are told nothing.
    /// </summary>
    public Task ForgetConnectionsAsync() =>
        MachineCommands.RunAsync("ip", ["netns", "exec", _link!.Namespace, "ss", "-K", "-t", $"sport = :{Port}"]);

    /// <summary>Brings the link back: connections that were waiting get their answers.</summary>
    public Task RestoreLinkAsync() => SetLinkAsync("up");

    private Task SetLinkAsync(string state) =>
        MachineCommands.RunAsync("ip", ["netns", "exec", _link!.Namespace, "ip", "link", "set", _link.ServerSide, state]);

    private static async Task<PostgresCluster> CreateAsync(Link? link, long? dataDiskBytes = null)
    {
        if (!File.Exists(Path.Combine(Bin, "initdb")) || Environment.UserName != "root")
        {
            Services.Missing("PostgreSQL binaries (as root) for an own cluster", new FileNotFoundException(Path.Combine(Bin, "initdb")));
        }

        var directory = Path.Combine(Path.GetTempPath(), "joblog-faults", "pg-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(directory);
        await MachineCommands.RunAsync("chown", ["postgres:postgres", directory]);
        var cluster = new PostgresCluster(directory, MachineCommands.FreePort(), link);
        string[] wal = [];
        if (dataDiskBytes is { } bytes)
        {
            Directory.CreateDirectory(cluster.Data);
            await MachineCommands.RunAsync("mount", ["-t", "tmpfs", "-o", $"size={bytes},mode=0700", "tmpfs", cluster.Data]);
            cluster._dataOnASmallDisk = true;
            wal = ["--waldir", Path.Combine(directory, "wal")];
        }

        try
        {
            if (cluster._dataOnASmallDisk)
            {
                await MachineCommands.RunAsync("chown", ["postgres:postgres", cluster.Data]);
            }

            await cluster.AsPostgresAsync("initdb", ["-D", cluster.Data, "-U", "joblog", "--auth=trust", "--no-sync", .. wal]);
        }
        catch
        {
            // The mount would outlive the test.
            await cluster.DisposeAsync();
            throw;
        }

        if (link is not null)
        {
            // Clients come from the host's end of the link, not from loopback.
            await File.AppendAllTextAsync(Path.Combine(cluster.Data, "pg_hba.conf"), $"host all all {link.HostAddress}/32 trust\n");
        }

        await cluster.StartAsync();
        try
        {
            await using var connection = new NpgsqlConnection($"Host={cluster.Address};Port={cluster.Port};Username=joblog;Database=postgres;Timeout=5");
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("CREATE DATABASE ledger", connection);
            await command.ExecuteNonQueryAsync();
        }
        catch
        {
            // A server the caller never gets would outlive the test.
            await cluster.DisposeAsync();
            throw;
        }

        return cluster;
    }

    private string Data => Path.Combine(_directory, "data");

    /// <summary>Starts the server and waits until it accepts connections.</summary>
    public Task StartAsync() => AsPostgresAsync(
        "pg_ctl", "-D", Data, "-l", Path.Combine(_directory, "server.log"), "-w", "-t", "60",
        "-o", $"-p {Port} -k {_directory} -c listen_addresses={Address}", "start");

    /// <summary>
    /// Restarts the server as an operator or an upgrade does (<c>fast</c>: each session ended with 57P01, a checkpoint, then
    /// a start) and waits until it accepts connections again.
    /// </summary>
    public Task RestartAsync() => AsPostgresAsync(
        "pg_ctl", "-D", Data, "-l", Path.Combine(_directory, "server.log"), "-m", "fast", "-w", "-t", "60",
        "-o", $"-p {Port} -k {_directory} -c listen_addresses={Address}", "restart");

    /// <summary>Stops the server at once (<c>immediate</c>: like a crash; connections are cut, recovery runs at the next start).</summary>
    public Task StopAsync() => AsPostgresAsync("pg_ctl", "-D", Data, "-m", "immediate", "-w", "stop");

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        try
        {
            await AsPostgresAsync("pg_ctl", "-D", Data, "-m", "immediate", "-w", "stop");
        }
        catch (InvalidOperationException)
        {
            // Already stopped.
        }

        if (_dataOnASmallDisk)
        {
            await MachineCommands.RunAsync("umount", [Data]);
        }

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp directory.
        }

        if (_link is not null)
        {
            await _link.RemoveAsync();
        }
    }

    private Task AsPostgresAsync(string program, params string[] args) => _link is null
        ? MachineCommands.RunAsync("runuser", ["-u", "postgres", "--", Path.Combine(Bin, program), .. args])
        : MachineCommands.RunAsync("ip", ["netns", "exec", _link.Namespace, "runuser", "-u", "postgres", "--", Path.Combine(Bin, program), .. args]);

    /// <summary>The network namespace the server runs in and the veth pair to it.</summary>
    private sealed record Link(string Namespace, string HostSide, string ServerSide, string HostAddress, string ServerAddress)
    {
        public async Task RemoveAsync()
        {
            foreach (var command in new[] { new[] { "link", "del", HostSide }, ["netns", "del", Namespace] })
            {
                try
                {
                    await MachineCommands.RunAsync("ip", command);
                }
                catch (InvalidOperationException)
                {
                    // Not made (a failed set-up), or gone already.
                }
            }
        }
    }
}
