using JobLog.Samples.Courier;
using JobLog.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Samples.Tests.Courier;

/// <summary>Runs samples/Courier against a throwaway SQLite ledger and reads back what it recorded.</summary>
public class CourierSampleTests
{
    [Test]
    public async Task Sample_RecordsACompletedAndACompensatedRoutingSlip()
    {
        await using var ledger = TestLedger.Sqlite();
        var app = CourierSample.Build(["--urls=http://127.0.0.1:0"], ledger.ConnectionString);
        await using (app)
        {
            await app.StartAsync();
            var (completedId, faultedId) = await CourierSample.RunScenarioAsync(app.Services, CancellationToken.None);

            await using var scope = app.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
            var completed = await db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleAsync(t => t.Id == completedId);
            var faulted = await db.TaskLogs.AsNoTracking().Include(t => t.Runs).SingleAsync(t => t.Id == faultedId);

            Assert.That((completed.Name, completed.State, completed.Input),
                Is.EqualTo(("RoutingSlip", TaskState.Succeeded, "Itinerary: ReserveStock → ChargeCard → ShipOrder")));
            Assert.That(completed.Runs.Where(r => r.ConsumerType != "RoutingSlip").OrderBy(r => r.Start).Select(r => (r.Name, r.State)),
                Is.EqualTo(new[] { ("ReserveStock", TaskRunState.Succeeded), ("ChargeCard", TaskRunState.Succeeded), ("ShipOrder", TaskRunState.Succeeded) }));

            Assert.That(faulted.State, Is.EqualTo(TaskState.Failed));
            var charges = faulted.Runs.Where(r => r.ConsumerType == "ChargeCardActivity").OrderBy(r => r.Retries).ToList();
            Assert.That(charges.Select(r => (r.Retries, r.State)),
                Is.EqualTo(new[] { (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, TaskRunState.Failed) }), "UseMessageRetry(50, 100): three attempts");
            Assert.That(charges[^1].ErrorMessage, Does.Contain("The card was declined for order 1002."));
            var release = faulted.Runs.Single(r => r.ConsumerType == "ReserveStockActivity (compensate)");
            Assert.That((release.Name, release.State), Is.EqualTo(("ReserveStock (compensate)", TaskRunState.Succeeded)));
            Assert.That(release.Output, Does.Contain("Released reservation"));
            var slip = faulted.Runs.Single(r => r.ConsumerType == "RoutingSlip");
            Assert.That(slip.ErrorMessage, Does.StartWith("Compensated. Faulted in ChargeCard: System.InvalidOperationException: The card was declined"));
            Assert.That(faulted.Runs.Any(r => r.Name == "ShipOrder"), Is.False);

            var visible = await db.TaskLogs.Where(t => !t.IsInternal).Select(t => t.Name).ToListAsync();
            Assert.That(visible, Is.EqualTo(new[] { "RoutingSlip", "RoutingSlip" }), "Courier's events are internal");
            Assert.That(await db.TaskLogs.CountAsync(t => t.IsInternal && t.Name == "RoutingSlipActivityFaulted"), Is.EqualTo(1));
            await app.StopAsync();
        }
    }
}
