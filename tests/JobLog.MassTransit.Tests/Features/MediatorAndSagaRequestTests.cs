using JobLog.Testing;
using MassTransit;
using MassTransit.Mediator;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Features;

public class MediatorAndSagaRequestTests
{
    [Test]
    public async Task Mediator_RequestResponse_TheResponseIsNotLeftWaiting()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s => s.AddMediator(x =>
        {
            x.AddConsumer<AskStockConsumer>();
            x.AddRequestClient<AskStock>();
            x.ConfigureMediator((context, cfg) => cfg.UseTaskLogging(context));
        }));
        var id = NewId.NextGuid();
        await using (var scope = host.Services.CreateAsyncScope())
        {
            var client = scope.ServiceProvider.GetRequiredService<IRequestClient<AskStock>>();
            var response = await client.GetResponse<StockOk>(new AskStock("a", 0, false), x => x.UseExecute(c => c.MessageId = id));
            Assert.That(response.Message.Sku, Is.EqualTo("a"));
        }

        await host.FlushAsync();
        var tasks = await host.TasksAsync();
        foreach (var t in tasks)
        {
            TestContext.Out.WriteLine(t.Id + " " + Describe(t));
        }

        Assert.That(tasks.Single(t => t.Id == id).State, Is.EqualTo(TaskState.Succeeded));
        Assert.That(tasks.Where(t => t.State == TaskState.Waiting).Select(t => t.Name), Is.Empty, "the requester got the response");
    }

    [Test]
    public async Task Saga_WithARequestActivity_CompletedAndTimedOut()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x =>
            {
                x.AddDelayedMessageScheduler();
                x.AddConsumer<AskStockConsumer>().Endpoint(e => e.Name = "ask-stock");
                x.AddSagaStateMachine<CheckedOrderMachine, CheckedOrder>().InMemoryRepository();
            },
            configureBus: (_, cfg) => cfg.UseDelayedMessageScheduler());
        var quick = NewId.NextGuid();
        var slow = NewId.NextGuid();
        await bus.Bus.Publish(new StartCheck(quick, "low-1"));
        await bus.Bus.Publish(new StartCheck(slow, "slow"));
        await Task.Delay(4500);
        await bus.Host.FlushAsync();
        var tasks = await bus.Host.TasksAsync();
        foreach (var t in tasks.OrderBy(t => t.DispatchedAt))
        {
            TestContext.Out.WriteLine(t.Id + " " + t.IsInternal + " " + Describe(t));
        }

        Assert.That(tasks.SelectMany(t => t.Runs).Where(r => r.State == TaskRunState.Active), Is.Empty);
        Assert.That(tasks.Where(t => !t.IsInternal && t.State != TaskState.Succeeded).Select(t => t.Name + " " + t.State), Is.Empty);
    }
}
