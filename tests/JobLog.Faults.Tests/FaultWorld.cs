using System.Data.Common;
using System.Diagnostics;
using JobLog.Testing;
using JobLog.Testing.Processes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Faults.Tests;

/// <summary>
/// One fault scenario's world: a ledger (a SQLite file, or a PostgreSQL cluster of the test's own), a RabbitMQ vhost,
/// and the publisher and consumer processes, each writing the ids it saw to its own file.
/// </summary>
internal sealed class FaultWorld : IAsyncDisposable
{
    private readonly List<(ChildProcess Process, string Seen, bool Publisher)> _processes = [];
    private readonly string _directory;
    private readonly string? _sqliteFile;
    private readonly List<string> _mounted = [];

    private FaultWorld(RabbitMqVhost? vhost, string directory, string? sqliteFile, PostgresCluster? postgres, RabbitMqNode? rabbit = null)
    {
        Vhost = vhost;
        Rabbit = rabbit;
        _directory = directory;
        _sqliteFile = sqliteFile;
        Postgres = postgres;
    }

    /// <summary>A vhost of the shared broker (null with <see cref="Rabbit"/>).</summary>
    public RabbitMqVhost? Vhost { get; }

    /// <summary>A broker of the scenario's own, which it may restart (null with <see cref="Vhost"/>).</summary>
    public RabbitMqNode? Rabbit { get; }

    public PostgresCluster? Postgres { get; }

    /// <summary>The processes' <c>QueueCapacity</c> from now on (JobLog's default when null): small, the queue overflows to the spool early.</summary>
    public int? QueueCapacity { get; set; }

    private string ConnectionString => Postgres?.ConnectionString ?? $"Data Source={_sqliteFile}";

    public static async Task<FaultWorld> SqliteAsync()
    {
        var directory = NewDirectory();
        return new FaultWorld(await RabbitMqVhost.CreateAsync(), directory, Path.Combine(directory, "ledger.db"), null);
    }

    /// <summary>The SQLite ledger's file (null on PostgreSQL).</summary>
    public string? SqliteFile => _sqliteFile;

    /// <summary>The journal's and spool's directory of the world's processes.</summary>
    public string JournalDirectory => Path.Combine(_directory, "spool");

    /// <summary>
    /// The journal's and spool's directory on a filesystem of <paramref name="bytes"/> (a tmpfs the test mounts, as
    /// root), so that the disk refuses appends early.
    /// </summary>
    public async Task UseSmallDiskAsync(int bytes)
    {
        var spool = Path.Combine(_directory, "spool");
        Directory.CreateDirectory(spool);
        await MachineCommands.RunAsync("mount", ["-t", "tmpfs", "-o", $"size={bytes},mode=0700", "tmpfs", spool]);
        _mounted.Add(spool);
    }

    /// <summary>
    /// The journal's and spool's directory on an ext4 file system of its own (a 64 MiB image on a loop device the test
    /// mounts, as root, with <c>errors=remount-ro</c>, the usual setting), which <see cref="BreakJournalDisk"/> makes
    /// the kernel remount read-only.
    /// </summary>
    public async Task UseJournalDiskThatCanFailAsync()
    {
        var spool = Path.Combine(_directory, "spool");
        var image = Path.Combine(_directory, "journal.img");
        Directory.CreateDirectory(spool);
        using (var file = File.Create(image))
        {
            file.SetLength(64L << 20);
        }

        await MachineCommands.RunAsync("mkfs.ext4", ["-q", "-F", image]);
        await MachineCommands.RunAsync("mount", ["-o", "loop,errors=remount-ro", image, spool]);
        _mounted.Add(spool);
        await MachineCommands.RunAsync("chmod", ["0700", spool]);
    }

    /// <summary>
    /// An error of the journal's file system (<see cref="UseJournalDiskThatCanFailAsync"/>), as ext4 meets on an I/O error
    /// or a corrupt block: the kernel remounts it read-only at once (<c>emergency_ro</c>), the processes' files open, and
    /// every write to it fails from then on with EROFS. Made by ext4's own <c>trigger_fs_error</c>.
    /// </summary>
    public void BreakJournalDisk()
    {
        var spool = Path.Combine(_directory, "spool");
        var device = File.ReadAllLines("/proc/mounts").Select(line => line.Split(' ')).Single(fields => fields[1] == spool)[0];
        File.WriteAllText($"/sys/fs/ext4/{Path.GetFileName(device)}/trigger_fs_error", "1");
    }

    /// <summary>
    /// The journal's file system (<see cref="UseJournalDiskThatCanFailAsync"/>), broken, unmounted and mounted again, as
    /// after the machine's restart (or an operator's repair): what the kernel had not written to the disk before the error
    /// (dirty pages, metadata its journal had not committed) is gone; what was flushed is there. The processes using it
    /// must be gone (a busy file system cannot be unmounted).
    /// </summary>
    public async Task MountJournalDiskAgainAsync()
    {
        var spool = Path.Combine(_directory, "spool");
        await MachineCommands.RunAsync("umount", [spool]);
        await MachineCommands.RunAsync("mount", ["-o", "loop,errors=remount-ro", Path.Combine(_directory, "journal.img"), spool]);
    }

    /// <summary>
    /// Pauses <paramref name="processes"/> (SIGSTOP, at once, from this process) and leaves them so, as the moment of a
    /// machine's crash: nothing they do after it reaches any disk. A SIGKILL ends them.
    /// </summary>
    public static void Pause(params ChildProcess[] processes)
    {
        foreach (var process in processes)
        {
            _ = Signal(process.Pid, SigStop);
        }
    }

    /// <summary>
    /// A SQLite ledger whose file is on a filesystem of <paramref name="bytes"/> of its own (a tmpfs the test mounts, as
    /// root; the journal and spool stay on the machine's disk), which <see cref="FillLedgerDisk"/> fills.
    /// </summary>
    public static async Task<FaultWorld> SqliteOnASmallDiskAsync(int bytes)
    {
        var directory = NewDirectory();
        var disk = Path.Combine(directory, "ledger-disk");
        Directory.CreateDirectory(disk);
        await MachineCommands.RunAsync("mount", ["-t", "tmpfs", "-o", $"size={bytes},mode=0700", "tmpfs", disk]);
        var world = new FaultWorld(await RabbitMqVhost.CreateAsync(), directory, Path.Combine(disk, "ledger.db"), null);
        world._mounted.Add(disk);
        return world;
    }

    /// <summary>Fills the SQLite ledger's filesystem (<see cref="SqliteOnASmallDiskAsync"/>) with a file until it refuses; returns the file.</summary>
    public string FillLedgerDisk()
    {
        var filler = Path.Combine(Path.GetDirectoryName(_sqliteFile!)!, "filler");
        using var stream = new FileStream(filler, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        var block = new byte[64 * 1024];
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
            // Full: what is left is under a block.
        }

        try
        {
            // The last blocks a page at a time, so that not even a page of the ledger fits.
            var page = new byte[4096];
            while (true)
            {
                stream.Write(page);
                stream.Flush();
            }
        }
        catch (IOException)
        {
            return filler;
        }
    }

    /// <summary>A SQLite ledger and a RabbitMQ node of the scenario's own.</summary>
    public static async Task<FaultWorld> SqliteWithOwnBrokerAsync()
    {
        var directory = NewDirectory();
        return new FaultWorld(null, directory, Path.Combine(directory, "ledger.db"), null, await RabbitMqNode.StartAsync());
    }

    public static async Task<FaultWorld> PostgresAsync()
    {
        var vhost = await RabbitMqVhost.CreateAsync();
        return new FaultWorld(vhost, NewDirectory(), null, await PostgresCluster.CreateAsync());
    }

    /// <summary>
    /// A PostgreSQL ledger whose cluster's data directory is a file system of <paramref name="bytes"/> of its own (its WAL
    /// on the machine's disk), which <see cref="PostgresCluster.FillDataDisk"/> fills.
    /// </summary>
    public static async Task<FaultWorld> PostgresOnASmallDiskAsync(long bytes)
    {
        var vhost = await RabbitMqVhost.CreateAsync();
        return new FaultWorld(vhost, NewDirectory(), null, await PostgresCluster.CreateOnASmallDiskAsync(bytes));
    }

    /// <summary>A PostgreSQL ledger reached through a link the test can cut (<see cref="PostgresCluster.CutLinkAsync"/>).</summary>
    public static async Task<FaultWorld> PostgresBehindLinkAsync()
    {
        var vhost = await RabbitMqVhost.CreateAsync();
        return new FaultWorld(vhost, NewDirectory(), null, await PostgresCluster.CreateBehindLinkAsync());
    }

    /// <summary>Starts a publisher of <paramref name="count"/> probes; returns once its bus has started.</summary>
    public Task<ChildProcess> StartPublisherAsync(int count) => StartAsync("publish", count);

    /// <summary>
    /// Starts a publisher whose connection string to the same ledger has <paramref name="setting"/> appended (another
    /// password, pool size or timeout, as after a deployment that rotated the credentials); returns once its bus has started.
    /// </summary>
    public Task<ChildProcess> StartPublisherAsync(int count, string setting) => StartAsync("publish", count, setting: setting);

    /// <summary>Starts a consumer (sleeping <paramref name="delayMs"/> in each message); returns once its bus has started.</summary>
    public Task<ChildProcess> StartConsumerAsync(int delayMs = 0) => StartAsync("consume", 0, delayMs);

    /// <summary>Starts a consumer whose connection string has <paramref name="setting"/> appended; returns once its bus has started.</summary>
    public Task<ChildProcess> StartConsumerAsync(string setting) => StartAsync("consume", 0, setting: setting);

    /// <summary>
    /// Starts a process of <paramref name="role"/> (<c>publish</c> with <paramref name="count"/> probes, or <c>consume</c>
    /// sleeping <paramref name="delayMs"/> in each) with the fault app's <paramref name="arguments"/> added
    /// (<c>--Fault:ClockOffsetMs=…</c>, <c>--Fault:HostTimeoutMs=…</c>, <c>--Fault:SweepMs=…</c>); returns once its bus has started.
    /// </summary>
    public Task<ChildProcess> StartWithAsync(string role, int count, int delayMs, params string[] arguments) =>
        StartAsync(role, count, delayMs, arguments: arguments);

    /// <summary>
    /// Freezes <paramref name="processes"/> (SIGSTOP, at once, from this process) the moment a session of the ledger is
    /// inside an explicit transaction (idle in it, or running a statement after its BEGIN: a writer's or sweeper's batch),
    /// polling for up to <paramref name="bound"/>; lets them go on after <paramref name="frozen"/>. True when one was caught
    /// so (it may have committed between the look and the signal).
    /// </summary>
    public async Task<bool> FreezeInATransactionAsync(TimeSpan frozen, TimeSpan bound, params ChildProcess[] processes)
    {
        await using var connection = new NpgsqlConnection(Postgres!.LocalConnectionString);
        await connection.OpenAsync();
        await using var look = new NpgsqlCommand(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'ledger' AND pid <> pg_backend_pid() AND backend_type = 'client backend' " +
            "AND (state = 'idle in transaction' OR (state = 'active' AND xact_start < query_start))", connection);
        var clock = Stopwatch.StartNew();
        var caught = false;
        while (!caught && clock.Elapsed < bound)
        {
            caught = (long)(await look.ExecuteScalarAsync())! > 0;
        }

        if (!caught)
        {
            return false;
        }

        foreach (var process in processes)
        {
            _ = Signal(process.Pid, SigStop);
        }

        try
        {
            await Task.Delay(frozen);
        }
        finally
        {
            foreach (var process in processes)
            {
                _ = Signal(process.Pid, SigCont);
            }
        }

        return true;
    }

    private const int SigCont = 18;
    private const int SigStop = 19;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Signal(int pid, int signal);

    /// <summary>
    /// Freezes <paramref name="processes"/> (SIGSTOP) for <paramref name="frozen"/>, as a paused container or VM, a debugger
    /// or a long stall would, then lets them go on (SIGCONT).
    /// </summary>
    public static async Task FreezeAsync(TimeSpan frozen, params ChildProcess[] processes)
    {
        await MachineCommands.RunAsync("kill", ["-STOP", .. processes.Select(p => p.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        try
        {
            await Task.Delay(frozen);
        }
        finally
        {
            await MachineCommands.RunAsync("kill", ["-CONT", .. processes.Select(p => p.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture))]);
        }
    }

    /// <summary>
    /// SIGKILLs <paramref name="process"/> the moment a session of the PostgreSQL ledger runs a statement matching
    /// <paramref name="statement"/> (a POSIX regular expression on <c>pg_stat_activity.query</c>), polling for up to
    /// <paramref name="bound"/>; returns the statement seen (its first 200 characters), or null when none was (the process
    /// left running).
    /// </summary>
    public async Task<string?> KillOnStatementAsync(ChildProcess process, string statement, TimeSpan bound)
    {
        await using var connection = new NpgsqlConnection(Postgres!.LocalConnectionString);
        await connection.OpenAsync();
        await using var look = new NpgsqlCommand(
            "SELECT left(query, 200) FROM pg_stat_activity WHERE datname = 'ledger' AND pid <> pg_backend_pid() AND state = 'active' AND query ~ @statement LIMIT 1", connection);
        look.Parameters.AddWithValue("statement", statement);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < bound && !process.HasExited)
        {
            if (await look.ExecuteScalarAsync() is string seen)
            {
                await process.KillAsync();
                return seen;
            }
        }

        return null;
    }

    /// <summary>Waits until <paramref name="process"/> has started its bus (its start-up, the ledger's migration, is done).</summary>
    public static Task WaitUntilReadyAsync(ChildProcess process, TimeSpan timeout) => process.WaitForOutputAsync("fault-app ready", timeout);

    /// <summary>Starts a consumer and returns at once, before its start-up (the ledger's migration) is done.</summary>
    public Task<ChildProcess> LaunchConsumerAsync() => StartAsync("consume", 0, waitReady: false);

    /// <summary>
    /// Starts a consumer whose connection string has <paramref name="setting"/> appended (an <c>Application Name</c> that
    /// tells its sessions apart) and returns at once, before its start-up (the ledger's migration) is done.
    /// </summary>
    public Task<ChildProcess> LaunchConsumerAsync(string setting) => StartAsync("consume", 0, waitReady: false, setting: setting);

    /// <summary>
    /// A consumer and a publisher of <paramref name="count"/> probes (with the fault app's <paramref name="arguments"/>);
    /// 300 probes consumed, then the PostgreSQL ledger stopped (<c>-m immediate</c>) and 600 more consumed into the outage,
    /// their records acknowledged from the journals; then both processes SIGKILLed.
    /// </summary>
    public async Task KilledAfterConsumingIntoAnOutageAsync(int count, params string[] arguments)
    {
        var consumer = await StartWithAsync("consume", 0, 0, arguments);
        var publisher = await StartWithAsync("publish", count, 0, arguments);
        var drain = TimeSpan.FromMinutes(3);
        await WaitUntilAsync(() => Consumed.Count >= 300, drain, "300 probes consumed");
        await Postgres!.StopAsync();
        var atOutage = Consumed.Count;
        await WaitUntilAsync(() => Consumed.Count >= atOutage + 600, drain, "600 more probes consumed during the outage, journaled");
        await publisher.KillAsync();
        await consumer.KillAsync();
    }

    /// <summary>
    /// The PostgreSQL ledger's advisory locks now: the application name of a session that holds one (JobLog's migrators
    /// take one keyed on the ledger before they migrate), and how many sessions wait for one.
    /// </summary>
    public async Task<(string? Holder, long Waiting)> AdvisoryLocksAsync()
    {
        await using var connection = new NpgsqlConnection(Postgres!.LocalConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT (SELECT min(a.application_name) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted), " +
            "(SELECT count(DISTINCT l.pid) FROM pg_locks l WHERE l.locktype = 'advisory' AND NOT l.granted)", connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.IsDBNull(0) ? null : reader.GetString(0), reader.GetInt64(1));
    }

    /// <summary>
    /// Creates the SQLite ledger's file empty, in WAL mode, so that the test reads it while a process migrates it (a
    /// reader then never waits for the migrator, nor the migrator for the reader).
    /// </summary>
    public async Task CreateEmptyWalLedgerAsync()
    {
        await using var connection = new SqliteConnection($"Data Source={_sqliteFile};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA journal_mode=WAL";
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// Waits until the SQLite ledger (made by <see cref="CreateEmptyWalLedgerAsync"/>) holds EF Core's migration lock (a
    /// row of JobLog's <c>__JobLogMigrationsLock</c>): <paramref name="migrator"/> is migrating it now.
    /// </summary>
    public async Task WaitForMigrationLockAsync(ChildProcess migrator, TimeSpan timeout)
    {
        await using var connection = new SqliteConnection($"Data Source={_sqliteFile};Mode=ReadOnly;Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM \"__JobLogMigrationsLock\"";
        var clock = Stopwatch.StartNew();
        while (true)
        {
            Assert.That(clock.Elapsed, Is.LessThan(timeout), "the migration lock seen in the ledger\n" + migrator.Tail(30));
            Assert.That(migrator.HasExited, Is.False, "the migrator died on its own\n" + migrator.Tail(30));
            try
            {
                if (Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture) > 0)
                {
                    return;
                }
            }
            catch (SqliteException)
            {
                // No lock table yet: the next poll.
            }

            await Task.Delay(1);
        }
    }

    /// <summary>Runs one sweep of the ledger, as the Worker's <c>sweep</c> does, with <paramref name="hostTimeout"/>.</summary>
    public async Task<JobLog.Sweeping.SweepResult> SweepAsync(TimeSpan hostTimeout)
    {
        var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection();
        services.AddJobLog(o =>
        {
            if (Postgres is null)
            {
                o.UseSqlite(ConnectionString);
            }
            else
            {
                o.UseNpgsql(ConnectionString);
            }

            o.HeartbeatInterval = hostTimeout / 4;
            o.HostTimeout = hostTimeout;
        });
        await using var provider = services.BuildServiceProvider();
        return await provider.GetRequiredService<JobLog.Maintenance.LedgerMaintenance>().SweepAsync();
    }

    /// <summary>The EXPIRED runs whose error names a host, and how many of their tasks are EXPIRED.</summary>
    public async Task<(int Runs, int ExpiredTasks)> ExpiredByHostAsync()
    {
        await using var connection = Postgres is null ? (System.Data.Common.DbConnection)new SqliteConnection(ConnectionString) : new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*), SUM(CASE WHEN t.\"State\" = 6 THEN 1 ELSE 0 END) FROM \"JobLogTaskRuns\" r JOIN \"JobLogTasks\" t ON t.\"Id\" = r.\"TaskId\" " +
            "WHERE r.\"State\" = 5 AND r.\"ErrorMessage\" LIKE '%stopped sending heartbeats%'";
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (Convert.ToInt32(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture),
            reader.IsDBNull(1) ? 0 : Convert.ToInt32(reader.GetValue(1), System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Opens sessions to the ledger's PostgreSQL (as another client would, outside any pool) until the server refuses one
    /// with <c>too many connections</c> (53300); returns them, held until disposed.
    /// </summary>
    public async Task<List<NpgsqlConnection>> ExhaustConnectionsAsync()
    {
        var held = new List<NpgsqlConnection>();
        while (true)
        {
            var connection = new NpgsqlConnection(ConnectionString + ";Pooling=false");
            try
            {
                await connection.OpenAsync();
                held.Add(connection);
            }
            catch (PostgresException ex) when (ex.SqlState == PostgresErrorCodes.TooManyConnections)
            {
                await connection.DisposeAsync();
                return held;
            }
        }
    }

    /// <summary>
    /// Sets the world's PostgreSQL's <c>max_connections</c> to <paramref name="max"/> (<c>ALTER SYSTEM</c>, then a restart):
    /// a server sized for fewer sessions than the processes' pools open (every role here is a superuser, so the reserved
    /// slots are theirs too).
    /// </summary>
    public async Task LimitConnectionsAsync(int max)
    {
        await AdministerAsync("ALTER SYSTEM SET superuser_reserved_connections = 0");
        await AdministerAsync($"ALTER SYSTEM SET max_connections = {max}");
        await Postgres!.RestartAsync();
    }

    /// <summary>
    /// One task of the ledger in a line: its id, state and runs (consumer, attempt ordinal, state, and why it ended when it
    /// did not succeed), or that it is not there.
    /// </summary>
    public async Task<string> DescribeTaskAsync(Guid id)
    {
        await using var connection = Postgres is null ? (System.Data.Common.DbConnection)new SqliteConnection(ConnectionString) : new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT t.\"State\", r.\"ConsumerType\", r.\"Retries\", r.\"State\", substr(r.\"ErrorMessage\", 1, 80) FROM \"JobLogTasks\" t " +
            "LEFT JOIN \"JobLogTaskRuns\" r ON r.\"TaskId\" = t.\"Id\" WHERE t.\"Id\" = @id ORDER BY r.\"Start\"";
        var parameter = command.CreateParameter();
        parameter.ParameterName = "id";
        parameter.Value = Postgres is null ? id.ToString().ToUpperInvariant() : id;
        command.Parameters.Add(parameter);
        await using var reader = await command.ExecuteReaderAsync();
        var line = new System.Text.StringBuilder(id.ToString());
        var found = false;
        while (await reader.ReadAsync())
        {
            if (!found)
            {
                line.Append(": task ").Append((JobLog.TaskState)Convert.ToInt32(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture));
                found = true;
            }

            if (!reader.IsDBNull(1))
            {
                line.Append("; ").Append(reader.GetString(1)).Append(" #").Append(reader.GetValue(2)).Append(' ')
                    .Append((JobLog.TaskRunState)Convert.ToInt32(reader.GetValue(3), System.Globalization.CultureInfo.InvariantCulture));
                if (!reader.IsDBNull(4))
                {
                    line.Append(" (").Append(reader.GetString(4).ReplaceLineEndings(" ")).Append(')');
                }
            }
        }

        return found ? line.ToString() : line.Append(": no task").ToString();
    }

    /// <summary>The runs of the ledger still ACTIVE.</summary>
    public Task<int> ActiveRunsAsync() => CountAsync("SELECT COUNT(*) FROM \"JobLogTaskRuns\" WHERE \"State\" = 1");

    /// <summary>The number a <c>SELECT COUNT(*)</c> of the ledger returns.</summary>
    public async Task<int> CountAsync(string sql)
    {
        await using var connection = Postgres is null ? (System.Data.Common.DbConnection)new SqliteConnection(ConnectionString) : new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt32(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The value a one-row, one-column <c>SELECT</c> of the ledger returns (null for none).</summary>
    public async Task<object?> ScalarAsync(string sql)
    {
        await using var connection = Postgres is null ? (System.Data.Common.DbConnection)new SqliteConnection(ConnectionString) : new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteScalarAsync() is var value and not DBNull ? value : null;
    }

    /// <summary>The rows of a <c>SELECT key, COUNT(*) … GROUP BY key</c> of the ledger, by key (its text).</summary>
    public async Task<Dictionary<string, long>> GroupCountsAsync(string sql)
    {
        await using var connection = Postgres is null ? (System.Data.Common.DbConnection)new SqliteConnection(ConnectionString) : new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await using var reader = await command.ExecuteReaderAsync();
        var counts = new Dictionary<string, long>();
        while (await reader.ReadAsync())
        {
            counts[Convert.ToString(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture)!] =
                Convert.ToInt64(reader.GetValue(1), System.Globalization.CultureInfo.InvariantCulture);
        }

        return counts;
    }

    /// <summary>
    /// Where the ledger's rollups differ from a count of its rows (empty when they agree): the tasks by state, name and kind
    /// (<c>JobLogTaskCounts</c>), the finished tasks summed over their minutes and hours (<c>JobLogTaskMinutes</c>,
    /// <c>JobLogTaskHours</c>: tables, or views over the day rollups on a partitioned ledger), and the counted runs
    /// (SUCCEEDED, FAILED or RETRIED with a Stop) by name summed over their minutes and hours.
    /// </summary>
    public async Task<List<string>> RollupMismatchesAsync()
    {
        const string Key = "CAST(\"State\" AS TEXT) || '/' || \"Name\" || '/' || CAST(\"IsInternal\" AS TEXT)";
        var pairs = new (string What, string Rollup, string Rows)[]
        {
            ("task counts", $"SELECT {Key}, SUM(\"Count\") FROM \"JobLogTaskCounts\" GROUP BY 1 HAVING SUM(\"Count\") <> 0", $"SELECT {Key}, COUNT(*) FROM \"JobLogTasks\" GROUP BY 1"),
            ("task minutes", $"SELECT {Key}, SUM(\"Count\") FROM \"JobLogTaskMinutes\" GROUP BY 1 HAVING SUM(\"Count\") <> 0", $"SELECT {Key}, COUNT(*) FROM \"JobLogTasks\" WHERE \"Stop\" IS NOT NULL GROUP BY 1"),
            ("task hours", $"SELECT {Key}, SUM(\"Count\") FROM \"JobLogTaskHours\" GROUP BY 1 HAVING SUM(\"Count\") <> 0", $"SELECT {Key}, COUNT(*) FROM \"JobLogTasks\" WHERE \"Stop\" IS NOT NULL GROUP BY 1"),
            ("run minutes", "SELECT \"Name\", SUM(\"Runs\") FROM \"JobLogRunMinutes\" GROUP BY 1 HAVING SUM(\"Runs\") <> 0", "SELECT \"Name\", COUNT(*) FROM \"JobLogTaskRuns\" WHERE \"State\" IN (2, 3, 4) AND \"Stop\" IS NOT NULL GROUP BY 1"),
            ("run hours", "SELECT \"Name\", SUM(\"Runs\") FROM \"JobLogRunHours\" GROUP BY 1 HAVING SUM(\"Runs\") <> 0", "SELECT \"Name\", COUNT(*) FROM \"JobLogTaskRuns\" WHERE \"State\" IN (2, 3, 4) AND \"Stop\" IS NOT NULL GROUP BY 1"),
        };
        var mismatches = new List<string>();
        foreach (var (what, rollup, rows) in pairs)
        {
            var (kept, counted) = (await GroupCountsAsync(rollup), await GroupCountsAsync(rows));
            foreach (var key in kept.Keys.Union(counted.Keys).Order(StringComparer.Ordinal))
            {
                var (a, b) = (kept.GetValueOrDefault(key), counted.GetValueOrDefault(key));
                if (a != b)
                {
                    mismatches.Add($"{what} {key}: rollup {a}, rows {b}");
                }
            }
        }

        return mismatches;
    }

    /// <summary>
    /// The deliveries of retried probes the consumers saw (<c>Fault:FailUnlessRetried</c>): each probe's id and whether
    /// RabbitMQ marked the delivery redelivered.
    /// </summary>
    public List<(Guid Id, bool Redelivered)> RetriedDeliveries()
    {
        var deliveries = new List<(Guid, bool)>();
        foreach (var (_, file, publisher) in _processes)
        {
            if (publisher || !File.Exists(file + ".retried"))
            {
                continue;
            }

            using var stream = new FileStream(file + ".retried", FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            while (reader.ReadLine() is { } line)
            {
                // A line cut by a SIGKILL is not a delivery the process finished writing.
                var fields = line.Split(' ');
                if (fields.Length == 2 && Guid.TryParseExact(fields[0], "D", out var id) && bool.TryParse(fields[1], out var redelivered))
                {
                    deliveries.Add((id, redelivered));
                }
            }
        }

        return deliveries;
    }

    /// <summary>
    /// What the ledger holds now, for a failure's message: its tasks and its runs by state, and on PostgreSQL its server's
    /// sessions (application, state, last statement); or why it could not be read (a look that is refused or cut, bounded
    /// by the connection's timeout).
    /// </summary>
    public async Task<string> LedgerCountsAsync()
    {
        try
        {
            await using var connection = Postgres is null
                ? (System.Data.Common.DbConnection)new SqliteConnection(ConnectionString + ";Mode=ReadOnly;Pooling=False")
                : new NpgsqlConnection(ConnectionString + ";Pooling=false");
            await connection.OpenAsync();
            var counts = new System.Text.StringBuilder("Ledger: ");
            await using (var command = connection.CreateCommand())
            {
                command.CommandText = "SELECT 'tasks', COUNT(*) FROM \"JobLogTasks\" UNION ALL SELECT 'runs in state ' || \"State\", COUNT(*) FROM \"JobLogTaskRuns\" GROUP BY \"State\"";
                await using var reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    counts.Append(reader.GetValue(0)).Append(' ').Append(reader.GetValue(1)).Append("; ");
                }
            }

            if (Postgres is not null)
            {
                await using var command = connection.CreateCommand();
                command.CommandText = "SELECT application_name || ' ' || coalesce(state, '?') || ' ' || left(regexp_replace(coalesce(query, ''), '\\s+', ' ', 'g'), 60) " +
                    "FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY 1";
                await using var reader = await command.ExecuteReaderAsync();
                counts.Append("sessions: ");
                while (await reader.ReadAsync())
                {
                    counts.Append('[').Append(reader.GetString(0)).Append("] ");
                }
            }

            return counts.ToString();
        }
        catch (Exception ex) when (ex is DbException or TimeoutException or InvalidOperationException)
        {
            return $"Ledger not readable: {ex.GetType().Name}: {ex.Message}";
        }
    }

    public IReadOnlySet<Guid> Published => Seen(publishers: true);

    public IReadOnlySet<Guid> Consumed => Seen(publishers: false);

    /// <summary>Waits until <paramref name="condition"/> holds, checking that no process of the world died on its own.</summary>
    public Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string what) =>
        WaitUntilAsync(() => Task.FromResult(condition()), timeout, what);

    /// <summary>Waits until <paramref name="condition"/> (a look at the ledger) holds, checking that no process of the world died on its own.</summary>
    public async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > timeout)
            {
                Assert.Fail($"Not within {timeout}: {what}. Published {Published.Count}, consumed {Consumed.Count}. {await LedgerCountsAsync()}\n{Tails()}");
            }

            await Task.Delay(200);
        }
    }

    /// <summary>Waits until every published probe was consumed.</summary>
    public Task DrainAsync(TimeSpan timeout) =>
        WaitUntilAsync(() => Consumed.IsSupersetOf(Published), timeout, "every published probe consumed");

    /// <summary>
    /// Drops the PostgreSQL ledger's database (its sessions cut, as <c>DROP DATABASE … WITH (FORCE)</c> does) and returns
    /// the probes seen so far: what the dropped database may have held. <see cref="CreateLedgerDatabaseAsync"/> makes it again.
    /// </summary>
    public async Task<(IReadOnlySet<Guid> Published, IReadOnlySet<Guid> Consumed)> DropLedgerDatabaseAsync()
    {
        await AdministerAsync("DROP DATABASE ledger WITH (FORCE)");
        return (Published, Consumed);
    }

    /// <summary>Creates the PostgreSQL ledger's database again, empty (as before a restore, or after a DBA's mistake).</summary>
    public Task CreateLedgerDatabaseAsync() => AdministerAsync("CREATE DATABASE ledger");

    /// <summary>
    /// Holds an exclusive lock on the ledger's migrations history (from the test, through the server's Unix socket), as a
    /// process migrating a big ledger for minutes does: a process that starts meanwhile waits for it in its migration.
    /// </summary>
    public async Task<NpgsqlConnection> LockMigrationsHistoryAsync()
    {
        var connection = new NpgsqlConnection(Postgres!.LocalConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"BEGIN; LOCK TABLE \"{JobLog.JobLogDbContext.MigrationsHistoryTable}\" IN ACCESS EXCLUSIVE MODE", connection);
        await command.ExecuteNonQueryAsync();
        return connection;
    }

    /// <summary>
    /// A consumer whose start waits in its migration: the ledger migrated once by a consumer started and stopped, then the
    /// migrations history held by the test (<see cref="LockMigrationsHistoryAsync"/>, returned: disposing it lets the
    /// migration go on) and a consumer launched, until its session waits for the lock.
    /// </summary>
    public async Task<(NpgsqlConnection History, ChildProcess Consumer)> ConsumerWaitingInItsMigrationAsync()
    {
        await StartConsumerAsync();
        await StopAllAsync();
        var history = await LockMigrationsHistoryAsync();
        var consumer = await LaunchConsumerAsync();
        await WaitForALockWaitAsync(consumer, TimeSpan.FromSeconds(90));
        return (history, consumer);
    }

    /// <summary>Waits until a session of the ledger's server waits for a lock (the process started meanwhile is migrating).</summary>
    public async Task WaitForALockWaitAsync(ChildProcess process, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            Assert.That(clock.Elapsed, Is.LessThan(timeout), "a session waiting for the lock\n" + process.Tail(30));
            Assert.That(process.HasExited, Is.False, "the process died on its own\n" + process.Tail(30));
            await using var connection = new NpgsqlConnection(Postgres!.LocalConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT count(*) FROM pg_locks WHERE NOT granted", connection);
            if ((long)(await command.ExecuteScalarAsync())! > 0)
            {
                return;
            }

            await Task.Delay(100);
        }
    }

    /// <summary>
    /// Starts the Worker's CLI (<c>dotnet JobLog.Worker.dll</c> with <paramref name="arguments"/>, e.g. <c>purge …</c>) on
    /// the world's ledger, as a process of the world (killed and disposed with it).
    /// </summary>
    public ChildProcess StartWorkerCommand(params string[] arguments)
    {
        var info = new ProcessStartInfo("dotnet") { WorkingDirectory = _directory };
        string[] all =
        [
            BuiltApplication.Dll("src/JobLog.Worker", "JobLog.Worker.dll"), .. arguments,
            "--JobLog:Database=" + (Postgres is null ? "sqlite" : "postgres"), "--ConnectionStrings:JobLog=" + ConnectionString,
        ];
        foreach (var argument in all)
        {
            info.ArgumentList.Add(argument);
        }

        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        var process = ChildProcess.Start($"worker-{arguments[0]}-{_processes.Count}", info);
        _processes.Add((process, Path.Combine(_directory, "none.ids"), false));
        return process;
    }

    /// <summary>What the ledger holds for the probes the processes saw.</summary>
    /// <param name="gonePublished">Published probes not counted (their tasks went with a dropped database).</param>
    /// <param name="goneConsumed">Consumed probes not counted (their runs went with a dropped database).</param>
    public async Task<FaultTally> TallyAsync(IReadOnlySet<Guid>? gonePublished = null, IReadOnlySet<Guid>? goneConsumed = null)
    {
        var published = Published.Except(gonePublished ?? new HashSet<Guid>()).ToHashSet();
        var consumed = Consumed.Except(goneConsumed ?? new HashSet<Guid>()).ToHashSet();
        var tasks = new Dictionary<Guid, (string? Host, string? Release)>();
        var succeeded = new HashSet<Guid>();
        var runs = 0;
        var stuck = 0;
        await using var connection = Postgres is null ? (System.Data.Common.DbConnection)new SqliteConnection(ConnectionString) : new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT \"Id\", \"Host\", \"Release\" FROM \"JobLogTasks\"";
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                tasks[ReadGuid(reader.GetValue(0))] = (reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2));
            }
        }

        await using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT \"TaskId\", \"State\" FROM \"JobLogTaskRuns\"";
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                runs++;
                var state = Convert.ToInt32(reader.GetValue(1), System.Globalization.CultureInfo.InvariantCulture);
                if (state == 2)
                {
                    succeeded.Add(ReadGuid(reader.GetValue(0)));
                }
                else if (state == 1)
                {
                    stuck++;
                }
            }
        }

        var lostTasks = published.Where(id => !tasks.ContainsKey(id)).ToList();
        var lostRuns = consumed.Where(id => !succeeded.Contains(id)).ToList();
        var withoutProducer = published.Count(id => tasks.TryGetValue(id, out var t) && (t.Release != "fault-suite" || t.Host?.StartsWith("fault-publish-", StringComparison.Ordinal) != true));
        var tally = new FaultTally(published.Count, consumed.Count, published.Count(tasks.ContainsKey), runs, lostTasks.Count + lostRuns.Count, stuck, withoutProducer);
        TestContext.Out.WriteLine(tally.ToString());
        return tally;
    }

    /// <summary>Stops every process still running gracefully (SIGTERM), so that what they buffered reaches the ledger.</summary>
    public async Task StopAllAsync()
    {
        foreach (var (process, _, _) in _processes.Where(p => !p.Process.HasExited))
        {
            await process.StopAsync(TimeSpan.FromSeconds(60));
        }
    }

    /// <summary>
    /// Holds an exclusive lock on the SQLite ledger for <paramref name="duration"/>, from this (the test's) process, as
    /// another application's long write transaction or a backup tool would: the publisher's and consumer's writers
    /// cannot commit meanwhile.
    /// </summary>
    public async Task LockSqliteLedgerAsync(TimeSpan duration)
    {
        await using var blocker = new SqliteConnection(ConnectionString + ";Pooling=False");
        await blocker.OpenAsync();
        await using (var begin = blocker.CreateCommand())
        {
            begin.CommandText = "BEGIN EXCLUSIVE";
            await begin.ExecuteNonQueryAsync();
        }

        await Task.Delay(duration);
        await using var rollback = blocker.CreateCommand();
        rollback.CommandText = "ROLLBACK";
        await rollback.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// Deletes the SQLite ledger's file (with its <c>-wal</c> and <c>-shm</c>: <c>rm ledger.db*</c>) while the processes
    /// have it open, waits a second (so that nothing committed before the deletion is seen by the processes after it), and
    /// returns the probes seen so far: what the deleted file may have held.
    /// </summary>
    public async Task<(IReadOnlySet<Guid> Published, IReadOnlySet<Guid> Consumed)> DeleteSqliteLedgerAsync()
    {
        foreach (var file in new[] { _sqliteFile!, _sqliteFile + "-wal", _sqliteFile + "-shm" })
        {
            File.Delete(file);
        }

        await Task.Delay(TimeSpan.FromSeconds(1));
        return (Published, Consumed);
    }

    /// <summary>
    /// Deletes the journal's and spool's directory with everything in it while the processes run, as an operator or a
    /// temporary-file cleaner would (again while a process happens to create a file in it meanwhile).
    /// </summary>
    public async Task DeleteJournalDirectoryAsync()
    {
        var spool = Path.Combine(_directory, "spool");
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                Directory.Delete(spool, recursive: true);
                return;
            }
            catch (IOException) when (attempt < 50 && Directory.Exists(spool))
            {
                await Task.Delay(10);
            }
        }
    }

    /// <summary>The output of every process of the world so far.</summary>
    public string Output => string.Join("\n", _processes.Select(p => p.Process.Output));

    public string Tails() => string.Join("\n", _processes.Select(p => $"--- {p.Process.Name} (pid {p.Process.Pid}, exited {p.Process.HasExited}):\n{p.Process.Tail(30)}"));

    public async ValueTask DisposeAsync()
    {
        foreach (var (process, _, _) in _processes)
        {
            await process.DisposeAsync();
        }

        if (Vhost is not null)
        {
            await Vhost.DisposeAsync();
        }

        if (Rabbit is not null)
        {
            await Rabbit.DisposeAsync();
        }

        if (Postgres is not null)
        {
            await Postgres.DisposeAsync();
        }

        SqliteConnection.ClearAllPools();
        foreach (var mounted in _mounted)
        {
            await MachineCommands.RunAsync("umount", [mounted]);
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

    private async Task<ChildProcess> StartAsync(string role, int count, int delayMs = 0, bool waitReady = true, string? setting = null, string[]? arguments = null)
    {
        var seen = Path.Combine(_directory, $"{role}-{_processes.Count}.ids");
        var info = new ProcessStartInfo("dotnet") { WorkingDirectory = _directory };
        foreach (var argument in new[]
        {
            BuiltApplication.Dll("tests/JobLog.Faults.App", "JobLog.Faults.App.dll"),
            "--Fault:Role=" + role,
            "--Fault:Out=" + seen,
            "--Fault:Count=" + count,
            "--Fault:Database=" + (Postgres is null ? "sqlite" : "postgres"),
            "--ConnectionStrings:JobLog=" + ConnectionString + (setting is null ? "" : ";" + setting),
            "--RabbitMq:Host=" + RabbitMqVhost.Host,
            "--RabbitMq:Port=" + (Rabbit?.Port ?? 5672),
            "--RabbitMq:VirtualHost=" + (Vhost?.Name ?? "/"),
            "--JobLog:SpoolDirectory=" + Path.Combine(_directory, "spool"),
            "--Fault:ConsumeDelayMs=" + delayMs,
            "--Fault:HeartbeatMs=1000",
        }.Concat(arguments ?? []))
        {
            info.ArgumentList.Add(argument);
        }

        if (QueueCapacity is { } capacity)
        {
            info.ArgumentList.Add("--JobLog:QueueCapacity=" + capacity);
        }

        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        var process = ChildProcess.Start($"{role}-{_processes.Count}", info);
        _processes.Add((process, seen, role == "publish"));
        if (waitReady)
        {
            await process.WaitForOutputAsync("fault-app ready", TimeSpan.FromSeconds(90));
        }

        return process;
    }

    private HashSet<Guid> Seen(bool publishers)
    {
        var ids = new HashSet<Guid>();
        foreach (var (_, file, publisher) in _processes)
        {
            if (publisher != publishers || !File.Exists(file))
            {
                continue;
            }

            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            while (reader.ReadLine() is { } line)
            {
                // A line cut by a SIGKILL is not an id the process finished writing.
                if (Guid.TryParseExact(line, "D", out var id))
                {
                    ids.Add(id);
                }
            }
        }

        return ids;
    }

    private async Task AdministerAsync(string sql)
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection($"Host={Postgres!.Address};Port={Postgres.Port};Username=joblog;Database=postgres;Timeout=5;Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static Guid ReadGuid(object value) => value is Guid guid ? guid : Guid.Parse((string)value);

    private static string NewDirectory()
    {
        var directory = Path.Combine(Path.GetTempPath(), "joblog-faults", Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(directory);
        return directory;
    }
}

/// <summary>What a scenario saw and what the ledger holds.</summary>
/// <param name="Published">Probes whose send returned.</param>
/// <param name="Consumed">Probes whose consumer finished.</param>
/// <param name="Tasks">Published probes with a task row.</param>
/// <param name="Runs">Runs in the ledger.</param>
/// <param name="Lost">Published probes without a task row plus consumed probes without a SUCCEEDED run.</param>
/// <param name="Stuck">Runs still ACTIVE.</param>
/// <param name="WithoutProducerFields">Published probes whose task row lacks the publisher's Host or Release.</param>
internal sealed record FaultTally(int Published, int Consumed, int Tasks, int Runs, int Lost, int Stuck, int WithoutProducerFields)
{
    public override string ToString() =>
        $"published {Published} / consumed {Consumed} / tasks {Tasks} / runs {Runs} / lost {Lost} / stuck {Stuck} / without producer fields {WithoutProducerFields}";
}
