using JobLog.Internal;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.Core.Tests.Internal;

/// <summary>Drops are reported at a steady rate: one line per interval with the count since the last one, none hidden.</summary>
public class SteadyRateTests
{
    [Test]
    public void AFlood_IsReportedOncePerInterval_WithEveryEventCounted()
    {
        var time = new FakeTimeProvider();
        var rate = new SteadyRate(time, TimeSpan.FromSeconds(10));
        var reports = new List<long>();

        for (var second = 0; second < 35; second++)
        {
            for (var i = 0; i < 1000; i++)
            {
                if (rate.Add(1, out var count))
                {
                    reports.Add(count);
                }
            }

            time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.That(reports, Is.EqualTo(new long[] { 1, 10000, 10000, 10000 }), "the first at once, then one per 10 s with the count since");
        Assert.That(rate.Add(0, out var rest), Is.False);
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.That(rate.Add(0, out rest), Is.True);
        Assert.That(reports.Sum() + rest, Is.EqualTo(35_000), "nothing is lost between reports");
    }
}
