using System.Net;
using JobLog.AspNetCore.Tests.Requests;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Hostile;

/// <summary>
/// A request the server's own timeout ends (ASP.NET Core's <c>RequestTimeouts</c> middleware cancels
/// <c>RequestAborted</c> and answers 504) is not a client that disconnected: the record says it timed out, and after
/// how long, wherever <c>UseRequestTimeouts()</c> sits around JobLog. A client that does disconnect still reads so.
/// </summary>
public class ServerTimeoutTests
{
    [TestCase(true, false, TestName = "EndpointThrowingAtTheServersTimeout_TimeoutsAroundJobLog_IsRecordedAsTimedOut")]
    [TestCase(true, true, TestName = "EndpointReturningAtTheServersTimeout_TimeoutsAroundJobLog_IsRecordedAsTimedOut")]
    [TestCase(false, false, TestName = "EndpointThrowingAtTheServersTimeout_TimeoutsInsideJobLog_IsRecordedWithTheCodeSent")]
    [TestCase(false, true, TestName = "EndpointReturningAtTheServersTimeout_TimeoutsInsideJobLog_IsRecordedAsReturned")]
    public async Task EndpointAtTheServersRequestTimeout_IsRecordedAsTimedOut_NotAsTheClientDisconnecting(bool timeoutsAroundJobLog, bool endpointCatches)
    {
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseRouting();
                if (timeoutsAroundJobLog)
                {
                    app.UseRequestTimeouts();
                    app.UseJobLogRequests();
                }
                else
                {
                    app.UseJobLogRequests();
                    app.UseRequestTimeouts();
                }

                app.MapGet("/slow", async (HttpContext context) =>
                {
                    try
                    {
                        await Task.Delay(Timeout.Infinite, context.RequestAborted);
                    }
                    catch (OperationCanceledException) when (endpointCatches)
                    {
                        return Results.Text("gave up");
                    }

                    return Results.Text("unreachable");
                }).WithRequestTimeout(TimeSpan.FromMilliseconds(300));
            },
            services: s => s.AddRequestTimeouts(),
            server: Server.Kestrel);

        using var response = await web.Client.GetAsync("/slow");

        var record = await web.CompletedInputAsync("/slow");
        TestContext.Out.WriteLine($"{(int)response.StatusCode} | {record.ResponseCode} {record.Status} {record.ExceptionName}: {record.ErrorDescription}");
        Assert.That(record.ResponseCode, Is.EqualTo((int)response.StatusCode), "the code the client got");
        Assert.That(record.ErrorDescription ?? "", Does.Not.Contain("The client disconnected"), "the client did not go away");
        if (timeoutsAroundJobLog)
        {
            // Inside JobLog, the middleware answers before JobLog sees anything, and takes its feature away again.
            Assert.That(record.ErrorDescription, Does.StartWith("The request timed out: the server's request timeout of 0.3 seconds (RequestTimeouts) cancelled RequestAborted."));
        }

        if (!endpointCatches)
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.GatewayTimeout));
            Assert.That(record.Status, Is.EqualTo(RequestLogStatus.Error));
        }
    }
}
