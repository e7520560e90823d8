using JobLog.Testing;
using MassTransit;
using MassTransit.Mediator;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests;

public sealed record OrderLine(int Line, string Sku);

public sealed record AuditEntry(string What);

public sealed class OrderLineBatchConsumer : IConsumer<Batch<OrderLine>>
{
    public Task Consume(ConsumeContext<Batch<OrderLine>> context) => Task.CompletedTask;
}

public sealed class AuditConsumer : IConsumer<AuditEntry>
{
    private static int s_attempts;

    public Task Consume(ConsumeContext<AuditEntry> context) =>
        Interlocked.Increment(ref s_attempts) == 1 ? throw new TimeoutException("audit store busy") : Task.CompletedTask;
}

public sealed class AuditConsumerDefinition : ConsumerDefinition<AuditConsumer>
{
    public AuditConsumerDefinition() => EndpointName = "audit-trail";

    protected override void ConfigureConsumer(
        IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<AuditConsumer> consumerConfigurator, IRegistrationContext context) =>
        endpointConfigurator.UseMessageRetry(r => r.Immediate(2));
}

/// <summary>Batch consumers, consumer definitions and the mediator are recorded like plain consumers.</summary>
public class ConsumerKindsTests
{
    [Test]
    public async Task BatchConsumer_RecordsARunOnEachMessageOfTheBatch()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<OrderLineBatchConsumer>(c =>
            c.Options<BatchOptions>(o => o.SetMessageLimit(3).SetTimeLimit(TimeSpan.FromSeconds(1)))));
        var ids = new[] { NewId.NextGuid(), NewId.NextGuid(), NewId.NextGuid() };

        await bus.Bus.PublishBatch(ids.Select((id, i) => new OrderLine(i, "sku-" + i)), x => x.MessageId = ids[(int)x.Message.Line]);

        await LedgerHost.EventuallyAsync(async () =>
            (await bus.Host.TasksAsync()).Count(t => ids.Contains(t.Id) && t.State == TaskState.Succeeded) == 3, because: "every line consumed");
        var tasks = (await bus.Host.TasksAsync()).Where(t => ids.Contains(t.Id)).ToList();
        Assert.That(tasks.Select(t => t.Name).Distinct(), Is.EqualTo(new[] { "OrderLine" }));
        Assert.That(tasks.SelectMany(t => t.Runs).Select(r => r.ConsumerType).Distinct(), Is.EqualTo(new[] { "OrderLineBatchConsumer" }));
        Assert.That(tasks.Select(t => t.Runs.Single().Output), Has.All.StartsWith("Batch of 3: "));
        Assert.That(tasks[0].Runs.Single().Output, Does.Contain(ids[2].ToString()), "a run names the messages consumed with it");
    }

    [Test]
    public async Task ConsumerDefinition_ItsEndpointAndRetry_AreWhatTheRunsShow()
    {
        await using var bus = await BusFixture.StartAsync(Transport.InMemory, x => x.AddConsumer<AuditConsumer, AuditConsumerDefinition>());
        var id = NewId.NextGuid();

        await bus.Bus.Publish(new AuditEntry("login"), x => x.MessageId = id);

        await LedgerHost.EventuallyAsync(async () => (await bus.Host.TaskAsync(id)).State == TaskState.Succeeded, because: "retried, then consumed");
        var task = await bus.Host.TaskAsync(id);
        Assert.That(task.Runs.OrderBy(r => r.Retries).Select(r => (r.State, r.QueueName)), Is.EqualTo(new[]
        {
            (TaskRunState.Retried, "audit-trail"), (TaskRunState.Succeeded, "audit-trail"),
        }));
    }

    [Test]
    public async Task Mediator_SendRecordsATask_AndItsConsumerARun()
    {
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s => s.AddMediator(x =>
        {
            x.AddConsumer<ChargeCardConsumer>();
            x.ConfigureMediator((context, cfg) => cfg.UseTaskLogging(context));
        }));
        var id = NewId.NextGuid();

        await host.Services.GetRequiredService<IMediator>().Send(new ChargeCard(3, 4m), x => x.MessageId = id);

        await host.FlushAsync();
        var task = await host.TaskAsync(id);
        Assert.That((task.Name, task.State, task.Input), Is.EqualTo(("ChargeCard", TaskState.Succeeded, "CustomerId=3, Amount=4")));
        Assert.That(task.Runs.Single().ConsumerType, Is.EqualTo("ChargeCardConsumer"));
    }
}
