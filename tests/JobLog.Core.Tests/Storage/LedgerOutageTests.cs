using System.Diagnostics;
using JobLog.Recording;
using JobLog.Testing;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

public class LedgerOutageTests
{
    [Test]
    public async Task DatabaseLocked_BusinessPathDoesNotWait_AndTheLedgerCatchesUp()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.AcknowledgeTimeout = TimeSpan.FromMilliseconds(500);
            o.CommandTimeout = TimeSpan.FromSeconds(1);
            o.MaxRetryDelay = TimeSpan.FromMilliseconds(200);
        });
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await using var blocker = new SqliteConnection(host.Ledger.ConnectionString);
        await blocker.OpenAsync();
        await using (var begin = blocker.CreateCommand())
        {
            begin.CommandText = "BEGIN EXCLUSIVE";
            await begin.ExecuteNonQueryAsync();
        }

        var stopwatch = Stopwatch.StartNew();
        var ids = new List<Guid>();
        for (var i = 0; i < 50; i++)
        {
            var id = Guid.NewGuid();
            ids.Add(id);
            var sequence = recorder.Enqueue(new TaskDispatched(new TaskLog { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow }));
            await recorder.WaitCommittedAsync(sequence);
        }

        stopwatch.Stop();
        Assert.That(recorder.IsFailing, Is.True, "the writer noticed the outage");
        // Each wait is bounded by AcknowledgeTimeout, and once the writer knows the database is down nobody waits.
        Assert.That(stopwatch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(15)));

        await using (var rollback = blocker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK";
            await rollback.ExecuteNonQueryAsync();
        }

        await host.FlushAsync();
        var stored = await host.QueryAsync(db => db.TaskLogs.CountAsync());
        Assert.That(stored, Is.EqualTo(ids.Count));
        Assert.That(recorder.IsFailing, Is.False);
    }

    [Test]
    public async Task AcknowledgedWait_IsReleasedByTheCommit_AndMeasured()
    {
        var waits = new List<double>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "JobLog" && instrument.Name == "joblog.acknowledge.wait_duration")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, value, _, _) =>
        {
            lock (waits)
            {
                waits.Add(value);
            }
        });
        listener.Start();
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var id = Guid.NewGuid();

        // A short lock (well within the busy timeout): the writer waits for it, and so does the business path.
        await using var blocker = new SqliteConnection(host.Ledger.ConnectionString);
        await blocker.OpenAsync();
        await using (var begin = blocker.CreateCommand())
        {
            begin.CommandText = "BEGIN EXCLUSIVE";
            await begin.ExecuteNonQueryAsync();
        }

        var sequence = recorder.Enqueue(new TaskDispatched(new TaskLog { Id = id, Name = "T", DispatchedAt = DateTime.UtcNow }));
        var wait = recorder.WaitCommittedAsync(sequence).AsTask();
        await Task.Delay(300);
        Assert.That(wait.IsCompleted, Is.False, "waits for the commit");
        await using (var rollback = blocker.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK";
            await rollback.ExecuteNonQueryAsync();
        }

        await wait.WaitAsync(TimeSpan.FromSeconds(10));

        // Released means committed: another connection sees the row at once.
        Assert.That(await host.QueryAsync(db => db.TaskLogs.CountAsync(t => t.Id == id)), Is.EqualTo(1));
        lock (waits)
        {
            Assert.That(waits, Has.Count.EqualTo(1), "the wait is measured once");
            Assert.That(waits[0], Is.InRange(0.25, 10.0), "seconds waited, lock included");
        }
    }

    [Test]
    public async Task QueueFull_DropsAndCounts_InsteadOfBlocking()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o => o.QueueCapacity = 1000, start: false);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();

        for (var i = 0; i < 1500; i++)
        {
            recorder.Enqueue(new TaskDispatched(new TaskLog { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));
        }

        Assert.That(recorder.Backlog, Is.EqualTo(1000));
        Assert.That(recorder.Dropped, Is.EqualTo(500));
    }

    [Test]
    public async Task Shutdown_FlushesWhatIsQueued()
    {
        var ledger = TestLedger.Sqlite();
        var host = await LedgerHost.StartAsync(ledger, o => o.Durability = LedgerDurability.Buffered);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        for (var i = 0; i < 2000; i++)
        {
            recorder.Enqueue(new TaskDispatched(new TaskLog { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));
        }

        await host.Host.StopAsync();
        host.Host.Dispose();

        await using var reader = await LedgerHost.StartAsync(ledger);
        Assert.That(await reader.QueryAsync(db => db.TaskLogs.CountAsync()), Is.EqualTo(2000));
    }

    [Test]
    public void AddJobLog_WithoutADatabase_FailsAtStartWithAClearMessage()
    {
        var services = new ServiceCollection();
        services.AddJobLog(_ => { });
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(
            () => _ = provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<JobLogOptions>>().Value);
        Assert.That(ex!.Message, Does.Contain("UseSqlite"));
    }
}
