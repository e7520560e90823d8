using System.Net;
using JobLog.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Requests;

/// <summary>
/// Outbound requests through <c>IHttpClientFactory</c> clients with Microsoft.Extensions.Http.Resilience, from an
/// inbound request and from a command, against a real partner on Kestrel that fails before it answers.
/// </summary>
public class OutboundResilienceTests
{
    private WebApplication _partner = null!;
    private int _calls;
    private int _failures;
    private TimeSpan _hangFirst;

    [SetUp]
    public async Task StartPartnerAsync()
    {
        _calls = 0;
        _failures = 0;
        _hangFirst = TimeSpan.Zero;
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        _partner = builder.Build();
        _partner.MapPost("/charges", async (HttpContext context) =>
        {
            var call = Interlocked.Increment(ref _calls);
            if (call == 1 && _hangFirst > TimeSpan.Zero)
            {
                await Task.Delay(_hangFirst, context.RequestAborted);
            }

            return call <= _failures
                ? Results.Text($"{{\"error\":\"busy {call}\"}}", "application/json", statusCode: 503)
                : Results.Text($"{{\"charge\":\"ch_{call}\"}}", "application/json");
        });
        await _partner.StartAsync();
    }

    [TearDown]
    public async Task StopPartnerAsync() => await _partner.DisposeAsync();

    private Uri PartnerUri => new(_partner.Urls.First());

    private Task<WebFixture> StartShopAsync(Action<IServiceCollection> clients) => WebFixture.StartAsync(
        app =>
        {
            app.UseJobLogRequests();
            app.MapPost("/checkout", async (PspClient psp) => Results.Text(await psp.ChargeAsync()));
            app.MapPost("/refund", async (IHttpClientFactory factory) =>
            {
                using var response = await factory.CreateClient("psp-named").PostAsync("/charges", new StringContent("{\"amount\":5}"));
                return Results.Text(await response.Content.ReadAsStringAsync());
            });
        },
        clients,
        Server.Kestrel);

    [Test]
    public async Task TypedClient_JobLogAfterTheStandardResilienceHandler_RecordsEachAttemptLinkedToTheInboundRequest()
    {
        _failures = 2;
        await using var web = await StartShopAsync(services => services
            .AddHttpClient<PspClient>(c => c.BaseAddress = PartnerUri)
            .AddStandardResilienceHandler(o => o.Retry.Delay = TimeSpan.FromMilliseconds(10)).Services
            .AddHttpClient<PspClient>()
            .AddJobLogging(slug: "psp"));

        using var response = await web.Client.PostAsync("/checkout", null);

        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("{\"charge\":\"ch_3\"}"));
        var (input, outputs) = await InputAndOutputsAsync(web, 3);
        Assert.That(outputs.Select(o => o.ResponseCode), Is.EqualTo(new int?[] { 503, 503, 200 }), "one record per attempt");
        Assert.That(outputs.Select(o => o.InputRequestId), Is.All.EqualTo(input.Id));
        Assert.That(outputs.Select(o => o.Slug), Is.All.EqualTo("psp"));
        Assert.That(outputs[0].ResponseBody, Is.EqualTo("{\"error\":\"busy 1\"}"));
        Assert.That(outputs[0].Status, Is.EqualTo(RequestLogStatus.Error));
    }

    [Test]
    public async Task NamedClient_JobLogBeforeTheResilienceHandler_RecordsTheLogicalCallOnce()
    {
        _failures = 2;
        await using var web = await StartShopAsync(services => services
            .AddHttpClient("psp-named", c => c.BaseAddress = PartnerUri)
            .AddJobLogging(slug: "psp")
            .AddStandardResilienceHandler(o => o.Retry.Delay = TimeSpan.FromMilliseconds(10)));

        using var response = await web.Client.PostAsync("/refund", null);

        Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("{\"charge\":\"ch_3\"}"));
        var (input, outputs) = await InputAndOutputsAsync(web, 1);
        Assert.That(_calls, Is.EqualTo(3));
        Assert.That(outputs.Single().ResponseCode, Is.EqualTo(200), "the answer the caller got");
        Assert.That(outputs.Single().InputRequestId, Is.EqualTo(input.Id));
        Assert.That(outputs.Single().RequestBody, Is.EqualTo("{\"amount\":5}"));
    }

    [Test]
    public async Task AttemptTimingOut_UnderTheStandardHandler_IsRecordedAsAnErrorAndTheRetryAsItsOwnRecord_InsideACommand()
    {
        _hangFirst = TimeSpan.FromMinutes(1);
        await using var web = await StartShopAsync(services => services
            .AddHttpClient<PspClient>(c => c.BaseAddress = PartnerUri)
            .AddStandardResilienceHandler(o =>
            {
                o.Retry.Delay = TimeSpan.FromMilliseconds(10);
                o.AttemptTimeout.Timeout = TimeSpan.FromSeconds(2);
                o.CircuitBreaker.SamplingDuration = TimeSpan.FromSeconds(5);
            }).Services
            .AddHttpClient<PspClient>()
            .AddJobLogging(slug: "psp"));
        var commands = web.Services.GetRequiredService<CommandLogger>();

        var charge = "";
        var exit = await commands.RunAsync("charge", ["--order", "7"], async _ =>
        {
            await using var scope = web.Services.CreateAsyncScope();
            charge = await scope.ServiceProvider.GetRequiredService<PspClient>().ChargeAsync();
            return 0;
        });

        Assert.That(exit, Is.EqualTo(0));
        Assert.That(charge, Is.EqualTo($"{{\"charge\":\"ch_{_calls}\"}}"));
        List<OutputRequestLog> outputs = [];
        await LedgerHost.EventuallyAsync(async () =>
        {
            await web.FlushAsync();
            outputs = await web.OutputsAsync();
            return outputs.Count == _calls && outputs.All(o => o.Status != RequestLogStatus.Incomplete);
        }, because: "a finished record per attempt");
        var command = await web.QueryAsync(db => db.CommandLogs.AsNoTracking().SingleAsync());
        var ordered = outputs.OrderBy(o => o.RequestTimestamp).ThenBy(o => o.Id).ToList();
        Assert.That(ordered[0].Status, Is.EqualTo(RequestLogStatus.Error));
        Assert.That(ordered[0].ResponseCode, Is.Null);
        Assert.That(ordered[0].ExceptionName, Does.Contain("Canceled").Or.Contain("Timeout"));
        Assert.That(ordered[^1].ResponseCode, Is.EqualTo(200));
        Assert.That(outputs.Select(o => o.RelatedObjects.Single().CommandLogId), Is.All.EqualTo(command.Id), "both attempts belong to the command");
    }

    [Test]
    public async Task HttpClient_CreatedWithNew_IsNotRecorded()
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapPost("/direct", async () =>
                {
                    using var client = new HttpClient { BaseAddress = PartnerUri };
                    using var response = await client.PostAsync("/charges", null);
                    return Results.StatusCode((int)response.StatusCode);
                });
            },
            server: Server.Kestrel);

        using var response = await web.Client.PostAsync("/direct", null);

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        await web.CompletedInputAsync("/direct");
        Assert.That(await web.OutputsAsync(), Is.Empty, "only IHttpClientFactory clients with AddJobLogging are recorded");
        Assert.That(_calls, Is.EqualTo(1));
    }

    private static async Task<(InputRequestLog Input, List<OutputRequestLog> Outputs)> InputAndOutputsAsync(WebFixture web, int outputs)
    {
        List<OutputRequestLog> found = [];
        InputRequestLog? input = null;
        await LedgerHost.EventuallyAsync(async () =>
        {
            await web.FlushAsync();
            found = await web.OutputsAsync();
            input = (await web.InputsAsync()).SingleOrDefault(i => i.Status != RequestLogStatus.Incomplete);
            return input is not null && found.Count == outputs && found.All(o => o.Status != RequestLogStatus.Incomplete);
        }, because: $"one completed inbound request and {outputs} outbound");
        return (input!, found.OrderBy(o => o.RequestTimestamp).ThenBy(o => o.Id).ToList());
    }

    public sealed class PspClient(HttpClient client)
    {
        public async Task<string> ChargeAsync()
        {
            using var response = await client.PostAsync("/charges", new StringContent("{\"amount\":10,\"cardToken\":\"tok_visa\"}"));
            return await response.Content.ReadAsStringAsync();
        }
    }
}
