using JobLog.Testing;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using static JobLog.MassTransit.Tests.Features.PipelineFeatureTests;

namespace JobLog.MassTransit.Tests.Apps42;

public sealed record Ask42(int N);

public sealed record Reply42(int N);

/// <summary>
/// A request answered by a handler: the request's run is the handler's, the response's the request client's receipt
/// (<c>RequestClient</c>). A handler reports itself to MassTransit's receive observers as <c>MessageHandler&lt;T&gt;</c>, as a
/// request client's response handler does, so a request (it has a RequestId too) must not be taken for a response.
/// </summary>
public class ConnectedRequestTests
{
    /// <summary>
    /// A handler connected to the bus endpoint answers a request sent to the bus's address: the request's task has one
    /// run, <c>ConnectedHandler&lt;Ask42&gt;</c>, and the reply's one, <c>RequestClient</c>.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task RequestToAHandlerConnectedToTheBus_IsTheHandlersRun_NotAResponseReceipt(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, _ => { });
        var handle = bus.Bus.ConnectHandler<Ask42>(c => c.RespondAsync(new Reply42(c.Message.N)));
        try
        {
            // What a connected handler sends is not linked to its run (docs/masstransit.md): the run is recorded after it.
            await AskAndCheckAsync(bus, bus.Bus.Address, "ConnectedHandler<Ask42>", linked: false);
        }
        finally
        {
            handle.Disconnect();
        }
    }

    /// <summary>
    /// A handler configured on a receive endpoint (connected after start, so configured through JobLog's observers) answers
    /// a request: the request's task has one run, <c>Handler&lt;Ask42&gt;</c>, and no response receipt of its own.
    /// </summary>
    [TestCase(Transport.InMemory)]
    [TestCase(Transport.RabbitMq)]
    public async Task RequestToAConfiguredHandler_IsTheHandlersRun_NotAResponseReceipt(Transport transport)
    {
        await using var bus = await BusFixture.StartAsync(transport, _ => { });
        var queue = "ask42-" + Random.Shared.Next(1000, int.MaxValue);
        var connected = bus.Host.Services.GetRequiredService<IReceiveEndpointConnector>()
            .ConnectReceiveEndpoint(queue, (_, e) => e.Handler<Ask42>(c => c.RespondAsync(new Reply42(c.Message.N))));
        await connected.Ready;
        await AskAndCheckAsync(bus, new Uri("queue:" + queue), "Handler<Ask42>", linked: true);
    }

    private static async Task AskAndCheckAsync(BusFixture bus, Uri address, string handler, bool linked)
    {
        var client = bus.Bus.CreateRequestClient<Ask42>(address, RequestTimeout.After(s: 60));
        var askId = NewId.NextGuid();
        var response = await client.GetResponse<Reply42>(new Ask42(42), x => x.UseExecute(c => c.MessageId = askId));
        Assert.That(response.Message.N, Is.EqualTo(42));
        var reply = await WaitFor(bus, response.MessageId!.Value, t => t.State == TaskState.Succeeded, "the reply was received", 60);
        var request = await WaitFor(bus, askId, t => t.State == TaskState.Succeeded, "the request was answered", 60);
        await SettledAsync(bus.Host, nameof(Ask42), nameof(Reply42));
        request = await WaitFor(bus, request.Id, _ => true, "the request");
        reply = await WaitFor(bus, reply.Id, _ => true, "the reply");
        TestContext.Out.WriteLine(Describe(request));
        TestContext.Out.WriteLine(Describe(reply));
        Assert.That(request.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { (handler, TaskRunState.Succeeded) }));
        Assert.That(reply.Runs.Select(r => (r.ConsumerType, r.State)), Is.EqualTo(new[] { ("RequestClient", TaskRunState.Succeeded) }));
        if (linked)
        {
            Assert.That(reply.ParentRunId, Is.EqualTo(request.Runs.Single().Id), "the reply is the handler's run's child");
        }
    }
}
