using JobLog.Context;
using NUnit.Framework;

namespace JobLog.Core.Tests.Context;

/// <summary><c>JobLogScope.Relate(entity)</c> is called on the business path: whatever the entity, it never throws.</summary>
public class RelateTests
{
    [Test]
    public void Relate_AnEntityWhoseIdHidesItsBaseClassId_TakesTheMostDerivedId()
    {
        // EF models often hide a base Id with `new`: Type.GetProperty("Id") threw AmbiguousMatchException into the caller.
        var id = Guid.NewGuid();

        using (JobLogScope.Relate(new Order { Id = id }))
        {
            Assert.That(JobLogScope.Current!.RelatedObject, Is.EqualTo(("Order", id.ToString())));
        }
    }

    [Test]
    public void Relate_AnEntityWhoseIdOrTextThrows_RelatesItWithAMarker()
    {
        using (JobLogScope.Relate(new Throwing()))
        {
            Assert.That(JobLogScope.Current!.RelatedObject, Is.EqualTo(("Throwing", "[not rendered: InvalidOperationException]")));
        }

        using (JobLogScope.Relate(new ThrowingText()))
        {
            Assert.That(JobLogScope.Current!.RelatedObject, Is.EqualTo(("ThrowingText", "[not rendered: NotSupportedException]")));
        }
    }

    private class Entity
    {
        public int Id { get; set; }
    }

    private sealed class Order : Entity
    {
        public new Guid Id { get; set; }
    }

    private sealed class Throwing
    {
        public string Id => throw new InvalidOperationException("lazy load outside a context");
    }

    private sealed class ThrowingText
    {
        public override string ToString() => throw new NotSupportedException();
    }
}
