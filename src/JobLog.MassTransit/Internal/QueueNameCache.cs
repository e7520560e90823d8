namespace JobLog.MassTransit.Internal;

/// <summary>
/// The queue name (<see cref="TaskLoggingServices.QueueName"/>) of the address seen last: a consumer's input address and
/// a publish's exchange are usually the same <see cref="Uri"/> object message after message, so their names are computed
/// once instead of once per message. A consumed message's destination address is a new <see cref="Uri"/> per message
/// (MassTransit reads it from the envelope's text when asked): an address read from the same text (its
/// <see cref="Uri.OriginalString"/>, absolute or not) has the same name, so it is compared by text before it is parsed
/// (<see cref="Uri.AbsolutePath"/> parses it: ~0.35 KB a consumed message, docs/benchmarks.md "Session 37 (perf)").
/// </summary>
internal sealed class QueueNameCache
{
    private Entry? _last;

    public string? Get(Uri? address)
    {
        if (address is null)
        {
            return null;
        }

        var last = Volatile.Read(ref _last);
        if (last is not null
            && (ReferenceEquals(last.Address, address)
                || (last.Address.IsAbsoluteUri == address.IsAbsoluteUri && string.Equals(last.Address.OriginalString, address.OriginalString, StringComparison.Ordinal))))
        {
            return last.Name;
        }

        var name = TaskLoggingServices.QueueName(address);
        Volatile.Write(ref _last, new Entry(address, name));
        return name;
    }

    private sealed record Entry(Uri Address, string? Name);
}
