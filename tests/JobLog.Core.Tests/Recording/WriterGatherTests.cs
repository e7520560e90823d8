using JobLog.Recording;
using JobLog.Storage;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Recording;

/// <summary>
/// In Journaled mode the writer lets records gather for a larger batch (<see cref="JobLogOptions.JournaledGather"/>):
/// they are safe in the journal meanwhile, and a commit of many records costs less per record. The gather is set to an
/// hour here, so that only what is meant to end it (half a batch queued, a flush, shutdown) can.
/// </summary>
public class WriterGatherTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);
    private string _journal = null!;
    private TestLedger _ledger = null!;

    [SetUp]
    public void SetUp()
    {
        _journal = Directory.CreateTempSubdirectory("joblog-gather-").FullName;
        _ledger = TestLedger.Sqlite();
    }

    [TearDown]
    public async Task TearDown()
    {
        await _ledger.DisposeAsync();
        Directory.Delete(_journal, recursive: true);
    }

    [Test]
    public async Task AFewRecords_WaitInTheJournal_UntilAFlushCutsTheGatherShort()
    {
        await using var host = await StartAsync(maxBatchSize: 2000);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var id = Guid.NewGuid();
        await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(id));

        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.That(await CountAsync(host), Is.Zero, "one record of a 2,000-record batch gathers");

        Assert.That(await recorder.FlushAsync(TimeSpan.FromSeconds(120)), Is.True, "a flush does not wait out the gather");
        Assert.That(await CountAsync(host), Is.EqualTo(1));
    }

    [Test]
    public async Task HalfABatchQueued_EndsTheGather()
    {
        await using var host = await StartAsync(maxBatchSize: 4);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(Guid.NewGuid()), Dispatch(Guid.NewGuid()));

        await LedgerHost.EventuallyAsync(async () => await CountAsync(host) == 2, because: "two records are half of a batch of four");
    }

    [Test]
    public async Task DispatchesHeldForTheirRuns_DoNotEndTheGather()
    {
        // Held dispatches are uncommitted, so they are in the backlog, but not in the queue. Counted as queued, they ended
        // every gather while any were held, and under load the writer committed four to five times as often
        // (docs/benchmarks.md, session 19's hold), which ate what writing each task row once saved.
        await using var host = await StartAsync(maxBatchSize: 6, hold: true);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        var writer = host.Services.GetRequiredService<LedgerWriter>();

        // Two dispatches in the journal, then a run of a third task: half a batch of six ends the gather; the dispatches
        // are held, the run is written.
        await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(Guid.NewGuid()), Dispatch(Guid.NewGuid()));
        await RecorderTestKit.EnqueueJournaledAsync(recorder, Start(Guid.NewGuid()));
        await LedgerHost.EventuallyAsync(async () => writer.Held == 2 && await CountAsync(host) == 1, because: "both dispatches held, the run written");

        await RecorderTestKit.EnqueueJournaledAsync(recorder, Start(Guid.NewGuid()));
        await Task.Delay(TimeSpan.FromSeconds(1));

        Assert.That(await CountAsync(host), Is.EqualTo(1), "one run queued, a sixth of a batch: it gathers (the two held dispatches are not queued)");
        Assert.That(await recorder.FlushAsync(TimeSpan.FromSeconds(120)), Is.True);
        Assert.That(await CountAsync(host), Is.EqualTo(4), "a flush writes the held dispatches and the run");
    }

    [Test]
    public async Task WhatGathered_IsWrittenOnShutdown()
    {
        await using var host = await StartAsync(maxBatchSize: 2000);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(Guid.NewGuid()));

        await host.Host.StopAsync();

        Assert.That(await CountAsync(host), Is.EqualTo(1));
    }

    private async Task<LedgerHost> StartAsync(int maxBatchSize, bool hold = false) =>
        await LedgerHost.StartAsync(_ledger, o =>
        {
            o.Durability = LedgerDurability.Journaled;
            o.SpoolDirectory = _journal;
            o.MaxBatchSize = maxBatchSize;
            o.JournaledGather = TimeSpan.FromHours(1);
            o.DispatchHold = hold ? TimeSpan.FromHours(1) : TimeSpan.Zero;
        });

    private static Task<int> CountAsync(LedgerHost host) => host.QueryAsync(db => db.TaskLogs.CountAsync());

    private static TaskDispatched Dispatch(Guid id) => new(new TaskPayload
    {
        Id = id, Name = "ChargeCard", QueueName = "charge-card", Input = "Amount=10", DispatchedAt = T0, Host = "publisher",
    });

    private static RunStarted Start(Guid id) => new(
        new RunPayload { Id = Guid.NewGuid(), TaskId = id, Name = "ChargeCard", ConsumerType = "ChargeCardConsumer", Start = T0 },
        new TaskPayload { Id = id, Name = "ChargeCard", DispatchedAt = T0 },
        false);
}
