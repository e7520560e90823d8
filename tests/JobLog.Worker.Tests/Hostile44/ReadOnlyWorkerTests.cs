using System.Security.Cryptography;
using JobLog.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using NUnit.Framework;

namespace JobLog.Worker.Tests.Hostile44;

/// <summary>
/// A ledger that cannot be written: a SQLite file opened read-only (a dashboard over a copy), or a PostgreSQL database
/// with <c>default_transaction_read_only</c> (what a hot standby, a read replica, answers too). The Worker (dashboard,
/// in-memory bus with UseTaskLogging, JobLog's scheduler and failure retries, the sweeper and the retention every 200 ms)
/// serves it and says once that it cannot write it; the CLI reads it. Before session 44 the Worker's sweeper logged "JobLog
/// sweep failed" (1012) at every pass, the retention likewise and the scheduler's dispatcher "could not reach its table"
/// (3002) at every poll, each with the database's refusal and its stack, for as long as it ran; on PostgreSQL the start-up
/// migration failed (25006: cannot execute CREATE TABLE in a read-only transaction) and so did every CLI command.
/// </summary>
public class ReadOnlyWorkerTests
{
    private DirectoryInfo _root = null!;
    private TestLedger? _postgres;
    private string _path = "";
    private Guid _id;

    [SetUp]
    public void MakeRoot()
    {
        _root = Directory.CreateTempSubdirectory("joblog-hostile44-");
        _id = Guid.NewGuid();
        _path = "";
        _postgres = null;
    }

    [TearDown]
    public async Task RemoveRoot()
    {
        SqliteConnection.ClearAllPools();
        NpgsqlConnection.ClearAllPools();
        if (_postgres is not null)
        {
            await _postgres.DisposeAsync();
        }

        _root.Delete(recursive: true);
    }

    /// <summary>A ledger holding one ACTIVE task gone stale, made read-only; the settings that name it.</summary>
    private async Task<string[]> ReadOnlyLedgerAsync(string database)
    {
        var ledger = database == "postgres" ? _postgres = await TestLedger.PostgresAsync() : TestLedger.Sqlite();
        // Not disposed: that would delete the ledger (LedgerHost.DisposeAsync); the host is stopped and disposed alone.
        var host = await LedgerHost.StartAsync(ledger);
        using (host.Host)
        {
            var now = DateTime.UtcNow;
            await host.QueryAsync(db =>
            {
                db.Add(new TaskLog
                {
                    Id = _id, Name = "Charge", QueueName = "charge", DispatchedAt = now.AddHours(-1), Start = now.AddHours(-1),
                    State = TaskState.Active, Stale = now.AddMinutes(-30), Input = "CustomerId=4711",
                });
                return db.SaveChangesAsync();
            });
            await host.Host.StopAsync();
        }

        SqliteConnection.ClearAllPools();
        NpgsqlConnection.ClearAllPools();
        if (database == "postgres")
        {
            await using var connection = new NpgsqlConnection(ledger.ConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"ALTER DATABASE {ledger.DatabaseName} SET default_transaction_read_only = on", connection);
            await command.ExecuteNonQueryAsync();
            NpgsqlConnection.ClearAllPools();
            return ["--JobLog:Database=postgres", "--ConnectionStrings:JobLog=" + ledger.ConnectionString];
        }

        Assert.That(File.Exists(ledger.File + "-wal"), Is.False, "the WAL checkpointed");
        _path = Path.Combine(_root.FullName, "joblog.db");
        File.Copy(ledger.File!, _path);
        await ledger.DisposeAsync();
        return ["--ConnectionStrings:JobLog=Data Source=" + _path + ";Mode=ReadOnly"];
    }

    private async Task<byte[]> HashAsync()
    {
        if (_path.Length == 0)
        {
            return [];
        }

        await using var file = File.OpenRead(_path);
        return await SHA256.HashDataAsync(file);
    }

    [TestCase("sqlite", true)]
    [TestCase("postgres", true)]
    [TestCase("sqlite", false)]
    [TestCase("postgres", false)]
    [CancelAfter(180_000)]
    public async Task WorkerOverAReadOnlyLedger_ServesIt_SaysOnceItCannotWrite_NoServiceFailsAtEachPass(string database, bool migrate, CancellationToken cancellation)
    {
        // MigrateOnStartup off (session 45): no migration asks a PostgreSQL server whether it takes writes, so the writing
        // services meet its refusal (25006) at their first pass; they stop there and the process says so once.
        var settings = await ReadOnlyLedgerAsync(database);
        var before = await HashAsync();
        var warnings = new WarningCollector();
        var app = WorkerApp.Build(
            [
                "--urls=http://127.0.0.1:0", "--JobLog:Sweeper:Interval=00:00:00.2", "--JobLog:SpoolDirectory=" + Path.Combine(_root.FullName, "journal"),
                "--JobLog:MigrateOnStartup=" + (migrate ? "true" : "false"), .. settings,
            ],
            b =>
            {
                b.Logging.SetMinimumLevel(LogLevel.Warning).AddProvider(warnings);
                b.Services.AddJobLogRetention(r => r.Interval = TimeSpan.FromMilliseconds(200));
            });
        await app.StartAsync(cancellation);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single(u => u.StartsWith("http://127.0.0.1:", StringComparison.Ordinal))) };
            var tasks = await http.GetStringAsync("/joblog/api/tasks", cancellation);
            Assert.That(tasks, Does.Contain(_id.ToString("D")), "the API lists the ledger's task");
            // Ten sweeper and retention passes, and the scheduler's and retry sender's first polls (each failed at once before).
            await Task.Delay(TimeSpan.FromSeconds(2), cancellation);
            var page = await http.GetAsync("/joblog", cancellation);
            Assert.That((int)page.StatusCode, Is.EqualTo(200), "the dashboard serves it");
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
        }

        SqliteConnection.ClearAllPools();
        var after = await HashAsync();
        var all = string.Join("\n", warnings.Errors);
        // Found by the start-up (the connection string, the migration's refusal): 1056; by the services' first write: 1057.
        var said = database == "postgres" && !migrate ? 1057 : 1056;
        Assert.Multiple(() =>
        {
            Assert.That(warnings.Count(said), Is.EqualTo(1), "said once that the ledger is read-only\n" + all);
            Assert.That(warnings.Count(1056) + warnings.Count(1057), Is.EqualTo(1), "and only once\n" + all);
            Assert.That(warnings.Texts(said).SingleOrDefault(), Does.Contain(database == "postgres" ? _postgres!.DatabaseName : _path), "naming the ledger");
            Assert.That(warnings.Errors.Where(e => e.Contains("readonly database", StringComparison.Ordinal) || e.Contains("read-only transaction", StringComparison.Ordinal)),
                Is.Empty, "no service tried to write the ledger (the sweeper's 1012, the scheduler's 3002, the retention's, the migration's)");
            Assert.That(after, Is.EqualTo(before), "the ledger's bytes unchanged");
        });
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task CliOverAReadOnlyPostgresDatabase_ReadsIt(CancellationToken cancellation)
    {
        var settings = await ReadOnlyLedgerAsync("postgres");
        using var output = new StringWriter();
        using var error = new StringWriter();
        var exit = await Cli.Cli.RunAsync(["tasks", .. settings], Cli.CliConsole.Redirected(output, error));
        Assert.Multiple(() =>
        {
            Assert.That(exit, Is.Zero, "tasks over a read-only database\n" + error + output);
            Assert.That(output.ToString(), Does.Contain(_id.ToString("D")[..8]), "it lists the task\n" + output);
        });
    }
}
