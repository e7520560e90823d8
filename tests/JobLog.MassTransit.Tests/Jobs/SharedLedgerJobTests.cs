using JobLog.Testing;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Jobs;

/// <summary>
/// The job service split across processes on one ledger, as it is deployed: a worker process runs the job consumers, a
/// service process MassTransit's job sagas (two hosts with their own JobLog, one RabbitMQ virtual host, one PostgreSQL
/// ledger).
/// </summary>
public class SharedLedgerJobTests
{
    private static Task<LedgerHost> StartAsync(TestLedger ledger, RabbitMqVhost vhost, bool worker) =>
        LedgerHost.StartAsync(TestLedger.ExistingPostgres(ledger.ConnectionString), services: s =>
        {
            s.Configure<MassTransitHostOptions>(o => o.WaitUntilStarted = true);
            s.AddMassTransit(x =>
            {
                x.SetKebabCaseEndpointNameFormatter();
                x.AddJobLogScheduler(o => o.PollInterval = TimeSpan.FromMilliseconds(500));
                if (worker)
                {
                    x.SetJobConsumerOptions();
                    x.AddConsumer<PatientJobConsumer>(c => c.Options<JobOptions<PatientJob>>(o => o.SetRetry(r => r.Interval(1, TimeSpan.FromMinutes(1)))));
                }
                else
                {
                    x.SetInMemorySagaRepositoryProvider();
                    x.AddJobSagaStateMachines();
                }

                x.UsingTestVhost(vhost);
            });
        });

    /// <summary>
    /// The worker's attempt faults and the job waits to retry; the cancellation is seen by the service process, which ran
    /// no attempt of the job. Before, that process could not tell the job's consumer: the cancellation was a
    /// <c>(job service)</c> run of its own lane, "before an attempt ran", and the task stayed RETRIED.
    /// </summary>
    [Test]
    public async Task CancelJob_WhileItWaitsToRetry_SeenByTheJobSagasProcess_IsCancelled_OnTheJobConsumersLane()
    {
        await using var ledger = await TestLedger.PostgresAsync();
        await using var vhost = await RabbitMqVhost.CreateAsync();
        await using var service = await StartAsync(ledger, vhost, worker: false);
        await using var worker = await StartAsync(ledger, vhost, worker: true);
        var bus = worker.Services.GetRequiredService<IBus>();

        var jobId = await bus.SubmitJob(new PatientJob(4), CancellationToken.None);
        await LedgerHost.EventuallyAsync(async () => (await worker.TaskAsync(jobId)).State == TaskState.Retried, TimeSpan.FromSeconds(60),
            "the worker's attempt faulted and the job waits to retry");
        await bus.CancelJob(jobId, "the customer gave up");

        TaskLog? task = null;
        await LedgerHost.EventuallyAsync(async () => (task = await worker.TaskAsync(jobId)).Runs.Count >= 2, TimeSpan.FromSeconds(60),
            "the cancellation is recorded");
        var runs = task!.Runs.OrderBy(r => r.Start).Select(r => (r.Name, r.ConsumerType, r.Retries, r.State, r.ErrorMessage?.Split(':')[0])).ToList();
        TestContext.Out.WriteLine(string.Join("\n", runs));
        Assert.That(runs, Is.EqualTo(new[]
        {
            ("PatientJob", "PatientJobConsumer", 0, TaskRunState.Retried, (string?)"System.InvalidOperationException"),
            ("PatientJob", "PatientJobConsumer", 1, TaskRunState.Cancelled, "Cancelled while waiting to retry"),
        }));
        Assert.That((task.Name, task.State, task.Runs.MaxBy(r => r.Start)!.ErrorMessage),
            Is.EqualTo(("PatientJob", TaskState.Cancelled, "Cancelled while waiting to retry: the customer gave up")));
    }
}
