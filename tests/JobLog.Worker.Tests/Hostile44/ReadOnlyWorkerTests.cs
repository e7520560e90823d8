using System.Security.Cryptography;
using JobLog.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace JobLog.Worker.Tests.Hostile44;

/// <summary>
/// The Worker (dashboard, in-memory bus with UseTaskLogging, JobLog's scheduler and failure retries, the sweeper every
/// 200 ms, retention) started over a SQLite ledger opened read-only: a dashboard over a copy. It serves the ledger, and
/// says once that it cannot write it. Before session 44 the sweeper logged "JobLog sweep failed" (1012) at every pass and
/// the scheduler's dispatcher "could not reach its table" (3002) at every poll, each with SQLite's "attempt to write a
/// readonly database" and its stack, for as long as the process ran.
/// </summary>
public class ReadOnlyWorkerTests
{
    private DirectoryInfo _root = null!;
    private string _path = "";
    private Guid _id;

    [SetUp]
    public async Task SeedALedger()
    {
        _root = Directory.CreateTempSubdirectory("joblog-hostile44-");
        _path = Path.Combine(_root.FullName, "joblog.db");
        _id = Guid.NewGuid();
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
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
        SqliteConnection.ClearAllPools();
        Assert.That(File.Exists(host.Ledger.File + "-wal"), Is.False, "the WAL checkpointed");
        File.Copy(host.Ledger.File!, _path);
    }

    [TearDown]
    public void RemoveRoot()
    {
        SqliteConnection.ClearAllPools();
        _root.Delete(recursive: true);
    }

    [Test]
    [CancelAfter(120_000)]
    public async Task WorkerOverAReadOnlyLedger_ServesIt_SaysOnceItCannotWrite_NoServiceFailsAtEachPass(CancellationToken cancellation)
    {
        var before = await SHA256.HashDataAsync(File.OpenRead(_path), cancellation);
        var warnings = new WarningCollector();
        var app = WorkerApp.Build(
            [
                "--urls=http://127.0.0.1:0", "--ConnectionStrings:JobLog=Data Source=" + _path + ";Mode=ReadOnly",
                "--JobLog:Sweeper:Interval=00:00:00.2", "--JobLog:SpoolDirectory=" + Path.Combine(_root.FullName, "journal"),
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
        var after = await SHA256.HashDataAsync(File.OpenRead(_path), cancellation);
        Assert.Multiple(() =>
        {
            Assert.That(warnings.Count(1056), Is.EqualTo(1), "said once that the ledger is read-only\n" + string.Join("\n", warnings.Errors));
            Assert.That(warnings.Texts(1056).SingleOrDefault(), Does.Contain(_path), "naming the file");
            Assert.That(warnings.Errors.Where(e => e.Contains("readonly database", StringComparison.Ordinal)), Is.Empty,
                "no service tried to write the ledger (the sweeper's 1012, the scheduler's 3002, the retention's)");
            Assert.That(after, Is.EqualTo(before), "the ledger's bytes unchanged");
        });
    }
}
