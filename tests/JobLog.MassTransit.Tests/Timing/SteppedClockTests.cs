using JobLog.MassTransit.Tests.Courier;
using JobLog.MassTransit.Tests.Jobs;
using JobLog.Testing;
using MassTransit;
using MassTransit.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Timing;

/// <summary>
/// A wall clock stepped an hour back in the middle of an attempt (an NTP step, a VM resumed), in-process
/// (<see cref="SteppedClock"/>: JobLog's wall time moves, its monotonic time does not). Session 34 made a consumer's,
/// saga's and batch's run end at its start plus the monotonic time since; session 35 (faults): a Courier activity's and a
/// job attempt's run still ended at the wall clock of their end, an hour before they began.
/// </summary>
[TestFixture]
public sealed class SteppedClockTests
{
    private static readonly TimeSpan Back = TimeSpan.FromHours(-1);

    [Test]
    public async Task CourierActivity_WhoseWallClockStepsAnHourBackMidExecute_EndsAfterItStarted()
    {
        var runs = await SteppedItineraryRunsAsync("ClockSteppingActivity");
        var stepped = runs.Single(r => r.ConsumerType == "ClockSteppingActivity");
        Assert.That(stepped.Stop, Is.GreaterThanOrEqualTo(stepped.Start).And.LessThan(stepped.Start.AddMinutes(5)),
            $"the activity's run: {stepped.Start:O} to {stepped.Stop:O} (the wall clock stepped {Back} in it)");
    }

    /// <summary>
    /// The routing slip's own run starts at the routing slip's creation and ends in the host of its last activity:
    /// session 36 found it ended at that host's wall clock, an hour before it began when the clock stepped back.
    /// </summary>
    [Test]
    public async Task RoutingSlip_WhoseWallClockStepsAnHourBackInItsLastActivity_EndsAfterItStarted()
    {
        var runs = await SteppedItineraryRunsAsync("RoutingSlip");
        var slip = runs.Single(r => r.ConsumerType == "RoutingSlip");
        var last = runs.Single(r => r.ConsumerType == "ClockSteppingActivity");
        Assert.That(slip.Stop, Is.GreaterThanOrEqualTo(slip.Start).And.GreaterThanOrEqualTo(last.Start).And.LessThan(slip.Start.AddMinutes(5)),
            $"the routing slip's run: {slip.Start:O} to {slip.Stop:O}; its last activity's: {last.Start:O} to {last.Stop:O} (the wall clock stepped {Back} in it)");
    }

    /// <summary>Runs Reserve, then an activity that steps JobLog's wall clock an hour back; the routing slip's runs once <paramref name="consumer"/>'s succeeded.</summary>
    private static async Task<List<TaskRunLog>> SteppedItineraryRunsAsync(string consumer)
    {
        var clock = new SteppedClock();
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
        {
            x.AddActivity<ReserveActivity, ReserveArguments, ReserveLog>();
            x.AddExecuteActivity<ClockSteppingActivity, ShipArguments>();
        }, configureServices: services => services.Replace(ServiceDescriptor.Singleton<TimeProvider>(clock)).AddSingleton(clock));
        var builder = new RoutingSlipBuilder(NewId.NextGuid());
        builder.AddActivity("Reserve", CourierAddresses.Execute<ReserveActivity, ReserveArguments>(), new { OrderId = 7, Quantity = 1 });
        builder.AddActivity("Step", CourierAddresses.Execute<ClockSteppingActivity, ShipArguments>(), new { OrderId = 7 });
        var slip = builder.Build();

        await bus.Bus.Execute(slip);

        return await FinishedRunsAsync(bus.Host, slip.TrackingNumber, consumer);
    }

    [Test]
    public async Task JobAttempt_WhoseWallClockStepsAnHourBackMidRun_EndsAfterItStarted()
    {
        var clock = new SteppedClock();
        await using var host = await JobBus.StartAsync(
            more: x => x.AddConsumer<ClockSteppingJobConsumer>(c => c.Options<JobOptions<ClockSteppingJob>>(o => o.SetRetry(r => r.None()))),
            services: services => services.Replace(ServiceDescriptor.Singleton<TimeProvider>(clock)).AddSingleton(clock));
        var jobId = await host.Services.GetTestHarness().Bus.SubmitJob(new ClockSteppingJob(1), CancellationToken.None);

        var runs = await FinishedRunsAsync(host, jobId, "ClockSteppingJobConsumer");
        var attempt = runs.Single(r => r.ConsumerType == "ClockSteppingJobConsumer");
        Assert.That(attempt.Stop, Is.GreaterThanOrEqualTo(attempt.Start).And.LessThan(attempt.Start.AddMinutes(5)),
            $"the job attempt's run: {attempt.Start:O} to {attempt.Stop:O} (the wall clock stepped {Back} in it)");
    }

    private static async Task<List<TaskRunLog>> FinishedRunsAsync(LedgerHost host, Guid taskId, string consumer)
    {
        List<TaskRunLog> runs = [];
        await LedgerHost.EventuallyAsync(
            async () =>
            {
                runs = await host.QueryAsync(db => db.TaskRunLogs.AsNoTracking().Where(r => r.TaskId == taskId).ToListAsync());
                return runs.Any(r => r.ConsumerType == consumer && r.State == TaskRunState.Succeeded && r.Stop is not null);
            },
            TimeSpan.FromSeconds(60),
            $"{consumer}'s run succeeded");
        return runs;
    }

    /// <summary>Steps JobLog's wall clock an hour back while it executes.</summary>
    public sealed class ClockSteppingActivity(SteppedClock clock) : IExecuteActivity<ShipArguments>
    {
        public Task<ExecutionResult> Execute(ExecuteContext<ShipArguments> context)
        {
            clock.Step(Back);
            return Task.FromResult(context.Completed());
        }
    }

    public sealed record ClockSteppingJob(int Id);

    /// <summary>Steps JobLog's wall clock an hour back while it runs.</summary>
    public sealed class ClockSteppingJobConsumer(SteppedClock clock) : IJobConsumer<ClockSteppingJob>
    {
        public Task Run(JobContext<ClockSteppingJob> context)
        {
            clock.Step(Back);
            return Task.CompletedTask;
        }
    }
}
