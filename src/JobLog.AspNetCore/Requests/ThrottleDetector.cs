using System.Diagnostics.Metrics;

namespace JobLog.AspNetCore.Requests;

/// <summary>
/// Learns that ASP.NET Core's rate limiter rejected the current request. The rate limiting middleware counts every
/// request in <c>aspnetcore.rate_limiting.requests</c> with the result <c>global_limiter</c> or <c>endpoint_limiter</c>
/// when it rejects; the measurement is taken in the request's own async flow, where the recording is ambient. This holds
/// whatever <c>OnRejected</c> callback or status code the application configured.
/// </summary>
internal static class ThrottleDetector
{
    internal const string MeterName = "Microsoft.AspNetCore.RateLimiting";
    internal const string InstrumentName = "aspnetcore.rate_limiting.requests";
    internal const string ResultTag = "aspnetcore.rate_limiting.result";

    private static readonly AsyncLocal<RequestRecording?> s_current = new();
    private static readonly Lock s_lock = new();
    private static MeterListener? s_listener;

    public static void EnsureListening()
    {
        lock (s_lock)
        {
            if (s_listener is not null)
            {
                return;
            }

            var listener = new MeterListener
            {
                InstrumentPublished = (instrument, l) =>
                {
                    if (instrument.Meter.Name == MeterName && instrument.Name == InstrumentName)
                    {
                        l.EnableMeasurementEvents(instrument);
                    }
                },
            };
            listener.SetMeasurementEventCallback<long>(OnMeasurement);
            listener.Start();
            s_listener = listener;
        }
    }

    /// <summary>Makes <paramref name="recording"/> the request that rejections in this async flow belong to.</summary>
    public static void Track(RequestRecording recording) => s_current.Value = recording;

    private static void OnMeasurement(Instrument instrument, long value, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        if (s_current.Value is not { } recording)
        {
            return;
        }

        foreach (var tag in tags)
        {
            if (tag.Key == ResultTag && tag.Value is "global_limiter" or "endpoint_limiter")
            {
                recording.MarkThrottled();
                return;
            }
        }
    }
}
