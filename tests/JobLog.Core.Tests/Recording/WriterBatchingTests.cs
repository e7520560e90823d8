using System.Diagnostics.Metrics;
using JobLog.Recording;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>
/// When nothing on the business path waits for a commit (Journaled with a journal that takes every record), the writer
/// waits up to FlushInterval to fill a batch; when something does (Committed), it commits at once.
/// </summary>
public class WriterBatchingTests
{
    private readonly List<int> _batches = [];
    private MeterListener _listener = null!;

    [SetUp]
    public void SetUp()
    {
        _listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "JobLog" && instrument.Name == "joblog.writer.batch_size")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        _listener.SetMeasurementEventCallback<int>((_, value, _, _) =>
        {
            lock (_batches)
            {
                _batches.Add(value);
            }
        });
        _listener.Start();
    }

    [TearDown]
    public void TearDown() => _listener.Dispose();

    private static TaskDispatched Dispatch() => new(new TaskPayload { Id = Guid.NewGuid(), Name = "T", DispatchedAt = DateTime.UtcNow });

    [Test]
    public async Task Journaled_WhileTheJournalTakesEveryRecord_RecordsEnqueuedWithinFlushInterval_ShareOneCommit()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.Durability = LedgerDurability.Journaled;
            o.FlushInterval = TimeSpan.FromSeconds(2);
        });
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        Assert.That(recorder.MayFillBatches, Is.True);

        for (var i = 0; i < 20; i++)
        {
            var sequence = recorder.Enqueue(Dispatch());
            await recorder.WaitCommittedAsync(sequence).AsTask().WaitAsync(TimeSpan.FromSeconds(1));
            await Task.Delay(10);
        }

        await host.FlushAsync();
        lock (_batches)
        {
            Assert.That(_batches, Has.Some.GreaterThanOrEqualTo(20), "one commit holds the 20 records: the journal vouched for each at once");
        }
    }

    [Test]
    public async Task Journaled_WithTheApplicationsClockFrozen_TheWriterStillCommits()
    {
        var frozen = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(56));
        await using var host = await LedgerHost.StartAsync(
            TestLedger.Sqlite(),
            o => o.Durability = LedgerDurability.Journaled,
            services => services.Replace(ServiceDescriptor.Singleton<TimeProvider>(frozen)));
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var id = Guid.NewGuid();

        recorder.Enqueue(new TaskDispatched(new TaskPayload { Id = id, Name = "T", DispatchedAt = frozen.GetUtcNow().UtcDateTime }));

        // The wait to fill a batch is a performance wait: a test's fake clock must not hold the ledger back.
        await LedgerHost.EventuallyAsync(
            async () => await host.QueryAsync(db => Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.CountAsync(db.TaskLogs, t => t.Id == id)) == 1,
            TimeSpan.FromSeconds(10),
            "committed although the application's clock does not move");
    }

    [Test]
    public async Task Committed_TheWriterCommitsAtOnce_ItsWaitersWait()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o =>
        {
            o.Durability = LedgerDurability.Committed;
            o.FlushInterval = TimeSpan.FromSeconds(10);
        });
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        Assert.That(recorder.MayFillBatches, Is.False);

        var sequence = recorder.Enqueue(Dispatch());
        var wait = recorder.WaitCommittedAsync(sequence).AsTask();

        Assert.That(await Task.WhenAny(wait, Task.Delay(TimeSpan.FromSeconds(5))), Is.SameAs(wait), "committed well within FlushInterval");
    }
}
