using System.Diagnostics.Metrics;
using JobLog.Internal;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Internal;

public class JobLogMetricsTests
{
    [Test]
    public void RecordingFailed_CountsOnePerFailure_TaggedWithWhere()
    {
        var services = new ServiceCollection();
        services.AddMetrics();
        services.AddSingleton<JobLogMetrics>();
        using var provider = services.BuildServiceProvider();
        var metrics = provider.GetRequiredService<JobLogMetrics>();
        var measured = new List<(long Value, object? Where)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == JobLogMetrics.MeterName && instrument.Name == "joblog.recording.failures")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            measured.Add((value, tags.ToArray().Single(t => t.Key == "joblog.recording.where").Value)));
        listener.Start();

        metrics.RecordingFailed("dispatch");
        metrics.RecordingFailed("writer.reset");

        Assert.That(measured, Is.EqualTo(new[] { (1L, (object?)"dispatch"), (1L, (object?)"writer.reset") }));
    }
}
