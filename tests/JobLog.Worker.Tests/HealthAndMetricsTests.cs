using System.Diagnostics.Metrics;
using JobLog.Health;
using JobLog.Internal;
using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace JobLog.Worker.Tests;

/// <summary>The <c>JobLog</c> meter counts what the recorder is handed; the health checks see the writer and the database.</summary>
public class HealthAndMetricsTests
{
    [Test]
    public async Task Meter_CountsDispatchesAndRunsByState()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite());
        var measurements = new List<(string Instrument, long Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == JobLogMetrics.MeterName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            measurements.Add((instrument.Name, value, tags.ToArray().ToDictionary(t => t.Key, t => t.Value))));
        listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) =>
            measurements.Add((instrument.Name, value, tags.ToArray().ToDictionary(t => t.Key, t => t.Value))));
        listener.Start();
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var task = new TaskPayload { Id = Guid.NewGuid(), Name = "ChargeCard", DispatchedAt = DateTime.UtcNow };
        var run = new RunPayload { Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, ConsumerType = "C", Start = DateTime.UtcNow };
        var expiredRun = new RunPayload { Id = Guid.NewGuid(), TaskId = task.Id, Name = task.Name, ConsumerType = "D", Start = DateTime.UtcNow, Stop = DateTime.UtcNow, State = TaskRunState.Expired };

        recorder.Enqueue(new TaskDispatched(task));
        recorder.Enqueue(new RunStarted(run, task, false));
        recorder.Enqueue(new RunFinished(run.Id, task.Id, TaskRunState.Retried, DateTime.UtcNow, "boom", null, null));
        recorder.Enqueue(new RunFailedForGood(run.Id, task.Id));
        recorder.Enqueue(new RunStarted(expiredRun, task, false));
        await host.FlushAsync();
        listener.RecordObservableInstruments();

        Assert.That(measurements.Where(m => m.Instrument == "joblog.tasks.dispatched").Select(m => (m.Value, m.Tags["joblog.task.name"])),
            Is.EqualTo(new[] { (1L, (object?)"ChargeCard") }));
        Assert.That(measurements.Where(m => m.Instrument == "joblog.runs.started").Sum(m => m.Value), Is.EqualTo(2));
        Assert.That(measurements.Where(m => m.Instrument == "joblog.runs").Select(m => m.Tags["joblog.run.state"]),
            Is.EqualTo(new object?[] { "retried", "failed", "expired" }));
        Assert.That(measurements.Where(m => m.Instrument == "joblog.writer.records").Sum(m => m.Value), Is.EqualTo(5));
        Assert.That(measurements.Where(m => m.Instrument == "joblog.writer.batch_size").Sum(m => m.Value), Is.EqualTo(5));
        Assert.That(measurements.Any(m => m.Instrument == "joblog.writer.backlog"), Is.True);
    }

    [Test]
    public async Task HealthChecks_AreHealthy_WhenTheWriterKeepsUp()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s => s.AddHealthChecks().AddJobLogHealthChecks());

        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        Assert.That(report.Entries.Keys, Is.EquivalentTo(new[] { "joblog-writer", "joblog-database" }));
        Assert.That(report.Status, Is.EqualTo(HealthStatus.Healthy), string.Join("; ", report.Entries.Select(e => e.Value.Description)));
        Assert.That(report.Entries["joblog-writer"].Tags, Does.Contain("joblog"));
    }

    [Test]
    public async Task WriterCheck_IsDegradedWhenBehindOrDropping_AndUnhealthyWhileTheDatabaseFails()
    {
        await using var host = await LedgerHost.StartAsync(
            TestLedger.Sqlite(),
            o =>
            {
                o.QueueCapacity = 1000;
                o.SpoolDirectory = null; // records past the queue are dropped, not spooled
            },
            s => s.AddHealthChecks().AddJobLogHealthChecks(o => o.DegradedBacklog = 10),
            start: false);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var health = host.Services.GetRequiredService<HealthCheckService>();

        for (var i = 0; i < 20; i++)
        {
            recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));
        }

        var behind = (await health.CheckHealthAsync(r => r.Name == "joblog-writer")).Entries["joblog-writer"];
        Assert.That((behind.Status, behind.Data["backlog"]), Is.EqualTo((HealthStatus.Degraded, (object)20)));

        for (var i = 0; i < 1000; i++)
        {
            recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow }));
        }

        var dropping = (await health.CheckHealthAsync(r => r.Name == "joblog-writer")).Entries["joblog-writer"];
        Assert.That(dropping.Status, Is.EqualTo(HealthStatus.Degraded));
        Assert.That(dropping.Description, Does.Contain("dropped 20"));

        recorder.SetFailing(true);
        var failing = (await health.CheckHealthAsync(r => r.Name == "joblog-writer")).Entries["joblog-writer"];
        Assert.That(failing.Status, Is.EqualTo(HealthStatus.Unhealthy));
        Assert.That(failing.Description, Does.Contain("cannot reach the database"));
    }

    [Test]
    public async Task WriterCheck_WhileTheStartCannotMigrate_SaysWhy()
    {
        // Nothing listens on port 1: the writer's start-up migration fails attempt after attempt.
        await using var host = await LedgerHost.StartAsync(
            TestLedger.ExistingPostgres("Host=127.0.0.1;Port=1;Username=x;Password=y;Database=none;Timeout=2"),
            o => o.SpoolDirectory = null,
            s => s.AddHealthChecks().AddJobLogHealthChecks());
        var health = host.Services.GetRequiredService<HealthCheckService>();

        HealthReportEntry writer = default;
        await LedgerHost.EventuallyAsync(async () =>
            (writer = (await health.CheckHealthAsync(r => r.Name == "joblog-writer")).Entries["joblog-writer"]).Status == HealthStatus.Unhealthy);

        Assert.That(writer.Data.TryGetValue("lastError", out var error) ? error : null, Does.Contain("127.0.0.1:1"), writer.Description);
        Assert.That(writer.Description, Does.Contain("cannot reach the database or write to it (").And.Contain("127.0.0.1:1"));
    }

    [Test]
    public async Task DatabaseCheck_IsUnhealthy_WhenTheLedgerDoesNotAnswer()
    {
        var options = Options.Create(new JobLogOptions().UseNpgsql("Host=127.0.0.1;Port=1;Username=x;Password=y;Database=none;Timeout=2"));
        var check = new LedgerDatabaseHealthCheck(new JobLogContextFactory(options), Options.Create(new JobLogHealthCheckOptions { DatabaseTimeout = TimeSpan.FromSeconds(3) }));
        var context = new HealthCheckContext
        {
            Registration = new HealthCheckRegistration("joblog-database", check, HealthStatus.Unhealthy, null),
        };

        var result = await check.CheckHealthAsync(context);

        Assert.That(result.Status, Is.EqualTo(HealthStatus.Unhealthy));
        Assert.That(result.Description, Does.Contain("does not answer"));
    }
}
