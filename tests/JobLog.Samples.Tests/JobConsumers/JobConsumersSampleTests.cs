using JobLog.Samples.JobConsumers;
using JobLog.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Samples.Tests.JobConsumers;

/// <summary>Runs samples/JobConsumers against a throwaway SQLite ledger and reads back what it recorded.</summary>
public class JobConsumersSampleTests
{
    [Test]
    public async Task Sample_RecordsACompletedJobWithItsProgressAndACancelledJob()
    {
        await using var ledger = TestLedger.Sqlite();
        var app = JobConsumersSample.Build(["--urls=http://127.0.0.1:0"], ledger.ConnectionString);
        await using (app)
        {
            await app.StartAsync();
            var (completedId, cancelledId) = await JobConsumersSample.RunScenarioAsync(app.Services, CancellationToken.None);

            await using var scope = app.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
            var completed = await db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleAsync(t => t.Id == completedId);
            var cancelled = await db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleAsync(t => t.Id == cancelledId);

            Assert.That((completed.Name, completed.State, completed.Input), Is.EqualTo(("ConvertVideo", TaskState.Succeeded, "Path=intro.mp4, Steps=2")));
            var run = completed.Runs.Single();
            Assert.That((run.ConsumerType, run.State, run.Retries), Is.EqualTo(("ConvertVideoConsumer", TaskRunState.Succeeded, 0)));
            Assert.That(run.Output, Does.Contain("Converted intro.mp4"));
            Assert.That(completed.ExtraData, Does.Contain("\"value\":2").And.Contain("\"limit\":2"));

            Assert.That((cancelled.Name, cancelled.State), Is.EqualTo(("ConvertVideo", TaskState.Cancelled)));
            var attempt = cancelled.Runs.Single();
            Assert.That(attempt.State, Is.EqualTo(TaskRunState.Cancelled));
            Assert.That(attempt.ErrorMessage, Does.StartWith("Cancelled"));

            var visible = await db.TaskLogs.Where(t => !t.IsInternal).Select(t => t.Name).ToListAsync();
            Assert.That(visible, Is.EqualTo(new[] { "ConvertVideo", "ConvertVideo" }), "the job service's own messages are internal");
            Assert.That(await db.TaskLogs.CountAsync(t => t.IsInternal), Is.GreaterThan(5));

            // A clean ledger: nothing due is left WAITING. The sample is one application that consumes what it publishes
            // (docs/masstransit.md, "Events nobody consumes"), so the job service's events nobody here consumes are closed
            // at once; only messages scheduled for later (the job saga's status checks) may wait, for their time.
            List<string> waiting = [];
            try
            {
                await LedgerHost.EventuallyAsync(async () =>
                {
                    var now = DateTime.UtcNow;
                    waiting = await db.TaskLogs.AsNoTracking().Where(t => t.State == TaskState.Waiting && t.EstimatedTimeOfFirstArrival <= now)
                        .Select(t => t.Name).ToListAsync();
                    return waiting.Count == 0;
                }, TimeSpan.FromSeconds(20), "no task that is due stays WAITING");
            }
            finally
            {
                TestContext.Out.WriteLine("waiting: " + string.Join(", ", waiting.Order()));
            }

            Assert.That(waiting, Is.Empty);
            await app.StopAsync();
        }
    }
}
