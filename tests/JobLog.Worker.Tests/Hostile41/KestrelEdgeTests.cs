using System.Net;
using System.Net.Sockets;
using JobLog.Worker.Tests.Hostile40;
using NUnit.Framework;

namespace JobLog.Worker.Tests.Hostile41;

/// <summary>
/// The real Worker over a bare socket, at what session 40 left unprobed: HTTP/1.0 without <c>Host</c>, slow headers from
/// many connections (slowloris), HTTP/2 with prior knowledge on the HTTP/1.1 port, a 100 KB request line. Kestrel's
/// defaults are the bounds (docs/dashboard.md, "What Kestrel answers").
/// </summary>
[TestFixture]
[NonParallelizable]
public class KestrelEdgeTests
{
    private WorkerHost _worker = null!;

    [OneTimeSetUp]
    public async Task StartAsync() => _worker = await WorkerHost.StartAsync();

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_worker is not null)
        {
            await _worker.DisposeAsync();
        }
    }

    [Test]
    public async Task Http10WithoutHost_Is403_SayingTheHostHeaderIsMissing()
    {
        var answer = await RawSocket.ExchangeAsync(_worker.Url, RawSocket.Ascii("GET /joblog/api/overview HTTP/1.0\r\n\r\n"));

        Assert.That(RawSocket.Statuses(answer), Is.EqualTo(new[] { 403 }), answer);
        Assert.That(Body(answer), Does.Contain("no Host header"), answer);

        // A Host that is there but not loopback keeps the plain message: it says nothing of a missing header.
        var other = await RawSocket.ExchangeAsync(_worker.Url, RawSocket.Ascii("GET /joblog/api/overview HTTP/1.0\r\nHost: evil.example\r\n\r\n"));
        Assert.That(RawSocket.Statuses(other), Is.EqualTo(new[] { 403 }), other);
        Assert.That(Body(other), Does.StartWith("The JobLog dashboard only answers local requests."), other);
    }

    [Test]
    public async Task ARequestLineOf100KB_Is414_AndTheWorkerKeepsServing()
    {
        var target = "/joblog/api/tasks?q=" + new string('a', 100 * 1024);
        var answer = await RawSocket.ExchangeAsync(_worker.Url, RawSocket.Ascii($"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));

        Assert.That(RawSocket.Statuses(answer), Is.EqualTo(new[] { 414 }), Cut(answer));
        await AssertServingAsync();
    }

    [Test]
    public async Task Http2WithPriorKnowledge_OnTheHttp1Port_IsRefusedOrClosed_AndTheWorkerKeepsServing()
    {
        // The client preface (RFC 9113 3.4) and an empty SETTINGS frame, as an h2c client with prior knowledge sends them.
        byte[] settings = [0, 0, 0, 4, 0, 0, 0, 0, 0];
        var answer = await RawSocket.ExchangeAsync(_worker.Url, [.. RawSocket.Ascii("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), .. settings]);

        var bytes = RawSocket.Ascii(answer);
        TestContext.Out.WriteLine($"answered {bytes.Length} bytes: {Convert.ToHexString(bytes.AsSpan(0, Math.Min(64, bytes.Length)))}");
        // Kestrel sees the preface and answers in HTTP/2: a GOAWAY frame (type 7 on stream 0), then closes; or an HTTP/1 4xx.
        var statuses = RawSocket.Statuses(answer);
        var goAway = bytes.Length >= 17 && bytes[3] == 7 && bytes.AsSpan(5, 4).SequenceEqual(new byte[4]);
        Assert.That(goAway || (statuses.Count > 0 && statuses[0] is >= 400 and < 500 or 505), Is.True, Cut(answer));
        Assert.That(answer, Does.Not.Contain("Exception").And.Not.Contain("at Microsoft."), Cut(answer));
        await AssertServingAsync();
    }

    [Test]
    public async Task SlowHeadersFromManyConnections_LeaveEveryReadSlotAndTheWriterFree_AndKestrelEndsThem()
    {
        // 64 connections each dribbling a header line a byte at a time: more than the dashboard's 8 concurrent ledger reads
        // and 4 searches. They never reach the application (Kestrel parses the headers first), so they hold no read slot
        // and no ledger connection; Kestrel's RequestHeadersTimeout (30 s) ends each.
        const int Connections = 64;
        var uri = new Uri(_worker.Url);
        var slow = new List<TcpClient>();
        using var stop = new CancellationTokenSource();
        Task? dribbling = null;
        try
        {
            for (var i = 0; i < Connections; i++)
            {
                var tcp = new TcpClient();
                slow.Add(tcp);
                await tcp.ConnectAsync(uri.Host, uri.Port);
                await tcp.GetStream().WriteAsync(RawSocket.Ascii($"GET /joblog/api/tasks?q=slow{i} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "));
            }

            dribbling = DribbleAsync(slow, stop.Token);

            // Meanwhile: a message consumed and recorded, and eight reads at once, three of them searches: every one of the
            // dashboard's 8 read slots (and 3 of its 4 search slots). Were any held by a slow connection, a read would be 429.
            var task = await _worker.PublishAndWaitAsync(new JobLog.Worker.Demo.ChargeCard(4343, 2.5m));
            Assert.That(task.State, Is.EqualTo(TaskState.Succeeded).Or.EqualTo(TaskState.Failed));
            using var client = new HttpClient { BaseAddress = new Uri(_worker.Url), Timeout = RawSocket.Bound };
            var reads = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
            {
                using var response = await client.GetAsync(i % 3 == 0 ? "/joblog/api/tasks?q=ChargeCard" : i % 3 == 1 ? "/joblog/api/overview" : "/joblog/tasks");
                return (int)response.StatusCode;
            }));
            Assert.That(reads, Is.All.EqualTo(200), string.Join(", ", reads));

            // Kestrel ends every slow connection (an answer, or a close), bounded generously above its 30 s.
            var ends = await Task.WhenAll(slow.Select(async tcp =>
            {
                using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(150));
                return await RawSocket.ReadToCloseAsync(tcp.GetStream(), bound.Token);
            }));
            var statuses = ends.Select(e => RawSocket.Statuses(e) is [var s, ..] ? s.ToString(System.Globalization.CultureInfo.InvariantCulture) : "closed").ToList();
            TestContext.Out.WriteLine("slow connections ended: " + string.Join(", ", statuses.GroupBy(s => s).Select(g => $"{g.Key} x{g.Count()}")));
            Assert.That(statuses, Is.All.EqualTo("408").Or.EqualTo("closed"));
        }
        finally
        {
            await stop.CancelAsync();
            if (dribbling is not null)
            {
                await dribbling;
            }

            foreach (var tcp in slow)
            {
                tcp.Dispose();
            }
        }

        await AssertServingAsync();
    }

    private static async Task DribbleAsync(List<TcpClient> connections, CancellationToken cancellationToken)
    {
        var open = new HashSet<TcpClient>(connections);
        while (!cancellationToken.IsCancellationRequested && open.Count > 0)
        {
            foreach (var tcp in open.ToList())
            {
                try
                {
                    await tcp.GetStream().WriteAsync(RawSocket.Ascii("x"), cancellationToken);
                }
                catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
                {
                    open.Remove(tcp);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            try
            {
                // The pace of the dribble (a byte a second per connection), not a wait for a state.
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task AssertServingAsync()
    {
        using var client = new HttpClient { BaseAddress = new Uri(_worker.Url), Timeout = RawSocket.Bound };
        using var response = await client.GetAsync("/joblog/api/overview");
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    private static string Body(string answer) => answer.Split("\r\n\r\n", 2).ElementAtOrDefault(1) ?? "";

    private static string Cut(string answer) => answer.Length <= 2000 ? answer : answer[..2000] + $"… ({answer.Length} characters)";
}
