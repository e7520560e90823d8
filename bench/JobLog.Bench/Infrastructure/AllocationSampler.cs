using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using System.Globalization;
using System.Text;

namespace JobLog.Bench.Infrastructure;

/// <summary>
/// The runtime's GC AllocationTick events (one per ~100 KB allocated, with the type of the object that crossed the
/// threshold): a sampling allocation profile by type, without dotnet-trace.
/// </summary>
internal sealed class AllocationSampler : EventListener
{
    private readonly ConcurrentDictionary<string, long> _bytes = new(StringComparer.Ordinal);
    private volatile bool _enabled;

    public void Start()
    {
        _bytes.Clear();
        _enabled = true;
    }

    public void Stop() => _enabled = false;

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(eventSource, EventLevel.Verbose, (EventKeywords)0x1); // GC keyword
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (!_enabled || eventData.EventName is not "GCAllocationTick_V4" and not "GCAllocationTick_V3" and not "GCAllocationTick_V2"
            || eventData.Payload is null)
        {
            return;
        }

        var names = eventData.PayloadNames!;
        var type = names.IndexOf("TypeName") is var t and >= 0 ? eventData.Payload[t] as string ?? "?" : "?";
        var amount = names.IndexOf("AllocationAmount64") is var a and >= 0 ? Convert.ToInt64(eventData.Payload[a], CultureInfo.InvariantCulture) : 100_000;
        _bytes.AddOrUpdate(type, amount, (_, v) => v + amount);
    }

    public string Top(int count, int messages)
    {
        var total = _bytes.Values.Sum();
        var sb = new StringBuilder();
        foreach (var (type, bytes) in _bytes.OrderByDescending(p => p.Value).Take(count))
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"      {bytes * 100.0 / Math.Max(1, total),5:0.0}%  {bytes / 1024.0 / messages,7:0.00} KB/msg  {type}");
        }

        return sb.ToString();
    }
}
