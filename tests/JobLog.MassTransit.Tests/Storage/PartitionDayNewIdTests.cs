using JobLog.Storage.Partitioning;
using MassTransit;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Storage;

/// <summary>The partition key reads the day out of the message ids MassTransit makes (docs/scale.md#partitioning).</summary>
public class PartitionDayNewIdTests
{
    [Test]
    public void PartitionDay_OfMassTransitsNewId_IsTheDayItWasMade()
    {
        var before = PartitionDay.Of(DateTime.UtcNow);
        var ids = Enumerable.Range(0, 100).Select(_ => NewId.NextGuid()).ToList();
        var after = PartitionDay.Of(DateTime.UtcNow);

        Assert.That(ids.Select(PartitionDay.Of), Is.All.InRange(before, after));
        Assert.That(PartitionDay.Of(NewId.Next().ToGuid()), Is.InRange(before, after + 1));
    }
}
