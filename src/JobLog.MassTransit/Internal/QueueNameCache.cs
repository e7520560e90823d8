namespace JobLog.MassTransit.Internal;

/// <summary>
/// The queue name (<see cref="TaskLoggingServices.QueueName"/>) of the address seen last: a consumer's input address and
/// a publish's exchange are usually the same <see cref="Uri"/> object message after message, so their names are computed
/// once instead of once per message.
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
        if (last is not null && ReferenceEquals(last.Address, address))
        {
            return last.Name;
        }

        var name = TaskLoggingServices.QueueName(address);
        Volatile.Write(ref _last, new Entry(address, name));
        return name;
    }

    private sealed record Entry(Uri Address, string? Name);
}
