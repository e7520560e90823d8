using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Text;
using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace JobLog.Core.Tests.Hostile;

/// <summary>
/// The outbound side against a hostile partner: a raw socket server on loopback that answers with bytes no well-behaved
/// server sends (NUL and invalid UTF-8 in headers and bodies, thousands of headers, a redirect to itself, a body that
/// stalls, a connection reset after the headers, a body that never ends, a gzip bomb). The application's call, through a
/// client with <c>AddJobLogging()</c>, ends as the same call through a client without it (the same status and body length,
/// or the same exception type), and the call's record is written, truthful and bounded.
/// </summary>
public class HostileServerOutboundTests
{
    private const int MaxBodyLength = 10_000;
    private HostileServer _server = null!;
    private LedgerHost _host = null!;

    [OneTimeSetUp]
    public async Task StartAsync()
    {
        _server = HostileServer.Start();
        _host = await LedgerHost.StartAsync(TestLedger.Sqlite(), services: s =>
        {
            foreach (var (name, logged) in new[] { ("logged", true), ("plain", false) })
            {
                var client = s.AddHttpClient(name, c =>
                {
                    c.BaseAddress = _server.Address;
                    c.Timeout = TimeSpan.FromSeconds(5);
                    c.MaxResponseContentBufferSize = 1024 * 1024;
                }).ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.All });
                if (logged)
                {
                    client.AddJobLogging(slug: "hostile");
                }
            }
        });
    }

    [OneTimeTearDown]
    public async Task StopAsync()
    {
        await _host.DisposeAsync();
        await _server.DisposeAsync();
    }

    private HttpClient Client(string name) => _host.Services.GetRequiredService<IHttpClientFactory>().CreateClient(name);

    /// <summary>How the application's call ended: its status and the length of what it read, or its exception's type.</summary>
    private static async Task<string> Outcome(Func<HttpClient, Task<string>> call, HttpClient client)
    {
        try
        {
            return await call(client);
        }
        catch (Exception ex)
        {
            return "threw " + ex.GetType().Name + (ex.InnerException is { } inner ? " (" + inner.GetType().Name + ")" : "");
        }
    }

    private static Func<HttpClient, Task<string>> Buffered(string path) => async client =>
    {
        using var response = await client.GetAsync(path);
        var body = await response.Content.ReadAsByteArrayAsync();
        return $"{(int)response.StatusCode} {body.Length} bytes";
    };

    private static Func<HttpClient, Task<string>> Streamed(string path, long readAtMost) => async client =>
    {
        using var response = await client.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
        await using var stream = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[81920];
        long total = 0;
        int read;
        while (total < readAtMost && (read = await stream.ReadAsync(buffer)) > 0)
        {
            total += read;
        }

        return $"{(int)response.StatusCode} read {Math.Min(total, readAtMost) >= readAtMost} ";
    };

    public static IEnumerable<TestCaseData> Cases()
    {
        yield return new TestCaseData("/nul-header", false, 0L).SetName("NulAndInvalidUtf8InAHeader");
        yield return new TestCaseData("/many-headers", false, 0L).SetName("TwoThousandHeaders");
        yield return new TestCaseData("/too-many-headers", false, 0L).SetName("HeadersPastTheClientsLimit");
        yield return new TestCaseData("/loop", false, 0L).SetName("ALocationLoop");
        yield return new TestCaseData("/bad-body", false, 0L).SetName("NulAndInvalidUtf8InATextBody");
        yield return new TestCaseData("/reset", false, 0L).SetName("AResetAfterTheHeaders_Buffered");
        yield return new TestCaseData("/reset", true, 1_000_000L).SetName("AResetAfterTheHeaders_Streamed");
        yield return new TestCaseData("/stall", false, 0L).SetName("ABodyThatStalls_Buffered");
        yield return new TestCaseData("/endless", false, 0L).SetName("ANeverEndingBody_Buffered");
        yield return new TestCaseData("/endless", true, 20_000_000L).SetName("ANeverEndingBody_StreamedAndAbandoned");
        yield return new TestCaseData("/gzip-bomb", false, 0L).SetName("AGzipBomb_Buffered");
        yield return new TestCaseData("/gzip-bomb", true, 40_000_000L).SetName("AGzipBomb_Streamed");
        yield return new TestCaseData("/brotli-bomb", true, 40_000_000L).SetName("ABrotliBomb_Streamed");
    }

    [TestCaseSource(nameof(Cases))]
    public async Task HostilePartner_TheCallEndsAsWithoutJobLog_AndItsRecordIsWrittenAndBounded(string path, bool streamed, long readAtMost)
    {
        var marker = Guid.NewGuid().ToString("N");
        var target = $"{path}?call={marker}";
        var call = streamed ? Streamed(target, readAtMost) : Buffered(target);

        var without = await Outcome(call, Client("plain"));
        var with = await Outcome(call, Client("logged"));

        // A reset right after the headers may reach the client before it has read them (the kernel then discards them):
        // the call fails sending (HttpRequestException) instead of reading (IOException), with or without JobLog.
        static string Ending(string outcome, string path) =>
            path == "/reset" && outcome.StartsWith("threw", StringComparison.Ordinal) && outcome.Contains("Exception", StringComparison.Ordinal) ? "threw (reset)" : outcome;
        Assert.That(Ending(with, path), Is.EqualTo(Ending(without, path)), $"the call through JobLog's client ends as without it ({with}; without: {without})");
        OutputRequestLog? log = null;
        await LedgerHost.EventuallyAsync(
            async () =>
            {
                await _host.FlushAsync();
                log = await _host.QueryAsync(db => db.OutputRequestLogs.AsNoTracking().SingleOrDefaultAsync(o => o.Queries!.Contains(marker)));
                return log is not null && log.Status != RequestLogStatus.Incomplete;
            },
            because: "the call's record is written");
        TestContext.Out.WriteLine($"{path}: the call: {with}; the record: {log!.Status} {log.ResponseCode} {log.ExceptionName} body {log.ResponseBody?.Length} headers {log.ResponseHeaders?.Length}: {log.ErrorDescription?.Split('\n')[0]}");
        Assert.Multiple(() =>
        {
            Assert.That(log.ResponseBody?.Length ?? 0, Is.LessThanOrEqualTo(MaxBodyLength + 100), "the stored body is bounded");
            Assert.That(log.ResponseHeaders?.Length ?? 0, Is.LessThanOrEqualTo(MaxBodyLength + 100), "the stored headers are bounded");
            Assert.That((log.ResponseBody ?? "").Contains('\0', StringComparison.Ordinal), Is.False, "no NUL is stored in the body");
            Assert.That((log.ResponseHeaders ?? "").Contains('\0', StringComparison.Ordinal), Is.False, "no NUL is stored in the headers");
            if (with.StartsWith("threw", StringComparison.Ordinal) && !streamed)
            {
                Assert.That(log.Status, Is.EqualTo(RequestLogStatus.Error), "a call that threw is an ERROR");
                Assert.That(log.ExceptionName, Is.Not.Null, "a call that threw names its exception");
            }
            else if (!with.StartsWith("threw", StringComparison.Ordinal))
            {
                Assert.That(log.ResponseCode, Is.EqualTo(int.Parse(with[..3], System.Globalization.CultureInfo.InvariantCulture)), "the record's code is the one the caller got");
            }
        });
    }

    /// <summary>A loopback server that reads each request's head and answers with the bytes its path names.</summary>
    private sealed class HostileServer : IAsyncDisposable
    {
        private readonly TcpListener _listener;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _accepting;
        private static readonly Lazy<byte[]> s_gzipBomb = new(() => Compress(s => new GZipStream(s, CompressionLevel.Optimal)));
        private static readonly Lazy<byte[]> s_brotliBomb = new(() => Compress(s => new BrotliStream(s, CompressionLevel.Optimal)));

        private HostileServer()
        {
            _listener = new TcpListener(IPAddress.Loopback, 0);
            _listener.Start();
            _accepting = AcceptAsync();
        }

        public Uri Address => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");

        public static HostileServer Start() => new();

        // 64 MB of one text character, compressed: about 64 KB of gzip, a few hundred bytes of brotli.
        private static byte[] Compress(Func<Stream, Stream> compressor)
        {
            using var output = new MemoryStream();
            using (var compressing = compressor(output))
            {
                var chunk = new byte[1024 * 1024];
                chunk.AsSpan().Fill((byte)'a');
                for (var i = 0; i < 64; i++)
                {
                    compressing.Write(chunk);
                }
            }

            return output.ToArray();
        }

        private async Task AcceptAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                Socket socket;
                try
                {
                    socket = await _listener.AcceptSocketAsync(_stop.Token);
                }
                catch (Exception) when (_stop.IsCancellationRequested)
                {
                    return;
                }

                _ = Task.Run(() => ServeAsync(socket));
            }
        }

        private async Task ServeAsync(Socket socket)
        {
            try
            {
                using (socket)
                {
                    await using var stream = new NetworkStream(socket, ownsSocket: false);
                    while (await ReadHeadAsync(stream) is { } path)
                    {
                        if (!await AnswerAsync(socket, stream, path))
                        {
                            return;
                        }
                    }
                }
            }
            catch (Exception)
            {
                // The client went away mid-answer: the hostile server does not care.
            }
        }

        private async Task<string?> ReadHeadAsync(NetworkStream stream)
        {
            var head = new List<byte>();
            var one = new byte[1];
            while (!(head.Count >= 4 && head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n'))
            {
                if (await stream.ReadAsync(one, _stop.Token) == 0)
                {
                    return null;
                }

                head.Add(one[0]);
            }

            var line = Encoding.ASCII.GetString(head.ToArray()).Split("\r\n")[0];
            var target = line.Split(' ')[1];
            return target.Split('?')[0];
        }

        private static byte[] Latin1(string text) => Encoding.Latin1.GetBytes(text);

        /// <summary>Answers one request; false when the connection is to end.</summary>
        private async Task<bool> AnswerAsync(Socket socket, NetworkStream stream, string path)
        {
            switch (path)
            {
                case "/nul-header":
                    await stream.WriteAsync(Latin1("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Bad: a\0b\u00ff\u00fe\u00c3(\r\nX-Ok: 1\r\nContent-Length: 2\r\n\r\nok"));
                    return true;
                case "/many-headers":
                case "/too-many-headers":
                    var head = new StringBuilder("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n");
                    for (var i = 0; i < (path == "/many-headers" ? 2000 : 20_000); i++)
                    {
                        head.Append("X-H").Append(i).Append(": v").Append(i).Append("\r\n");
                    }

                    await stream.WriteAsync(Latin1(head.Append("\r\nok").ToString()));
                    return true;
                case "/loop":
                    await stream.WriteAsync(Latin1("HTTP/1.1 302 Found\r\nLocation: /loop?again=1\r\nContent-Length: 0\r\n\r\n"));
                    return true;
                case "/bad-body":
                    var body = Latin1("{\"a\":\"x\0y\u00ff\u00fe\u00c3(\"}");
                    await stream.WriteAsync(Latin1($"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {body.Length}\r\n\r\n"));
                    await stream.WriteAsync(body);
                    return true;
                case "/reset":
                    await stream.WriteAsync(Latin1("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\nfirst ten."));
                    await stream.FlushAsync();
                    socket.LingerState = new LingerOption(true, 0);
                    socket.Close();
                    return false;
                case "/stall":
                    await stream.WriteAsync(Latin1("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nfirst ten."));
                    await stream.FlushAsync();
                    await Task.Delay(Timeout.Infinite, _stop.Token);
                    return false;
                case "/endless":
                    await stream.WriteAsync(Latin1("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"));
                    var chunk = Latin1("10000\r\n" + new string('z', 0x10000) + "\r\n");
                    while (!_stop.IsCancellationRequested)
                    {
                        await stream.WriteAsync(chunk, _stop.Token);
                    }

                    return false;
                case "/gzip-bomb":
                case "/brotli-bomb":
                    var bomb = path == "/gzip-bomb" ? s_gzipBomb.Value : s_brotliBomb.Value;
                    await stream.WriteAsync(Latin1($"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: {(path == "/gzip-bomb" ? "gzip" : "br")}\r\nContent-Length: {bomb.Length}\r\n\r\n"));
                    await stream.WriteAsync(bomb);
                    return true;
                default:
                    await stream.WriteAsync(Latin1("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
                    return true;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            try
            {
                await _accepting;
            }
            catch (OperationCanceledException)
            {
            }

            _stop.Dispose();
        }
    }
}
