using System.Net;
using System.Text;
using JobLog.Testing;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Requests;

public sealed record ShipOrder(int OrderId);

/// <summary>The task's consumer calls the partner once.</summary>
public sealed class ShipOrderConsumer(IHttpClientFactory clients) : IConsumer<ShipOrder>
{
    public async Task Consume(ConsumeContext<ShipOrder> context)
    {
        using var response = await clients.CreateClient("partner").GetAsync($"http://partner.test/ship/{context.Message.OrderId}");
        response.EnsureSuccessStatusCode();
    }
}

/// <summary>The partner: answers every request with a small JSON body and counts them.</summary>
public sealed class PartnerStub : HttpMessageHandler
{
    private int _calls;

    public int Calls => _calls;

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = new StringContent($$"""{"path":"{{request.RequestUri!.AbsolutePath}}"}""", Encoding.UTF8, "application/json"),
            RequestMessage = request,
        });
    }
}

public class RequestLinkingTests
{
    [Test]
    public async Task InboundRequest_CallingOutTwiceAndPublishingATaskThatCallsOutOnce_LinksTwoOutputsToTheRequestAndOneToTheRun()
    {
        var partner = new PartnerStub();
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapPost("/checkout/{orderId:int}", async (int orderId, IHttpClientFactory clients, IPublishEndpoint publish) =>
                {
                    var client = clients.CreateClient("partner");
                    (await client.GetAsync($"http://partner.test/stock/{orderId}")).EnsureSuccessStatusCode();
                    (await client.PostAsync("http://partner.test/reserve", new StringContent("""{"orderId":7,"apiKey":"k"}""", Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
                    await publish.Publish(new ShipOrder(orderId));
                    return Results.Accepted();
                });
            },
            services =>
            {
                services.AddHttpClient("partner").ConfigurePrimaryHttpMessageHandler(() => partner).AddJobLogging(slug: "partner");
                services.AddMassTransitTestHarness(x =>
                {
                    x.AddConsumer<ShipOrderConsumer>();
                    x.UsingInMemory((context, cfg) =>
                    {
                        cfg.UseTaskLogging(context);
                        cfg.ConfigureEndpoints(context);
                    });
                });
            });

        using var response = await web.Client.PostAsync("/checkout/7", null);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.Accepted));
        List<OutputRequestLog> outputs = [];
        List<TaskRunLog> runs = [];
        InputRequestLog input = null!;
        await LedgerHost.EventuallyAsync(async () =>
        {
            await web.FlushAsync();
            outputs = await web.OutputsAsync();
            runs = await web.QueryAsync(db => db.TaskRunLogs.AsNoTracking().Where(r => r.State != TaskRunState.Active).ToListAsync());
            var inputs = await web.InputsAsync();
            input = inputs.SingleOrDefault(i => i.Status != RequestLogStatus.Incomplete)!;
            return outputs.Count == 3 && runs.Count == 1 && input is not null;
        }, because: "three outbound requests, one finished run, one completed inbound request");

        Assert.That(partner.Calls, Is.EqualTo(3));
        var run = runs.Single();
        var fromRequest = outputs.Where(o => o.InputRequestId == input.Id).ToList();
        var fromRun = outputs.Where(o => o.RelatedObjects.Any(r => r.TaskRunLogId == run.Id)).ToList();
        Assert.That(fromRequest.Select(o => o.Path), Is.EquivalentTo(new[] { "/stock/7", "/reserve" }));
        Assert.That(fromRun.Select(o => o.Path), Is.EqualTo(new[] { "/ship/7" }));
        Assert.That(fromRun.Single().InputRequestId, Is.Null, "the consumer runs after the request, outside it");
        Assert.That(fromRequest.SelectMany(o => o.RelatedObjects), Is.Empty);
        Assert.That(outputs.Select(o => o.Slug), Is.All.EqualTo("partner"));
        Assert.That(outputs.Select(o => o.Host), Is.All.EqualTo("partner.test"));
        var reserve = fromRequest.Single(o => o.Path == "/reserve");
        Assert.That(reserve.RequestBody, Is.EqualTo("""{"orderId":7,"apiKey":"[Filtered]"}"""));
        Assert.That(reserve.ResponseBody, Is.EqualTo("""{"path":"/reserve"}"""));
        Assert.That(reserve.Status, Is.EqualTo(RequestLogStatus.Info));
        Assert.That(run.State, Is.EqualTo(TaskRunState.Succeeded));
    }
}
