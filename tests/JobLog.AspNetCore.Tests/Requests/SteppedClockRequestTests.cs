using JobLog.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using NUnit.Framework;

namespace JobLog.AspNetCore.Tests.Requests;

/// <summary>
/// Session 35 (faults): a wall clock stepped an hour back while an endpoint runs (an NTP step, a VM resumed;
/// <see cref="SteppedClock"/>) made the request's response time the wall clock at its end, an hour before the request.
/// </summary>
[TestFixture]
public sealed class SteppedClockRequestTests
{
    [Test]
    public async Task Request_WhoseWallClockStepsAnHourBackInItsEndpoint_IsAnsweredAfterItArrived()
    {
        var clock = new SteppedClock();
        await using var web = await WebFixture.StartAsync(
            app =>
            {
                app.UseJobLogRequests();
                app.MapGet("/orders", () =>
                {
                    clock.Step(TimeSpan.FromHours(-1));
                    return "ok";
                });
            },
            services => services.Replace(ServiceDescriptor.Singleton<TimeProvider>(clock)));

        (await web.Client.GetAsync("/orders")).Dispose();

        var log = await web.CompletedInputAsync("/orders");
        Assert.That(log.ResponseTimestamp, Is.GreaterThanOrEqualTo(log.RequestTimestamp).And.LessThan(log.RequestTimestamp.AddMinutes(5)),
            $"the request: {log.RequestTimestamp:O} to {log.ResponseTimestamp:O} (the wall clock stepped an hour back in it)");
    }
}
