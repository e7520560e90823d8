using JobLog.Querying;
using JobLog.Recording;
using JobLog.Testing;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Querying;

/// <summary>
/// A job's runs numbered by occurrence (<see cref="TaskDetail.Occurrences"/>, session 32) when the broker redelivers an
/// occurrence's first attempt (its process died during it): the redelivery is the same occurrence's attempt again (same
/// <c>StartJob</c>, same retry attempt 0), not a new occurrence. Written through the writer, which expires the orphaned run.
/// </summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public class JobOccurrencesTests(LedgerProvider provider)
{
    private static readonly DateTime T0 = DateTime.UtcNow.AddHours(-2);
    private readonly Guid _job = Guid.NewGuid();
    private LedgerHost _host = null!;
    private int _runs;

    [SetUp]
    public async Task SetUp() => _host = await LedgerHost.StartAsync(await Ledgers.CreateAsync(provider));

    [TearDown]
    public async Task TearDown() => await _host.DisposeAsync();

    [Test]
    public async Task ARedeliveredFirstAttempt_IsTheSameOccurrence()
    {
        await RedeliveredFirstOccurrenceAsync();
        Record(0, TaskRunState.Retried);
        Record(1, TaskRunState.Succeeded);
        await _host.FlushAsync();

        var detail = await DetailAsync();
        Assert.That(detail.Runs.OrderBy(r => r.Retries).Select(r => (r.State, r.Redelivered, detail.JobAttempt(r))), Is.EqualTo(new[]
        {
            (TaskRunState.Expired, false, "occurrence 1 · attempt 1"),
            (TaskRunState.Succeeded, true, "occurrence 1 · attempt 1"),
            (TaskRunState.Retried, false, "occurrence 2 · attempt 1"),
            (TaskRunState.Succeeded, false, "occurrence 2 · attempt 2"),
        }));
    }

    [Test]
    public async Task ARedeliveredFirstAttempt_BeforeTheRunsShown_IsTheSameOccurrence()
    {
        await RedeliveredFirstOccurrenceAsync();
        for (var i = 0; i < LedgerQueries.MaxDetailRuns + 1; i++)
        {
            Record(0, TaskRunState.Succeeded);
        }

        await _host.FlushAsync();

        // 503 runs, the latest 500 shown: the first shown is the third occurrence's (the second's and both runs of the
        // first, one of them redelivered, are counted by the statement).
        var detail = await DetailAsync();
        Assert.That(detail.RunCount, Is.EqualTo(LedgerQueries.MaxDetailRuns + 3));
        var shown = detail.Runs.OrderBy(r => r.Retries).ToList();
        Assert.That((detail.JobAttempt(shown[0]), detail.JobAttempt(shown[^1])),
            Is.EqualTo(("occurrence 3 · attempt 1", $"occurrence {LedgerQueries.MaxDetailRuns + 2} · attempt 1")));
    }

    [Test]
    public async Task AFirstAttemptRedeliveredWithoutItsFirstDelivery_BeginsTheOccurrence()
    {
        // The first delivery left no run (its process died before recording it): the redelivery is the occurrence's first run.
        Record(0, TaskRunState.Succeeded, redelivered: true);
        Record(0, TaskRunState.Succeeded);
        await _host.FlushAsync();

        var detail = await DetailAsync();
        Assert.That(detail.Runs.OrderBy(r => r.Retries).Select(detail.JobAttempt),
            Is.EqualTo(new[] { "occurrence 1 · attempt 1", "occurrence 2 · attempt 1" }));
    }

    /// <summary>The first occurrence: attempt 0 started, its process died; the broker redelivered it and it succeeded.</summary>
    private async Task RedeliveredFirstOccurrenceAsync()
    {
        Record(0, null);
        await _host.FlushAsync();
        Record(0, TaskRunState.Succeeded, redelivered: true);
        await _host.FlushAsync();
    }

    /// <summary>Records a run of the job with <paramref name="attempt"/> (<c>JobContext.RetryAttempt</c>), finished in <paramref name="state"/> unless null.</summary>
    private void Record(int attempt, TaskRunState? state, bool redelivered = false)
    {
        var recorder = _host.Services.GetRequiredService<LedgerRecorder>();
        var start = T0.AddSeconds(_runs++);
        var run = new RunPayload
        {
            Id = Guid.NewGuid(), TaskId = _job, Name = "Report", ConsumerType = "ReportConsumer", Start = start, Redelivered = redelivered,
            JobRetryAttempt = attempt,
        };
        recorder.Enqueue(new RunStarted(run, new TaskPayload { Id = _job, Name = "Report", DispatchedAt = T0 }, redelivered));
        if (state is { } final)
        {
            recorder.Enqueue(new RunFinished(run.Id, _job, final, start.AddMilliseconds(10), null, null, null));
        }
    }

    private async Task<TaskDetail> DetailAsync()
    {
        await using var scope = _host.Services.CreateAsyncScope();
        return (await scope.ServiceProvider.GetRequiredService<LedgerQueries>().TaskAsync(_job, default))!;
    }
}
