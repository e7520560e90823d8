using BenchmarkDotNet.Attributes;
using JobLog.MassTransit.Internal;
using MassTransit;

namespace JobLog.Bench.Micro;

/// <summary>
/// What a request client's send costs JobLog's memory of outstanding requests (<see cref="PendingRequests"/>, one per bus)
/// while <see cref="Outstanding"/> earlier requests still wait for their answers (none expired): the send is remembered,
/// then answered, so the number outstanding stays the same. Run with <c>micro --filter *PendingRequests*</c>.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class PendingRequestsBenchmarks
{
    private static readonly string[] s_accepted = ["urn:message:Bench:QuoteGiven", "urn:message:Bench:QuoteRefused"];
    private PendingRequests _requests = null!;

    /// <summary>Requests sent and not yet answered; 10,000 is the memory's bound.</summary>
    [Params(0, 5_000, 10_000)]
    public int Outstanding { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _requests = new PendingRequests(TimeProvider.System);
        for (var i = 0; i < Outstanding; i++)
        {
            _requests.Sent(NewId.NextGuid(), s_accepted, TimeSpan.FromMinutes(30));
        }
    }

    [Benchmark(Description = "PendingRequests: a request sent, then its answer received")]
    public void SendThenAnswer()
    {
        var id = NewId.NextGuid();
        _requests.Sent(id, s_accepted, TimeSpan.FromSeconds(30));
        _requests.Answered(id);
    }
}
