using System.Net;
using JobLog.Testing;
using MassTransit;
using MassTransit.Mediator;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Requests;

public sealed record PriceQuery(int Sku);

public sealed record PriceQuoted(int Sku, decimal Price);

/// <summary>Answers a price query after asking the partner.</summary>
public sealed class PriceQueryConsumer(IHttpClientFactory clients) : IConsumer<PriceQuery>
{
    public static Guid? SeenRequest;

    public async Task Consume(ConsumeContext<PriceQuery> context)
    {
        SeenRequest = JobLogScope.CurrentInputRequestId;
        (await clients.CreateClient("partner").GetAsync($"http://partner.test/price/{context.Message.Sku}")).EnsureSuccessStatusCode();
        await context.RespondAsync(new PriceQuoted(context.Message.Sku, 9.5m));
    }
}

/// <summary>Session 29: MassTransit's mediator called inside an ASP.NET Core request JobLog records.</summary>
public class MediatorInRequestTests
{
    /// <summary>
    /// A minimal API endpoint asks the mediator (<c>IMediator.CreateRequestClient&lt;T&gt;().GetResponse</c>), whose consumer
    /// calls a partner and responds: the query is a task linked to the inbound request, with one SUCCEEDED run; the
    /// consumer's outbound call belongs to that run; the response is not left waiting.
    /// </summary>
    /// <remarks>
    /// A mediator request client's send reaches the consumer without the mediator's send and publish observers: the task
    /// is the one its run creates, which takes the caller's request (and run) from the delivery (before session 29 it
    /// had neither).
    /// </remarks>
    [Test]
    public async Task Mediator_InsideAnInboundRequest_TheQueryIsATaskOfTheRequest_ItsCallOutIsTheRunsAndTheResponseEnds()
    {
        var partner = new PartnerStub();
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapGet("/price/{sku:int}", async (int sku, IMediator mediator) =>
                {
                    var response = await mediator.CreateRequestClient<PriceQuery>().GetResponse<PriceQuoted>(new PriceQuery(sku));
                    return Results.Ok(response.Message.Price);
                });
            },
            services =>
            {
                services.AddHttpClient("partner").ConfigurePrimaryHttpMessageHandler(() => partner).AddJobLogging(slug: "partner");
                services.AddMediator(x =>
                {
                    x.AddConsumer<PriceQueryConsumer>();
                    x.ConfigureMediator((context, cfg) =>
                    {
                        cfg.UseTaskLogging(context);
                    });
                });
            });

        using var response = await web.Client.GetAsync("/price/42");

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        List<TaskLog> tasks = [];
        List<OutputRequestLog> outputs = [];
        InputRequestLog input = null!;
        await LedgerHost.EventuallyAsync(async () =>
        {
            await web.FlushAsync();
            tasks = await web.QueryAsync(db => db.TaskLogs.AsNoTracking().Include(t => t.Runs).ToListAsync());
            outputs = await web.OutputsAsync();
            input = (await web.InputsAsync()).SingleOrDefault(i => i.Status != RequestLogStatus.Incomplete)!;
            return input is not null && outputs.Count == 1 && tasks.Count(t => t.Name == nameof(PriceQuery) && t.State == TaskState.Succeeded) == 1
                && tasks.Where(t => t.Name == nameof(PriceQuoted)).All(t => t.State != TaskState.Waiting);
        }, because: "the request completed, the query succeeded, the partner was called once, the response ended");

        foreach (var t in tasks)
        {
            TestContext.Out.WriteLine($"{t.Name} {t.State} internal={t.IsInternal} request={t.InputRequestId} parent={t.ParentRunId} q={t.QueueName} src={t.SourceAddress} dispatched={t.DispatchedAt:O} input={t.Input} runs={string.Join(",", t.Runs.Select(r => $"{r.ConsumerType} {r.State} {r.Start:O}"))}");
        }

        TestContext.Out.WriteLine($"input request {input.Id}; the consumer saw {PriceQueryConsumer.SeenRequest}");
        Assert.That(PriceQueryConsumer.SeenRequest, Is.EqualTo(input.Id), "the consumer runs inside the request's scope");

        var query = tasks.Single(t => t.Name == nameof(PriceQuery));
        var run = query.Runs.Single();
        Assert.That((query.InputRequestId, run.State, run.ConsumerType), Is.EqualTo(((Guid?)input.Id, TaskRunState.Succeeded, nameof(PriceQueryConsumer))));
        Assert.That(outputs.Single().Path, Is.EqualTo("/price/42"));
        Assert.That(outputs.Single().RelatedObjects.Select(r => r.TaskRunLogId), Is.EqualTo(new[] { (Guid?)run.Id }), "the consumer's call out is its run's");
    }
}
