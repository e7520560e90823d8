using JobLog.Recording;
using JobLog.Sweeping;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Sweeping;

/// <summary>
/// The sweeper logs one warning a batch, the expired tasks counted by name, and each task at Debug: a backlog of 100,000
/// is a hundred lines, not 100,000.
/// </summary>
public class SweeperLoggingTests
{
    private static readonly DateTime T0 = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);

    // 12 names, the first the most frequent: 14 + 11 × 1 = 25 stale tasks, swept in batches of batchSize.
    private static Task<List<FakeLogRecord>> SweepLogsAsync(int batchSize) =>
        SweepLogsAsync(batchSize, Enumerable.Repeat("Report", 14).Concat(Enumerable.Range(1, 11).Select(i => $"Job{i:00}")).ToList());

    private static async Task<List<FakeLogRecord>> SweepLogsAsync(int batchSize, IReadOnlyList<string> names)
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(T0));
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), o => o.Sweeper.BatchSize = batchSize, s =>
        {
            s.AddSingleton<TimeProvider>(clock);
            s.AddFakeLogging();
            s.AddLogging(b => b.AddFilter<FakeLoggerProvider>(typeof(TaskLogSweeper).FullName, LogLevel.Debug));
        });
        var recorder = host.Services.GetRequiredService<LedgerRecorder>();
        foreach (var name in names)
        {
            recorder.Enqueue(new TaskDispatched(new TaskPayload
            {
                Id = Guid.NewGuid(), Name = name, DispatchedAt = T0, EstimatedTimeOfFirstArrival = T0, Stale = T0.AddSeconds(1),
            }));
        }

        await host.FlushAsync();
        clock.Advance(TimeSpan.FromSeconds(2));
        var collector = host.Services.GetFakeLogCollector();
        collector.Clear();
        var result = await host.Services.GetRequiredService<TaskLogSweeper>().SweepOnceAsync(CancellationToken.None);
        Assert.That(result.Expired, Is.EqualTo(names.Count));
        return [.. collector.GetSnapshot().Where(r => r.Category == typeof(TaskLogSweeper).FullName)];
    }

    [Test]
    public async Task OneBatch_IsOneWarning_WithTheTenMostFrequentNames_AndEachTaskAtDebug()
    {
        var logs = await SweepLogsAsync(batchSize: 100);

        var warning = logs.Single(r => r.Level == LogLevel.Warning);
        Assert.That(warning.Id.Id, Is.EqualTo(1013));
        Assert.That(warning.Message, Is.EqualTo(
            "JobLog's sweeper set tasks that went stale without finishing to EXPIRED: Report × 14, Job01 × 1, Job02 × 1, Job03 × 1, " +
            "Job04 × 1, Job05 × 1, Job06 × 1, Job07 × 1, Job08 × 1, Job09 × 1 and 2 more names (25 in all)."));
        Assert.That(logs.Count(r => r.Level == LogLevel.Debug && r.Id.Id == 1010), Is.EqualTo(25), "each task at Debug");
    }

    [Test]
    public async Task ABacklog_IsOneWarningABatch()
    {
        var logs = await SweepLogsAsync(batchSize: 10);

        var warnings = logs.Where(r => r.Level >= LogLevel.Warning).ToList();
        Assert.That(warnings.Select(w => w.Id.Id), Is.EqualTo(new[] { 1013, 1013, 1013 }), "three batches, one warning each");
        Assert.That(warnings.Sum(w => int.Parse(w.StructuredState!.Single(p => p.Key == "Count").Value!, System.Globalization.CultureInfo.InvariantCulture)), Is.EqualTo(25));
    }

    // A task's name is the sender's (a foreign type's URN, a refused delivery's): a line feed in it would start a log
    // line of the sender's, and an ESC sequence would act on the terminal that tails the log.
    [Test]
    public async Task HostileTaskNames_AreLoggedWithTheirControlCharactersAsVisibleEscapes()
    {
        var forged = "Report\r\nwarn: JobLog.Sweeping.TaskLogSweeper[1011]\u001b[2J\u202eexe.pdf";
        var logs = await SweepLogsAsync(batchSize: 100, [forged]);

        var messages = logs.Where(r => r.Id.Id is 1010 or 1013).Select(r => r.Message).ToList();
        Assert.That(messages, Has.Count.EqualTo(2), "the warning and the task at Debug");
        Assert.That(messages, Has.All.Not.Match(@"[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]"));
        Assert.That(messages, Has.All.Contains(@"Report\r\nwarn: JobLog.Sweeping.TaskLogSweeper[1011]\x1b[2J\u202eexe.pdf"));
    }
}
