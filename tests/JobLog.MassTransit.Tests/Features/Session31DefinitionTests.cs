using System.Collections.Concurrent;
using JobLog.Testing;
using MassTransit;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Features;

public sealed record Invoice(int Number, int FailTimes);

/// <summary>Fails the first <see cref="Invoice.FailTimes"/> attempts of each invoice.</summary>
public sealed class InvoiceConsumer : IConsumer<Invoice>
{
    public static readonly ConcurrentDictionary<int, int> Attempts = new();

    public Task Consume(ConsumeContext<Invoice> context)
    {
        var attempt = Attempts.AddOrUpdate(context.Message.Number, 1, (_, n) => n + 1);
        return attempt <= context.Message.FailTimes
            ? throw new InvalidOperationException($"invoice {context.Message.Number}: attempt {attempt} failed")
            : Task.CompletedTask;
    }
}

/// <summary>
/// A consumer definition that overrides its endpoint: its own endpoint name, a concurrent message limit, and a retry
/// policy on the endpoint (<c>ConfigureConsumer</c>'s endpoint configurator), none on the bus.
/// </summary>
public sealed class InvoiceConsumerDefinition : ConsumerDefinition<InvoiceConsumer>
{
    public InvoiceConsumerDefinition()
    {
        EndpointName = "session31-invoices";
        ConcurrentMessageLimit = 2;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<InvoiceConsumer> consumerConfigurator,
        IRegistrationContext context) =>
        endpointConfigurator.UseMessageRetry(r => r.Immediate(3));
}

/// <summary>Application shapes probed in session 31 (apps).</summary>
public class Session31DefinitionTests
{
    /// <summary>
    /// The retry of a consumer definition's endpoint is seen like the bus's: each attempt is a run, numbered, RETRIED
    /// until the last; the runs are on the definition's endpoint name.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task ConsumerDefinitionWithEndpointRetry_EachAttemptIsARun_OnTheDefinitionsEndpoint(Transport transport)
    {
        var recovers = new Invoice(3100 + (int)transport * 10, 2);
        var fails = new Invoice(3101 + (int)transport * 10, 9);
        InvoiceConsumer.Attempts.TryRemove(recovers.Number, out _);
        InvoiceConsumer.Attempts.TryRemove(fails.Number, out _);
        await using var bus = await BusFixture.StartAsync(transport, x => x.AddConsumer<InvoiceConsumer, InvoiceConsumerDefinition>());
        var recoversId = NewId.NextGuid();
        var failsId = NewId.NextGuid();
        await bus.Bus.Publish(recovers, x => x.MessageId = recoversId);
        await bus.Bus.Publish(fails, x => x.MessageId = failsId);

        var recovered = await PipelineFeatureTests.WaitFor(bus, recoversId, t => t.State == TaskState.Succeeded, "the invoice succeeded at its third attempt", 60);
        var failed = await PipelineFeatureTests.WaitFor(bus, failsId, t => t.State == TaskState.Failed, "the invoice failed after its three retries", 60);
        TestContext.Out.WriteLine(PipelineFeatureTests.Describe(recovered));
        TestContext.Out.WriteLine(PipelineFeatureTests.Describe(failed));

        Assert.That(recovered.Runs.OrderBy(r => r.Retries).Select(r => (r.Retries, r.State, r.ConsumerType, r.QueueName)), Is.EqualTo(new[]
        {
            (0, TaskRunState.Retried, "InvoiceConsumer", "session31-invoices"),
            (1, TaskRunState.Retried, "InvoiceConsumer", "session31-invoices"),
            (2, TaskRunState.Succeeded, "InvoiceConsumer", "session31-invoices"),
        }));
        Assert.That(failed.Runs.OrderBy(r => r.Retries).Select(r => (r.Retries, r.State)), Is.EqualTo(new[]
        {
            (0, TaskRunState.Retried), (1, TaskRunState.Retried), (2, TaskRunState.Retried), (3, TaskRunState.Failed),
        }));
        Assert.That(failed.Runs.Single(r => r.Retries == 3).ErrorMessage, Does.Contain($"invoice {fails.Number}: attempt 4 failed"));
        Assert.That(InvoiceConsumer.Attempts[fails.Number], Is.EqualTo(4), "MassTransit made four attempts");
    }
}
