using System.Diagnostics;
using JobLog.MassTransit.Tests.Scheduling;
using JobLog.Testing;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public class RabbitShutdownTests
{
    [Test]
    public async Task RabbitMq_StopWithConsumerStopTimeout_CancelledRunIsNotFailed_AndTheRedeliverySucceeds()
    {
        var ledger = TestLedger.Sqlite();
        var vhost = await RabbitMqVhost.CreateAsync();
        try
        {
            void Register(IBusRegistrationConfigurator x)
            {
                x.AddConsumer<StoppableConsumer>();
                ((IServiceCollection)x).Configure<MassTransitHostOptions>(o => o.ConsumerStopTimeout = TimeSpan.FromSeconds(2));
            }

            var first = await SchedulerBus.StartAsync(ledger, Register, vhost: vhost);
            var id = NewId.NextGuid();
            // In Task.Run: MassTransit's publish path sets its AsyncLocal LogContext, which the next host would then reuse.
            await Task.Run(() => first.Bus.Publish(new Stoppable(1), x => x.MessageId = id));
            await StoppableConsumer.Started.Task.WaitAsync(TimeSpan.FromSeconds(120));
            var watch = Stopwatch.StartNew();
            await first.StopAsync();
            TestContext.Out.WriteLine("stopped in " + watch.Elapsed);
            StoppableConsumer.Hang = false;
            TestContext.Out.WriteLine("error queue: " + await vhost.MessagesInQueueAsync("stoppable_error") + ", queue: " + await vhost.MessagesInQueueAsync("stoppable"));

            await using var second = await SchedulerBus.StartAsync(ledger, Register, vhost: vhost);
            TaskLog? task = null;
            try
            {
                await LedgerHost.EventuallyAsync(async () =>
                {
                    task = await second.Host.TaskAsync(id);
                    return task.Runs.Count == 2 && task.State == TaskState.Succeeded;
                }, TimeSpan.FromSeconds(15), "redelivered and consumed");
            }
            finally
            {
                TestContext.Out.WriteLine(Describe(task));
                TestContext.Out.WriteLine("error queue: " + await vhost.MessagesInQueueAsync("stoppable_error"));
            }

            var runs = task!.Runs.OrderBy(r => r.Start).ToList();
            Assert.That(runs[0].State, Is.Not.EqualTo(TaskRunState.Failed), "the delivery was not failed: the broker gave it to the next worker");
            Assert.That(runs[1].Redelivered, Is.True);
        }
        finally
        {
            await vhost.DisposeAsync();
        }
    }
}
