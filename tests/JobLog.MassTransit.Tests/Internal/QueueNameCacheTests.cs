using JobLog.MassTransit.Internal;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Internal;

/// <summary>
/// The queue name of the address seen last: kept for the same <see cref="Uri"/> object and for another one read from the
/// same text (a consumed message's destination address is a new object per message), never for another address.
/// </summary>
public class QueueNameCacheTests
{
    [Test]
    public void AddressesReadFromTheSameText_HaveTheNameOfTheirText_AndAnotherAddressItsOwn()
    {
        var cache = new QueueNameCache();
        string[] texts =
        [
            "rabbitmq://localhost/vhost/orders",
            "rabbitmq://localhost/vhost/orders",
            "rabbitmq://localhost/vhost/exchange:urn:message:Shop:OrderPlaced",
            "rabbitmq://localhost/vhost/exchange:urn:message:Shop:OrderPlaced",
            "queue:orders%20eu",
            "urn:message:Shop:OrderPlaced",
            "rabbitmq://localhost/vhost/orders",
        ];

        foreach (var text in texts)
        {
            var address = new Uri(text);
            Assert.That(cache.Get(address), Is.EqualTo(TaskLoggingServices.QueueName(new Uri(text))), text);
            Assert.That(cache.Get(address), Is.EqualTo(TaskLoggingServices.QueueName(address)), text + ", the same object again");
        }
    }

    [Test]
    public void AnAddressOfTheSameTextButAnotherKind_IsNamedAsItsOwn()
    {
        var cache = new QueueNameCache();
        // On Unix a rooted path is an absolute file: URI; read as relative it is the same text.
        var absolute = new Uri("/vhost/orders%20eu", UriKind.RelativeOrAbsolute);
        var relative = new Uri("/vhost/orders%20eu", UriKind.Relative);

        Assert.That(cache.Get(absolute), Is.EqualTo(TaskLoggingServices.QueueName(absolute)));
        Assert.That(cache.Get(relative), Is.EqualTo(TaskLoggingServices.QueueName(relative)));
        Assert.That(cache.Get(null), Is.Null);
    }
}
