using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using JobLog.Querying;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Storage.Partitioning;
using JobLog.Storage.PostgreSql;
using JobLog.Sweeping;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.PostgreSql;

/// <summary>
/// The ledger behind PgBouncer in transaction mode (a real <c>pgbouncer</c> process of the test's own, two server
/// connections shared by every client): each transaction gets whichever server connection is free, and PgBouncer 1.18
/// keeps no prepared statement across them. JobLog's writer and sweeper let Npgsql prepare their statements, and the
/// failures list prepares its own (<see cref="PreparedReads"/>); without <see cref="ServerPreparation"/> the writer
/// retried its batch for ever ("prepared statement "_auto0" does not exist") and the failures list failed.
/// </summary>
[NonParallelizable]
public class PgBouncerTests
{
    private static readonly DateTime T0 = new(2026, 3, 10, 12, 0, 0, DateTimeKind.Utc);

    [Test]
    public async Task TheWriterTheFailuresListAndTheSweeper_ThroughPgBouncerInTransactionMode_LoseNothing()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        await using var bouncer = await Bouncer.StartAsync(ledger.ConnectionString);
        var through = bouncer.ConnectionString;
        // The real clock: on the code before the fix a fake one stalled the writer's retries, and the test hung instead of failing.
        var stale = DateTime.UtcNow.AddMinutes(-1);
        await using var host = await LedgerHost.StartAsync(ledger, o =>
        {
            o.UseNpgsql(through);
            o.Sweeper.BatchSize = 20;
        }, s => s.AddFakeLogging());
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();

        var listed = new List<int>();
        var swept = default(SweepResult);
        await WithOtherClientsAsync(through, async () =>
        {
            for (var round = 0; round < 20; round++)
            {
                for (var i = 0; i < 50; i++)
                {
                    var n = (round * 50) + i;
                    var task = new TaskPayload { Id = Guid.NewGuid(), Name = "Charge", QueueName = "billing", DispatchedAt = T0, Stale = stale };
                    var run = new RunPayload { Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, QueueName = "billing", ConsumerType = "C", Start = T0 };
                    recorder.Enqueue(new TaskDispatched(task));
                    recorder.Enqueue(new RunStarted(run, task, false));
                    if (n % 10 != 9)
                    {
                        // Every tenth run never ends: its task goes stale for the sweeper.
                        recorder.Enqueue(new RunFinished(run.Id, task.Id, n % 10 == 0 ? TaskRunState.Failed : TaskRunState.Succeeded, T0.AddSeconds(1),
                            n % 10 == 0 ? "System.TimeoutException: Timed out" : null, null, null));
                    }
                }

                await host.FlushAsync();
            }

            var database = LedgerDatabase.For(LedgerProvider.PostgreSql);
            var reads = Enumerable.Range(0, 4).Select(async _ =>
            {
                var counts = new List<int>();
                for (var read = 0; read < 5; read++)
                {
                    await using var db = database.ContextFactory(through)();
                    var queries = new LedgerQueries(db, database);
                    var groups = await queries.FailureGroupsAsync(new FailureFilter(), T0, default);
                    var page = await queries.FailuresAsync(new FailureFilter { Group = groups.Groups.Single().Id, Limit = 10 }, default);
                    counts.Add(groups.Groups.Single().Count + page.Items.Count);
                }

                return counts;
            }).ToList();
            listed.AddRange((await Task.WhenAll(reads)).SelectMany(c => c));

            swept = await host.Services.GetRequiredService<TaskLogSweeper>().SweepOnceAsync(CancellationToken.None);
        });

        var tasks = await host.QueryAsync(db => db.TaskLogs.AsNoTracking().GroupBy(t => t.State).Select(g => new { g.Key, Count = g.Count() }).ToListAsync());
        var runs = await host.QueryAsync(db => db.TaskRunLogs.CountAsync());
        var writerLog = host.Services.GetFakeLogCollector().GetSnapshot().Where(r => r.Category == typeof(LedgerWriter).FullName).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(tasks.ToDictionary(t => t.Key, t => t.Count), Is.EquivalentTo(new Dictionary<TaskState, int>
            {
                [TaskState.Succeeded] = 800, [TaskState.Failed] = 100, [TaskState.Expired] = 100,
            }));
            Assert.That(runs, Is.EqualTo(1000));
            Assert.That(recorder.Dropped, Is.Zero);
            Assert.That(swept.Expired, Is.EqualTo(100), "the sweeper's five batches");
            Assert.That(listed, Has.All.EqualTo(110), "each read: a group of 100 failures and its first page of 10");
            Assert.That(writerLog.Where(r => r.Level >= LogLevel.Error), Is.Empty, string.Join("\n", writerLog.Select(r => r.Message)));
        });
    }

    /// <summary>A connection string that sets <c>Max Auto Prepare=0</c> itself: nothing is prepared from the start, no write fails.</summary>
    [Test]
    public async Task AConnectionStringWithMaxAutoPrepareZero_PreparesNothing_AndNoBatchFails()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        await using var bouncer = await Bouncer.StartAsync(ledger.ConnectionString);
        var through = bouncer.ConnectionString + ";Max Auto Prepare=0";
        await using var host = await LedgerHost.StartAsync(ledger, o => o.UseNpgsql(through), s => s.AddFakeLogging());
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await WithOtherClientsAsync(through, async () =>
        {
            for (var round = 0; round < 10; round++)
            {
                for (var i = 0; i < 20; i++)
                {
                    var task = new TaskPayload { Id = Guid.NewGuid(), Name = "Charge", DispatchedAt = T0 };
                    var run = new RunPayload { Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, ConsumerType = "C", Start = T0 };
                    recorder.Enqueue(new TaskDispatched(task));
                    recorder.Enqueue(new RunStarted(run, task, false));
                    recorder.Enqueue(new RunFinished(run.Id, task.Id, TaskRunState.Failed, T0.AddSeconds(1), "boom", null, null));
                }

                await host.FlushAsync();
            }

            var database = LedgerDatabase.For(LedgerProvider.PostgreSql);
            await using (var db = database.ContextFactory(through)())
            {
                var groups = await new LedgerQueries(db, database).FailureGroupsAsync(new FailureFilter(), T0, default);
                Assert.That(groups.Groups.Single().Count, Is.EqualTo(200));
            }

        });
        var warnings = host.Services.GetFakeLogCollector().GetSnapshot().Where(r => r.Level >= LogLevel.Warning).Select(r => r.Message).ToList();
        Assert.That(warnings, Is.Empty, "no batch failed: nothing was prepared");
        Assert.That(await host.QueryAsync(db => db.TaskLogs.CountAsync()), Is.EqualTo(200));
    }

    /// <summary>
    /// A day's drop on a partitioned ledger through PgBouncer in transaction mode, other clients busy: its build's tables,
    /// the kept rows' versions (a table, not a temporary one), the check and the attach each land on whichever server
    /// connection is free. The day's success goes, its failure and unfinished task stay with their runs, nothing built is left.
    /// </summary>
    [Test]
    public async Task ADaysDrop_OnAPartitionedLedgerThroughPgBouncerInTransactionMode_KeepsWhatItShould_AndLeavesNoBuild()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        await using var bouncer = await Bouncer.StartAsync(ledger.ConnectionString);
        var through = bouncer.ConnectionString;
        await using var host = await LedgerHost.StartAsync(ledger, o =>
        {
            o.UseNpgsql(through);
            o.Partitioning.Enabled = true;
        }, s => s.AddSingleton<TimeProvider>(new FakeTimeProvider(new DateTimeOffset(T0))));
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await using var connection = new NpgsqlConnection(through);
        await connection.OpenAsync();
        var old = T0.AddDays(-40);
        await LedgerPartitioning.EnsureAheadAsync(connection, old, 1, CancellationToken.None);
        var ids = Enumerable.Range(0, 3).Select(i => Guid.CreateVersion7(new DateTimeOffset(old.AddMinutes(i)))).ToList();
        var runs = new List<Guid>();
        foreach (var id in ids)
        {
            var run = new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = "Invoice", ConsumerType = "C", Start = old.AddSeconds(1) };
            recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "Invoice", DispatchedAt = old, Input = $"Invoice(Order=ORD-{id:N})" }));
            recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = id, Name = "Invoice", DispatchedAt = old }, false));
            runs.Add(run.Id);
        }

        recorder.Enqueue(new RunFinished(runs[0], ids[0], TaskRunState.Succeeded, old.AddSeconds(2), null, null, null));
        recorder.Enqueue(new RunFinished(runs[1], ids[1], TaskRunState.Failed, old.AddSeconds(5), "card declined", null, null));
        await host.FlushAsync();

        PartitionDrop? drop = null;
        await WithOtherClientsAsync(through, async () =>
            drop = await LedgerPartitioning.DropExpiredAsync(connection, T0.AddDays(-30), T0.AddDays(-90), CancellationToken.None));

        Assert.Multiple(async () =>
        {
            Assert.That((drop?.Kept, drop?.Rebuilt), Is.EqualTo((2, 0)), "the kept rows built before the lock");
            Assert.That(await host.QueryAsync(db => db.TaskLogs.Select(t => t.Id).ToListAsync()), Is.EquivalentTo(ids.Skip(1)));
            Assert.That(await host.QueryAsync(db => db.TaskRunLogs.Select(r => r.Id).ToListAsync()), Is.EquivalentTo(runs.Skip(1)));
            await using var command = new NpgsqlCommand("SELECT count(*) FROM pg_class WHERE relname ~ '_[bv][0-9]{8}_'", connection);
            Assert.That(await command.ExecuteScalarAsync(), Is.Zero, "no built table left");
        });
    }

    /// <summary>
    /// Session 24: PgBouncer refuses a client that sends a startup parameter it does not know and is not told to ignore
    /// (<c>ignore_startup_parameters</c>, empty by default): "unsupported startup parameter: options". JobLog's sessions send
    /// <c>options</c> (<c>-c jit=off</c>, <c>-c idle_in_transaction_session_timeout=…</c>): before, nothing of JobLog's could
    /// connect through such a PgBouncer, the writer retried for ever and the reads failed. Now the refusal is seen at the
    /// first connection and JobLog connects without its startup settings to that server (warning 1054, once).
    /// </summary>
    [Test]
    public async Task ThroughAPgBouncerThatRefusesTheOptionsStartupParameter_TheWriterAndTheReadsGetThrough()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        await using var bouncer = await Bouncer.StartAsync(ledger.ConnectionString, ignoredStartupParameters: "extra_float_digits");
        var through = bouncer.ConnectionString;
        await using var host = await LedgerHost.StartAsync(ledger, o => o.UseNpgsql(through), s => s.AddFakeLogging());
        var ids = Enumerable.Range(0, 100).Select(_ => Guid.NewGuid()).ToList();
        foreach (var id in ids)
        {
            host.RecordDispatch(id);
            host.RecordSucceededRun(id);
        }

        Assert.That(await host.TryFlushAsync(TimeSpan.FromSeconds(60)), Is.True, "every record committed through the pooler within 60 s");
        Assert.That(await host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.State == TaskState.Succeeded)), Is.EqualTo(100), "read through the pooler");
        await using (var session = await host.OpenJobLogSessionAsync())
        {
            Assert.That(session.State, Is.EqualTo(System.Data.ConnectionState.Open), "a session opened as JobLog opens its own");
        }

        var notices = host.Services.GetFakeLogCollector().GetSnapshot().Where(r => r.Id.Id == 1054).ToList();
        Assert.That(notices, Has.Count.EqualTo(1), "the refusal said once");
        Assert.That(notices[0].Message, Does.Contain("ignore_startup_parameters"));
    }

    /// <summary>Short transactions of another client until <paramref name="stop"/>, so that JobLog's next one likely lands on another server connection.</summary>
    private static async Task OtherClientAsync(string connectionString, CancellationToken stop)
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(stop);
                await using var transaction = await connection.BeginTransactionAsync(stop);
                await using var command = new NpgsqlCommand("SELECT pg_sleep(0.002)", connection, transaction);
                await command.ExecuteNonQueryAsync(stop);
                await transaction.CommitAsync(stop);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException || stop.IsCancellationRequested)
        {
            // Stopped.
        }
    }

    /// <summary>Four other clients while <paramref name="body"/> runs; stopped however it ends.</summary>
    private static async Task WithOtherClientsAsync(string connectionString, Func<Task> body)
    {
        using var stop = new CancellationTokenSource();
        var others = Enumerable.Range(0, 4).Select(_ => OtherClientAsync(connectionString, stop.Token)).ToList();
        try
        {
            await body();
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(others);
        }
    }

    /// <summary>A <c>pgbouncer</c> in transaction mode with two server connections, in front of the test's PostgreSQL.</summary>
    private sealed class Bouncer : IAsyncDisposable
    {
        private const string Binary = "/usr/sbin/pgbouncer";
        private readonly Process _process;
        private readonly string _directory;

        private Bouncer(Process process, string directory, string connectionString)
        {
            _process = process;
            _directory = directory;
            ConnectionString = connectionString;
        }

        public string ConnectionString { get; }

        /// <param name="ledgerConnectionString">The server behind it.</param>
        /// <param name="ignoredStartupParameters">Its <c>ignore_startup_parameters</c>; PgBouncer refuses a connection that sends any other it does not know (Npgsql's <c>Options</c> send <c>options</c>).</param>
        public static async Task<Bouncer> StartAsync(string ledgerConnectionString, string ignoredStartupParameters = "extra_float_digits,options")
        {
            if (!File.Exists(Binary))
            {
                Services.Missing("PgBouncer", new FileNotFoundException("apt-get install pgbouncer", Binary));
            }

            var server = new NpgsqlConnectionStringBuilder(ledgerConnectionString);
            var port = FreePort();
            var directory = Path.Combine(Path.GetTempPath(), "joblog-pgbouncer-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(directory);
            await File.WriteAllTextAsync(Path.Combine(directory, "users.txt"), $"\"{server.Username}\" \"{server.Password}\"\n");
            await File.WriteAllTextAsync(Path.Combine(directory, "pgbouncer.ini"), $"""
                [databases]
                * = host={server.Host} port={server.Port}
                [pgbouncer]
                listen_addr = 127.0.0.1
                listen_port = {port}
                unix_socket_dir =
                auth_type = trust
                auth_file = {directory}/users.txt
                pool_mode = transaction
                default_pool_size = 2
                max_client_conn = 200
                ignore_startup_parameters = {ignoredStartupParameters}
                logfile = {directory}/pgbouncer.log
                """);

            // PgBouncer refuses to run as root: as the postgres user then (the CI machine's tests run as root).
            var root = Environment.UserName == "root";
            if (root && !OperatingSystem.IsWindows())
            {
                foreach (var path in Directory.GetFileSystemEntries(directory).Append(directory))
                {
                    File.SetUnixFileMode(path, path == directory
                        ? UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute
                          | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute
                        : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
                }
            }

            var start = root
                ? new ProcessStartInfo("runuser", ["-u", "postgres", "--", Binary, Path.Combine(directory, "pgbouncer.ini")])
                : new ProcessStartInfo(Binary, [Path.Combine(directory, "pgbouncer.ini")]);
            start.RedirectStandardError = true;
            start.RedirectStandardOutput = true;
            var process = Process.Start(start) ?? throw new InvalidOperationException("pgbouncer did not start");
            var through = new NpgsqlConnectionStringBuilder(ledgerConnectionString) { Host = "127.0.0.1", Port = port }.ConnectionString;
            var bouncer = new Bouncer(process, directory, through);
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (true)
            {
                try
                {
                    await using var connection = new NpgsqlConnection(through);
                    await connection.OpenAsync();
                    return bouncer;
                }
                catch (Exception ex) when (ex is NpgsqlException or SocketException && DateTime.UtcNow < deadline && !process.HasExited)
                {
                    await Task.Delay(100);
                }
                catch
                {
                    var log = Path.Combine(directory, "pgbouncer.log");
                    var text = File.Exists(log) ? await File.ReadAllTextAsync(log) : await process.StandardError.ReadToEndAsync();
                    await bouncer.DisposeAsync();
                    throw new InvalidOperationException("pgbouncer did not accept connections: " + text);
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            NpgsqlConnection.ClearAllPools();
            if (!_process.HasExited)
            {
                // Its own process (runuser passes the signal on): SIGTERM, then SIGKILL.
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }

            _process.Dispose();
            Directory.Delete(_directory, recursive: true);
        }

        private static int FreePort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
    }
}
