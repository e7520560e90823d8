using JobLog.Recording;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage.Sqlite;

/// <summary>
/// The SQLite ledger's file deleted (an operator's <c>rm</c>, a cleaner) while the writer has it open: the writer's
/// connection would go on committing into the deleted inode, and the journal be checkpointed past records that are in no
/// file (session 21, "Found, not fixed"). Real files, the real writer; the connection string pools, as an application's does.
/// </summary>
public class SqliteLedgerFileDeletedTests
{
    private string _directory = null!;
    private string _file = null!;
    private string _connectionString = null!;

    [SetUp]
    public void SetUp()
    {
        _directory = Directory.CreateTempSubdirectory("joblog-deleted-").FullName;
        _file = Path.Combine(_directory, "ledger", "joblog.db");
        _connectionString = $"Data Source={_file}";
    }

    [TearDown]
    public void TearDown()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }

    [Test]
    public async Task LedgerFileDeletedWhileTheWriterHasItOpen_LaterRecordsReachTheFileMadeAgainAtItsPath([Values] bool itsWalAndShmToo)
    {
        var before = Tasks(20);
        var after = Tasks(20);
        await using (var host = await StartAsync(migrate: true))
        {
            var recorder = host.Services.GetRequiredService<LedgerRecorder>();
            Enqueue(recorder, before);
            await host.FlushAsync();
            Assert.That(Count(before), Is.EqualTo(20), "written before the deletion");

            Delete(itsWalAndShmToo);
            Enqueue(recorder, after);
            await host.FlushAsync();

            Assert.That(File.Exists(_file), Is.True, "a ledger file is at its path again");
            Assert.That(Count(after), Is.EqualTo(20), "every record acknowledged after the deletion is in the file at the ledger's path");
            var writer = (await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync()).Entries["joblog-writer"];
            Assert.That(writer.Description, Does.Contain("deleted"), "the health check says what happened");
        }

        Assert.That(Count(after), Is.EqualTo(20), "and they stay there after the stop");
    }

    [Test]
    public async Task LedgerFileDeleted_WithoutMigrateOnStartup_RecordsStayJournaled_UnhealthyUntilALedgerIsThereAgain()
    {
        // A ledger migrated by hand (by a first start that migrates), and a copy of it for the operator to put back.
        await using (await StartAsync(migrate: true))
        {
        }

        SqliteConnection.ClearAllPools();
        var copy = Path.Combine(_directory, "migrated.db");
        File.Copy(_file, copy);

        var before = Tasks(10);
        var after = Tasks(10);
        await using var host = await StartAsync(migrate: false);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var health = host.Services.GetRequiredService<HealthCheckService>();
        Enqueue(recorder, before);
        await host.FlushAsync();

        Delete(withWalAndShm: false);
        Enqueue(recorder, after);
        HealthReportEntry writer = default;
        await LedgerHost.EventuallyAsync(
            async () => (writer = (await health.CheckHealthAsync()).Entries["joblog-writer"]).Status == HealthStatus.Unhealthy,
            because: "the writer reports the ledger file gone");
        Assert.That(writer.Description, Does.Contain("deleted").And.Contain(_file));
        Assert.That(await recorder.FlushAsync(TimeSpan.FromSeconds(1)), Is.False, "nothing counts as committed while no ledger is at the path");
        Assert.That(Tables(), Is.Zero, "the writer does not make an empty, unmigrated ledger at the path");

        // The operator puts a migrated ledger back: the kept records reach it.
        File.Copy(copy, _file, overwrite: true);
        await host.FlushAsync();
        Assert.That(Count(after), Is.EqualTo(10));
        Assert.That((await health.CheckHealthAsync()).Entries["joblog-writer"].Status, Is.Not.EqualTo(HealthStatus.Unhealthy));
    }

    private Task<LedgerHost> StartAsync(bool migrate) =>
        LedgerHost.StartAsync(
            TestLedger.Sqlite(), // replaced by the test's own file, whose directory TearDown removes
            o =>
            {
                o.UseSqlite(_connectionString);
                o.MigrateOnStartup = migrate;
                o.Durability = LedgerDurability.Journaled;
                o.SpoolDirectory = Path.Combine(_directory, "spool");
                o.MaxRetryDelay = TimeSpan.FromMilliseconds(200);
            },
            s => s.AddHealthChecks().AddJobLogHealthChecks());

    private void Delete(bool withWalAndShm)
    {
        File.Delete(_file);
        if (withWalAndShm)
        {
            File.Delete(_file + "-wal");
            File.Delete(_file + "-shm");
        }
    }

    private static List<Guid> Tasks(int count) => Enumerable.Range(0, count).Select(_ => Guid.NewGuid()).ToList();

    private static void Enqueue(LedgerRecorder recorder, List<Guid> ids)
    {
        foreach (var id in ids)
        {
            recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow }));
        }
    }

    /// <summary>How many of <paramref name="ids"/> the file at the ledger's path holds, read by a connection of its own.</summary>
    private int Count(List<Guid> ids)
    {
        using var connection = new SqliteConnection($"Data Source={_file};Pooling=False;Mode=ReadOnly");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM JobLogTasks WHERE Id IN (SELECT value FROM json_each(@ids))";
        command.Parameters.AddWithValue("@ids", "[" + string.Join(',', ids.Select(i => "\"" + i.ToString().ToUpperInvariant() + "\"")) + "]");
        return Convert.ToInt32(command.ExecuteScalar());
    }

    /// <summary>The tables of the file at the ledger's path (0 when there is no file).</summary>
    private int Tables()
    {
        if (!File.Exists(_file))
        {
            return 0;
        }

        using var connection = new SqliteConnection($"Data Source={_file};Pooling=False;Mode=ReadOnly");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'";
        return Convert.ToInt32(command.ExecuteScalar());
    }
}
