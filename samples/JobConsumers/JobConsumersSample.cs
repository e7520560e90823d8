using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace JobLog.Samples.JobConsumers;

/// <summary>The sample application: MassTransit's job service (in-memory saga repositories), JobLog and the dashboard.</summary>
public static class JobConsumersSample
{
    public const string DefaultLedger = "Data Source=job-consumers-sample.db";

    public static WebApplication Build(string[] args, string? ledger = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        // One application that consumes what it publishes: the job service's events nobody here consumes (JobStarted,
        // JobCompleted<T>, JobCanceled, ...) are closed at once instead of waiting for their stale limit.
        builder.Services.AddJobLog(o =>
        {
            o.UseSqlite(ledger ?? builder.Configuration["Ledger"] ?? DefaultLedger);
            o.CloseUnconsumedPublishes = true;
        });
        builder.Services.AddMassTransit(x =>
        {
            x.SetKebabCaseEndpointNameFormatter();
            x.AddDelayedMessageScheduler();
            // The job service's sagas keep their state in memory here (a database-backed repository in production).
            x.SetInMemorySagaRepositoryProvider();
            x.SetJobConsumerOptions();
            x.AddJobSagaStateMachines();
            x.AddConsumer<ConvertVideoConsumer>(c => c.Options<JobOptions<ConvertVideo>>(o => o
                .SetJobTimeout(TimeSpan.FromMinutes(5))
                .SetConcurrentJobLimit(4)
                .SetRetry(r => r.Interval(2, TimeSpan.FromSeconds(1)))));
            x.UsingInMemory((context, cfg) =>
            {
                // The job service schedules its slot waits and retries; in memory the transport delays them.
                cfg.UseDelayedMessageScheduler();
                cfg.UseTaskLogging(context);
                cfg.ConfigureEndpoints(context);
            });
        });
        var app = builder.Build();
        app.MapJobLogDashboard("/joblog");
        return app;
    }

    /// <summary>Submits two jobs, cancels the long one once it runs, and waits for both jobs' tasks to end.</summary>
    public static async Task<(Guid Completed, Guid Cancelled)> RunScenarioAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        var bus = services.GetRequiredService<IBus>();
        var completed = await bus.SubmitJob(new ConvertVideo("intro.mp4", 2), cancellationToken);
        var cancelled = await bus.SubmitJob(new ConvertVideo("feature-film.mp4", 600), cancellationToken);
        await WaitAsync(services, cancelled, s => s == TaskState.Active, cancellationToken);
        await bus.CancelJob(cancelled, "the user changed their mind");
        await WaitAsync(services, completed, s => s == TaskState.Succeeded, cancellationToken);
        await WaitAsync(services, cancelled, s => s == TaskState.Cancelled, cancellationToken);
        return (completed, cancelled);
    }

    private static async Task WaitAsync(IServiceProvider services, Guid jobId, Func<TaskState, bool> reached, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        while (true)
        {
            await using (var scope = services.CreateAsyncScope())
            {
                var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
                var state = await db.TaskLogs.Where(t => t.Id == jobId).Select(t => (TaskState?)t.State).SingleOrDefaultAsync(timeout.Token);
                if (state is { } s && reached(s))
                {
                    return;
                }
            }

            await Task.Delay(200, timeout.Token);
        }
    }
}
