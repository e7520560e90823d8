using System.Net;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using NUnit.Framework;

namespace JobLog.Core.Tests.Timing;

/// <summary>
/// A wall clock stepped an hour back while a command or an outbound request runs (an NTP step, a VM resumed;
/// <see cref="SteppedClock"/>: JobLog's wall time moves, its monotonic time does not). Session 35 (faults): their stop and
/// response time were the wall clock at their end, an hour before they began.
/// </summary>
[TestFixture]
public sealed class SteppedClockTests
{
    private static readonly TimeSpan Back = TimeSpan.FromHours(-1);

    [Test]
    public async Task Command_WhoseWallClockStepsAnHourBackWhileItRuns_StopsAfterItStarted()
    {
        var clock = new SteppedClock();
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s => s.Replace(ServiceDescriptor.Singleton<TimeProvider>(clock)));

        var exitCode = await host.Services.GetRequiredService<CommandLogger>().RunAsync("import", [], _ =>
        {
            clock.Step(Back);
            return Task.FromResult(0);
        });

        await host.FlushAsync();
        var log = await host.QueryAsync(db => db.CommandLogs.AsNoTracking().SingleAsync());
        Assert.That(exitCode, Is.Zero);
        Assert.That(log.Stop, Is.GreaterThanOrEqualTo(log.Start).And.LessThan(log.Start.AddMinutes(5)),
            $"the command: {log.Start:O} to {log.Stop:O} (the wall clock stepped {Back} in it)");
    }

    [Test]
    public async Task OutboundRequest_WhoseWallClockStepsAnHourBackBeforeItsResponse_IsAnsweredAfterItWasSent()
    {
        var clock = new SteppedClock();
        await using var host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s =>
        {
            s.Replace(ServiceDescriptor.Singleton<TimeProvider>(clock));
            s.AddHttpClient("psp").ConfigurePrimaryHttpMessageHandler(() => new SteppingHandler(clock)).AddJobLogging(slug: "psp");
        });

        using (var response = await host.Services.GetRequiredService<IHttpClientFactory>().CreateClient("psp").GetAsync("https://psp.example/v1/charges"))
        {
            Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo("ok"));
        }

        OutputRequestLog? log = null;
        await LedgerHost.EventuallyAsync(async () =>
        {
            await host.FlushAsync();
            log = await host.QueryAsync(db => db.OutputRequestLogs.AsNoTracking().SingleOrDefaultAsync(r => r.ResponseTimestamp != null));
            return log is not null;
        }, because: "the outbound request recorded with its response");
        Assert.That(log!.ResponseTimestamp, Is.GreaterThanOrEqualTo(log.RequestTimestamp).And.LessThan(log.RequestTimestamp.AddMinutes(5)),
            $"the request: {log.RequestTimestamp:O} to {log.ResponseTimestamp:O} (the wall clock stepped {Back} in it)");
    }

    /// <summary>Steps the wall clock an hour back, then answers with a text body.</summary>
    private sealed class SteppingHandler(SteppedClock clock) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            clock.Step(Back);
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("ok") });
        }
    }
}
