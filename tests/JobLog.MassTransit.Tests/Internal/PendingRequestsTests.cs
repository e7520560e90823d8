using JobLog.MassTransit.Internal;
using MassTransit;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace JobLog.MassTransit.Tests.Internal;

/// <summary>
/// The memory of requests still waiting for an answer: bounded at 10,000, the expired swept when it is full (at most once
/// a second, so a send does not scan 10,000 entries each time; bench: <c>micro --filter *PendingRequests*</c>).
/// </summary>
public class PendingRequestsTests
{
    private static readonly string[] s_accepted = ["urn:message:Tests:QuoteGiven"];
    private static readonly string[] s_other = ["urn:message:Tests:QuotePending"];

    [Test]
    public void Full_ThenItsRequestsExpire_ANewRequestIsRememberedAgain()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 6, 5, 0, 0, TimeSpan.Zero));
        var requests = new PendingRequests(time);
        for (var i = 0; i < 10_000; i++)
        {
            requests.Sent(NewId.NextGuid(), s_accepted, TimeSpan.FromSeconds(30));
        }

        var refused = NewId.NextGuid();
        requests.Sent(refused, s_accepted, TimeSpan.FromSeconds(30));
        Assert.That(requests.NotAccepting(refused, s_other), Is.Null, "the memory is full: a new request is not remembered");

        time.Advance(TimeSpan.FromSeconds(31));
        var next = NewId.NextGuid();
        requests.Sent(next, s_accepted, TimeSpan.FromSeconds(30));
        Assert.That(requests.NotAccepting(next, s_other), Is.EqualTo(s_accepted), "the expired were swept: the new request is remembered");
    }

    [Test]
    public void Full_ASweepThatFreesNothing_IsNotRepeatedWithinASecond_ThenIs()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 6, 5, 0, 0, TimeSpan.Zero));
        var requests = new PendingRequests(time);
        var first = NewId.NextGuid();
        requests.Sent(first, s_accepted, TimeSpan.FromMilliseconds(500));
        for (var i = 1; i < 10_000; i++)
        {
            requests.Sent(NewId.NextGuid(), s_accepted, TimeSpan.FromMinutes(30));
        }

        requests.Sent(NewId.NextGuid(), s_accepted, TimeSpan.FromMinutes(30));   // full, nothing expired: swept, nothing freed
        time.Advance(TimeSpan.FromMilliseconds(600));                           // the first request expired
        var tooSoon = NewId.NextGuid();
        requests.Sent(tooSoon, s_accepted, TimeSpan.FromMinutes(30));
        Assert.That(requests.NotAccepting(tooSoon, s_other), Is.Null, "within a second of the last sweep: not swept again");

        time.Advance(TimeSpan.FromMilliseconds(500));
        var later = NewId.NextGuid();
        requests.Sent(later, s_accepted, TimeSpan.FromMinutes(30));
        Assert.That(requests.NotAccepting(later, s_other), Is.EqualTo(s_accepted), "a second later: swept, the expired first request made room");
        Assert.That(requests.NotAccepting(first, s_other), Is.Null, "the expired request is gone");
    }

    [Test]
    public void Answered_RemovesTheRequest_AndMakesRoom()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 6, 5, 0, 0, TimeSpan.Zero));
        var requests = new PendingRequests(time);
        var ids = Enumerable.Range(0, 10_000).Select(_ => NewId.NextGuid()).ToList();
        foreach (var id in ids)
        {
            requests.Sent(id, s_accepted, TimeSpan.FromMinutes(30));
        }

        requests.Answered(ids[0]);
        var next = NewId.NextGuid();
        requests.Sent(next, s_accepted, TimeSpan.FromMinutes(30));
        Assert.That(requests.NotAccepting(ids[0], s_other), Is.Null);
        Assert.That(requests.NotAccepting(next, s_other), Is.EqualTo(s_accepted), "an answer freed a place");
    }
}
