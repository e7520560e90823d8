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
    public async Task Mediator_RequestClientInsideABusConsumer_TheQueryIsAChildOfTheConsumersRun()
    {
        // A mediator request client's send reaches its consumer without the mediator's send and publish observers: the
        // query's task is the one its run creates, and before session 29 it had no parent although it was asked inside
        // the bus consumer's run.
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<AskTheMediatorConsumer>(),
            configureServices: s => s.AddMediator(x =>
            {
                x.AddConsumer<AskStockConsumer>();
                x.ConfigureMediator((context, cfg) => cfg.UseTaskLogging(context));
            }));
        var id = NewId.NextGuid();
        await bus.Bus.Publish(new AskTheMediator("m-1"), x => x.MessageId = id);

        List<TaskLog> tasks = [];
        await LedgerHost.EventuallyAsync(async () =>
        {
            await bus.Host.FlushAsync();
            tasks = await bus.Host.TasksAsync();
            return tasks.Any(t => t.Id == id && t.State == TaskState.Succeeded) && tasks.Any(t => t.Name == nameof(AskStock) && t.State == TaskState.Succeeded);
        }, because: "the bus consumer asked the mediator and both succeeded");

        var outer = tasks.Single(t => t.Id == id).Runs.Single();
        var query = tasks.Single(t => t.Name == nameof(AskStock));
        Assert.That((query.ParentRunId, query.InputRequestId), Is.EqualTo(((Guid?)outer.Id, (Guid?)null)), Describe(query));
    }

    public sealed record AskTheMediator(string Sku);

    public sealed class AskTheMediatorConsumer(IMediator mediator) : IConsumer<AskTheMediator>
    {
        public async Task Consume(ConsumeContext<AskTheMediator> context) =>
            await mediator.CreateRequestClient<AskStock>().GetResponse<StockOk>(new AskStock(context.Message.Sku, 0, false), context.CancellationToken);
    }

    [Test]
    public async Task Mediator_AConsumerCancelledByItsCallersToken_IsAFailedRun_NotARetryNobodyRedelivers()
    {
        // On the mediator the consume token is the caller's (an aborted HTTP request's): no queue redelivers the
        // message, so the attempt is FAILED, not RETRIED as a bus endpoint's stop leaves it (review of session 20).
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s => s.AddMediator(x =>
        {
            x.AddConsumer<CancelledWorkConsumer>();
            x.ConfigureMediator((context, cfg) => cfg.UseTaskLogging(context));
        }));
        var id = NewId.NextGuid();
        using var cancel = new CancellationTokenSource();
        await using (var scope = host.Services.CreateAsyncScope())
        {
            var mediator = scope.ServiceProvider.GetRequiredService<IMediator>();
            var sent = mediator.Send(new CancelledWork(), Pipe.Execute<SendContext<CancelledWork>>(c => c.MessageId = id), cancel.Token);
            await CancelledWorkConsumer.Started.Task.WaitAsync(TimeSpan.FromSeconds(120));
            await cancel.CancelAsync();
            Assert.CatchAsync<OperationCanceledException>(async () => await sent);
        }

        await host.FlushAsync();
        var task = (await host.TasksAsync()).Single(t => t.Id == id);
        Assert.That(task.Runs.Select(r => r.State), Is.EqualTo(new[] { TaskRunState.Failed }), Describe(task));
        Assert.That(task.State, Is.EqualTo(TaskState.Failed));
    }

    public sealed record CancelledWork;

    public sealed class CancelledWorkConsumer : IConsumer<CancelledWork>
    {
        public static readonly TaskCompletionSource Started = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task Consume(ConsumeContext<CancelledWork> context)
        {
            Started.TrySetResult();
            await Task.Delay(Timeout.Infinite, context.CancellationToken);
        }
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
        // Both answers (the slow one after its request's timeout) consumed and nothing left running (it was a 4.5-s sleep).
        await PipelineFeatureTests.SettledAsync(bus.Host, "StockLow", "StockOk");
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
