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

        Assert.That(await recorder.FlushAsync(TimeSpan.FromSeconds(20)), Is.True, "a flush does not wait out the gather");
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
    public async Task WhatGathered_IsWrittenOnShutdown()
    {
        await using var host = await StartAsync(maxBatchSize: 2000);
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        await RecorderTestKit.EnqueueJournaledAsync(recorder, Dispatch(Guid.NewGuid()));

        await host.Host.StopAsync();

        Assert.That(await CountAsync(host), Is.EqualTo(1));
    }

    private async Task<LedgerHost> StartAsync(int maxBatchSize) =>
        await LedgerHost.StartAsync(_ledger, o =>
        {
            o.Durability = LedgerDurability.Journaled;
            o.SpoolDirectory = _journal;
            o.MaxBatchSize = maxBatchSize;
            o.JournaledGather = TimeSpan.FromHours(1);
        });

    private static Task<int> CountAsync(LedgerHost host) => host.QueryAsync(db => db.TaskLogs.CountAsync());

    private static TaskDispatched Dispatch(Guid id) => new(new TaskPayload
    {
        Id = id, Name = "ChargeCard", QueueName = "charge-card", Input = "Amount=10", DispatchedAt = T0, Host = "publisher",
    });
}
