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

    private PostgresCluster(string directory, int port)
    {
        _directory = directory;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The connection string of the cluster's <c>ledger</c> database (user joblog, trust authentication).</summary>
    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=joblog;Database=ledger;Timeout=5;Pooling=true";

    public static async Task<PostgresCluster> CreateAsync()
    {
        if (!File.Exists(Path.Combine(Bin, "initdb")) || Environment.UserName != "root")
        {
            Services.Missing("PostgreSQL binaries (as root) for an own cluster", new FileNotFoundException(Path.Combine(Bin, "initdb")));
        }

        var directory = Path.Combine(Path.GetTempPath(), "joblog-faults", "pg-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(directory);
        await MachineCommands.RunAsync("chown", ["postgres:postgres", directory]);
        var cluster = new PostgresCluster(directory, MachineCommands.FreePort());
        await cluster.AsPostgresAsync("initdb", "-D", cluster.Data, "-U", "joblog", "--auth=trust", "--no-sync");
        await cluster.StartAsync();
        await using (var connection = new NpgsqlConnection($"Host=127.0.0.1;Port={cluster.Port};Username=joblog;Database=postgres;Timeout=5"))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("CREATE DATABASE ledger", connection);
            await command.ExecuteNonQueryAsync();
        }

        return cluster;
    }

    private string Data => Path.Combine(_directory, "data");

    /// <summary>Starts the server and waits until it accepts connections.</summary>
    public Task StartAsync() => AsPostgresAsync(
        "pg_ctl", "-D", Data, "-l", Path.Combine(_directory, "server.log"), "-w", "-t", "60",
        "-o", $"-p {Port} -k {_directory} -c listen_addresses=127.0.0.1", "start");

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

        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp directory.
        }
    }

    private Task AsPostgresAsync(string program, params string[] args) =>
        MachineCommands.RunAsync("runuser", ["-u", "postgres", "--", Path.Combine(Bin, program), .. args]);
}
